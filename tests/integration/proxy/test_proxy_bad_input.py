"""Every bad input of issue 4 gets a clear 4xx, never a crash or a route to another app."""

from __future__ import annotations

import json
import socket

import pytest
import trio
import trio.testing

from rxkube.proxy import AppConfig, ProxyLimits, ServerRef, TicketSigner
from tests.integration.proxy.conftest import KEY, get, open_harness, parse_reply, raw

GOOD = b"GET /lab/echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /lab/echo HTTP/1.1\r\nHost: a\r\n" + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (
            b"GET /lab/echo HTTP/1.1\r\nHost: a\r\n"
            + b"".join(b"X-%d: v\r\n" % i for i in range(150))
            + b"\r\n",
            431,
        ),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /lab/echo HTTP/1.1\nHost: a\n\n", 400),
        (b"GET /lab/echo HTTP/9.9\r\nHost: a\r\n\r\n", 400),
        (
            b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            400,
        ),
        (
            b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            400,
        ),
        (b"GET /lab/echo HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n  b\r\n\r\n", 400),
        (b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET /lab/echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /lab/echo HTTP/1.1\r\n\r\n", 400),
        (b'GET /lab/echo HTTP/1.1\r\nHost: a"b\r\n\r\n', 400),
        (b"GET http://other/lab/echo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"CONNECT other:443 HTTP/1.1\r\nHost: other:443\r\n\r\n", 405),
        (b"GET /lab/../other/echo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /lab/%2e%2e/other/echo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /lab/%2E%2E%2Fother/echo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /lab/%252e%252e/other/echo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /lab/..%5cother/echo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /lab/.%2e/other HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /lab/./echo HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        (b"GET /other/echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 404),
    ],
)
async def test_bad_requests_get_a_clear_4xx_and_others_are_unaffected(
    request_bytes: bytes, status: int
) -> None:
    async with open_harness(app=AppConfig("lab", tickets_max=5)) as h:
        reply = parse_reply(await raw(h.port, request_bytes))
        assert reply.status == status
        assert b"rxkube proxy" in reply.body
        assert h.backends[0].requests == 0  # nothing reached the backend
        good = parse_reply(await raw(h.port, GOOD))
        assert good.status == 200
        assert json.loads(good.body)["path"] == "/echo"


async def test_slowloris_gets_408_and_does_not_block_others() -> None:
    limits = ProxyLimits(head_timeout=0.3, keepalive_timeout=5)
    async with open_harness(limits=limits) as h:
        stream = await trio.open_tcp_stream("127.0.0.1", h.port)
        async with stream:
            start = trio.current_time()
            await stream.send_all(b"GET /lab/echo HTTP/1.1\r\n")
            reply = b""
            with trio.fail_after(3):
                async with trio.open_nursery() as nursery:

                    async def trickle() -> None:
                        for _ in range(100):
                            await trio.sleep(0.05)
                            try:
                                await stream.send_all(b"X")
                            except trio.BrokenResourceError:
                                return

                    nursery.start_soon(trickle)
                    # Other users are served while the slow one trickles.
                    assert (await get(h.port, "/lab/echo")).status == 200
                    while True:
                        try:
                            chunk = await stream.receive_some(65536)
                        except trio.BrokenResourceError:
                            break
                        if not chunk:
                            break
                        reply += chunk
                    nursery.cancel_scope.cancel()
            assert reply.startswith(b"HTTP/1.1 408")
            assert 0.25 < trio.current_time() - start < 2.0


async def test_a_head_timeout_counts_from_the_first_byte_when_the_sweeper_runs_late(
    mock_clock: trio.testing.MockClock,
) -> None:
    """A late sweeper (a busy machine) must not cut a client before its limit.

    Virtual time (the sockets are loopback, but nothing waits on them but the proxy): each
    round, time jumps while nothing runs, as when the process was not scheduled, then the first
    bytes arrive; the connection's first read and the late sweep run in one batch, in either
    order (trio reverses half of its batches), so 16 rounds see both orders."""
    limits = ProxyLimits(head_timeout=0.5, keepalive_timeout=60)
    async with open_harness(limits=limits) as h:
        for _ in range(16):
            with socket.create_connection(("127.0.0.1", h.port)) as client:
                client.setblocking(False)
                await trio.testing.wait_all_tasks_blocked()  # accepted, waiting for a head
                mock_clock.jump(0.35)  # the sweep is due, and has not run
                client.sendall(b"GET /lab/echo HTTP/1.1\r\n")
                await trio.testing.wait_all_tasks_blocked()
                mock_clock.jump(0.39)  # > 3 sweeps before the limit: no sweep may cut it yet
                await trio.testing.wait_all_tasks_blocked()
                with pytest.raises(BlockingIOError):
                    client.recv(65536)
                mock_clock.jump(0.2)  # past the limit (and a sweep interval)
                await trio.testing.wait_all_tasks_blocked()
                assert client.recv(65536).startswith(b"HTTP/1.1 408")
        assert h.backends[0].requests == 0


async def test_a_request_waiting_unread_is_answered_when_the_sweeper_runs_late(
    mock_clock: trio.testing.MockClock,
) -> None:
    """A fresh connection whose request came in time is not closed as idle because this
    process ran late (a busy machine) and has not read the request yet.

    Virtual time, as above: each round the keep-alive deadline passes while nothing runs, the
    request arrives, and the late sweep and the connection's first read run in one batch, in
    either order."""
    limits = ProxyLimits(keepalive_timeout=0.5)
    async with open_harness(limits=limits, app=AppConfig("lab", tickets_max=16)) as h:
        for _ in range(16):
            with socket.create_connection(("127.0.0.1", h.port)) as client:
                await trio.testing.wait_all_tasks_blocked()  # accepted: idle, deadline set
                mock_clock.jump(0.6)  # past the keep-alive deadline; the sweep has not run
                client.sendall(GOOD)
                await trio.testing.wait_all_tasks_blocked()
                client.settimeout(5)
                reply = b""
                while chunk := client.recv(65536):
                    reply += chunk
                assert parse_reply(reply).status == 200
        assert h.backends[0].requests == 16


async def test_a_slow_body_is_cut_after_the_body_timeout() -> None:
    limits = ProxyLimits(body_timeout=0.3)
    async with open_harness(limits=limits) as h:
        stream = await trio.open_tcp_stream("127.0.0.1", h.port)
        async with stream:
            await stream.send_all(
                b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab"
            )
            with trio.fail_after(3):
                assert await stream.receive_some(65536) == b""  # closed, nothing forwarded whole
        assert h.backends[0].requests == 0


@pytest.mark.parametrize("case", ["forged", "tampered", "expired", "other-app", "garbage"])
async def test_bad_ticket_cookies_are_refused_with_403(case: str) -> None:
    clock = [1_000_000.0]
    async with open_harness(wall_clock=lambda: clock[0], cookie_max_lifetime=3600) as h:
        await h.proxy.set_app(AppConfig("other"))
        good = await get(h.port, "/lab/echo")
        value = good.cookies()["rxkube-ticket-lab"]
        server = ServerRef("lab-0", "uid-0")
        if case == "forged":
            value = TicketSigner([b"f" * 32]).sign("lab", server, "t", issued_at=clock[0])
        elif case == "tampered":
            head, mac = value.rsplit(".", 1)
            value = head[:-2] + ("AA" if head[-2:] != "AA" else "BB") + "." + mac
        elif case == "expired":
            clock[0] += 3601
        elif case == "other-app":
            value = TicketSigner([KEY]).sign("other", server, "t", issued_at=clock[0])
        else:
            value = "not-a-cookie"
        reply = await get(h.port, "/lab/echo", cookies={"rxkube-ticket-lab": value})
        assert reply.status == 403
        assert "Max-Age=0" in (reply.header("set-cookie") or "")
        assert h.backends[0].requests == 1
        assert h.proxy.statistics().apps["lab"].refused_cookies == 1
