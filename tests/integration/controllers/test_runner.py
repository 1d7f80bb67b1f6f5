"""The runner's edges: /metrics, /healthz, /readyz (not ready, ready, draining), and the drain."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import trio

from rxkube.controllers import open_ticket_controller
from rxkube.fakes import FakeApiServer, Fault
from rxkube.proxy import ProxyConfig
from rxkube.streams import LeasePolicy
from tests.integration.controllers.conftest import (
    FAST,
    KEY,
    LIMIT,
    NAMESPACE,
    Cluster,
    User,
    deployment,
    loopback,
    open_cluster,
)


def pods_unavailable(server: FakeApiServer) -> None:
    server.faults.inject(Fault.status(503), verb="list", resource="pods", times=None)


def endpoint(c: Cluster, path: str) -> str:
    assert c.controller.metrics_address is not None
    host, port = c.controller.metrics_address
    return f"http://{host}:{port}{path}"


async def test_readiness_waits_for_every_informer_then_metrics_show_the_apps() -> None:
    async with open_cluster(metrics_listen=(loopback(), 0), before=pods_unavailable) as c:
        c.apply(deployment("lab", tickets_max="2"))
        async with httpx.AsyncClient(timeout=LIMIT) as http:
            assert (await http.get(endpoint(c, "/healthz"))).status_code == 200
            await c.wait(lambda s: bool(s.informers["pods"].errors))
            not_ready = await http.get(endpoint(c, "/readyz"))
            assert not_ready.status_code == 503
            assert "waiting for pods" in not_ready.text
            assert not c.controller.ready

            c.server.faults.clear()
            with trio.fail_after(LIMIT):
                await c.controller.wait_ready()
            ready = await http.get(endpoint(c, "/readyz"))
            assert (ready.status_code, ready.text) == (200, "ready\n")

            await c.add_pod("lab", "lab-1")
            await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].ready_servers == 1)
            assert (await User().get(c.url + "/lab/echo")).backend == "lab-1"
            await c.wait(lambda s: s.events.created >= 1)
            metrics = await http.get(endpoint(c, "/metrics"))
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            text = metrics.text
            for line in (
                'rxkube_app_users{application="lab"} 1.0',
                'k8sticket_current_users_total{application="lab"} 1.0',
                'k8sticket_current_free_tickets_total{application="lab"} 1.0',
                'k8sticket_users_total{application="lab"} 1.0',
                'rxkube_proxy_requests_total{application="lab"} 1.0',
                'rxkube_app_servers{application="lab",ready="true"} 1.0',
                'rxkube_informer_synced{informer="pods"} 1.0',
                "rxkube_controller_ready 1.0",
                'rxkube_apps{state="served"} 1.0',
                'rxkube_kube_events_total{outcome="created"}',
            ):
                assert line in text, line
            assert 'rxkube_watch_errors_total{informer="pods",kind="ServerError"}' in text

            assert (await http.get(endpoint(c, "/nope"))).status_code == 404
            assert (await http.post(endpoint(c, "/metrics"))).status_code == 405
            head = await http.head(endpoint(c, "/healthz"))
            assert (head.status_code, head.content) == (200, b"")


async def test_leaving_drains_readyz_turns_503_and_open_requests_finish() -> None:
    async with trio.open_nursery() as outer:
        stop = trio.Event()

        async def run(task_status: trio.TaskStatus[Cluster]) -> None:
            async with open_cluster(metrics_listen=(loopback(), 0), shutdown_grace=5.0) as c:
                task_status.started(c)
                await stop.wait()

        c: Cluster = await outer.start(run)
        c.apply(deployment("lab"))
        await c.add_pod("lab", "lab-1")
        await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].ready_servers == 1)
        alice = User()
        assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
        slow: list[int] = []

        async def slow_request() -> None:
            slow.append((await alice.get(c.url + "/lab/slow?s=0.5")).status)

        outer.start_soon(slow_request)

        await c.poll(lambda: c.backends["lab-1"].requests == 2)  # the slow one is in flight
        stop.set()
        await c.wait(lambda s: s.draining)
        async with httpx.AsyncClient(timeout=LIMIT) as http:
            draining = await http.get(endpoint(c, "/readyz"))
        assert (draining.status_code, draining.text) == (503, "draining\n")
    assert slow == [200]


async def test_two_replicas_serve_but_only_the_leader_posts_events() -> None:
    policy = LeasePolicy(lease_duration=2.0, renew_deadline=1.0, retry_period=0.1)
    async with open_cluster(instance="r1", leader_election=policy) as c:
        with trio.fail_after(LIMIT):
            await c.controller.wait_until(lambda s: s.leader)
        async with open_ticket_controller(
            c.client,
            namespace=c.namespace,
            listen=[(loopback(), 0)],
            proxy_config=ProxyConfig(ticket_keys=(KEY,), shutdown_grace=1.0),
            instance="r2",
            leader_election=policy,
            watch_policy=FAST,
        ) as second:
            c.apply(deployment("lab"))
            c.apply(deployment("bad", tickets_max="none"))
            await c.add_pod("lab", "lab-1")
            with trio.fail_after(LIMIT):
                await second.wait_until(
                    lambda s: "lab" in s.apps and s.apps["lab"].ready_servers == 1
                )
            await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].ready_servers == 1)
            # Both replicas serve; with one ticket key, a cookie of one is good at the other
            # (re-admitted to its pod; one ticket count across replicas is issue 10's).
            alice = User()
            host, port = second.addresses[0]
            assert (await alice.get(f"http://{host}:{port}/lab/echo")).backend == "lab-1"
            assert (await alice.get(c.url + "/lab/echo")).backend == "lab-1"
            assert second.statistics().config_errors == 1  # the follower sees it too
            await c.wait_event("Deployment", "bad", "InvalidConfiguration")
            await c.wait_event("Deployment", "lab", "AppServed")
            assert not second.leader
            posted = [
                e
                for e in c.server.store.list("events", c.namespace).objects()
                if e["reason"] in ("InvalidConfiguration", "AppServed")
            ]
            assert sorted(e["reason"] for e in posted) == ["AppServed", "InvalidConfiguration"]
            assert {e["reportingInstance"] for e in posted} == {"r1"}
            elected = await c.wait_event("Lease", "rxkube", "LeaderElection")
            assert elected["message"] == "r1 became leader"
            assert c.metric("rxkube_leader") == 1


POLICY = LeasePolicy(lease_duration=2.0, renew_deadline=1.0, retry_period=0.1)
BAD_POD = {"ipb-halle.de/k8sticket.pod.port": "eighty"}


def held_by(holder: str) -> Callable[[FakeApiServer], None]:
    """`before`: the Lease held (for long) by `holder`, and a Deployment with a bad annotation
    already there when the controller starts."""

    def setup(server: FakeApiServer) -> None:
        server.store.create(
            "leases",
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": "rxkube", "namespace": NAMESPACE},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 60},
            },
        )
        server.store.create("deployments", deployment("bad", tickets_max="none"))

    return setup


def warnings(c: Cluster) -> list[tuple[str, str, int, str]]:
    return sorted(
        (e["involvedObject"]["name"], e["reason"], e["count"], e["reportingInstance"])
        for e in c.server.store.list("events", c.namespace).objects()
        if e["type"] == "Warning"
    )


async def test_problems_found_before_leading_are_posted_once_leading() -> None:
    """A replica that follows posts no Event; when it becomes leader (at start, the Lease
    still held by the replica it replaces) it posts the problems that still hold: once each."""
    async with open_cluster(instance="r1", leader_election=POLICY, before=held_by("r0")) as c:
        await c.add_pod("bad", "bad-1", annotations=BAD_POD, backend=False)
        await c.wait(lambda s: s.config_errors == 2)  # the Deployment's and the pod's
        assert not c.controller.leader
        assert warnings(c) == []
        # r0 goes away (releases the Lease): r1 leads and tells what it found meanwhile.
        c.server.store.patch(
            "leases",
            c.namespace,
            "rxkube",
            {"spec": {"holderIdentity": "", "leaseDurationSeconds": 1}},
        )
        await c.wait_event("Deployment", "bad", "InvalidConfiguration")
        await c.wait_event("Pod", "bad-1", "InvalidConfiguration")
        await c.wait(lambda s: s.events.queued == 0)
        assert warnings(c) == [
            ("bad", "InvalidConfiguration", 1, "r1"),
            ("bad-1", "InvalidConfiguration", 1, "r1"),
        ]
        assert c.controller.statistics().events.failed == 0


async def test_after_a_fail_over_the_new_leader_counts_up_the_old_leaders_events() -> None:
    """r1 leads and posts; r2 follows and finds the same problems. r1 leaves: r2 leads and
    posts what still holds, which are the Events r1 posted: counted up, not duplicated."""
    async with open_cluster(instance="r2", leader_election=POLICY, before=held_by("r1")) as c:
        await c.add_pod("bad", "bad-1", annotations=BAD_POD, backend=False)
        await c.wait(lambda s: s.config_errors == 2)
        async with open_ticket_controller(
            c.client,
            namespace=c.namespace,
            listen=[(loopback(), 0)],
            proxy_config=ProxyConfig(ticket_keys=(KEY,), shutdown_grace=0.5),
            instance="r1",  # the Lease's holder: it renews it at once
            leader_election=POLICY,
            watch_policy=FAST,
        ) as first:
            with trio.fail_after(LIMIT):
                await first.wait_until(lambda s: s.leader and s.events.created == 3)
            assert warnings(c) == [
                ("bad", "InvalidConfiguration", 1, "r1"),
                ("bad-1", "InvalidConfiguration", 1, "r1"),
            ]
            assert not c.controller.leader
        # r1 released the Lease on leaving: r2 takes over.
        await c.wait(lambda s: s.leader and s.events.patched == 2 and s.events.queued == 0)
        assert warnings(c) == [
            ("bad", "InvalidConfiguration", 2, "r1"),
            ("bad-1", "InvalidConfiguration", 2, "r1"),
        ]
        stats = c.controller.statistics().events
        assert (stats.created, stats.failed) == (1, 0)  # r2's own LeaderElection Event only
