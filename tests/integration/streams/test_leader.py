"""Leader election on a Lease against the fake API server: one leader, fail-over, step-down."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import trio

from rxkube.fakes import FakeApiServer, Fault, open_fake_apiserver
from rxkube.streams import (
    KubeClient,
    LeaderElection,
    LeaseHolder,
    LeasePolicy,
    load_kubeconfig,
    open_client,
    open_leader_election,
)

FAST = LeasePolicy(lease_duration=1.0, renew_deadline=0.6, retry_period=0.1, jitter=0.2)
MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    async with open_fake_apiserver() as fake:
        fake.store.create("namespaces", {"metadata": {"name": "lab"}})
        yield fake


@pytest.fixture
async def client(server: FakeApiServer) -> AsyncIterator[KubeClient]:
    async with open_client(load_kubeconfig(server.kubeconfig_path), rate_limit=None) as c:
        yield c


def lease(server: FakeApiServer) -> dict[str, object]:
    spec = server.store.get("leases", "lab", "rxkube")["spec"]
    assert isinstance(spec, dict)
    return spec


async def test_a_lone_candidate_leads_and_releases_on_exit(
    server: FakeApiServer, client: KubeClient
) -> None:
    seen: list[bool] = []
    async with open_leader_election(
        client, namespace="lab", name="rxkube", identity="a", policy=FAST
    ) as election:
        election.changes.subscribe(seen.append)
        with trio.fail_after(5):
            await election.wait_leader()
        spec = lease(server)
        assert spec["holderIdentity"] == "a"
        assert spec["leaseDurationSeconds"] == 1
        assert spec["leaseTransitions"] == 0
        assert MICRO_TIME.fullmatch(str(spec["renewTime"]))
        assert spec["acquireTime"] == spec["renewTime"]
        first_renewal = spec["renewTime"]
        with trio.fail_after(5):
            while lease(server)["renewTime"] == first_renewal:  # noqa: ASYNC110 - renewals are not announced
                await trio.sleep(0.02)
        assert lease(server)["acquireTime"] == first_renewal  # renewing keeps acquireTime
    assert seen == [False, True, False]
    released = lease(server)
    assert (released["holderIdentity"], released["leaseDurationSeconds"]) == ("", 1)


async def test_one_leader_of_two_and_fail_over_when_it_dies(
    server: FakeApiServer, client: KubeClient
) -> None:
    crash = LeasePolicy(
        lease_duration=1.0, renew_deadline=0.6, retry_period=0.1, jitter=0.2, release_on_exit=False
    )
    a_scope = trio.CancelScope()

    async def candidate_a(task_status: trio.TaskStatus[LeaderElection]) -> None:
        with a_scope:
            async with open_leader_election(
                client, namespace="lab", name="rxkube", identity="a", policy=crash
            ) as a:
                task_status.started(a)
                await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        a: LeaderElection = await nursery.start(candidate_a)
        with trio.fail_after(5):
            await a.wait_leader()
        async with open_leader_election(
            client, namespace="lab", name="rxkube", identity="b", policy=FAST
        ) as b:
            with trio.fail_after(5):
                stats = await b.wait_until(lambda s: s.attempts >= 5)
            assert (stats.is_leader, stats.holder) == (False, "a")  # a renews: b follows
            a_scope.cancel()  # a dies without releasing the Lease (as if killed)
            died_at = trio.current_time()
            with trio.fail_after(5):
                await b.wait_leader()
            took = trio.current_time() - died_at
            # Not before the lease expired (b saw a's last renewal at most a retry before it
            # died), and soon after.
            assert took >= FAST.lease_duration - 2 * FAST.retry_period * (1 + FAST.jitter)
            assert took <= FAST.lease_duration + 2 * FAST.retry_period * (1 + FAST.jitter)
            spec = lease(server)
            assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
            assert a.statistics().acquired == 1


async def test_a_released_lease_passes_on_at_once(
    server: FakeApiServer, client: KubeClient
) -> None:
    slow = LeasePolicy(lease_duration=30.0, renew_deadline=10.0, retry_period=0.1, jitter=0.2)
    async with open_leader_election(
        client, namespace="lab", name="rxkube", identity="a", policy=slow
    ) as a:
        with trio.fail_after(5):
            await a.wait_leader()
    async with open_leader_election(
        client, namespace="lab", name="rxkube", identity="b", policy=slow
    ) as b:
        with trio.fail_after(2):  # far less than the 30 s lease
            await b.wait_leader()


async def test_a_leader_that_cannot_renew_steps_down(
    server: FakeApiServer, client: KubeClient
) -> None:
    async with open_leader_election(
        client, namespace="lab", name="rxkube", identity="a", policy=FAST
    ) as election:
        with trio.fail_after(5):
            await election.wait_leader()
        server.faults.inject(Fault.status(503), verb="update", resource="leases", times=None)
        started = trio.current_time()
        with trio.fail_after(5):
            stats = await election.wait_until(lambda s: not s.is_leader)
        assert trio.current_time() - started <= FAST.renew_deadline + FAST.retry_period * 3
        assert stats.lost == 1
        assert stats.errors.get("ServerError", 0) >= 1
        server.faults.clear()
        with trio.fail_after(5):
            await election.wait_leader()
        assert election.statistics().acquired == 2


def test_the_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeasePolicy(lease_duration=5, renew_deadline=10)


async def test_the_leader_writes_its_annotations_and_the_others_read_them(
    server: FakeApiServer, client: KubeClient
) -> None:
    server.store.create(
        "leases",
        {
            "metadata": {"name": "rxkube", "namespace": "lab", "annotations": {"x.io/y": "kept"}},
            "spec": {"holderIdentity": "", "leaseDurationSeconds": 1},
        },
    )
    key = "rxkube.io/authority-address"
    a_scope = trio.CancelScope()

    async def candidate_a(task_status: trio.TaskStatus[LeaderElection]) -> None:
        with a_scope:
            async with open_leader_election(
                client,
                namespace="lab",
                name="rxkube",
                identity="a",
                policy=FAST,
                annotations={key: "10.0.0.1:9091"},
            ) as a:
                task_status.started(a)
                await trio.sleep_forever()

    def annotations() -> object:
        return server.store.get("leases", "lab", "rxkube")["metadata"]["annotations"]

    seen_by_b: list[LeaseHolder] = []
    async with trio.open_nursery() as nursery:
        a: LeaderElection = await nursery.start(candidate_a)
        with trio.fail_after(5):
            await a.wait_leader()
        by_a = {"x.io/y": "kept", key: "10.0.0.1:9091"}
        assert annotations() == by_a
        assert a.holder == LeaseHolder("a", by_a)
        async with open_leader_election(
            client,
            namespace="lab",
            name="rxkube",
            identity="b",
            policy=FAST,
            annotations={key: "10.0.0.2:9091"},
        ) as b:
            b.holders.subscribe(seen_by_b.append)
            with trio.fail_after(5):
                await b.wait_until(lambda s: s.attempts >= 2)
            assert b.holder == LeaseHolder("a", by_a)  # a's, not b's own
            a_scope.cancel()  # a leaves: it releases, and its annotation goes with it
            with trio.fail_after(5):
                await b.wait_leader()
            by_b = {"x.io/y": "kept", key: "10.0.0.2:9091"}
            assert annotations() == by_b
            assert b.holder == LeaseHolder("b", by_b)
    assert seen_by_b[:2] == [LeaseHolder(""), LeaseHolder("a", by_a)]
    assert seen_by_b[-1] == LeaseHolder("b", by_b)
    assert set(seen_by_b[2:-1]) <= {LeaseHolder("", {"x.io/y": "kept"})}  # the released Lease
    assert server.store.get("leases", "lab", "rxkube")["spec"]["holderIdentity"] == ""
    assert annotations() == {"x.io/y": "kept"}
