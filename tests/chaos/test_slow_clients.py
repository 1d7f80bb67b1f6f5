"""Slow and silent clients: slowloris heads and bodies, readers that never read, idle floods.

Each attack runs many connections at once while the canary keeps being served; each one is cut
within its limit (plus the sweeper's 0.1 s), and the proxy's connection count returns to the
canary's alone.
"""

from __future__ import annotations

import socket

import trio

from rxkube.proxy import AppConfig, ProxyLimits
from tests.chaos.arena import TRIED, Arena, connect_and_send, open_arena
from tests.integration.proxy.conftest import wait_until

LIMITS = ProxyLimits(head_timeout=0.5, body_timeout=0.3, keepalive_timeout=0.5)
ATTACKERS = 40


async def trickle(
    arena: Arena, first: bytes, drip: bytes, results: list[tuple[bytes, float]]
) -> None:
    """Send `first`, then `drip` every 50 ms until the proxy answers or cuts the connection."""
    start = trio.current_time()
    answer = b""
    async with connect_and_send(arena.port, first) as stream:

        async def drip_forever() -> None:
            while True:
                await trio.sleep(0.05)
                try:
                    await stream.send_all(drip)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

        async with trio.open_nursery() as nursery:
            nursery.start_soon(drip_forever)
            while True:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not data:
                    break
                answer += data
            nursery.cancel_scope.cancel()
    results.append((answer, trio.current_time() - start))


async def test_slowloris_heads_get_408_within_the_head_timeout() -> None:
    results: list[tuple[bytes, float]] = []
    async with open_arena(limits=LIMITS) as arena:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(ATTACKERS):
                    TRIED["slowloris/head"] += 1
                    nursery.start_soon(trickle, arena, b"GET /lab/echo HTTP/1.1\r\n", b"X", results)
        assert len(results) == ATTACKERS
        for answer, took in results:
            assert answer.startswith(b"HTTP/1.1 408"), answer[:40]
            assert 0.45 < took < 2.5
        await wait_until(lambda: arena.proxy.statistics().connections <= 1)
        assert arena.lab_targets() == []


async def test_slow_bodies_are_cut_by_the_minimum_rate() -> None:
    """A byte every 50 ms never pauses for `body_timeout`, but averages 20 B/s."""
    results: list[tuple[bytes, float]] = []
    head = b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"
    async with open_arena(limits=LIMITS) as arena:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for _ in range(ATTACKERS):
                    TRIED["slowloris/body"] += 1
                    nursery.start_soon(trickle, arena, head, b"x", results)
        for answer, took in results:
            assert answer.startswith(b"HTTP/1.1 408"), answer[:40]
            assert b"too slowly" in answer
            assert took < 2.5
        assert arena.lab_targets() == []  # no backend got a request it could complete


async def test_readers_that_never_read_are_cut_by_the_body_timeout() -> None:
    async with open_arena(limits=LIMITS, lab=AppConfig("lab", tickets_max=100)) as arena:
        streams = []
        for _ in range(10):
            TRIED["slow-reader"] += 1
            stream = await trio.open_tcp_stream("127.0.0.1", arena.port)
            await stream.send_all(b"GET /lab/big?n=50000000 HTTP/1.1\r\nHost: a\r\n\r\n")
            streams.append(stream)
        # The proxy writes until the kernel buffers are full, then gives up after 0.3 s.
        await wait_until(lambda: arena.proxy.statistics().connections <= 1, limit=5)
        for stream in streams:
            await stream.aclose()


async def test_idle_connection_floods_are_closed_after_the_keepalive_timeout() -> None:
    async with open_arena(limits=LIMITS) as arena:
        # All 300 connect before the proxy accepts any: blocking connects land in the listen
        # backlog while this task holds the loop, and the proxy accepts them in one go. Opened
        # one by one with awaits between them, the first reached the keepalive timeout (0.5 s)
        # before the last was open on a busy machine, and 300 were never held at once.
        flood = []
        for _ in range(300):
            TRIED["idle-flood"] += 1
            flood.append(socket.create_connection(("127.0.0.1", arena.port)))
        streams = [trio.SocketStream(trio.socket.from_stdlib_socket(sock)) for sock in flood]
        start = trio.current_time()
        await wait_until(lambda: arena.proxy.statistics().connections >= 300)
        await wait_until(lambda: arena.proxy.statistics().connections <= 1, limit=5)
        assert trio.current_time() - start < 3.0
        for stream in streams:
            assert await stream.receive_some(10) == b""  # closed by the proxy, nothing said
            await stream.aclose()
