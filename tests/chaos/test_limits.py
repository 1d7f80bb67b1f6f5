"""Oversized heads, bodies and WebSocket frames: refused at the limit, nothing passes whole.

The lab app allows 64 KiB bodies and 64 KiB WebSocket frames here. WebSocket frames are bounded
by parsing their heads as they pass (proxy/_frames.py): the bound is per frame; a message in
many frames within the bound passes (its size is the backend's to bound).
"""

from __future__ import annotations

import contextlib

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Request,
)

from rxkube.proxy import AppConfig, ProxyLimits
from tests.chaos.arena import TRIED, Arena, open_arena, read_response
from tests.integration.proxy.conftest import parse_reply, raw

LIMIT = 64 * 1024
LAB = AppConfig("lab", tickets_max=100, max_body_size=LIMIT, max_websocket_frame=LIMIT)


async def test_oversized_heads_are_refused_with_431() -> None:
    cases = {
        "one huge header": b"GET /lab/echo HTTP/1.1\r\nHost: a\r\nX-Big: "
        + b"a" * 20_000
        + b"\r\n\r\n",
        "many headers": b"GET /lab/echo HTTP/1.1\r\nHost: a\r\n"
        + b"".join(b"X-%d: v\r\n" % i for i in range(150))
        + b"\r\n",
        "huge target": b"GET /lab/" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        "huge cookie": b"GET /lab/echo HTTP/1.1\r\nHost: a\r\nCookie: c="
        + b"x" * 17_000
        + b"\r\n\r\n",
        "endless head": b"GET /lab/echo HTTP/1.1\r\nHost: a\r\n" + b"X-A: b\r\n" * 3000,
    }
    async with open_arena(lab=LAB) as arena:
        for name, request in cases.items():
            TRIED["oversized/head"] += 1
            reply = parse_reply(await raw(arena.port, request))
            assert reply.status == 431, name
        assert arena.lab_targets() == []


async def test_oversized_bodies_are_refused_and_never_reach_a_backend_whole() -> None:
    async with open_arena(lab=LAB) as arena:
        port = arena.port
        # Declared too large: 413 before a byte of the body is read or forwarded.
        for expect in (b"", b"Expect: 100-continue\r\n"):
            TRIED["oversized/body"] += 1
            head = b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n%s\r\n"
            data = await raw(port, head % (LIMIT + 1, expect))
            assert data.startswith(b"HTTP/1.1 413"), data[:40]  # no "100 Continue" first
        # Chunked, growing past the limit: 413 mid-stream; the backend never gets it whole.
        TRIED["oversized/body"] += 1
        chunk = b"%x\r\n%s\r\n" % (16 * 1024, b"x" * 16 * 1024)
        request = b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        data = await raw(port, request + chunk * 6 + b"0\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 413")
        # At the limit exactly: served.
        TRIED["oversized/body"] += 1
        head = (
            b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
        )
        reply = parse_reply(await raw(port, head % LIMIT + b"y" * LIMIT))
        assert reply.status == 200
        assert arena.lab_targets() == ["/echo"]  # only the one within the limit completed


async def websocket(arena: Arena) -> tuple[trio.SocketStream, WSConnection]:
    stream = await trio.open_tcp_stream("127.0.0.1", arena.port)
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host="a", target="/lab/ws")))
    while True:
        ws.receive_data(await stream.receive_some(65536))
        events = list(ws.events())
        if any(isinstance(e, AcceptConnection) for e in events):
            return stream, ws


async def echo(stream: trio.SocketStream, ws: WSConnection) -> int:
    """Bytes of the next whole message echoed, or -1 if the connection closed first."""
    size = 0
    while True:
        try:
            data = await stream.receive_some(65536)
        except trio.BrokenResourceError:  # reset: the proxy closed with our bytes unread
            return -1
        if not data:
            return -1
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, BytesMessage):
                size += len(event.data)
                if event.message_finished:
                    return size
            elif isinstance(event, CloseConnection):
                return -1


async def test_oversized_websocket_frames_cut_the_connection_before_the_backend_sees_them() -> None:
    async with open_arena(lab=LAB) as arena:
        with trio.fail_after(10):
            stream, ws = await websocket(arena)
            for size in (1, 1024, LIMIT):
                TRIED["oversized/websocket"] += 1
                await stream.send_all(ws.send(BytesMessage(data=b"m" * size)))
                assert await echo(stream, ws) == size
            # One message in five frames of 60 KiB: each frame is within the limit.
            TRIED["oversized/websocket"] += 1
            parts = [b"f" * 60_000] * 5
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                await stream.send_all(ws.send(BytesMessage(data=part, message_finished=last)))
            assert await echo(stream, ws) == 300_000
            # One frame over the limit: cut; the backend never receives it.
            TRIED["oversized/websocket"] += 1
            await stream.send_all(ws.send(BytesMessage(data=b"x" * (LIMIT + 1))))
            assert await echo(stream, ws) == -1
            await stream.aclose()
            # A frame head claiming 2**63 - 1 bytes, then anything at all: cut at the head.
            TRIED["oversized/websocket"] += 1
            stream, ws = await websocket(arena)
            await stream.send_all(bytes([0x82, 0xFF]) + (2**63 - 1).to_bytes(8, "big") + b"mask")
            with contextlib.suppress(trio.BrokenResourceError):
                await stream.send_all(b"z" * 100_000)
            assert await echo(stream, ws) == -1
            await stream.aclose()
        echoed = [size for backend in arena.lab for size in backend.ws_messages]
        assert sorted(echoed) == [1, 1024, LIMIT, 300_000]  # never the oversized ones
        assert arena.proxy.statistics().apps["lab"].oversized_frames == 2


async def test_a_keep_alive_connection_is_refused_at_the_head_limit_midway() -> None:
    """Limits hold per request on a long connection: the second, oversized request gets 431."""
    async with open_arena(lab=LAB, limits=ProxyLimits(max_header_bytes=4096)) as arena:
        TRIED["oversized/head"] += 1
        stream = await trio.open_tcp_stream("127.0.0.1", arena.port)
        buffer = bytearray()
        await stream.send_all(b"GET /lab/echo HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (await read_response(stream, buffer))[0] == 200
        await stream.send_all(
            b"GET /lab/echo HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 5000 + b"\r\n\r\n"
        )
        assert (await read_response(stream, buffer))[0] == 431
        await stream.aclose()
