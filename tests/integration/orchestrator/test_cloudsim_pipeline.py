"""Cloudsim's real use of its orchestrator, as ONE reactive pipeline against the simulated
cluster: wait for the nodes (they join NotReady), isolate the run with a network policy, launch
the simulation server pod, wait for its IP, put a service and an ingress path in front of it,
run a script in it, read its result file, then tear everything down by label. Every command's
outcome comes out on `cluster.outcomes`, in order; the pod's backend answers HTTP meanwhile."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import reactivex
import trio
from reactivex import operators as ops

from rxkube.fakes import FakeCluster, SimSettings, open_fake_cluster
from rxkube.streams import KubeObject, TrioScheduler
from rxkube.streams.orchestrator import (
    Applied,
    Call,
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

NODES = {"kubernetes.io/os": "linux"}
RUN = {"cloudsim.io/run": "42"}
HOST = "sims.example.org"
SERVER = "sim-42-server"


def ip_of(pods: tuple[KubeObject, ...]) -> tuple[str, str]:
    return ("ip", pods[0]["status"]["podIP"])


async def test_launch_use_and_tear_down_a_simulation_in_one_pipeline() -> None:
    settings = SimSettings(nodes=("gpu-1", "gpu-2"), node_ready_delay=0.3, seed=42)
    async with open_fake_cluster(simulate=settings, bookmark_interval=0.2) as cluster:
        outcomes: list[Outcome] = []
        cluster.outcomes.subscribe(outcomes.append)
        cluster.server.store.create(
            "ingresses",
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": "gateway"},
                "spec": {"rules": [{"host": HOST, "http": {"paths": []}}]},
            },
            namespace="default",
        )
        await run_pipeline(cluster, outcomes)


async def run_pipeline(cluster: FakeCluster, outcomes: list[Outcome]) -> None:
    simulation = cluster.server.simulation
    assert simulation is not None
    answers: list[str] = []

    async def ask_backend(pods: tuple[KubeObject, ...]) -> tuple[str, str]:
        # The simulation server answers HTTP on its pod IP and container port.
        host, port = simulation.address("default", SERVER, 11345)
        async with httpx.AsyncClient() as http:
            answers.append((await http.get(f"http://{host}:{port}/")).text)
        return ip_of(pods)

    def ask(pods: tuple[KubeObject, ...]) -> reactivex.Observable[tuple[str, str]]:
        # A trio coroutine in the pipeline: a Call is a cold Observable of its result.
        return Call(lambda: ask_backend(pods), name="ask the backend")

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
            node_selector={"kubernetes.io/hostname": "gpu-2"},
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
        # The nodes join NotReady and become Ready while we wait.
        cluster.nodes.wait(NODES, timeout=10).pipe(ops.ignore_elements()),
        cluster.apply(launch),
        cluster.pods.wait(RUN, Condition.READY, timeout=10).pipe(ops.flat_map(ask)),
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
        await done.wait()
    assert errors == []

    commands = [type(o.command).__name__ for o in outcomes]
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
    assert all(isinstance(o, Applied) for o in outcomes)
    # The pipeline's own items: the outcomes of its commands, the IP, the result file.
    (ip,) = [item[1] for item in emitted if isinstance(item, tuple) and item[0] == "ip"]
    assert ipaddress.ip_address(ip)  # the pod's IP, as the kubelet assigned it
    assert ("result", b"score=97\n") in emitted
    assert [o for o in emitted if isinstance(o, Applied)] == outcomes
    assert SERVER in answers[0]

    # Everything the run made is gone; the shared ingress is as it was.
    assert await cluster.pods.list(RUN) == ()
    assert await cluster.services.list(RUN) == ()
    assert await cluster.network_policies.list(RUN) == ()
    assert (await cluster.ingress_rules.get("gateway", HOST)).paths == ()
