"""A tiny trio HTTP + WebSocket backend for the proxy's tests (h11 and wsproto, over loopback).

Endpoints (any method):
    /echo...     200, JSON: method, path, headers, body size, and the backend's name
    /chunked     200, a chunked body of three parts
    /big?n=N     200, N bytes of 'x' with Content-Length, written in 64 KiB pieces
    /die         closes the connection without answering
    /bye         answers (keep-alive), then closes the connection as an idle timeout would
    /die-mid     sends a head promising 1000 bytes, 10 of them, then closes
    /slow?s=S    waits S seconds, then 200
    /drip?n=N&s=S  a chunked body of N parts, S seconds apart
    /die-chunked   two chunks of a chunked body, then closes
    /garbage     answers bytes that are not HTTP
    /huge-head   a response head of 1 MiB
    /ws          WebSocket echo (text and bytes)

Every request is recorded in `seen` as (target, headers), so tests can assert who reached it.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)


class Backend:
    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.requests = 0
        self.connections = 0
        self.websockets_open = 0
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.ws_messages: list[int] = []
        """Sizes of the WebSocket messages echoed."""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    conn.receive_data(data)
                    if not data and conn.their_state is not h11.SEND_BODY:
                        return
                    continue
                if isinstance(event, h11.Request):
                    body = 0
                    while True:
                        part = conn.next_event()
                        if part is h11.NEED_DATA:
                            conn.receive_data(await stream.receive_some(65536))
                        elif isinstance(part, h11.Data):
                            body += len(part.data)
                        elif isinstance(part, h11.EndOfMessage):
                            break
                        else:
                            return
                    self.requests += 1
                    keep = await self._respond(stream, conn, event, body)
                    if not keep:
                        return
                    conn.start_next_cycle()
                else:
                    return
        except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await stream.aclose()

    async def _respond(
        self, stream: trio.SocketStream, conn: h11.Connection, request: h11.Request, body: int
    ) -> bool:
        target = request.target.decode()
        path, _, query = target.partition("?")
        params = dict(urllib.parse.parse_qsl(query))
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
        self.seen.append((target, headers))

        async def send(*events: h11.Event) -> None:
            for event in events:
                data = conn.send(event)
                if data:
                    await stream.send_all(data)

        if path == "/ws" and headers.get("upgrade", "").lower() == "websocket":
            await self._websocket(stream, request)
            return False
        if path == "/die":
            return False
        if path == "/bye":  # answer as if keeping the connection, then close it (idle timeout)
            await send(h11.Response(status_code=200, headers=[("Content-Length", "3")]))
            await send(h11.Data(data=b"bye"), h11.EndOfMessage())
            return False
        if path == "/die-mid":
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
            return False
        if path == "/die-chunked":
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n"
            )
            return False
        if path == "/garbage":
            await stream.send_all(b"\x00\x01 this is not HTTP\r\n\r\n")
            return False
        if path == "/huge-head":
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 2**20 + b"\r\nContent-Length: 0\r\n\r\n"
            )
            return False
        if path == "/drip":
            await send(h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")]))
            for _ in range(int(params.get("n", "10"))):
                await send(h11.Data(data=b"drip\n"))
                await trio.sleep(float(params.get("s", "0.05")))
            await send(h11.EndOfMessage())
            return True
        if path == "/slow":
            await trio.sleep(float(params.get("s", "1")))
        if path == "/chunked":
            await send(h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")]))
            for part in (b"one,", b"two,", b"three"):
                await send(h11.Data(data=part))
            await send(h11.EndOfMessage())
            return True
        if path == "/big":
            n = int(params.get("n", "0"))
            await send(h11.Response(status_code=200, headers=[("Content-Length", str(n))]))
            while n > 0:
                piece = min(n, 65536)
                await send(h11.Data(data=b"x" * piece))
                n -= piece
            await send(h11.EndOfMessage())
            return True
        payload = json.dumps(
            {
                "backend": self.name,
                "method": request.method.decode(),
                "path": target,
                "headers": headers,
                "body": body,
            }
        ).encode()
        await send(
            h11.Response(
                status_code=200,
                headers=[
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(payload))),
                ],
            )
        )
        if request.method != b"HEAD":
            await send(h11.Data(data=payload))
        await send(h11.EndOfMessage())
        return True

    async def _websocket(self, stream: trio.SocketStream, request: h11.Request) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        # Hand the request head back to wsproto, which performs the handshake itself.
        head = b"%s %s HTTP/1.1\r\n" % (request.method, request.target)
        head += b"".join(b"%s: %s\r\n" % (k, v) for k, v in request.headers) + b"\r\n"
        ws.receive_data(head)
        self.websockets_open += 1
        text = ""
        data = bytearray()
        try:
            while True:
                for event in ws.events():
                    if isinstance(event, Request):
                        await stream.send_all(ws.send(AcceptConnection()))
                    elif isinstance(event, TextMessage):
                        text += event.data
                        if event.message_finished:
                            self.ws_messages.append(len(text))
                            await stream.send_all(ws.send(TextMessage(data=text)))
                            text = ""
                    elif isinstance(event, BytesMessage):
                        data += event.data
                        if event.message_finished:
                            self.ws_messages.append(len(data))
                            await stream.send_all(ws.send(BytesMessage(data=bytes(data))))
                            data = bytearray()
                    elif isinstance(event, Ping):
                        await stream.send_all(ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        await stream.send_all(ws.send(event.response()))
                        return
                received = await stream.receive_some(65536)
                if not received:
                    return
                ws.receive_data(received)
        finally:
            self.websockets_open -= 1


@asynccontextmanager
async def open_backend(name: str = "b0") -> AsyncIterator[Backend]:
    backend = Backend(name)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, backend._serve, 0, host="127.0.0.1")
        )
        backend.port = listeners[0].socket.getsockname()[1]
        yield backend
        nursery.cancel_scope.cancel()
