"""2,000 client connections held open at once, each with a request done and one more to come.

20 users (one ticket each; the lab has 2 x 10 seats) open 100 keep-alive connections each, as a
browser with many tabs would. While all 2,000 are open the canary is served; then every
connection makes a second request, which must succeed on the same connection. Bounded in time
(45 s) and opened in waves of 200 (the listener's backlog is 1,024).
"""

from __future__ import annotations

import resource

import trio

from rxkube.proxy import AppConfig, ProxyLimits
from tests.chaos.arena import TRIED, open_arena, read_response
from tests.integration.proxy.conftest import get

CONNECTIONS = 2000
USERS = 20
WAVE = 200


def ensure_file_limit(needed: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE (client, proxy and backends all live here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def test_2000_connections_are_held_while_other_users_are_served() -> None:
    # Per connection: the client's end and the proxy's; plus upstream pools and backends.
    ensure_file_limit(3 * CONNECTIONS + 1024)
    held: list[tuple[trio.SocketStream, bytearray, bytes]] = []
    lab = AppConfig("lab", tickets_max=USERS // 2)
    async with open_arena(lab=lab, limits=ProxyLimits(keepalive_timeout=60)) as arena:
        port = arena.port
        cookies = []
        for _ in range(USERS):
            reply = await get(port, "/lab/echo")
            assert reply.status == 200
            value = reply.cookies()["rxkube-ticket-lab"]
            cookies.append(b"Cookie: rxkube-ticket-lab=%s\r\n" % value.encode())

        async def connect(i: int) -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            request = b"GET /lab/echo HTTP/1.1\r\nHost: a\r\n%s\r\n" % cookies[i % USERS]
            await stream.send_all(request)
            buffer = bytearray()
            status, body = await read_response(stream, buffer)
            assert status == 200, body[:600]
            held.append((stream, buffer, cookies[i % USERS]))

        start = trio.current_time()
        with trio.fail_after(45):
            for wave in range(0, CONNECTIONS, WAVE):
                async with trio.open_nursery() as nursery:
                    for i in range(wave, wave + WAVE):
                        nursery.start_soon(connect, i)
            opened = trio.current_time() - start
            TRIED["connections/held"] += len(held)
            assert len(held) == CONNECTIONS
            assert arena.proxy.statistics().connections >= CONNECTIONS
            served = arena.canary.successes
            canary_start = trio.current_time()
            while arena.canary.successes < served + 5:  # noqa: ASYNC110 - the canary's own pace
                await trio.sleep(0.02)
            canary_time = trio.current_time() - canary_start

            async def again(stream: trio.SocketStream, buffer: bytearray, cookie: bytes) -> None:
                await stream.send_all(b"GET /lab/echo HTTP/1.1\r\nHost: a\r\n%s\r\n" % cookie)
                status, _ = await read_response(stream, buffer)
                assert status == 200

            for wave in range(0, CONNECTIONS, WAVE):
                async with trio.open_nursery() as nursery:
                    for stream, buffer, cookie in held[wave : wave + WAVE]:
                        nursery.start_soon(again, stream, buffer, cookie)
        total = trio.current_time() - start
        stats = arena.proxy.statistics().apps["lab"]
        assert (stats.tickets, stats.requests) == (USERS, USERS + 2 * CONNECTIONS)
        for stream, _, _ in held:
            await stream.aclose()
        print(
            f"\n{CONNECTIONS} connections held: opened in {opened:.2f} s, "
            f"all served twice in {total:.2f} s; canary meanwhile: 5 requests in "
            f"{canary_time:.2f} s, slowest {arena.canary.slowest * 1000:.0f} ms"
        )
