"""Fixtures for the orchestrator's acceptance tests: a `FakeCluster` with a stand-in kubelet.

Everything goes through the real client over loopback to the fake API server. Timeouts are
short real-time ones (socket I/O: no MockClock), and nothing sleeps to wait for a condition:
tests wait on events (outcomes arriving, watches opening) instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import trio

from rxkube.fakes import FakeCluster, open_fake_cluster
from rxkube.streams.orchestrator import Outcome
from tests.integration.orchestrator.stub_kubelet import StubKubelet


@dataclass
class Harness:
    cluster: FakeCluster
    kubelet: StubKubelet
    outcomes: list[Outcome] = field(default_factory=list)
    _lot: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)

    def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self._lot.unpark_all()

    async def wait_outcomes(self, count: int) -> list[Outcome]:
        """Wait until `count` outcomes have been published; all of them so far."""
        while len(self.outcomes) < count:
            await self._lot.park()
        return list(self.outcomes)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with open_fake_cluster(bookmark_interval=0.2) as cluster:
        harness = Harness(cluster, StubKubelet(cluster.server))
        subscription = cluster.outcomes.subscribe(harness.record)
        try:
            yield harness
        finally:
            subscription.dispose()


@pytest.fixture
def cluster(harness: Harness) -> FakeCluster:
    return harness.cluster


@pytest.fixture
def kubelet(harness: Harness) -> StubKubelet:
    return harness.kubelet
