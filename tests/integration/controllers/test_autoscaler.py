"""Acceptance (issue 8): the autoscaler end to end on the fake cluster with the simulation.

The fake API server runs its simulated cluster: the Deployment's pods and the autoscaler's pods
are started by a kubelet as real HTTP backends on their own loopback addresses, Ready after
short delays. The controller under test is the real one (informers, pipelines, autoscaler, pod
sink, proxy); users are HTTP clients holding cookies. Every wait is on a condition, with a
deadline; histories are taken from the pod watch as the controller saw it.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio

from rxkube.controllers import (
    APP_LABEL,
    AUTOSCALED_LABEL,
    K8STICKET_SCALED_LABEL,
    TEMPLATE_HASH_LABEL,
    AutoscalerSettings,
    ScaleStep,
    replay_trace,
)
from rxkube.fakes import FakeApiServer, Fault, SimSettings
from rxkube.streams import LeasePolicy, WatchEvent
from tests.integration.controllers.conftest import (
    NAMESPACE,
    Cluster,
    User,
    deployment,
    loopback,
    open_cluster,
)

SIM = SimSettings(
    schedule_delay=0.01, start_delay=0.15, ready_delay=0.05, terminate_delay=0.01, events=False
)
SCALING = AutoscalerSettings(
    create_timeout=5.0, delete_retry=0.3, backoff_first=0.1, backoff_max=0.4
)
PORT = 8080
NAME = re.compile(r"^lab-rxkube-[bcdfghjklmnpqrstvwxz2456789]{5}$")


def app(
    *, replicas: int = 1, env: str = "1", idle_timeout: str = "300ms", **annotations: str
) -> dict[str, Any]:
    """The app `lab`: one user per pod, pods serving on 8080 (the simulated backends); a
    ticket without an open connection is released after 300 ms without a request (a user
    who closed the tab). `env` is a value in the pod template, to change the template."""
    options = {
        "tickets_max": "1",
        "rxkube.io/tickets.idle-timeout": idle_timeout,
        "rxkube.io/pods.start-grace": "1m",
    }
    options.update(annotations)
    manifest = deployment("lab", **options)
    manifest["spec"]["replicas"] = replicas
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    container["ports"] = [{"containerPort": PORT}]
    container["env"] = [{"name": "VERSION", "value": env}]
    return manifest


def autoscaled(c: Cluster) -> list[dict[str, Any]]:
    """The app's autoscaled pods in the fake's store, by name."""
    pods = c.server.store.list("pods", NAMESPACE).objects()
    return sorted(
        (
            p
            for p in pods
            if p["metadata"].get("labels", {}).get(AUTOSCALED_LABEL) == "true"
            or p["metadata"].get("labels", {}).get(K8STICKET_SCALED_LABEL) == "true"
        ),
        key=lambda p: str(p["metadata"]["name"]),
    )


def names(c: Cluster) -> list[str]:
    return [p["metadata"]["name"] for p in autoscaled(c)]


@dataclass
class History:
    """What the controller's pod watch showed, with trio times: per pod, when it became Ready,
    when its deletion started; and every scale step."""

    ready: dict[str, float] = field(default_factory=dict)
    deleting: dict[str, float] = field(default_factory=dict)
    steps: list[ScaleStep] = field(default_factory=list)

    def on_pod(self, event: WatchEvent) -> None:
        if event.type == "SYNCED":
            return
        name, now = event.meta.name, trio.current_time()
        if event.meta.deletion_timestamp is not None or event.type == "DELETED":
            self.deleting.setdefault(name, now)
            return
        conditions = (event.object.get("status") or {}).get("conditions") or []
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            self.ready.setdefault(name, now)


def watch(c: Cluster) -> History:
    history = History()
    c.controller.informers["pods"].events.subscribe(history.on_pod)
    c.controller.scale_steps.subscribe(history.steps.append)
    return history


async def serve_when_running(c: Cluster, manifest: dict[str, Any]) -> dict[str, Any]:
    """Apply the Deployment without the opt-in label, wait until its own pods run and are
    Ready, then opt it in: the autoscaler starts from a Deployment already up."""
    replicas: int = manifest["spec"]["replicas"]
    manifest = {**manifest, "metadata": {**manifest["metadata"], "labels": {}}}
    created = c.apply(manifest)
    simulation = c.server.simulation
    assert simulation is not None

    def running(store: Any) -> bool:
        pods = store.list("pods", NAMESPACE, label_selector=f"{APP_LABEL}=lab").objects()
        return sum(1 for p in pods if _is_ready(p)) == replicas

    with trio.fail_after(10):
        await simulation.wait_until(running)
    c.label("lab", "true")
    await ready_servers(c, replicas)
    return created


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(x.get("type") == "Ready" and x.get("status") == "True" for x in conditions)


async def ready_servers(c: Cluster, count: int) -> None:
    await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].ready_servers == count)


async def scrape(c: Cluster) -> str:
    address = c.controller.metrics_address
    assert address is not None
    async with httpx.AsyncClient(timeout=5.0) as http:
        response = await http.get(f"http://{address[0]}:{address[1]}/metrics")
    assert response.status_code == 200
    return response.text


def cluster(**options: Any) -> Any:
    return open_cluster(simulate=SIM, autoscaling=SCALING, **options)


async def test_exhausting_spare_tickets_creates_pods_that_become_servers() -> None:
    async with cluster(metrics_listen=(loopback(), 0)) as c:
        history = watch(c)
        manifest = await serve_when_running(
            c,
            app(
                tickets_spare="1",
                pods_max="2",
                pods_cooldown="1h",
                idle_timeout="1m",
            ),
        )
        # The Deployment's own pod gives one free ticket, as spare asks: nothing to create.
        assert names(c) == []
        assert c.metric("rxkube_app_free_tickets", application="lab") == 1

        alice, bob, carol = User(), User(), User()
        own = await alice.get(c.url + "/lab/echo")  # takes the last free ticket
        assert own.status == 200
        assert own.backend is not None
        await ready_servers(c, 2)
        [pod] = autoscaled(c)
        metadata = pod["metadata"]
        assert NAME.match(metadata["name"])
        labels = metadata["labels"]
        assert labels[AUTOSCALED_LABEL] == labels[K8STICKET_SCALED_LABEL] == "true"
        assert labels[APP_LABEL] == "lab"
        assert labels[TEMPLATE_HASH_LABEL] == c.controller.apps["lab"].template_hash
        [owner] = metadata["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "Deployment",
            "lab",
            manifest["metadata"]["uid"],
            True,
        )
        template = manifest["spec"]["template"]
        assert pod["spec"]["containers"][0]["image"] == template["spec"]["containers"][0]["image"]
        assert [p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]] == [PORT]
        assert metadata["annotations"] == template["metadata"]["annotations"]

        # The new pod is a server: Bob is served by it, which takes the last free ticket again.
        assert (await bob.get(c.url + "/lab/echo")).backend == metadata["name"]
        await ready_servers(c, 3)
        second = [n for n in names(c) if n != metadata["name"]]
        assert len(second) == 1
        assert (await carol.get(c.url + "/lab/echo")).backend == second[0]
        # pods.max is 2: no third pod, however full the app is.
        await c.wait(
            lambda s: s.apps["lab"].autoscaled_ready == 2 and s.apps["lab"].autoscaled_starting == 0
        )
        assert len(names(c)) == 2
        assert c.controller.statistics().scale_actions == {("up", "applied"): 2}

        # Every step is in the metrics.
        text = await scrape(c)
        for line in (
            'rxkube_scale_actions_total{application="lab",direction="up",outcome="applied"} 2.0',
            'rxkube_app_autoscaled_pods{application="lab",state="ready"} 2.0',
            'rxkube_app_autoscaled_pods{application="lab",state="starting"} 0.0',
            'k8sticket_scaled_pods_total{application="lab"} 2.0',
            'rxkube_app_users{application="lab"} 3.0',
            'rxkube_app_free_tickets{application="lab"} 0.0',
            'rxkube_tickets_issued_total{application="lab"} 3.0',
            'k8sticket_users_total{application="lab"} 3.0',
            'k8sticket_current_users_total{application="lab"} 3.0',
            'k8sticket_current_free_tickets_total{application="lab"} 0.0',
            'rxkube_ticket_wait_seconds_count{application="lab"} 3.0',
            'rxkube_proxy_request_duration_seconds_count{application="lab"} 3.0',
        ):
            assert line in text, line
        # The first step sent the first create; each create was sent once.
        creates = [cmd for step in history.steps for cmd in step.commands]
        assert [cmd.kind for cmd in creates] == ["create", "create"]


async def test_waiting_users_cause_scale_up() -> None:
    async with cluster() as c:
        # Alice keeps her ticket however long the pod takes to start: with the default 300 ms
        # idle timeout, a slow start under load released her ticket and Bob got her pod.
        manifest = app(tickets_spare="0", pods_max="2", pods_cooldown="1h", idle_timeout="1h")
        await serve_when_running(c, manifest)
        alice, bob = User(), User()
        assert (await alice.get(c.url + "/lab/echo")).status == 200
        assert names(c) == []  # spare 0: a full app alone creates nothing
        waiting = await bob.get(c.url + "/lab/echo")
        assert waiting.status == 503  # the waiting room
        await ready_servers(c, 2)  # created for the one waiting user
        [pod] = names(c)
        served = await bob.get(c.url + "/lab/echo")
        assert (served.status, served.backend) == (200, pod)
        assert c.metric("rxkube_ticket_wait_seconds_count", application="lab") == 2
        waited = c.metric("rxkube_ticket_wait_seconds_sum", application="lab")
        assert waited is not None
        assert waited > 0
        assert c.metric("rxkube_app_waiting_users", application="lab") == 0


async def test_idle_pods_go_after_cooldown_and_starting_pods_never() -> None:
    slow = SimSettings(
        schedule_delay=0.01, start_delay=0.6, ready_delay=0.05, terminate_delay=0.01, events=False
    )
    async with open_cluster(simulate=slow, autoscaling=SCALING) as c:
        history = watch(c)
        await serve_when_running(c, app(tickets_spare="1", pods_max="1", pods_cooldown="400ms"))
        alice = User()
        assert (await alice.get(c.url + "/lab/echo")).status == 200
        # A pod is created; Alice's ticket idles out (300 ms) while it still starts, so the
        # free tickets are back at spare: the starting pod is not needed, and stays.
        await c.wait(lambda s: s.apps["lab"].autoscaled_starting == 1 and len(names(c)) == 1)
        [pod] = names(c)
        await c.wait(lambda _: c.metric("rxkube_app_users", application="lab") == 0)
        assert pod not in history.ready
        assert pod not in history.deleting
        # Ready, idle, then removed once idle for its cooldown.
        await c.wait(lambda _: pod in history.deleting)
        assert pod in history.ready
        assert history.deleting[pod] - history.ready[pod] >= 0.4
        await c.wait(lambda s: s.apps["lab"].autoscaled_ready == 0 and not names(c))
        reasons = [
            cmd.reason for step in history.steps for cmd in step.commands if cmd.kind == "delete"
        ]
        assert reasons == ["idle"]
        assert c.metric(
            "rxkube_scale_actions_total", application="lab", direction="down", outcome="applied"
        ) == (1)


async def test_a_template_change_replaces_idle_pods_and_busy_ones_when_idle() -> None:
    async with cluster() as c:
        history = watch(c)
        c.apply(app(replicas=0, tickets_spare="1", pods_max="3", pods_cooldown="1h"))
        await ready_servers(c, 1)  # created at start-up: spare 1 and nothing else
        [first] = names(c)
        # Alice keeps a connection open: her ticket stays until she closes it.
        alice = httpx.AsyncClient(base_url=c.url, timeout=5.0)
        alice_reply = await alice.get("/lab/echo")
        assert alice_reply.json()["pod"] == first
        await ready_servers(c, 2)
        [idle] = [n for n in names(c) if n != first]

        c.apply(app(replicas=0, tickets_spare="1", pods_max="3", pods_cooldown="1h", env="2"))
        new_hash = c.controller.apps["lab"].template_hash  # the spec is read back below
        await c.wait(lambda _: idle in history.deleting)
        new_hash = c.controller.apps["lab"].template_hash
        [replacement] = [n for n in history.ready if n not in (first, idle)]
        # The idle old pod went only once its replacement was ready; the busy one stayed.
        assert history.ready[replacement] <= history.deleting[idle]
        assert first not in history.deleting
        # Alice leaves; her ticket idles out: the old busy pod goes too (a new one is ready).
        await alice.aclose()
        await c.wait(
            lambda _: (
                first in history.deleting
                and not history.deleting.keys()
                - {
                    first,
                    idle,
                }
            )
        )
        await c.wait(lambda _: set(names(c)) == {replacement})
        [pod] = autoscaled(c)
        assert pod["metadata"]["labels"][TEMPLATE_HASH_LABEL] == new_hash
        assert pod["spec"]["containers"][0]["env"] == [{"name": "VERSION", "value": "2"}]
        reasons = sorted(
            cmd.reason for step in history.steps for cmd in step.commands if cmd.kind == "delete"
        )
        assert reasons == ["old template", "old template"]


@pytest.mark.parametrize("how", ["label removed", "Deployment deleted"])
async def test_removing_an_app_deletes_its_autoscaled_pods(how: str) -> None:
    async with cluster() as c:
        c.apply(app(replicas=0, tickets_spare="2", pods_max="2", pods_cooldown="1h"))
        await ready_servers(c, 2)
        assert len(names(c)) == 2
        assert c.metric("k8sticket_scaled_pods_total", application="lab") == 2
        if how == "label removed":
            c.label("lab", None)
        else:
            c.delete("lab")
        await c.wait(lambda s: "lab" not in s.apps and not names(c))
        # Its series went with it.
        assert c.metric("k8sticket_scaled_pods_total", application="lab") is None
        assert c.metric("rxkube_app_autoscaled_pods", application="lab", state="ready") is None


async def test_api_errors_during_scaling_are_retried_and_counted() -> None:
    def refuse_creates(server: FakeApiServer) -> None:
        refusals.append(
            server.faults.inject(Fault.status(500), verb="create", resource="pods", times=2)
        )

    refusals: list[Any] = []
    async with cluster(before=refuse_creates) as c:
        history = watch(c)
        c.apply(app(replicas=0, tickets_spare="1", pods_max="1", pods_cooldown="300ms"))
        await ready_servers(c, 1)
        assert refusals[0].fired == 2
        assert c.controller.statistics().scale_actions == {
            ("up", "failed"): 2,
            ("up", "applied"): 1,
        }
        assert c.metric(
            "rxkube_scale_actions_total", application="lab", direction="up", outcome="failed"
        ) == (2)
        # Three creates sent, each named afresh (a 500 may hide a create that happened).
        creates = [cmd.name for step in history.steps for cmd in step.commands]
        assert len(creates) == 3
        assert len(set(creates)) == 3
        stats = c.controller.statistics().pods
        assert stats is not None
        assert stats.failures == {"InternalError": 2}

        # A refused delete is retried (after delete_retry) until the pod goes.
        [pod] = names(c)
        refusal = c.server.faults.inject(Fault.status(503), verb="delete", resource="pods", times=1)
        c.annotate("lab", tickets_spare="0")
        await c.wait(lambda _: not names(c))
        assert refusal.fired == 1
        assert c.controller.statistics().scale_actions[("down", "failed")] == 1
        assert c.controller.statistics().scale_actions[("down", "applied")] == 1
        assert pod in history.deleting


async def test_k8stickets_autoscaled_pods_are_adopted_and_replaced_when_idle() -> None:
    old = "lab-k8sticket-autoscaled-x7k2p"

    def k8sticket_pod(server: FakeApiServer) -> None:
        server.store.create(
            "pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": old,
                    "namespace": NAMESPACE,
                    "labels": {APP_LABEL: "lab", K8STICKET_SCALED_LABEL: "true"},
                    "annotations": {"ipb-halle.de/k8sticket.pod.port": str(PORT)},
                },
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "example/app:0",
                            "ports": [{"containerPort": PORT}],
                        }
                    ]
                },
            },
        )

    async with cluster(before=k8sticket_pod) as c:
        history = watch(c)
        c.apply(app(replicas=0, tickets_spare="1", pods_max="2", pods_cooldown="1h"))
        await c.wait(lambda _: old in history.deleting)
        [replacement] = [n for n in history.ready if n != old]
        assert NAME.match(replacement)
        assert history.ready[replacement] <= history.deleting[old]
        await c.wait(lambda _: names(c) == [replacement])


async def test_only_the_leader_scales() -> None:
    def lease_held_by_another(server: FakeApiServer) -> None:
        server.store.create(
            "leases",
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "rxkube", "namespace": NAMESPACE},
                "spec": {
                    "holderIdentity": "another-replica",
                    "leaseDurationSeconds": 1,
                    "renewTime": "2024-01-01T00:00:00.000000Z",
                },
            },
        )

    policy = LeasePolicy(lease_duration=1.0, renew_deadline=0.6, retry_period=0.2, jitter=0.1)
    async with cluster(
        before=lease_held_by_another, leader_election=policy, instance="replica-1"
    ) as c:
        pods_when_leading: list[int] = []
        election = c.controller.election
        assert election is not None

        def on_leader(leads: bool) -> None:
            if leads and not pods_when_leading:
                pods_when_leading.append(len(names(c)))

        election.changes.subscribe(on_leader)
        c.apply(app(replicas=0, tickets_spare="1", pods_max="1", pods_cooldown="1h"))
        await c.wait(lambda s: "lab" in s.apps and not s.leader)
        await c.wait(lambda s: s.leader)
        assert pods_when_leading == [0]  # nothing was created before it led
        await ready_servers(c, 1)


async def test_a_recorded_run_replays_to_the_same_decisions(tmp_path: Path) -> None:
    trace = tmp_path / "run.jsonl.gz"
    async with cluster(record=trace) as c:
        c.apply(app(replicas=0, tickets_spare="1", pods_max="2", pods_cooldown="300ms"))
        await ready_servers(c, 1)
        alice = User()
        assert (await alice.get(c.url + "/lab/echo")).status == 200
        await ready_servers(c, 2)
        # Alice's ticket idles out; the extra pod cools down and goes.
        await c.wait(lambda s: s.apps["lab"].ready_servers == 1 and len(names(c)) == 1)
        await c.wait(lambda s: s.scale_actions.get(("down", "applied")) == 1)
    with gzip.open(trace) as file:
        kinds = [orjson.loads(line).get("type") for line in file.read().splitlines()[1:]]
    assert {"issued", "released", "create", "delete"} <= set(kinds)

    first = replay_trace(trace)
    assert first.mode == "recorded"
    assert first.matches_recording is True
    assert [kind for _, _, kind, _ in first.commands] == ["create", "create", "delete"]
    assert replay_trace(trace) == first  # the same timeline on every run
    summary = first.summary()
    assert (summary.total.peak_users, summary.total.tickets) == (1, 1)
    assert (summary.total.scale_ups, summary.total.scale_downs) == (2, 1)


async def test_proxy_latency_and_upstream_errors_are_in_the_metrics() -> None:
    # Hand-made pods (no simulation): one answers, one has no backend listening.
    async with open_cluster(metrics_listen=(loopback(), 0)) as c:
        c.apply(deployment("lab", tickets_max="1", pods_max="0"))
        await c.add_pod("lab", "lab-1")
        await ready_servers(c, 1)
        assert (await User().get(c.url + "/lab/echo")).status == 200
        await c.add_pod("lab", "lab-2", backend=False)
        await ready_servers(c, 2)
        assert (await User().get(c.url + "/lab/echo")).status == 502  # lab-1 is taken
        text = await scrape(c)
        assert 'rxkube_proxy_request_duration_seconds_count{application="lab"} 1.0' in text
        assert 'rxkube_upstream_errors_total{application="lab",reason="connect"} 1.0' in text
