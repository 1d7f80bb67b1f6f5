"""Cloudsim's real use of its orchestrator, as ONE reactive pipeline against the fake cluster:
wait for the simulation nodes, isolate the run with a network policy, launch the simulation
server pod, wait for its IP, put a service and an ingress path in front of it, run a script in
it, read its result file, then tear everything down by label. Every command's outcome comes out
on `cluster.outcomes`, in order."""

from __future__ import annotations

from typing import Any

import reactivex
import trio
from reactivex import operators as ops

from rxkube.streams import KubeObject, TrioScheduler
from rxkube.streams.orchestrator import (
    Applied,
    Condition,
    ContainerSpec,
    CreateNetworkPolicy,
    CreatePod,
    CreateService,
    DeletePods,
    EmptyDirVolume,
    IngressPath,
    Outcome,
    PodPeer,
    PolicyRule,
    RemoveNetworkPolicies,
    RemovePaths,
    RemoveServices,
    UpsertPaths,
    VolumeMount,
)
from tests.integration.orchestrator.conftest import Harness
from tests.integration.orchestrator.stub_kubelet import make_node, set_pod_status

NODES = {"cloudsim.io/role": "sim"}
RUN = {"cloudsim.io/run": "42"}
HOST = "sims.example.org"
SERVER = "sim-42-server"


def ip_of(pods: tuple[KubeObject, ...]) -> tuple[str, str]:
    return ("ip", pods[0]["status"]["podIP"])


async def test_launch_use_and_tear_down_a_simulation_in_one_pipeline(harness: Harness) -> None:
    cluster = harness.cluster
    server = cluster.server
    server.store.create(
        "ingresses",
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "gateway"},
            "spec": {"rules": [{"host": HOST, "http": {"paths": []}}]},
        },
        namespace="default",
    )
    make_node(server, "gpu-1", ready=True, labels=NODES)
    make_node(server, "gpu-2", ready=False, labels=NODES)

    # The stand-in kubelet: a pod that was created gets an IP, as the real one would do.
    def kubelet(outcome: Outcome) -> None:
        if isinstance(outcome, Applied) and isinstance(outcome.command, CreatePod):
            set_pod_status(server, outcome.command.name, ip="10.244.1.9")

    cluster.pods.outcomes.subscribe(kubelet)

    launch = reactivex.of(
        CreateNetworkPolicy(
            "sim-42",
            RUN,
            ingress=[PolicyRule(peers=[PodPeer({"cloudsim.io/role": "bridge"})], ports=[11345])],
            allow_all_outbound=True,
            labels=RUN,
        ),
        CreatePod(
            SERVER,
            [
                ContainerSpec(
                    "sim",
                    "cloudsim/sim:1",
                    ports=[11345],
                    env_from_fields={"POD_IP": "status.podIP"},
                    volume_mounts=[VolumeMount("results", "/results")],
                )
            ],
            labels=RUN,
            volumes=[EmptyDirVolume("results")],
            restart_policy="Never",
            node_selector=NODES,
            nameservers=["8.8.8.8"],
        ),
    )
    expose = reactivex.of(
        CreateService(SERVER, RUN, {"gzserver": 11345}, labels=RUN),
        UpsertPaths("gateway", HOST, [IngressPath("sim-42", "/sim-42", SERVER, 11345)]),
    )
    teardown = reactivex.of(
        RemovePaths("gateway", HOST, ["sim-42"]),
        DeletePods(RUN, grace_period=0),
        RemoveServices(RUN),
        RemoveNetworkPolicies(RUN),
    )
    pipeline: reactivex.Observable[Any] = reactivex.concat(
        # Node gpu-2 comes up while we wait (below).
        cluster.nodes.wait(NODES, timeout=10).pipe(ops.ignore_elements()),
        cluster.apply(launch),
        cluster.pods.wait(RUN, Condition.HAS_IP, timeout=10).pipe(ops.map(ip_of)),
        cluster.apply(expose),
        cluster.pods.exec_script(
            SERVER, "echo score=97 > /results/score.txt; echo simulated", container="sim"
        ).pipe(ops.ignore_elements()),
        cluster.pods.read_file(SERVER, "/results/score.txt").pipe(
            ops.map(lambda data: ("result", data))
        ),
        cluster.apply(teardown),
    )
    emitted: list[Any] = []
    errors: list[Exception] = []
    done = trio.Event()

    def failed(error: Exception) -> None:
        errors.append(error)
        done.set()

    async with trio.open_nursery() as nursery:
        pipeline.subscribe(
            emitted.append,
            failed,
            done.set,
            scheduler=TrioScheduler(nursery),
        )
        await server.api.wait_open_watches(1)  # the node wait is watching
        make_node(server, "gpu-2", ready=True, labels=NODES)
        await done.wait()
    assert errors == []

    commands = [type(o.command).__name__ for o in harness.outcomes]
    assert commands == [
        "CreateNetworkPolicy",
        "CreatePod",
        "CreateService",
        "UpsertPaths",
        "RemovePaths",
        "DeletePods",
        "RemoveServices",
        "RemoveNetworkPolicies",
    ]
    assert all(isinstance(o, Applied) for o in harness.outcomes)
    # The pipeline's own items: the outcomes of its commands, the IP, the result file.
    assert ("ip", "10.244.1.9") in emitted
    assert ("result", b"score=97\n") in emitted
    assert [o for o in emitted if isinstance(o, Applied)] == harness.outcomes

    # Everything the run made is gone; the shared ingress is as it was.
    assert await cluster.pods.list(RUN) == ()
    assert await cluster.services.list(RUN) == ()
    assert await cluster.network_policies.list(RUN) == ()
    assert (await cluster.ingress_rules.get("gateway", HOST)).paths == ()
    assert harness.kubelet.execs[0][1][0] == "sh"
