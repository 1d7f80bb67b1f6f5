"""Fixtures for the orchestrator's acceptance tests: a `FakeCluster` with a simulated cluster.

Everything goes through the real client over loopback to the fake API server, whose simulated
cluster (issue 5) has nodes that become Ready, a scheduler and a kubelet that run pods (their
phases, conditions and IPs), and serves `pods/log` and `pods/exec` (WebSocket v5/v4) over a
simulated container filesystem. Pods misbehave on request through the kubelet's annotations
(`SimAnnotations`: never ready, exit codes, start delays, unschedulable).

`bare` is a fake API server without the simulation, where `StubKubelet` serves exec with
protocol edge cases the simulation does not produce (a server that speaks only v4, a runtime
that cannot start a command). Timeouts are short real-time ones (socket I/O: no MockClock), and
nothing sleeps to wait for a condition: tests wait on events (outcomes, watches opening).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from rxkube.fakes import FakeCluster, SimSettings, Simulation, open_fake_cluster
from rxkube.streams.orchestrator import Outcome
from tests.integration.orchestrator.stub_kubelet import StubKubelet

NODES = ("node-1", "node-2")
# Quick, and without pod backends on sockets (exec and logs do not need them).
SIM = SimSettings(nodes=NODES, backends=False, start_delay=0.02, ready_delay=0.01, seed=7)


@dataclass
class Harness:
    cluster: FakeCluster
    outcomes: list[Outcome] = field(default_factory=list)
    _lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)

    @property
    def simulation(self) -> Simulation:
        simulation = self.cluster.server.simulation
        assert simulation is not None
        return simulation

    def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self._lot.unpark_all()

    async def wait_outcomes(self, count: int) -> list[Outcome]:
        """Wait until `count` outcomes have been published; all of them so far."""
        while len(self.outcomes) < count:
            await self._lot.park()
        return list(self.outcomes)


@asynccontextmanager
async def _harness(**options: Any) -> AsyncIterator[Harness]:
    async with open_fake_cluster(bookmark_interval=0.2, **options) as cluster:
        harness = Harness(cluster)
        subscription = cluster.outcomes.subscribe(harness.record)
        try:
            yield harness
        finally:
            subscription.dispose()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    """A cluster with the simulation (nodes, scheduler, kubelet, logs, exec)."""
    async with _harness(simulate=SIM) as harness:
        yield harness


@pytest.fixture
def cluster(harness: Harness) -> FakeCluster:
    return harness.cluster


@pytest.fixture
async def bare() -> AsyncIterator[tuple[FakeCluster, StubKubelet]]:
    """A cluster without the simulation; `StubKubelet` serves exec and logs."""
    async with _harness(simulate=False) as harness:
        yield harness.cluster, StubKubelet(harness.cluster.server)
