"""Two proxy replicas behind one "Service": tickets never exceed capacity, fail-over keeps users.

Real proxies and real backends over loopback; the test stands in for the Service (it picks a
replica per request with a seeded RNG) and for the Lease (it calls `lead()` and `follow()`).
"""

from __future__ import annotations

import random

import trio

from rxkube.proxy import AppConfig, ServerRef, ServerSpec, TicketSigner
from tests.integration.proxy.backend import Backend
from tests.integration.proxy.conftest import KEY, _start_backend, wait_until
from tests.integration.proxy.replicas import (
    WALL,
    Replica,
    User,
    start_replica,
    users_per_backend,
)

MAX = 2


def specs(backends: list[Backend]) -> list[ServerSpec]:
    return [
        ServerSpec(ServerRef(f"lab-{i}", f"uid-{i}"), b.address) for i, b in enumerate(backends)
    ]


def ticket_of(user: User) -> str:
    cookie = user.jar["rxkube-ticket-lab"]
    return TicketSigner([KEY]).verify(cookie, app="lab", now=WALL).ticket


def assert_within_capacity(replica: Replica, backends: list[Backend]) -> None:
    """Both views: the leader's table, and who the backends actually served."""
    table = replica.authority._local
    assert table is not None
    for spec in specs(backends):
        assert table.table.server_tickets("lab", spec.ref) <= MAX
    for name, users in users_per_backend(backends).items():
        assert len(users) <= MAX, f"{name} served {sorted(users)}"


async def test_two_replicas_share_tickets_and_fail_over_without_losing_users() -> None:
    rng = random.Random(10)
    app = AppConfig("lab", tickets_max=MAX, idle_timeout=60, refresh_interval=5)
    async with trio.open_nursery() as nursery:
        backends = [await _start_backend(nursery, f"b{i}") for i in range(4)]
        servers = specs(backends)
        a = await start_replica(nursery, "a", app, lambda: servers, lead=True)
        b = await start_replica(nursery, "b", app, lambda: servers, follow=a)

        # 2 x 20 users at once, half through each replica; capacity is 4 x 2 = 8.
        users = [User(f"u{i:02}") for i in range(40)]
        async with trio.open_nursery() as crowd:
            for i, user in enumerate(users):
                crowd.start_soon(user.visit, (a if i % 2 else b).port)
        holders = [u for u in users if u.backend is not None]
        waiters = sorted((u for u in users if u.waiting), key=lambda u: u.position or 0)
        assert len(holders) == 8
        assert [w.position for w in waiters] == list(range(1, 33))
        assert_within_capacity(a, backends)
        assert a.authority.statistics().followers == 1

        # The Service spreads each user's requests over both replicas: nobody moves.
        where = {u.name: u.backend for u in holders}
        spread = trio.current_time()
        for _ in range(3):
            async with trio.open_nursery() as crowd:
                for user in holders:
                    crowd.start_soon(user.visit, rng.choice([a, b]).port)
            assert {u.name: u.backend for u in holders} == where
        assert_within_capacity(a, backends)
        assert b.authority.statistics().mirrored_tickets == 8
        # b reports its users' activity: the leader's idle release counts it.
        await wait_until(lambda: b.authority.statistics().reports >= 1)
        leader = a.authority._local
        assert leader is not None
        for user in holders:
            assert leader.table.last_seen("lab", ticket_of(user)) >= spread

        # The leader dies; the Lease (this test) makes b the leader.
        killed = trio.current_time()
        await a.kill()
        b.authority.lead()
        # Holders never noticed; waiters get decisions from b (FIFO kept: same positions).
        first = await waiters[0].visit(b.port)
        failover = trio.current_time() - killed
        assert (first.status, waiters[0].position) == (503, 1)
        async with trio.open_nursery() as crowd:
            for user in holders:
                crowd.start_soon(user.visit, b.port)
        assert {u.name: u.backend for u in holders} == where
        assert b.authority.statistics().restored == 8
        assert_within_capacity(b, backends)

        # A replacement replica joins as a follower; a new pod adds room for two waiters.
        c = await start_replica(nursery, "c", app, lambda: servers, follow=b)
        backends.append(await _start_backend(nursery, "b4"))
        servers = specs(backends)
        for replica in (b, c):
            replica.proxy.set_servers("lab", servers)
        for waiter in waiters[:3]:
            await waiter.visit(rng.choice([b, c]).port)
        assert [w.backend for w in waiters[:3]] == ["b4", "b4", None]  # first come, first served
        async with trio.open_nursery() as crowd:
            for user in holders:
                crowd.start_soon(user.visit, rng.choice([b, c]).port)
        assert {u.name: u.backend for u in holders} == where
        assert_within_capacity(b, backends)
        print(f"\nfail-over: {failover * 1000:.1f} ms from the leader's death to a decision")
        nursery.cancel_scope.cancel()
