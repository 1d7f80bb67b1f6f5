"""Two proxy replicas behind one "Service": tickets never exceed capacity, fail-over keeps users.

Real proxies and real backends over loopback; the test stands in for the Service (it picks a
replica per request with a seeded RNG) and for the Lease (it calls `lead()` and `follow()`).
"""

from __future__ import annotations

import random

import httpx
import trio

from rxkube.proxy import AppConfig, ProxyConfig, ServerRef, ServerSpec, TicketSigner
from rxkube.proxy._replica import _token
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


async def test_without_a_leader_holders_go_on_and_newcomers_get_503() -> None:
    app = AppConfig("lab", tickets_max=MAX)
    async with trio.open_nursery() as nursery:
        backends = [await _start_backend(nursery, "b0")]
        servers = specs(backends)
        a = await start_replica(nursery, "a", app, lambda: servers, lead=True)
        b = await start_replica(nursery, "b", app, lambda: servers, follow=a)
        holder, newcomer = User("holder"), User("newcomer")
        assert (await holder.visit(b.port)).status == 200
        await a.kill()
        for _ in range(3):  # the copy answers: no round trip to a dead leader
            assert (await holder.visit(b.port)).status == 200
        reply = await newcomer.visit(b.port)
        assert reply.status == 503
        assert reply.header("retry-after") == "2"
        assert b"cannot be handed out" in reply.body
        assert not newcomer.jar  # neither a ticket nor a place in a queue
        assert b.proxy.statistics().apps["lab"].unavailable == 1
        # Before any `follow()`, a replica has no leader at all: the same answer.
        c = await start_replica(nursery, "c", app, lambda: servers)
        assert (await newcomer.visit(c.port)).status == 503
        assert c.authority.statistics().role == "follower"
        nursery.cancel_scope.cancel()


async def test_a_new_leader_restores_reported_tickets_where_there_is_room() -> None:
    """The new leader's copy missed everything (it never followed); reports fill it in."""
    app = AppConfig("lab", tickets_max=1)
    async with trio.open_nursery() as nursery:
        backends = [await _start_backend(nursery, f"b{i}") for i in range(2)]
        servers = specs(backends)
        a = await start_replica(nursery, "a", app, lambda: servers, lead=True)
        b = await start_replica(nursery, "b", app, lambda: servers, follow=a)
        u0, u1, newcomer = User("u0"), User("u1"), User("newcomer")
        await u0.visit(b.port)
        await u1.visit(b.port)
        assert (u0.backend, u1.backend) == ("b0", "b1")
        await a.kill()
        c = await start_replica(nursery, "c", app, lambda: servers, lead=True)
        await newcomer.visit(c.port)  # c knows of no ticket yet: lab-0 looks free
        assert newcomer.backend == "b0"
        b.authority.follow(c.api)
        await wait_until(lambda: b.authority.statistics().reports >= 1)
        leader = c.authority._local
        assert leader is not None
        assert dict(leader.table.tickets("lab")) == {
            ticket_of(newcomer): ServerRef("lab-0", "uid-0"),
            ticket_of(u1): ServerRef("lab-1", "uid-1"),
        }
        assert b.authority.statistics().refused == 1  # u0's slot went to the newcomer
        # u1 goes on anywhere; u0 asks again under its ticket id: nothing is free, so it waits.
        assert (await u1.visit(c.port)).status == 200
        assert (await u1.visit(b.port)).status == 200
        assert u1.backend == "b1"
        reply = await u0.visit(b.port)
        assert (reply.status, u0.position) == (503, 1)
        nursery.cancel_scope.cancel()


async def test_a_leader_that_steps_down_hands_its_users_over() -> None:
    app = AppConfig("lab", tickets_max=MAX)
    async with trio.open_nursery() as nursery:
        backends = [await _start_backend(nursery, f"b{i}") for i in range(2)]
        servers = specs(backends)
        a = await start_replica(nursery, "a", app, lambda: servers, lead=True)
        b = await start_replica(nursery, "b", app, lambda: servers, follow=a)
        users = [User(f"u{i}") for i in range(4)]
        for i, user in enumerate(users):
            await user.visit((a, b)[i % 2].port)
        where = {u.name: u.backend for u in users}
        # The Lease moves from a to b (a lost it, b took it): b first, then a is told.
        b.authority.lead()
        a.authority.follow(b.api)
        await a.authority.wait_synced()
        for user in users:
            assert (await user.visit(a.port)).status == 200
            assert (await user.visit(b.port)).status == 200
        assert {u.name: u.backend for u in users} == where
        leader = b.authority._local
        assert leader is not None
        assert sorted(leader.table.tickets("lab")) == sorted(ticket_of(u) for u in users)
        assert (await User("late").visit(a.port)).status == 503  # 4 of 4 seats taken, via b
        assert a.authority.statistics().role == "follower"
        assert len(leader.table.queue("lab")) == 1  # "late" waits at the leader, asked via a
        nursery.cancel_scope.cancel()


async def test_the_authority_api_refuses_bad_requests_clearly() -> None:
    app = AppConfig("lab", tickets_max=MAX)
    async with trio.open_nursery() as nursery:
        servers = specs([await _start_backend(nursery, "b0")])
        a = await start_replica(nursery, "a", app, lambda: servers, lead=True)
        b = await start_replica(nursery, "b", app, lambda: servers, follow=a)
        token = {"authorization": f"Bearer {_token(KEY)}"}
        async with httpx.AsyncClient(base_url=f"http://{a.api}", trust_env=False) as client:
            health = await client.get("/v1/health")  # no token needed
            assert health.json() == {"identity": "a", "role": "leader", "leader": None}
            denied = await client.post("/v1/request", content=b"{}")
            assert denied.status_code == 401
            wrong = {"authorization": f"Bearer {_token(b'x' * 32)}"}
            assert (await client.post("/v1/request", headers=wrong)).status_code == 401
            cases = [
                (b"not json", 400),
                (b'{"app": "lab"}', 400),
                (b'{"app": "lab", "client": 5}', 400),
                (b'{"app": "lab", "client": "c", "prefer": ["only-a-name"]}', 400),
                (b'{"app": "lab", "client": "c", "sneaky": 1}', 400),
                (b'{"app": "nope", "client": "c"}', 404),
            ]
            for body, status in cases:
                answer = await client.post("/v1/request", content=body, headers=token)
                assert answer.status_code == status, body
                assert answer.json()["error"]
            assert (await client.post("/v1/nope", headers=token)).status_code == 404
            assert (await client.get("/v1/request", headers=token)).status_code == 405
            big = b"[" + b"1," * (9 * 2**20) + b"1]"
            assert (await client.post("/v1/report", content=big, headers=token)).status_code == 413
            report = (
                b'{"tickets": [["lab", "t", ["lab-0", "uid-0"], 0.0], ["x", "t", ["a", "b"], 0]]}'
            )
            answer = await client.post("/v1/report", content=report, headers=token)
            assert answer.json() == {"refused": [["x", "t"]]}
        async with httpx.AsyncClient(base_url=f"http://{b.api}", trust_env=False) as client:
            answer = await client.post("/v1/request", content=b"{}", headers=token)
            assert answer.status_code == 503
            assert answer.json() == {"error": "not the leader", "leader": a.api}
        # A replica with another key cannot follow: it never syncs, and says why in its log.
        stranger = await start_replica(
            nursery,
            "stranger",
            app,
            lambda: servers,
            config=ProxyConfig(ticket_keys=(b"s" * 32,), shutdown_grace=0.1),
            keys=[b"s" * 32],
        )
        stranger.authority.follow(a.api)
        with trio.move_on_after(0.5):
            await stranger.authority.wait_synced()
        assert not stranger.authority.statistics().synced
        assert (await User("x").visit(stranger.port)).status == 503
        nursery.cancel_scope.cancel()
