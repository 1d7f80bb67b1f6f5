"""Nodes: get, list, and waits on the node watch (success, timeout, empty selection)."""

from __future__ import annotations

import pytest
import trio

from rxkube.fakes import FakeCluster
from rxkube.streams import NotFound
from rxkube.streams.orchestrator import Condition, NothingSelected, TimedOut
from tests.integration.orchestrator.stub_kubelet import make_node

SIM = {"cloudsim.io/role": "sim"}


async def test_get_and_list(cluster: FakeCluster) -> None:
    make_node(cluster.server, "node-a", ready=True, labels=SIM)
    make_node(cluster.server, "node-b", ready=True, labels={"cloudsim.io/role": "web"})
    assert (await cluster.nodes.get("node-a"))["metadata"]["name"] == "node-a"
    with pytest.raises(NotFound):
        await cluster.nodes.get("node-z")
    assert [n["metadata"]["name"] for n in await cluster.nodes.list(SIM)] == ["node-a"]
    assert len(await cluster.nodes.list()) == 2


async def test_wait_until_every_selected_node_is_ready(cluster: FakeCluster) -> None:
    make_node(cluster.server, "node-a", ready=False, labels=SIM)
    make_node(cluster.server, "node-b", ready=True, labels=SIM)
    make_node(cluster.server, "node-c", ready=False, labels={"cloudsim.io/role": "web"})
    result: list[tuple[object, ...]] = []

    async def wait() -> None:
        result.append(await cluster.nodes.wait(SIM, Condition.READY, timeout=10))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await cluster.server.api.wait_open_watches(1)
        assert not result
        make_node(cluster.server, "node-a", ready=True, labels=SIM)
    assert len(result[0]) == 2


async def test_wait_times_out_and_empty_selections(cluster: FakeCluster) -> None:
    make_node(cluster.server, "node-a", ready=False, labels=SIM)
    with pytest.raises(TimedOut, match=r"0 of 1 are; not yet: node-a \(Ready=False\)"):
        await cluster.nodes.wait(SIM, timeout=0.3)
    with pytest.raises(TimedOut, match="nothing matches"):
        await cluster.nodes.wait("cloudsim.io/role=gpu", timeout=0.3)
    with pytest.raises(NothingSelected):
        await cluster.nodes.wait("cloudsim.io/role=gpu", timeout=5, fail_if_empty=True)
    with pytest.raises(ValueError, match="READY"):
        cluster.nodes.wait(SIM, Condition.HAS_IP)
