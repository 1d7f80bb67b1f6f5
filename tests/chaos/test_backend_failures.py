"""Backends that fail: the user gets a clean error, and keeps the ticket unless the pod is gone.

A failure before the response head starts gives the proxy's own 502 (or 504 for a backend that
does not answer in time); a failure after the head went out can only be told by cutting the
connection, so the client sees an incomplete message (fewer bytes than Content-Length, or a
chunked body without its last chunk), never a complete-looking wrong one. The ticket stays on
its server until the embedder removes the server; then the next request moves the user.
"""

from __future__ import annotations

import json

import trio

from rxkube.proxy import AppConfig, ProxyLimits, ServerRef, TicketSigner
from tests.chaos.arena import TRIED, WALL, open_arena
from tests.integration.proxy.conftest import KEY, get, parse_reply, raw
from tests.integration.proxy.replicas import User

LAB = AppConfig("lab", tickets_max=1)


def request(path: str, cookie: dict[str, str]) -> bytes:
    jar = "; ".join(f"{k}={v}" for k, v in cookie.items())
    return (
        f"GET /lab{path} HTTP/1.1\r\nHost: a\r\nCookie: {jar}\r\nConnection: close\r\n\r\n".encode()
    )


async def test_backends_failing_mid_response_give_clean_errors() -> None:
    limits = ProxyLimits(upstream_timeout=0.3)
    async with open_arena(lab=LAB, limits=limits) as arena:
        user = User("u")
        await user.visit(arena.port)
        for path, status in [
            ("/die", 502),
            ("/garbage", 502),
            ("/huge-head", 502),
            ("/slow?s=2", 504),
        ]:
            TRIED["backend/fails-before-head"] += 1
            reply = parse_reply(await raw(arena.port, request(path, user.jar)))
            assert reply.status == status, path
            assert b"rxkube proxy" in reply.body
        TRIED["backend/dies-mid-body"] += 1
        data = await raw(arena.port, request("/die-mid", user.jar))
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Content-Length: 1000" in head
        assert body == b"0123456789"  # 10 of 1000 bytes, then the connection closed
        TRIED["backend/dies-mid-body"] += 1
        data = await raw(arena.port, request("/die-chunked", user.jar))
        assert b"Transfer-Encoding: chunked" in data
        assert data.endswith(b"5\r\nworld\r\n")  # no last chunk: visibly incomplete
        # Nobody moved: the backend is still there.
        assert (await user.visit(arena.port)).status == 200
        table = arena.proxy.authority
        assert table.touch("lab", _ticket(user)) == ServerRef("lab-0", "uid-0")
        assert arena.proxy.statistics().apps["lab"].upstream_errors == 6


async def test_a_backend_killed_mid_stream_keeps_the_ticket_until_its_pod_is_removed() -> None:
    async with open_arena(lab=LAB) as arena:
        user = User("u")
        await user.visit(arena.port)
        assert user.backend == "lab0"
        # The backend dies while it streams a response.
        TRIED["backend/killed"] += 1
        received = bytearray()
        streaming = trio.Event()

        async def stream_then_die() -> None:
            with trio.fail_after(5):
                async with await trio.open_tcp_stream("127.0.0.1", arena.port) as stream:
                    await stream.send_all(request("/drip?n=200&s=0.01", user.jar))
                    while True:
                        try:
                            chunk = await stream.receive_some(65536)
                        except trio.BrokenResourceError:
                            break
                        if not chunk:
                            break
                        received.extend(chunk)
                        if b"\r\n\r\n" in received:
                            streaming.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream_then_die)
            await streaming.wait()  # the response is under way (its head came): kill now
            arena.lab_scopes[0].cancel()
        assert received.startswith(b"HTTP/1.1 200")
        assert not received.endswith(b"0\r\n\r\n")  # cut, not completed
        # The pod is not gone (only its process): 502, and the ticket stays where it is.
        TRIED["backend/killed"] += 1
        reply = await user.visit(arena.port)
        assert reply.status == 502
        assert user.backend == "lab0"
        assert arena.proxy.authority.touch("lab", _ticket(user)) == ServerRef("lab-0", "uid-0")
        # The embedder removes the pod: the next request gives a ticket on the other pod.
        arena.proxy.set_servers("lab", [arena.lab_server(1)])
        reply = await user.visit(arena.port)
        assert reply.status == 200
        assert user.backend == "lab1"
        newcomer = await get(arena.port, "/lab/echo")
        assert newcomer.status == 503  # lab1 is full now (one seat), lab0 is gone
        assert json.loads((await user.visit(arena.port)).body)["backend"] == "lab1"


def _ticket(user: User) -> str:
    return TicketSigner([KEY]).verify(user.jar["rxkube-ticket-lab"], app="lab", now=WALL).ticket
