"""Nodes: get, list, and waits on the node watch (success, timeout, empty selection), against
the simulated cluster's nodes (which may become Ready after a delay)."""

from __future__ import annotations

import pytest

from rxkube.fakes import SimSettings, open_fake_cluster
from rxkube.streams import NotFound
from rxkube.streams.orchestrator import Condition, NothingSelected, TimedOut
from tests.integration.orchestrator.conftest import NODES, Harness
from tests.integration.orchestrator.stub_kubelet import make_node

LINUX = {"kubernetes.io/os": "linux"}


async def test_get_and_list(harness: Harness) -> None:
    cluster = harness.cluster
    assert (await cluster.nodes.get("node-1"))["metadata"]["name"] == "node-1"
    with pytest.raises(NotFound):
        await cluster.nodes.get("node-z")
    assert [n["metadata"]["name"] for n in await cluster.nodes.list(LINUX)] == list(NODES)
    one = await cluster.nodes.list({"kubernetes.io/hostname": "node-2"})
    assert [n["metadata"]["name"] for n in one] == ["node-2"]


async def test_wait_until_nodes_that_join_not_ready_become_ready() -> None:
    settings = SimSettings(nodes=("gpu-1", "gpu-2"), backends=False, node_ready_delay=0.5)
    async with open_fake_cluster(simulate=settings) as cluster:
        joined = await cluster.nodes.list(LINUX)
        assert not any(Condition.READY.satisfied_by(n) for n in joined)
        nodes = await cluster.nodes.wait(LINUX, Condition.READY, timeout=10)
        assert [n["metadata"]["name"] for n in nodes] == ["gpu-1", "gpu-2"]
        assert all(Condition.READY.satisfied_by(n) for n in nodes)


async def test_wait_times_out_and_empty_selections(harness: Harness) -> None:
    cluster = harness.cluster
    # A node whose kubelet stopped posting Ready (the test writes it; it is not simulated).
    make_node(cluster.server, "node-9", ready=False, labels=LINUX)
    with pytest.raises(TimedOut, match=r"2 of 3 are; not yet: node-9 \(Ready=False\)"):
        await cluster.nodes.wait(LINUX, timeout=0.5)
    with pytest.raises(TimedOut, match="nothing matches"):
        await cluster.nodes.wait("cloudsim.io/role=gpu", timeout=0.3)
    with pytest.raises(NothingSelected):
        await cluster.nodes.wait("cloudsim.io/role=gpu", timeout=5, fail_if_empty=True)
    with pytest.raises(ValueError, match="READY"):
        cluster.nodes.wait(LINUX, Condition.HAS_IP)
