"""Pods against the simulated cluster through the real client: create, get, ip, list, delete,
and waits built on the pod watch (success, timeout, empty selection, cancellation)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from rxkube.fakes import FakeCluster, SimAnnotations
from rxkube.streams import AlreadyExists, Conflict, Invalid, NotFound, TrioScheduler
from rxkube.streams.orchestrator import (
    Applied,
    Condition,
    ConfigMapVolume,
    ContainerSpec,
    CreatePod,
    CreatePodFromManifest,
    DeletePods,
    EmptyDirVolume,
    Failed,
    HostPathVolume,
    NamedPort,
    NoPodIP,
    NothingSelected,
    SecretVolume,
    TimedOut,
    Toleration,
    VolumeMount,
)
from tests.integration.orchestrator.conftest import Harness
from tests.integration.orchestrator.stub_kubelet import StubKubelet, set_pod_status


def simple(name: str, **labels: str) -> CreatePod:
    return CreatePod(name, [ContainerSpec("app", "sim:1")], labels=labels or {"app": "sim"})


async def test_create_sends_every_field_of_the_spec(harness: Harness) -> None:
    cluster = harness.cluster
    pod = CreatePod(
        "sim-0",
        [
            ContainerSpec(
                "sim",
                "registry.example.org/sim:1.2",
                command=["/bin/sim"],
                args=["--world", "tunnel"],
                env={"MODE": "race"},
                env_from_fields={"POD_IP": "status.podIP"},
                ports=[8080, NamedPort("metrics", 9090)],
                requests={"cpu": "500m", "memory": "1Gi"},
                limits={"memory": "2Gi"},
                volume_mounts=[
                    VolumeMount("config", "/etc/sim", read_only=True),
                    VolumeMount("scratch", "/tmp/sim"),
                    VolumeMount("logs", "/var/log/sim", sub_path="sim"),
                    VolumeMount("creds", "/creds"),
                ],
                privileged=True,
                allow_privilege_escalation=False,
            )
        ],
        labels={"app": "sim", "run": "42"},
        annotations={"cloudsim.io/owner": "alice"},
        init_containers=[ContainerSpec("init", "busybox:1.36", command=["sh", "-c", "true"])],
        volumes=[
            ConfigMapVolume("config", "sim-config", items={"world.sdf": "world.sdf"}),
            EmptyDirVolume("scratch", medium="Memory", size_limit="1Gi"),
            HostPathVolume("logs", "/var/log", type="Directory"),
            SecretVolume("creds", "sim-creds", default_mode=0o400),
        ],
        restart_policy="Never",
        termination_grace_period=5,
        node_selector={"cloudsim.io/role": "sim"},
        tolerations=[Toleration("nvidia.com/gpu", "Exists", effect="NoSchedule")],
        image_pull_secrets=["registry"],
        nameservers=["8.8.8.8", "1.1.1.1"],
    )
    created = await cluster.pods.create(pod)
    assert created is not None
    assert created["metadata"]["uid"]
    stored = cluster.server.store.get("pods", "default", "sim-0")
    spec = stored["spec"]
    assert stored["metadata"]["labels"] == {"app": "sim", "run": "42"}
    assert stored["metadata"]["annotations"] == {"cloudsim.io/owner": "alice"}
    (container,) = spec["containers"]
    assert container["command"] == ["/bin/sim"]
    assert container["args"] == ["--world", "tunnel"]
    assert container["env"] == [
        {"name": "MODE", "value": "race"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    assert container["ports"] == [
        {"containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "2Gi"},
    }
    assert container["volumeMounts"][0] == {
        "name": "config",
        "mountPath": "/etc/sim",
        "readOnly": True,
    }
    assert container["volumeMounts"][2]["subPath"] == "sim"
    assert container["securityContext"] == {
        "privileged": True,
        "allowPrivilegeEscalation": False,
    }
    assert spec["initContainers"][0]["name"] == "init"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["config"]["configMap"] == {
        "name": "sim-config",
        "items": [{"key": "world.sdf", "path": "world.sdf"}],
    }
    assert volumes["scratch"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert volumes["logs"]["hostPath"] == {"path": "/var/log", "type": "Directory"}
    assert volumes["creds"]["secret"] == {"secretName": "sim-creds", "defaultMode": 0o400}
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 5
    assert spec["nodeSelector"] == {"cloudsim.io/role": "sim"}
    assert spec["tolerations"] == [
        {"operator": "Exists", "key": "nvidia.com/gpu", "effect": "NoSchedule"}
    ]
    assert spec["imagePullSecrets"] == [{"name": "registry"}]
    assert spec["dnsConfig"] == {"nameservers": ["8.8.8.8", "1.1.1.1"]}
    (outcome,) = await harness.wait_outcomes(1)
    assert isinstance(outcome, Applied)
    assert outcome.sink == "pods"
    assert outcome.command == pod


async def test_create_twice_fails_with_already_exists_on_the_outcomes(harness: Harness) -> None:
    cluster = harness.cluster
    await cluster.pods.create(simple("web"))
    with pytest.raises(AlreadyExists) as caught:
        await cluster.pods.create(simple("web"))
    assert caught.value.status["reason"] == "AlreadyExists"
    outcomes = await harness.wait_outcomes(2)
    failed = outcomes[1]
    assert isinstance(failed, Failed)
    assert failed.reason == "AlreadyExists"
    assert failed.error is caught.value


async def test_invalid_pod_is_refused_by_the_api_with_its_causes(cluster: FakeCluster) -> None:
    bad = CreatePod("Not_A_Name", [ContainerSpec("app", "sim:1")])
    with pytest.raises((Invalid, NotFound)) as caught:
        await cluster.pods.create(bad)
    assert caught.value.status.get("code") in (404, 422)


def test_bad_commands_are_refused_when_built() -> None:
    with pytest.raises(ValueError, match="at least one container"):
        CreatePod("x", [])
    with pytest.raises(ValueError, match="image"):
        ContainerSpec("app", "")
    with pytest.raises(ValueError, match="port number"):
        ContainerSpec("app", "x", ports=[70000])
    with pytest.raises(ValueError, match="non-empty selector"):
        DeletePods("")


async def test_get_ip_list_and_delete(harness: Harness) -> None:
    cluster = harness.cluster
    stuck = simple("stuck", app="sim", run="0")
    stuck = CreatePod(
        "stuck",
        stuck.containers,
        labels={"app": "sim", "run": "0"},
        annotations={SimAnnotations.UNSCHEDULABLE: "true"},
    )
    await cluster.pods.create(stuck)
    await cluster.pods.create(simple("a", app="sim", run="1"))
    await cluster.pods.create(simple("c", app="other"))
    assert (await cluster.pods.get("a"))["metadata"]["name"] == "a"
    with pytest.raises(NoPodIP, match="no IP"):
        await cluster.pods.ip("stuck")
    (ready,) = await cluster.pods.wait("run=1", Condition.HAS_IP, timeout=10)
    assert await cluster.pods.ip("a") == ready["status"]["podIP"]
    names = [p["metadata"]["name"] for p in await cluster.pods.list("app=sim")]
    assert names == ["a", "stuck"]
    assert len(await cluster.pods.list()) == 3
    deleted = await cluster.pods.delete("a", grace_period=0)
    assert deleted is not None
    with pytest.raises(NotFound):
        await cluster.pods.get("a")
    with pytest.raises(NotFound):
        await cluster.pods.delete("a")
    await cluster.pods.delete_all({"app": "sim"}, grace_period=0)
    assert [p["metadata"]["name"] for p in await cluster.pods.list()] == ["c"]


async def test_a_graceful_delete_returns_the_terminating_pod(harness: Harness) -> None:
    cluster = harness.cluster
    await cluster.pods.create(simple("web"))
    await cluster.pods.wait("app=sim", timeout=10)
    terminating = await cluster.pods.delete("web", grace_period=30)
    assert terminating is not None
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    assert terminating["metadata"]["deletionTimestamp"]


async def test_wait_succeeds_when_every_selected_pod_is_ready(harness: Harness) -> None:
    cluster = harness.cluster
    for name in ("a", "b"):
        await cluster.pods.create(
            CreatePod(
                name,
                [ContainerSpec("app", "sim:1")],
                labels={"app": "sim"},
                annotations={SimAnnotations.START_DELAY: "0.3s"},
            )
        )
    pods = await cluster.pods.wait("app=sim", Condition.READY, timeout=10)
    assert [p["metadata"]["name"] for p in pods] == ["a", "b"]
    assert all(Condition.READY.satisfied_by(p) for p in pods)


async def test_wait_follows_each_change_of_the_watch(
    bare: tuple[FakeCluster, StubKubelet],
) -> None:
    """Without the simulation the test plays the kubelet, so each step is exact."""
    cluster, _ = bare
    await cluster.pods.create(simple("a"))
    await cluster.pods.create(simple("b"))
    result: list[tuple[object, ...]] = []

    async def wait() -> None:
        result.append(await cluster.pods.wait("app=sim", Condition.READY, timeout=10))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await cluster.server.api.wait_open_watches(1)
        set_pod_status(cluster.server, "a")
        set_pod_status(cluster.server, "b", ready=False)
        assert not result  # b is not ready yet
        set_pod_status(cluster.server, "b")
    (pods,) = result
    assert [p["metadata"]["name"] for p in pods] == ["a", "b"]  # type: ignore[index]


async def test_wait_for_any_of_several_conditions(harness: Harness) -> None:
    cluster = harness.cluster
    for name, code in (("done", "0"), ("broken", "3")):
        await cluster.pods.create(
            CreatePod(
                name,
                [ContainerSpec("app", "job:1")],
                labels={"app": "job"},
                annotations={SimAnnotations.EXIT_CODE: code},
                restart_policy="Never",
            )
        )
    pods = await cluster.pods.wait("app=job", Condition.SUCCEEDED, Condition.FAILED, timeout=10)
    assert {p["metadata"]["name"]: p["status"]["phase"] for p in pods} == {
        "done": "Succeeded",
        "broken": "Failed",
    }
    with pytest.raises(TimedOut):
        # A finished pod is never Ready (as Cloudsim's wait had it).
        await cluster.pods.wait("app=job", Condition.READY, timeout=0.3)


async def test_wait_times_out_naming_what_is_missing(harness: Harness) -> None:
    cluster = harness.cluster
    await cluster.pods.create(simple("a"))
    await cluster.pods.create(
        CreatePod(
            "b",
            [ContainerSpec("app", "sim:1")],
            labels={"app": "sim"},
            annotations={SimAnnotations.NEVER_READY: "true"},
        )
    )
    with pytest.raises(TimedOut) as caught:
        await cluster.pods.wait("app=sim", Condition.READY, timeout=0.5)
    message = str(caught.value)
    assert "timed out after 0.5 s waiting for pods app=sim in namespace default" in message
    assert "1 of 2 are; not yet: b (phase Running, Ready=False" in message
    assert isinstance(caught.value, TimeoutError)


async def test_wait_on_an_empty_selection_keeps_waiting_or_fails_if_told(
    harness: Harness,
) -> None:
    cluster = harness.cluster
    with pytest.raises(TimedOut, match="nothing matches the selector yet"):
        await cluster.pods.wait("app=nobody", timeout=0.3)
    with pytest.raises(NothingSelected, match="no pods match app=nobody"):
        await cluster.pods.wait("app=nobody", timeout=5, fail_if_empty=True)
    # A pod that appears later satisfies a wait that started on an empty selection.
    result: list[object] = []

    async def wait() -> None:
        result.append(await cluster.pods.wait("app=late", Condition.HAS_IP, timeout=10))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await cluster.server.api.wait_open_watches(1)
        await cluster.pods.create(simple("late", app="late"))
    assert len(result) == 1


async def test_disposing_a_wait_cancels_it_and_closes_its_watch(harness: Harness) -> None:
    cluster = harness.cluster
    await cluster.pods.create(
        CreatePod(
            "a",
            [ContainerSpec("app", "sim:1")],
            labels={"app": "sim"},
            annotations={SimAnnotations.NEVER_READY: "true"},
        )
    )
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        subscription = cluster.pods.wait("app=sim", timeout=30).subscribe(
            seen.append,
            seen.append,
            lambda: seen.append("completed"),
            scheduler=TrioScheduler(nursery),
        )
        await cluster.server.api.wait_open_watches(1)
        subscription.dispose()
        await cluster.server.api.wait_open_watches(0)
    assert seen == []  # no value, no error, no completion: cancelled
    # As an Observable, a wait that succeeds emits the pods and completes.
    async with trio.open_nursery() as nursery:
        done = trio.Event()
        cluster.pods.wait("app=sim", Condition.HAS_IP, timeout=10).subscribe(
            seen.append, seen.append, done.set, scheduler=TrioScheduler(nursery)
        )
        await done.wait()
    assert len(seen) == 1


async def test_create_from_a_manifest_and_delete_only_that_incarnation(
    harness: Harness,
) -> None:
    cluster = harness.cluster
    manifest: dict[str, Any] = {
        "metadata": {"name": "lab-rxkube-x2k9p", "labels": {"app": "lab"}},
        "spec": {
            "containers": [{"name": "app", "image": "lab:1", "ports": [{"containerPort": 80}]}]
        },
    }
    command = CreatePodFromManifest(manifest)
    manifest["metadata"]["name"] = "changed later"  # the command copied it
    first = await cluster.pods.create(command)
    assert first is not None
    assert first["metadata"]["name"] == "lab-rxkube-x2k9p"
    await cluster.pods.delete("lab-rxkube-x2k9p", grace_period=0)
    second = await cluster.pods.create(command)  # a new incarnation of the same name
    assert second is not None
    with pytest.raises(Conflict):
        # A delete meant for the first incarnation must not remove the second.
        await cluster.pods.delete("lab-rxkube-x2k9p", uid=first["metadata"]["uid"])
    await cluster.pods.delete("lab-rxkube-x2k9p", uid=second["metadata"]["uid"], grace_period=0)
    assert await cluster.pods.list() == ()
    with pytest.raises(ValueError, match="needs a Pod"):
        CreatePodFromManifest({"kind": "Service", "metadata": {"name": "x"}})
