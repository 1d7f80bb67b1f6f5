"""The ticket proxy over loopback with real local backends: HTTP, tickets, drain, errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from rxkube.proxy import (
    AppConfig,
    ProxyLimits,
    ServerRef,
    ServerSpec,
    TicketIssued,
    TicketReleased,
    open_ticket_proxy,
)
from tests.integration.proxy.conftest import KEY, get, open_harness, raw, wait_until


async def test_http_through_the_proxy_sets_a_ticket_and_forwards() -> None:
    async with open_harness() as h:
        reply = await get(
            h.port, "/lab/echo?x=1", extra="X-Forwarded-For: 6.6.6.6\r\nTE: trailers\r\n"
        )
        assert reply.status == 200
        seen = json.loads(reply.body)
        assert seen["path"] == "/echo?x=1"  # the prefix is stripped
        assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"  # the untrusted one is dropped
        assert seen["headers"]["x-forwarded-proto"] == "http"
        assert seen["headers"]["forwarded"].startswith("for=127.0.0.1;")
        assert "te" not in seen["headers"]
        assert "connection" not in seen["headers"]
        cookie = reply.cookies()["rxkube-ticket-lab"]
        assert "Path=/lab/" in (reply.header("set-cookie") or "")
        assert "HttpOnly" in (reply.header("set-cookie") or "")
        # The same cookie keeps the same ticket: no new one is issued.
        again = await get(h.port, "/lab/echo", cookies={"rxkube-ticket-lab": cookie})
        assert again.status == 200
        assert "rxkube-ticket-lab" not in again.cookies()
        assert len([c for c in h.changes if isinstance(c, TicketIssued)]) == 1


async def test_keep_alive_streaming_bodies_chunked_and_head() -> None:
    async with open_harness() as h, httpx.AsyncClient(base_url=f"http://127.0.0.1:{h.port}") as c:
        r = await c.get("/lab/chunked")
        assert (r.status_code, r.text, r.headers["transfer-encoding"]) == (
            200,
            "one,two,three",
            "chunked",
        )
        r = await c.get("/lab/big", params={"n": 3_000_000})
        assert r.status_code == 200
        assert len(r.content) == 3_000_000

        async def upload() -> AsyncIterator[bytes]:
            for _ in range(40):
                yield b"y" * 50_000

        r = await c.post("/lab/echo", content=upload())  # chunked, re-chunked upstream
        assert r.json()["body"] == 2_000_000
        r = await c.put("/lab/echo", content=b"z" * 100_000)
        assert r.json()["body"] == 100_000
        r = await c.head("/lab/echo")
        assert r.status_code == 200
        assert r.content == b""
        assert h.backends[0].connections <= 3  # upstream connections are pooled and reused


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with open_harness() as h:
        first = await get(h.port, "/lab/echo")
        cookie = "rxkube-ticket-lab=" + first.cookies()["rxkube-ticket-lab"]
        one = f"GET /lab/echo?n=1 HTTP/1.1\r\nHost: a\r\nCookie: {cookie}\r\n\r\n"
        two = f"GET /lab/echo?n=2 HTTP/1.1\r\nHost: a\r\nCookie: {cookie}\r\nConnection: close\r\n"
        two += "\r\n"
        data = await raw(h.port, (one + two).encode())
        assert data.count(b"HTTP/1.1 200 ") == 2
        assert data.index(b"/echo?n=1") < data.index(b"/echo?n=2")


async def test_keep_prefix_host_mode_and_own_listener() -> None:
    app = AppConfig("lab", tickets_max=3, strip_prefix=False, listen=("127.0.0.1", 0))
    async with open_harness(app=app, domain="apps.test") as h:
        seen = json.loads((await get(h.port, "/lab/echo")).body)
        assert seen["path"] == "/lab/echo"
        own = h.proxy.app_address("lab")
        assert own is not None
        reply = await get(own[1], "/echo")
        assert reply.status == 200
        assert "Path=/;" in (reply.header("set-cookie") or "")
        await h.proxy.set_app(AppConfig("lab", tickets_max=3, routing="host"))
        reply = await get(h.port, "/echo", host="lab.apps.test:8080")
        assert reply.status == 200
        assert json.loads(reply.body)["path"] == "/echo"
        assert (await get(h.port, "/lab/echo")).status == 404  # no longer routed by path


async def test_tickets_never_exceed_capacity_under_500_concurrent_users() -> None:
    app = AppConfig("lab", tickets_max=10)
    async with open_harness(backends=5, app=app) as h:
        statuses: list[int] = []
        per_backend: dict[str, int] = {}

        async def user() -> None:
            reply = await get(h.port, "/lab/echo")
            statuses.append(reply.status)
            if reply.status == 200:
                name = json.loads(reply.body)["backend"]
                per_backend[name] = per_backend.get(name, 0) + 1

        async with trio.open_nursery() as nursery:
            for _ in range(500):
                nursery.start_soon(user)
        assert statuses.count(200) == 50
        assert statuses.count(503) == 450
        assert per_backend == {f"b{i}": 10 for i in range(5)}
        stats = h.proxy.statistics().apps["lab"]
        assert (stats.tickets, stats.free, stats.queued) == (50, 0, 450)


async def test_idle_release_but_not_while_a_connection_is_open() -> None:
    app = AppConfig("lab", tickets_max=1, idle_timeout=0.3)
    async with open_harness(backends=2, app=app, tick_interval=0.05) as h:
        idle = await get(h.port, "/lab/echo")
        assert idle.status == 200
        stream = await trio.open_tcp_stream("127.0.0.1", h.port)
        async with stream:
            await stream.send_all(b"GET /lab/echo HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200 ")
            await h.wait_for(lambda c: isinstance(c, TicketReleased) and c.reason == "idle")
            released = [c for c in h.changes if isinstance(c, TicketReleased)]
            assert len(released) == 1  # only the ticket without an open connection
            assert h.proxy.statistics().apps["lab"].tickets == 1
        await h.wait_for(lambda c: isinstance(c, TicketReleased) and c.ticket != released[0].ticket)
        assert h.proxy.statistics().apps["lab"].tickets == 0


async def test_drain_keeps_users_and_removal_moves_them() -> None:
    app = AppConfig("lab", tickets_max=1)
    async with open_harness(backends=2, app=app) as h:
        first = await get(h.port, "/lab/echo")
        jar = first.cookies()
        assert json.loads(first.body)["backend"] == "b0"
        h.proxy.set_server("lab", h.server(0, ready=False))  # drain b0
        again = await get(h.port, "/lab/echo", cookies=jar)
        assert json.loads(again.body)["backend"] == "b0"  # the user stays
        other = await get(h.port, "/lab/echo")
        assert json.loads(other.body)["backend"] == "b1"  # newcomers go elsewhere
        assert (await get(h.port, "/lab/echo")).status == 503
        # A request in flight on b0 finishes when b0 is removed; then its user moves.
        async with trio.open_nursery() as nursery:
            slow: list[int] = []

            async def in_flight() -> None:
                slow.append((await get(h.port, "/lab/slow?s=0.3", cookies=jar)).status)

            before = h.backends[0].requests
            nursery.start_soon(in_flight)
            await wait_until(lambda: h.backends[0].requests > before)
            h.proxy.remove_server("lab", ServerRef("lab-0", "uid-0"))
        assert slow == [200]
        assert any(
            isinstance(c, TicketReleased) and c.reason == "server-removed" for c in h.changes
        )
        moved = await get(h.port, "/lab/echo", cookies=jar)
        assert moved.status == 503  # b1 is full: the user queues instead of reaching b0


async def test_dead_backends_give_502_and_other_users_go_on() -> None:
    async with open_harness(app=AppConfig("lab", tickets_max=5)) as h:
        dead = ServerSpec(ServerRef("gone", "x"), "127.0.0.1:1")
        await h.proxy.set_app(AppConfig("dead"))
        h.proxy.set_servers("dead", [dead])
        reply = await get(h.port, "/dead/")
        assert reply.status == 502
        assert b"not reachable" in reply.body
        assert (await get(h.port, "/lab/die")).status == 502
        cut = await raw(h.port, b"GET /lab/die-mid HTTP/1.1\r\nHost: a\r\n\r\n")
        assert cut.startswith(b"HTTP/1.1 200")
        assert len(cut.partition(b"\r\n\r\n")[2]) < 1000  # cut short, not padded or hung
        assert (await get(h.port, "/lab/echo")).status == 200
        assert h.proxy.statistics().apps["dead"].upstream_errors == 1


async def test_graceful_shutdown_finishes_requests_in_flight() -> None:
    async with open_harness() as h:
        port = h.port
        result: list[int] = []
        async with trio.open_nursery() as nursery:

            async def slow() -> None:
                result.append((await get(port, "/lab/slow?s=0.3")).status)

            nursery.start_soon(slow)
            await h.wait_for(lambda c: isinstance(c, TicketIssued))
            await h.proxy._shutdown()
        assert result == [200]
        try:
            await get(port, "/lab/echo")
        except OSError:
            pass
        else:  # pragma: no cover
            raise AssertionError("the listener should be closed")


async def test_statistics_and_unknown_app_errors() -> None:
    async with open_ticket_proxy() as proxy:
        with pytest.raises(KeyError, match="set_app"):
            proxy.set_servers("nope", [])
        assert proxy.statistics().apps == {}
        port = proxy.addresses[0][1]
        assert (await get(port, "/nope/")).status == 404


async def test_limits_are_configurable_per_app() -> None:
    app = AppConfig("lab", max_body_size=1000)
    async with open_harness(app=app, limits=ProxyLimits(max_headers=10)) as h:
        body = b"x" * 5000
        head = b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n"
        assert (await raw(h.port, head + body)).startswith(b"HTTP/1.1 413")
        # Chunked: refused once the limit is crossed, whatever was forwarded is cut off.
        chunked = b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunks = b"".join(b"200\r\n" + b"c" * 512 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
        assert (await raw(h.port, chunked + chunks)).startswith(b"HTTP/1.1 413")
        assert h.backends[0].requests == 0


async def test_forwarded_headers_are_believed_only_from_trusted_proxies() -> None:
    async with open_harness(trusted_proxies=("127.0.0.0/8",)) as h:
        reply = await get(
            h.port,
            "/lab/echo",
            extra="X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"
            "X-Forwarded-Host: lab.example.org\r\n",
        )
        seen = json.loads(reply.body)["headers"]
        assert seen["x-forwarded-for"] == "203.0.113.9, 127.0.0.1"
        assert seen["x-forwarded-proto"] == "https"
        assert seen["x-forwarded-host"] == "lab.example.org"
        assert "Secure" in (reply.header("set-cookie") or "")


async def test_ticket_keys_rotate_at_run_time() -> None:
    async with open_harness() as h:
        old = (await get(h.port, "/lab/echo")).cookies()
        h.proxy.set_ticket_keys([b"n" * 32, KEY])  # new key signs, the old one still accepted
        assert (await get(h.port, "/lab/echo", cookies=old)).status == 200
        h.proxy.set_ticket_keys([b"n" * 32])
        assert (await get(h.port, "/lab/echo", cookies=old)).status == 403


async def test_a_restarted_proxy_readmits_the_user_to_the_pod_its_cookie_names() -> None:
    app = AppConfig("lab", tickets_max=1)
    async with open_harness(backends=2, app=app) as h:
        first = await get(h.port, "/lab/echo")
        jar = first.cookies()
        assert json.loads(first.body)["backend"] == "b0"
    # A new proxy process: the same key, the same pods (refs), listed in the other order.
    async with open_harness(backends=2, app=app) as h3:
        h3.proxy.set_servers("lab", [h3.server(1), h3.server(0)])
        again = await get(h3.port, "/lab/echo", cookies=jar)
        assert again.status == 200
        assert json.loads(again.body)["backend"] == "b0"  # not b1, which comes first now
        issued = [c for c in h3.changes if isinstance(c, TicketIssued)]
        assert issued[-1].resumed


async def test_http10_expect_continue_and_backend_keepalive_close() -> None:
    async with open_harness(app=AppConfig("lab", tickets_max=5)) as h:
        chunked = await raw(h.port, b"GET /lab/chunked HTTP/1.0\r\n\r\n")
        assert chunked.startswith(b"HTTP/1.1 200")
        assert b"Transfer-Encoding" not in chunked  # an HTTP/1.0 client gets a close-delimited body
        assert chunked.endswith(b"one,two,three")
        continued = await raw(
            h.port,
            b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n"
            b"Connection: close\r\n\r\nabc",
        )
        assert continued.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")
        assert b'"expect"' not in continued  # the proxy answered the expectation itself
        # The backend closes a pooled keep-alive connection: the pool notices and reconnects.
        jar = (await get(h.port, "/lab/echo")).cookies()
        assert (await get(h.port, "/lab/bye", cookies=jar)).body == b"bye"
        before = h.backends[0].connections
        reply = await get(h.port, "/lab/echo", cookies=jar)
        assert reply.status == 200
        assert h.backends[0].connections == before + 1
