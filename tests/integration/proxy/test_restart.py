"""Restart without losing users: a second proxy process, same key, the same live backends.

The first proxy hands out tickets and stops; the second starts with no state at all. A user whose
signed cookie names a pod that still exists (same name and uid) is re-admitted there if it has a
free slot; otherwise the user gets a new ticket or the waiting room; a cookie past its maximum
lifetime is refused. Real proxies, real backends, loopback only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from rxkube.proxy import (
    AppConfig,
    LocalTicketAuthority,
    ProxyConfig,
    ServerRef,
    ServerSpec,
    TicketIssued,
    TicketProxy,
    TicketSigner,
    open_ticket_proxy,
)
from tests.integration.proxy.backend import Backend
from tests.integration.proxy.conftest import (
    KEY,
    _start_backend,
    open_harness,
    read_response,
    wait_until,
)
from tests.integration.proxy.replicas import User

APP = AppConfig("lab", tickets_max=1, idle_timeout=60, refresh_interval=5)


def spec(backend: Backend, name: str, uid: str) -> ServerSpec:
    return ServerSpec(ServerRef(name, uid), backend.address)


@asynccontextmanager
async def proxy_process(
    servers: list[ServerSpec], wall: list[float], changes: list[object] | None = None
) -> AsyncIterator[TicketProxy]:
    config = ProxyConfig(
        ticket_keys=(KEY,), cookie_max_lifetime=3600, wall_clock=lambda: wall[0], shutdown_grace=0.2
    )
    async with open_ticket_proxy(config) as proxy:
        if changes is not None:
            proxy.changes.subscribe(changes.append)
        await proxy.set_app(APP)
        proxy.set_servers("lab", servers)
        yield proxy


async def test_a_restart_readmits_users_to_their_pods_where_there_is_room() -> None:
    wall = [1_700_000_000.0]
    async with trio.open_nursery() as nursery:
        b0, b1, b2, b1_new, b3 = [
            await _start_backend(nursery, name) for name in ("b0", "b1", "b2", "b1-new", "b3")
        ]
        first = [spec(b0, "lab-0", "u0"), spec(b1, "lab-1", "u1"), spec(b2, "lab-2", "u2")]
        users = [User(f"user{i}") for i in range(5)]
        cut: list[int] = []
        async with proxy_process(first, wall) as proxy:
            for user in users[:4]:
                await user.visit(proxy.addresses[0][1])
            # user1 has a WebSocket session open when the proxy goes away.
            cookie = f"rxkube-ticket-lab={users[1].jar['rxkube-ticket-lab']}".encode()
            url = f"ws://127.0.0.1:{proxy.addresses[0][1]}/lab/ws"
            opened = trio.Event()

            async def session() -> None:
                async with open_websocket_url(url, extra_headers=[(b"Cookie", cookie)]) as ws:
                    await ws.send_message("before")
                    assert await ws.get_message() == "before"
                    opened.set()
                    try:
                        await ws.get_message()
                    except ConnectionClosed as closed:
                        cut.append(0 if closed.reason is None else closed.reason.code)

            nursery.start_soon(session)
            await opened.wait()
            assert [b.name for b in (b0, b1, b2) if b.websockets_open] == ["b1"]
        await wait_until(lambda: bool(cut))
        assert cut == [1006]  # cut by the proxy's shutdown after its grace period
        assert [u.backend for u in users[:3]] == ["b0", "b1", "b2"]
        assert users[3].waiting
        assert users[3].position == 1

        # The second process: lab-1 was re-created meanwhile (same name, new uid: another pod),
        # and lab-3 is new. The order of the list does not matter.
        wall[0] += 600
        second = [
            spec(b3, "lab-3", "u3"),
            spec(b2, "lab-2", "u2"),
            spec(b1_new, "lab-1", "u1-new"),
            spec(b0, "lab-0", "u0"),
        ]
        changes: list[object] = []
        async with proxy_process(second, wall, changes) as proxy:
            port = proxy.addresses[0][1]
            # user2 comes back first: its pod exists and is free, so it is re-admitted there,
            # and its cookie (still valid) is not re-issued: a restart extends no lifetime.
            before = dict(users[2].jar)
            reply = await users[2].visit(port)
            assert (reply.status, users[2].backend) == (200, "b2")
            assert reply.header("set-cookie") is None
            assert users[2].jar == before
            # A newcomer takes a free slot first (new tickets pack onto the earliest pods).
            await users[4].visit(port)
            assert users[4].backend == "b3"
            # user1's pod was re-created: the cookie names the old uid, so a new ticket, and the
            # WebSocket session reconnects there.
            reply = await users[1].visit(port)
            assert users[1].backend == "b1-new"
            assert reply.header("set-cookie") is not None
            cookie = f"rxkube-ticket-lab={users[1].jar['rxkube-ticket-lab']}".encode()
            async with open_websocket_url(
                f"ws://127.0.0.1:{port}/lab/ws", extra_headers=[(b"Cookie", cookie)]
            ) as ws:
                await ws.send_message("after")
                assert await ws.get_message() == "after"
                assert b1_new.websockets_open == 1
            # user0's pod exists and is free: re-admitted. user3 (waiting before) gets the
            # last slot... none is left, so the waiting room.
            await users[0].visit(port)
            assert users[0].backend == "b0"
            reply = await users[3].visit(port)
            assert reply.status == 503
            assert users[3].waiting
            issued = [c for c in changes if isinstance(c, TicketIssued)]
            assert [(c.server.name, c.resumed) for c in issued] == [
                ("lab-2", True),
                ("lab-3", False),
                ("lab-1", False),
                ("lab-0", True),
            ]
            # Every backend served exactly its user(s), never someone else's.
            served = {b.name: {h.get("x-user") for _, h in b.seen} - {None} for b in (b0, b2, b3)}
            assert served == {"b0": {"user0"}, "b2": {"user2"}, "b3": {"user4"}}
        nursery.cancel_scope.cancel()


async def test_a_pod_that_filled_up_during_the_restart_gives_a_new_ticket_or_the_queue() -> None:
    wall = [1_700_000_000.0]
    async with trio.open_nursery() as nursery:
        b0, b1 = [await _start_backend(nursery, name) for name in ("b0", "b1")]
        servers = [spec(b0, "lab-0", "u0"), spec(b1, "lab-1", "u1")]
        alice, bob, carol, dave = (User(n) for n in ("alice", "bob", "carol", "dave"))
        async with proxy_process(servers, wall) as proxy:
            await alice.visit(proxy.addresses[0][1])
            await bob.visit(proxy.addresses[0][1])
        assert (alice.backend, bob.backend) == ("b0", "b1")
        async with proxy_process(servers, wall) as proxy:
            port = proxy.addresses[0][1]
            await carol.visit(port)  # takes b0 before alice is back
            await alice.visit(port)  # her pod is full: a new ticket on the pod that is free
            assert (carol.backend, alice.backend) == ("b0", "b1")
            reply = await bob.visit(port)  # his pod is taken now, and nothing else is free
            assert (reply.status, bob.position) == (503, 1)  # he keeps his place by his ticket id
            assert json.loads((await alice.visit(port)).body)["backend"] == "b1"
            # A cookie past its maximum lifetime (1 h here) is refused outright.
            wall[0] += 3601
            reply = await dave.visit(port)  # no cookie: the queue, as anyone
            assert reply.status == 503
            reply = await carol.visit(port)
            assert reply.status == 403
            assert b"expired" in reply.body
            assert "rxkube-ticket-lab" not in carol.jar  # the refusal cleared the cookie
        nursery.cancel_scope.cancel()


async def test_a_ticket_issued_again_under_its_id_keeps_its_own_connection_count() -> None:
    """The id is reused when its user comes back; a connection pinned to the earlier ticket
    must not close the later one's count (else it could be idle-released while in use)."""
    wall = 1_700_000_000.0
    app = AppConfig("lab", tickets_max=1)
    async with open_harness(backends=2, app=app, wall_clock=lambda: wall) as h:
        authority = h.proxy.authority
        assert isinstance(authority, LocalTicketAuthority)
        table = authority.table
        first = await trio.open_tcp_stream("127.0.0.1", h.port)
        buffer = bytearray()
        await first.send_all(b"GET /lab/echo HTTP/1.1\r\nHost: a\r\n\r\n")
        status, _ = await read_response(first, buffer)
        assert status == 200
        ((ticket, server),) = table.tickets("lab").items()
        assert (server.name, table.connections("lab", ticket)) == ("lab-0", 1)
        value = TicketSigner([KEY]).sign("lab", server, ticket, issued_at=wall)  # its cookie
        h.proxy.remove_server("lab", server)  # the pod is gone: its ticket is released
        assert table.ticket_server("lab", ticket) is None
        second = await trio.open_tcp_stream("127.0.0.1", h.port)
        await second.send_all(
            b"GET /lab/echo HTTP/1.1\r\nHost: a\r\nCookie: rxkube-ticket-lab=%s\r\n\r\n"
            % value.encode()
        )
        status, body = await read_response(second, bytearray())
        assert (status, json.loads(body)["backend"]) == (200, "b1")
        assert table.ticket_server("lab", ticket) == ServerRef("lab-1", "uid-1")
        assert table.connections("lab", ticket) == 1
        await first.aclose()
        await wait_until(lambda: h.proxy.statistics().connections == 1)
        assert table.connections("lab", ticket) == 1  # still the second connection's
        await second.aclose()
        await wait_until(lambda: table.connections("lab", ticket) == 0)
