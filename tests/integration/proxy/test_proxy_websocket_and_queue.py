"""WebSocket through the proxy, and the waiting room over real sockets (order, hold, leaving)."""

from __future__ import annotations

import trio
from trio_websocket import open_websocket_url

from rxkube.proxy import AppConfig, TicketIssued, TicketReleased, WaiterLeft
from tests.integration.proxy.conftest import get, open_harness


async def test_websocket_is_relayed_and_holds_its_ticket() -> None:
    app = AppConfig("lab", tickets_max=1, idle_timeout=0.2)
    async with open_harness(app=app, tick_interval=0.05) as h:
        first = await get(h.port, "/lab/echo")
        cookie = f"rxkube-ticket-lab={first.cookies()['rxkube-ticket-lab']}"
        url = f"ws://127.0.0.1:{h.port}/lab/ws"
        async with open_websocket_url(url, extra_headers=[(b"Cookie", cookie.encode())]) as ws:
            await ws.send_message("hello")
            assert await ws.get_message() == "hello"
            await ws.send_message(b"\x00" * 70_000)
            assert await ws.get_message() == b"\x00" * 70_000
            assert h.backends[0].websockets_open == 1
            # Idle for many idle timeouts: the open WebSocket keeps the ticket.
            start = trio.current_time()
            while trio.current_time() - start < 0.6:
                await ws.send_message("ping")
                assert await ws.get_message() == "ping"
                await trio.sleep(0.1)
            assert not [c for c in h.changes if isinstance(c, TicketReleased)]
        await h.wait_for(lambda c: isinstance(c, TicketReleased) and c.reason == "idle")


async def test_websocket_without_a_free_ticket_gets_the_waiting_room() -> None:
    async with open_harness(app=AppConfig("lab", tickets_max=1)) as h:
        assert (await get(h.port, "/lab/echo")).status == 200
        reply = await get(
            h.port,
            "/lab/ws",
            extra="Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n",
        )
        assert reply.status == 503
        assert h.backends[0].websockets_open == 0


async def test_waiting_room_order_hold_and_leaving() -> None:
    app = AppConfig("lab", tickets_max=1, idle_timeout=0.3, hold_time=0.4, refresh_interval=0.5)
    async with open_harness(app=app, tick_interval=0.05) as h:
        alice = await get(h.port, "/lab/echo")
        assert alice.status == 200
        bob = await get(h.port, "/lab/echo")
        carol = await get(h.port, "/lab/echo")
        dave = await get(h.port, "/lab/echo")
        for i, waiter in enumerate((bob, carol, dave)):
            assert waiter.status == 503
            assert waiter.header("retry-after") == "1"
            assert b'http-equiv="refresh"' in waiter.body
            assert f'number <b id="position">{i + 1}</b>'.encode() in waiter.body
        jar = {n: w.cookies() for n, w in (("bob", bob), ("carol", carol), ("dave", dave))}

        async def poll(name: str) -> int:
            return (await get(h.port, "/lab/echo", cookies=jar[name])).status

        # Alice goes idle; bob (the head) gets the slot held, carol polling is still refused.
        await h.wait_for(lambda c: isinstance(c, TicketReleased))
        assert await poll("carol") == 503
        assert await poll("dave") == 503
        # Bob never comes back to claim: his hold expires (or he times out) and carol is next.
        await h.wait_for(
            lambda c: isinstance(c, WaiterLeft) and c.reason in ("hold-expired", "timeout")
        )
        left = [c for c in h.changes if isinstance(c, WaiterLeft)]
        bob_id = jar["bob"]["rxkube-wait-lab"]
        assert left[0].client == bob_id
        assert await poll("carol") == 200
        issued = [c for c in h.changes if isinstance(c, TicketIssued)]
        assert issued[-1].ticket == jar["carol"]["rxkube-wait-lab"]
        assert issued[-1].waited > 0


async def test_queue_events_push_the_position_and_ready() -> None:
    app = AppConfig("lab", tickets_max=1, idle_timeout=0.3, refresh_interval=0.4)
    async with open_harness(app=app, tick_interval=0.05) as h:
        assert (await get(h.port, "/lab/echo")).status == 200
        waiting = await get(h.port, "/lab/echo")
        assert b"/lab/.rxkube/queue" in waiting.body
        cookie = f"rxkube-wait-lab={waiting.cookies()['rxkube-wait-lab']}"
        stream = await trio.open_tcp_stream("127.0.0.1", h.port)
        async with stream:
            await stream.send_all(
                f"GET /lab/.rxkube/queue HTTP/1.1\r\nHost: a\r\nCookie: {cookie}\r\n\r\n".encode()
            )
            received = b""
            with trio.fail_after(5):
                while b"event: ready" not in received:
                    chunk = await stream.receive_some(65536)
                    assert chunk
                    received += chunk
        assert b"text/event-stream" in received
        assert b'event: position\ndata: {"position":0,"queued":1}' in received
        # Ready means the ticket is this waiter's: the page's reload gets it.
        reply = await get(h.port, "/lab/echo", cookies=waiting.cookies())
        assert reply.status == 200
        assert "rxkube-ticket-lab" in reply.cookies()
