"""The simulated deployment and replica set controllers against the store, in virtual time.

No sockets (`backends=False`); trio's MockClock jumps over the simulated delays, so the times
asserted are exact: schedule 1 s + start 2 s + ready 3 s = a pod Ready 6 s after creation.
(Each test names `autojump_clock`: pytest-trio takes the clock from the test's own arguments.)
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
import trio.testing

from rxkube.fakes import Change, DeleteOptions, SimSettings, Simulation, Store, open_simulation

EPOCH = 1_700_000_000.0
SETTINGS = SimSettings(
    schedule_delay=1,
    start_delay=2,
    ready_delay=3,
    terminate_delay=0.5,
    backends=False,
    seed=7,
)


def deployment(
    name: str = "web",
    replicas: int = 3,
    *,
    image: str = "nginx:1.25",
    annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    template_meta: dict[str, Any] = {"labels": {"app": name}}
    if annotations:
        template_meta["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": template_meta,
                "spec": {
                    "containers": [
                        {"name": "app", "image": image, "ports": [{"containerPort": 8080}]}
                    ]
                },
            },
            **spec,
        },
    }


@pytest.fixture
async def store() -> Store:
    return Store(now=lambda: EPOCH + trio.current_time(), random=random.Random(3))


@pytest.fixture
async def sim(store: Store) -> AsyncIterator[Simulation]:
    async with open_simulation(store, SETTINGS) as simulation:
        yield simulation


def status(store: Store, name: str = "web") -> dict[str, Any]:
    out: dict[str, Any] = store.get("deployments", "default", name).get("status") or {}
    return out


def rolled_out(name: str = "web") -> Callable[[Store], bool]:
    """`kubectl rollout status`'s test (reference section 11.4)."""

    def check(store: Store) -> bool:
        d = store.get("deployments", "default", name)
        s = d.get("status") or {}
        want = d["spec"]["replicas"]
        return bool(
            d["metadata"]["generation"] <= s.get("observedGeneration", 0)
            and s.get("updatedReplicas", 0) == want
            and s.get("replicas", 0) == want
            and s.get("availableReplicas", 0) == want
        )

    return check


def pods(store: Store, *, active_only: bool = False) -> list[dict[str, Any]]:
    out = store.list("pods", "default").objects()
    if active_only:
        out = [p for p in out if not p["metadata"].get("deletionTimestamp")]
    return out


def replica_sets(store: Store) -> list[dict[str, Any]]:
    return store.list("replicasets", "default").objects()


async def test_a_deployment_becomes_a_replica_set_and_ready_pods(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    created = store.create("deployments", deployment(), namespace="default").object()
    await sim.wait_until(rolled_out())
    assert trio.current_time() == 6.0

    [rs] = replica_sets(store)
    hash_value = rs["metadata"]["labels"]["pod-template-hash"]
    assert re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{1,10}", hash_value)
    assert rs["metadata"]["name"] == f"web-{hash_value}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": hash_value}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == hash_value
    assert rs["metadata"]["annotations"] == {
        "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4",
        "deployment.kubernetes.io/revision": "1",
    }
    assert rs["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "uid": created["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert rs["status"] == {
        "replicas": 3,
        "fullyLabeledReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "observedGeneration": 1,
    }
    web = store.get("deployments", "default", "web")
    assert web["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1"}
    stamp_created, stamp_ready = "2023-11-14T22:13:20Z", "2023-11-14T22:13:26Z"
    assert web["status"] == {
        "observedGeneration": 1,
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
        "conditions": [
            {
                "type": "Available",
                "status": "True",
                "lastUpdateTime": stamp_ready,
                "lastTransitionTime": stamp_ready,
                "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.",
            },
            {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": stamp_ready,
                "lastTransitionTime": stamp_created,
                "reason": "NewReplicaSetAvailable",
                "message": f'ReplicaSet "web-{hash_value}" has successfully progressed.',
            },
        ],
    }
    all_pods = pods(store)
    assert len(all_pods) == 3
    for pod in all_pods:
        assert pod["metadata"]["name"].startswith(f"web-{hash_value}-")
        assert len(pod["metadata"]["name"]) == len(f"web-{hash_value}-") + 5
        assert pod["metadata"]["labels"] == {"app": "web", "pod-template-hash": hash_value}
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["spec"]["nodeName"] == "node-1"
        assert pod["status"]["phase"] == "Running"


async def test_the_first_status_says_unavailable_and_progressing(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    statuses: list[dict[str, Any]] = []

    def record(change: Change) -> None:
        if change.resource.plural == "deployments":
            got = change.new.object().get("status") or {}
            if got.get("conditions") and not statuses:
                statuses.append(got)

    unsubscribe = store.subscribe(record)
    store.create("deployments", deployment(), namespace="default")
    await sim.wait_until(lambda s: bool(statuses))
    unsubscribe()
    [first] = statuses
    assert trio.current_time() == 0.0
    assert [(c["type"], c["status"], c["reason"]) for c in first["conditions"]] == [
        ("Progressing", "True", "NewReplicaSetCreated"),
        ("Available", "False", "MinimumReplicasUnavailable"),
    ]
    assert first["conditions"][0]["message"].startswith('Created new replica set "web-')
    assert first["conditions"][1]["message"] == "Deployment does not have minimum availability."
    assert first["unavailableReplicas"] == 3


async def test_a_rolling_update_keeps_within_max_surge_and_max_unavailable(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create(
        "deployments",
        deployment(
            replicas=4,
            strategy={
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1},
            },
        ),
        namespace="default",
    )
    await sim.wait_until(rolled_out())
    start = trio.current_time()
    # maxSurge and maxUnavailable bound the replica sets' sizes (what the controller
    # controls); pods of a shrinking set may linger a moment, as on a real cluster.
    worst: dict[str, int] = {"most_replicas": 0, "fewest_ready": 4}

    def watch(_change: Change) -> None:
        replicas = sum(rs["spec"]["replicas"] for rs in replica_sets(store))
        ready = [
            p
            for p in pods(store, active_only=True)
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", ())
            )
        ]
        worst["most_replicas"] = max(worst["most_replicas"], replicas)
        worst["fewest_ready"] = min(worst["fewest_ready"], len(ready))

    unsubscribe = store.subscribe(watch)
    web = store.get("deployments", "default", "web")
    web["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    store.update("deployments", web, namespace="default")
    await sim.wait_until(rolled_out())
    unsubscribe()
    # Two pods at a time (1 surge + 1 unavailable), each 6 s to Ready: two waves.
    assert trio.current_time() - start == 12.0
    assert worst == {"most_replicas": 5, "fewest_ready": 3}
    sets = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs for rs in replica_sets(store)
    }
    assert sets["nginx:1.26"]["spec"]["replicas"] == 4
    assert sets["nginx:1.25"]["spec"]["replicas"] == 0
    assert sets["nginx:1.26"]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    web = store.get("deployments", "default", "web")
    assert web["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert web["status"]["observedGeneration"] == 2
    await sim.wait_until(lambda s: len(pods(s)) == 4)
    assert {p["spec"]["containers"][0]["image"] for p in pods(store)} == {"nginx:1.26"}


async def test_rolling_back_reuses_the_old_replica_set_with_a_new_revision(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("deployments", deployment(replicas=1), namespace="default")
    await sim.wait_until(rolled_out())
    for image in ("nginx:1.26", "nginx:1.25"):
        web = store.get("deployments", "default", "web")
        web["spec"]["template"]["spec"]["containers"][0]["image"] = image
        store.update("deployments", web, namespace="default")
        await sim.wait_until(rolled_out())
    sets = replica_sets(store)
    assert len(sets) == 2
    revisions = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["annotations"][
            "deployment.kubernetes.io/revision"
        ]
        for rs in sets
    }
    assert revisions == {"nginx:1.25": "3", "nginx:1.26": "2"}


async def test_scaling_up_and_down(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("deployments", deployment(), namespace="default")
    await sim.wait_until(rolled_out())
    store.patch("deployments", "default", "web", {"spec": {"replicas": 1}})
    await sim.wait_until(lambda s: rolled_out()(s) and len(pods(s)) == 1)
    # Surplus pods terminate gracefully: gone after the termination delay.
    assert trio.current_time() == 6.5
    [rs] = replica_sets(store)
    assert rs["spec"]["replicas"] == 1
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "1"
    store.patch("deployments", "default", "web", {"spec": {"replicas": 5}})
    await sim.wait_until(rolled_out())
    assert trio.current_time() == 12.5
    assert status(store)["readyReplicas"] == 5


async def test_scaling_down_removes_unready_pods_first(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("deployments", deployment(replicas=2), namespace="default")
    await sim.wait_until(rolled_out())
    store.patch("deployments", "default", "web", {"spec": {"replicas": 3}})
    await sim.wait_until(lambda s: len(pods(s)) == 3)
    newest = max(
        pods(store), key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"])
    )
    store.patch("deployments", "default", "web", {"spec": {"replicas": 2}})
    await sim.wait_until(lambda s: len(pods(s)) == 2)
    assert newest["metadata"]["name"] not in {p["metadata"]["name"] for p in pods(store)}


async def test_recreate_stops_every_old_pod_before_starting_new_ones(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("deployments", deployment(strategy={"type": "Recreate"}), namespace="default")
    await sim.wait_until(rolled_out())
    start = trio.current_time()
    overlap: list[set[str]] = []

    def watch(_change: Change) -> None:
        overlap.append({p["spec"]["containers"][0]["image"] for p in pods(store)})

    unsubscribe = store.subscribe(watch)
    web = store.get("deployments", "default", "web")
    web["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    store.update("deployments", web, namespace="default")
    await sim.wait_until(rolled_out())
    unsubscribe()
    assert all(len(images) <= 1 for images in overlap)
    # 0.5 s for the old pods to stop, then 6 s for the new ones.
    assert trio.current_time() - start == 6.5


async def test_a_rollout_that_cannot_progress_exceeds_its_deadline(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create(
        "deployments",
        deployment(
            replicas=1,
            annotations={"sim.rxkube.io/never-ready": "true"},
            progressDeadlineSeconds=10,
        ),
        namespace="default",
    )

    def timed_out(s: Store) -> bool:
        return any(
            c["type"] == "Progressing" and c["reason"] == "ProgressDeadlineExceeded"
            for c in status(s).get("conditions", ())
        )

    await sim.wait_until(timed_out)
    # The last progress was at t=0 (RS created); the deadline passes just after 10 s.
    assert 10.0 < trio.current_time() <= 10.01
    progressing = next(c for c in status(store)["conditions"] if c["type"] == "Progressing")
    assert progressing["status"] == "False"
    assert progressing["message"].endswith("has timed out progressing.")


async def test_paused_deployments_scale_but_do_not_roll(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("deployments", deployment(replicas=2), namespace="default")
    await sim.wait_until(rolled_out())
    web = store.get("deployments", "default", "web")
    web["spec"]["paused"] = True
    web["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    store.update("deployments", web, namespace="default")
    await sim.wait_until(
        lambda s: any(
            c.get("reason") == "DeploymentPaused" for c in status(s).get("conditions", ())
        )
    )
    assert len(replica_sets(store)) == 1
    store.patch("deployments", "default", "web", {"spec": {"paused": False}})
    await sim.wait_until(rolled_out())
    assert {
        rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in replica_sets(store)
    } == {
        "nginx:1.25",
        "nginx:1.26",
    }


async def test_revision_history_limit_deletes_the_oldest_idle_replica_sets(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("deployments", deployment(replicas=1, revisionHistoryLimit=1), namespace="default")
    for image in ("nginx:1.26", "nginx:1.27", "nginx:1.28"):
        await sim.wait_until(rolled_out())
        web = store.get("deployments", "default", "web")
        web["spec"]["template"]["spec"]["containers"][0]["image"] = image
        store.update("deployments", web, namespace="default")
    await sim.wait_until(lambda s: rolled_out()(s) and len(replica_sets(s)) == 2)
    images = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"] for rs in replica_sets(store)
    }
    assert images == {"nginx:1.27", "nginx:1.28"}


async def test_deleting_a_deployment_cascades_to_replica_sets_and_pods(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("deployments", deployment(), namespace="default")
    await sim.wait_until(rolled_out())
    deleted_at = trio.current_time()
    store.delete("deployments", "default", "web", DeleteOptions("Background"))
    assert replica_sets(store) == []
    # Pods terminate gracefully (deletionTimestamp first), then the kubelet removes them.
    assert all(p["metadata"].get("deletionTimestamp") for p in pods(store))
    await sim.wait_until(lambda s: not pods(s))
    assert trio.current_time() - deleted_at == 0.5


async def test_foreground_deletion_waits_for_the_pods(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("deployments", deployment(replicas=1), namespace="default")
    await sim.wait_until(rolled_out())
    _, removed = store.delete("deployments", "default", "web", DeleteOptions("Foreground"))
    assert not removed
    await sim.wait_until(lambda s: not s.list("deployments", "default").items)
    assert pods(store) == []
    assert replica_sets(store) == []


async def test_a_replica_set_replaces_a_deleted_pod(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("deployments", deployment(replicas=2), namespace="default")
    await sim.wait_until(rolled_out())
    victim = pods(store)[0]["metadata"]["name"]
    store.delete("pods", "default", victim, DeleteOptions(grace_period_seconds=0))
    await sim.wait_until(lambda s: len(pods(s)) == 2 and rolled_out()(s))
    assert victim not in {p["metadata"]["name"] for p in pods(store)}
    events = store.list("events", "default").objects()
    assert any(
        e["reason"] == "SuccessfulCreate" and e["source"]["component"] == "replicaset-controller"
        for e in events
    )
    scaling = [e for e in events if e["reason"] == "ScalingReplicaSet"]
    assert scaling[0]["message"].startswith("Scaled up replica set web-")
    assert scaling[0]["message"].endswith(" from 0 to 2")


async def test_min_ready_seconds_delays_availability(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("deployments", deployment(replicas=1, minReadySeconds=4), namespace="default")
    await sim.wait_until(lambda s: status(s).get("readyReplicas") == 1)
    assert trio.current_time() == 6.0
    assert "availableReplicas" not in status(store)
    await sim.wait_until(rolled_out())
    assert trio.current_time() == 10.0


async def test_deployments_already_in_the_store_are_picked_up(
    autojump_clock: trio.testing.MockClock, store: Store
) -> None:
    store.create("deployments", deployment(replicas=2), namespace="default")
    async with open_simulation(store, SETTINGS) as sim:
        await sim.wait_until(rolled_out())
        assert trio.current_time() == 6.0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="start_delay must be a number >= 0, got -1"):
        SimSettings(start_delay=-1)
    with pytest.raises(ValueError, match="at least one node"):
        SimSettings(nodes=())
    with pytest.raises(ValueError, match="network must be"):
        SimSettings(network="ipv6")  # type: ignore[arg-type]
