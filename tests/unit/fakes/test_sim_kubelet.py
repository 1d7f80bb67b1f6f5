"""The simulated scheduler, nodes and kubelet against the store, in virtual time (no sockets).

Each test names `autojump_clock` (pytest-trio takes the clock from the test's arguments), so
the asserted times are exact: schedule 1 s, start 2 s, ready 3 s, SIGTERM to exit 0.5 s.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from rxkube.fakes import (
    Change,
    DeleteOptions,
    SimAnnotations,
    SimSettings,
    Simulation,
    StatusError,
    Store,
    open_simulation,
)

EPOCH = 1_700_000_000.0
SETTINGS = SimSettings(
    schedule_delay=1,
    start_delay=2,
    ready_delay=3,
    terminate_delay=0.5,
    crash_backoff=10,
    crash_backoff_max=40,
    image_pull_backoff=5,
    backends=False,
    seed=11,
)


def pod(
    name: str = "web",
    *,
    annotations: dict[str, str] | None = None,
    containers: list[dict[str, Any]] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "containers": containers or [{"name": "app", "image": "nginx:1.25"}],
            **spec,
        },
    }


class Recorder:
    """Every status of one pod, with the virtual time it was written."""

    def __init__(self, store: Store, name: str) -> None:
        self.name = name
        self.seen: list[tuple[float, str, dict[str, Any]]] = []
        self.unsubscribe = store.subscribe(self._on)

    def _on(self, change: Change) -> None:
        if change.resource.plural == "pods" and change.new.name == self.name:
            self.seen.append((trio.current_time(), change.type, change.new.object()))

    def phases(self) -> list[tuple[float, str]]:
        out: list[tuple[float, str]] = []
        for at, kind, obj in self.seen:
            entry = (at, "DELETED" if kind == "DELETED" else obj["status"].get("phase", ""))
            if not out or out[-1] != entry:
                out.append(entry)
        return out


@pytest.fixture
async def store() -> Store:
    return Store(now=lambda: EPOCH + trio.current_time(), random=random.Random(5))


@pytest.fixture
async def sim(store: Store) -> AsyncIterator[Simulation]:
    async with open_simulation(store, SETTINGS) as simulation:
        yield simulation


def get(store: Store, name: str = "web") -> dict[str, Any]:
    return store.get("pods", "default", name)


def container_status(store: Store, name: str = "web", index: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = get(store, name)["status"]["containerStatuses"][index]
    return out


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def ready(store: Store, name: str = "web") -> bool:
    try:
        return bool(condition(get(store, name), "Ready")["status"] == "True")
    except (StatusError, StopIteration, KeyError):
        return False


async def test_a_pod_goes_pending_scheduled_running_ready_step_by_step(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    record = Recorder(store, "web")
    store.create("pods", pod(), namespace="default")
    await sim.wait_until(ready)
    assert trio.current_time() == 6.0
    steps = [(at, obj) for at, _, obj in record.seen]
    created, bound, scheduled, taken, running, became_ready = steps
    assert created[0] == 0.0
    assert created[1]["status"] == {
        "phase": "Pending",
        "qosClass": "BestEffort",
    }
    assert bound[0] == 1.0
    assert bound[1]["spec"]["nodeName"] == "node-1"
    assert scheduled[0] == 1.0
    assert scheduled[1]["status"]["conditions"] == [
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": "2023-11-14T22:13:21Z",
        }
    ]
    at, obj = taken
    assert at == 1.0
    status = obj["status"]
    assert list(status) == [
        "phase",
        "conditions",
        "hostIP",
        "hostIPs",
        "podIP",
        "podIPs",
        "startTime",
        "containerStatuses",
        "qosClass",
    ]
    assert status["phase"] == "Pending"
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("PodReadyToStartContainers", "True"),
        ("Initialized", "True"),
        ("Ready", "False"),
        ("ContainersReady", "False"),
        ("PodScheduled", "True"),
    ]
    assert condition(obj, "Ready")["reason"] == "ContainersNotReady"
    assert condition(obj, "Ready")["message"] == "containers with unready status: [app]"
    assert status["podIP"].startswith("127.")
    assert status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["containerStatuses"] == [
        {
            "name": "app",
            "state": {"waiting": {"reason": "ContainerCreating"}},
            "lastState": {},
            "ready": False,
            "restartCount": 0,
            "image": "nginx:1.25",
            "imageID": "",
            "started": False,
        }
    ]
    at, obj = running
    assert at == 3.0
    assert obj["status"]["phase"] == "Running"
    [app] = obj["status"]["containerStatuses"]
    assert app["state"] == {"running": {"startedAt": "2023-11-14T22:13:23Z"}}
    assert (app["ready"], app["started"]) == (False, True)
    assert app["image"] == "docker.io/library/nginx:1.25"
    assert app["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert app["containerID"].startswith("containerd://")
    assert len(app["containerID"]) == 77
    at, obj = became_ready
    assert at == 6.0
    assert all(c["status"] == "True" for c in obj["status"]["conditions"])
    assert condition(obj, "Ready")["lastTransitionTime"] == "2023-11-14T22:13:26Z"
    assert "reason" not in condition(obj, "Ready")
    reasons = [e["reason"] for e in store.list("events", "default").objects()]
    assert reasons == ["Scheduled", "Pulling", "Pulled", "Created", "Started"]


async def test_a_crashing_container_restarts_with_a_doubling_back_off(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    annotations = {
        SimAnnotations.CRASH_AFTER: "1s",
        SimAnnotations.EXIT_CODE: "3",
        SimAnnotations.READY_DELAY: "0",
    }
    record = Recorder(store, "web")
    store.create("pods", pod(annotations=annotations), namespace="default")
    await sim.wait_until(
        lambda s: (
            container_status(s)["restartCount"] == 3
            if get(s).get("status", {}).get("containerStatuses")
            else False
        )
    )
    # Runs at 3, crashes at 4, restarts at once (first restart), crashes at 5, waits 10 s,
    # runs at 15, crashes at 16, waits 20 s, runs at 36.
    assert trio.current_time() == 36.0
    states = [
        (
            at,
            next(iter(obj["status"]["containerStatuses"][0]["state"])),
            obj["status"]["containerStatuses"][0]["restartCount"],
        )
        for at, _, obj in record.seen
        if obj.get("status", {}).get("containerStatuses")
    ]
    assert states == [
        (1.0, "waiting", 0),
        (3.0, "running", 0),
        (4.0, "terminated", 0),
        (4.0, "running", 1),
        (5.0, "terminated", 1),
        (5.0, "waiting", 1),
        (15.0, "running", 2),
        (16.0, "terminated", 2),
        (16.0, "waiting", 2),
        (36.0, "running", 3),
    ]
    waiting = next(
        obj["status"]["containerStatuses"][0]
        for at, _, obj in record.seen
        if at == 16.0 and "waiting" in obj["status"]["containerStatuses"][0]["state"]
    )
    uid = get(store)["metadata"]["uid"]
    assert waiting["state"]["waiting"] == {
        "reason": "CrashLoopBackOff",
        "message": f"back-off 20s restarting failed container=app pod=web_default({uid})",
    }
    last = waiting["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (3, "Error")
    assert last["containerID"].startswith("containerd://")
    assert last["startedAt"] == "2023-11-14T22:13:35Z"
    assert last["finishedAt"] == "2023-11-14T22:13:36Z"
    assert waiting["ready"] is False
    assert waiting["started"] is False
    assert get(store)["status"]["phase"] == "Running"
    backoffs = [e for e in store.list("events", "default").objects() if e["reason"] == "BackOff"]
    assert [(e["type"], e["count"]) for e in backoffs] == [("Warning", 2)]
    # The log of the run before is kept (`kubectl logs --previous`).
    log = sim.log("default", "web")
    assert log.lines()[0].startswith("rxkube simulated container app of pod default/web")


@pytest.mark.parametrize(
    ("policy", "code", "phase"),
    [("Never", 2, "Failed"), ("Never", 0, "Succeeded"), ("OnFailure", 0, "Succeeded")],
)
async def test_a_container_that_exits_ends_the_pod_unless_it_restarts(
    autojump_clock: trio.testing.MockClock,
    store: Store,
    sim: Simulation,
    policy: str,
    code: int,
    phase: str,
) -> None:
    annotations = {SimAnnotations.EXIT_CODE: str(code)}
    store.create("pods", pod(annotations=annotations, restartPolicy=policy), namespace="default")
    await sim.wait_until(lambda s: get(s)["status"].get("phase") == phase)
    assert trio.current_time() == 3.0
    terminated = container_status(store)["state"]["terminated"]
    assert terminated["exitCode"] == code
    assert terminated["reason"] == ("Completed" if code == 0 else "Error")
    assert condition(get(store), "Ready")["reason"] == "PodCompleted"
    assert condition(get(store), "PodReadyToStartContainers")["status"] == "False"


async def test_on_failure_restarts_a_failed_container(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    annotations = {SimAnnotations.EXIT_CODE: "1"}
    store.create(
        "pods", pod(annotations=annotations, restartPolicy="OnFailure"), namespace="default"
    )
    await sim.wait_until(
        lambda s: (
            container_status(s)["restartCount"] == 1
            if get(s).get("status", {}).get("containerStatuses")
            else False
        )
    )
    assert get(store)["status"]["phase"] == "Running"


async def test_never_ready_runs_but_stays_unready(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("pods", pod(annotations={SimAnnotations.NEVER_READY: "true"}), namespace="default")
    await trio.sleep(100)
    obj = get(store)
    assert obj["status"]["phase"] == "Running"
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "ContainersReady")["message"] == "containers with unready status: [app]"
    assert container_status(store)["started"] is True
    assert (await sim.exec("default", "web", ["true"])).exit_code == 0


async def test_start_and_ready_delays_from_annotations(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    annotations = {SimAnnotations.START_DELAY: "1500ms", SimAnnotations.READY_DELAY: "0.5"}
    store.create("pods", pod(annotations=annotations), namespace="default")
    await sim.wait_until(ready)
    assert trio.current_time() == 1 + 2 + 1.5 + 0.5


async def test_an_image_that_cannot_be_pulled(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create(
        "pods", pod(annotations={SimAnnotations.IMAGE_PULL_ERROR: "true"}), namespace="default"
    )
    await sim.wait_until(lambda s: "ErrImagePull" in str(get(s)["status"]))
    assert trio.current_time() == 3.0
    waiting = container_status(store)["state"]["waiting"]
    assert waiting["message"].startswith(
        'failed to pull and unpack image "docker.io/library/nginx:1.25"'
    )
    await sim.wait_until(lambda s: "ImagePullBackOff" in str(get(s)["status"]))
    assert trio.current_time() == 8.0
    assert container_status(store)["state"]["waiting"] == {
        "reason": "ImagePullBackOff",
        "message": 'Back-off pulling image "nginx:1.25"',
    }
    assert get(store)["status"]["phase"] == "Pending"


async def test_a_pod_no_node_accepts_is_unschedulable(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("pods", pod("picky", nodeSelector={"disk": "ssd"}), namespace="default")
    store.create(
        "pods",
        pod("refused", annotations={SimAnnotations.UNSCHEDULABLE: "true"}),
        namespace="default",
    )

    def unschedulable(name: str) -> bool:
        conditions = get(store, name)["status"].get("conditions") or []
        return any(c["reason"] == "Unschedulable" for c in conditions if "reason" in c)

    await sim.wait_until(lambda s: unschedulable("picky") and unschedulable("refused"))
    assert trio.current_time() == 1.0
    scheduled = condition(get(store, "picky"), "PodScheduled")
    assert scheduled["status"] == "False"
    assert scheduled["message"] == (
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    )
    assert "nodeName" not in get(store, "picky")["spec"]
    warnings = [e for e in store.list("events", "default").objects() if e["type"] == "Warning"]
    assert {e["reason"] for e in warnings} == {"FailedScheduling"}
    # A node that matches arrives: the pod is scheduled.
    node = store.get("nodes", "", "node-1")
    node["metadata"]["labels"]["disk"] = "ssd"
    store.update("nodes", node)
    await sim.wait_until(lambda s: ready(s, "picky"))
    assert trio.current_time() == 1.0 + 2 + 3
    assert unschedulable("refused")


async def test_pods_wait_for_a_node_to_become_ready(
    autojump_clock: trio.testing.MockClock, store: Store
) -> None:
    settings = SimSettings(
        schedule_delay=0, start_delay=1, ready_delay=0, node_ready_delay=4, backends=False
    )
    async with open_simulation(store, settings) as sim:
        node = store.get("nodes", "", "node-1")
        assert condition(node, "Ready")["status"] == "False"
        assert node["spec"]["taints"] == [
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
        ]
        store.create("pods", pod(), namespace="default")
        await sim.wait_until(lambda s: "PodScheduled" in str(get(s)["status"]))
        assert "node.kubernetes.io/not-ready" in condition(get(store), "PodScheduled")["message"]
        await sim.wait_until(ready)
        assert trio.current_time() == 5.0
        node = store.get("nodes", "", "node-1")
        assert condition(node, "Ready")["reason"] == "KubeletReady"
        assert "taints" not in node["spec"]


async def test_a_malformed_annotation_is_ignored_and_reported(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    annotations = {
        SimAnnotations.CRASH_AFTER: "soon",
        SimAnnotations.NEVER_READY: "maybe",
        SimAnnotations.PAGE: "flash",
    }
    store.create("pods", pod(annotations=annotations), namespace="default")
    await sim.wait_until(ready)
    warnings = sorted(
        e["message"] for e in store.list("events", "default").objects() if e["type"] == "Warning"
    )
    assert warnings == [
        'ignored: sim.rxkube.io/crash-after: "soon" is not a duration (e.g. "2s", "500ms", '
        '"1m", or seconds)',
        'ignored: sim.rxkube.io/never-ready: "maybe" is not a boolean (use "true" or "false")',
        'ignored: sim.rxkube.io/page: "flash" is not a page (use "html" or "websocket")',
    ]


async def test_deletion_is_graceful(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    record = Recorder(store, "web")
    store.create("pods", pod(), namespace="default")
    await sim.wait_until(ready)
    entry, removed = store.delete("pods", "default", "web")
    assert not removed
    meta = entry.object()["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 30
    assert meta["deletionTimestamp"] == "2023-11-14T22:13:56Z"  # now + 30 s
    await sim.wait_until(lambda s: not s.list("pods", "default").items)
    assert trio.current_time() == 6.5
    *_, (at_final, _, final), (at_gone, kind, _) = record.seen
    assert (at_final, at_gone, kind) == (6.5, 6.5, "DELETED")
    assert final["status"]["phase"] == "Succeeded"
    terminated = final["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert condition(final, "PodReadyToStartContainers")["status"] == "False"
    killing = [e for e in store.list("events", "default").objects() if e["reason"] == "Killing"]
    assert [e["message"] for e in killing] == ["Stopping container app"]


async def test_a_container_ignoring_sigterm_is_killed_after_the_grace_period(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    record = Recorder(store, "web")
    store.create(
        "pods",
        pod(annotations={SimAnnotations.IGNORE_SIGTERM: "true"}, terminationGracePeriodSeconds=5),
        namespace="default",
    )
    await sim.wait_until(ready)
    store.delete("pods", "default", "web")
    await sim.wait_until(lambda s: not s.list("pods", "default").items)
    assert trio.current_time() == 11.0
    final = record.seen[-2][2]
    terminated = final["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "Error")
    assert final["status"]["phase"] == "Failed"


async def test_force_deletion_and_deleting_unscheduled_pods_are_immediate(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("pods", pod(), namespace="default")
    await sim.wait_until(ready)
    store.delete("pods", "default", "web", DeleteOptions(grace_period_seconds=0))
    assert not store.list("pods", "default").items
    await trio.testing.wait_all_tasks_blocked()
    assert not sim.kubelet.workers
    assert trio.current_time() == 6.0
    store.create("pods", pod("early"), namespace="default")
    _, removed = store.delete("pods", "default", "early")
    assert removed


async def test_exec_logs_and_kill_in_a_running_container(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create("pods", pod(), namespace="default")
    await sim.wait_until(ready)
    result = await sim.exec(
        "default", "web", ["sh", "-c", "hostname; cat /etc/hostname; echo to-log > /proc/1/fd/1"]
    )
    assert (result.exit_code, result.stdout) == (0, b"web\nweb\n")
    log = sim.log("default", "web")
    assert log.lines() == [
        "rxkube simulated container app of pod default/web started (image nginx:1.25)",
        "to-log",
    ]
    started = await sim.exec("default", "web", ["sh", "-c", "sleep 2; echo late"])
    assert trio.current_time() == 8.0
    assert started.stdout == b"late\n"
    await sim.exec("default", "web", ["kill", "1"])
    await sim.wait_until(lambda s: container_status(s)["restartCount"] == 1)
    last = container_status(store)["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (143, "Error")
    # The restarted container starts from a fresh filesystem and a fresh log.
    assert sim.log("default", "web").lines()[0].startswith("rxkube simulated container")
    with pytest.raises(LookupError, match="has no container 'nope'"):
        sim.container("default", "web", "nope")
    with pytest.raises(LookupError, match="not running on a simulated node"):
        sim.container("default", "ghost")


async def test_environment_volumes_and_several_containers(
    autojump_clock: trio.testing.MockClock, store: Store, sim: Simulation
) -> None:
    store.create(
        "configmaps",
        {"metadata": {"name": "settings"}, "data": {"mode": "fast", "file.txt": "from cm"}},
        namespace="default",
    )
    containers: list[dict[str, Any]] = [
        {
            "name": "app",
            "image": "web:1",
            "env": [
                {"name": "PLAIN", "value": "1"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {
                    "name": "MODE",
                    "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}},
                },
            ],
            "volumeMounts": [
                {"name": "config", "mountPath": "/config"},
                {"name": "shared", "mountPath": "/shared"},
            ],
        },
        {
            "name": "sidecar",
            "image": "busybox",
            "volumeMounts": [{"name": "shared", "mountPath": "/data"}],
        },
    ]
    volumes = [
        {"name": "config", "configMap": {"name": "settings"}},
        {"name": "shared", "emptyDir": {}},
    ]
    store.create("pods", pod(containers=containers, volumes=volumes), namespace="default")
    await sim.wait_until(ready)
    env = await sim.exec("default", "web", ["sh", "-c", "echo $PLAIN $POD $MODE"], container="app")
    assert env.stdout == b"1 web fast\n"
    cm = await sim.exec("default", "web", ["cat", "/config/file.txt"], container="app")
    assert cm.stdout == b"from cm"
    await sim.exec("default", "web", ["sh", "-c", "echo shared > /shared/x"], container="app")
    seen = await sim.exec("default", "web", ["cat", "/data/x"], container="sidecar")
    assert seen.stdout == b"shared\n"
    with pytest.raises(LookupError, match="name one"):
        sim.container("default", "web")
