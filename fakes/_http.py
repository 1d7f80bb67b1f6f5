"""A small HTTP/1.1 server on trio and h11, made for an API server's traffic.

What this module is for: the one place that speaks bytes on sockets. Why h11 directly rather
than hypercorn: a watch is a long chunked response whose every event must reach the client at
once, and the faults the fake injects are about the connection itself (a drop with no
terminating chunk, half a line, a stall). With h11 each of those is a line of code and nothing
buffers behind our back. What it does: keep-alive, bodies up to a limit (413 past it), chunked
streaming responses (`StreamResponse`, whose body iterator may raise `AbortConnection` to cut
the connection), protocol upgrades (`Upgrade`, for exec over WebSocket), and noticing a
client that went away while a response is pending (so watches and stalls end with it).
It serves any `trio.abc.Stream`: plain TCP, or TLS through trio's `SSLListener` (the server
module's `tls=True`). It knows nothing of Kubernetes: `Handler` maps a `Request` to a response.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

import h11
import trio

__all__ = ["AbortConnection", "Request", "Response", "StreamResponse", "Upgrade"]

logger = logging.getLogger("rxkube.fakes")

MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's limit for a request body


class AbortConnection(Exception):
    """Raised by a streaming body (or a handler) to close the connection at once."""


@dataclass(slots=True)
class Request:
    method: str
    target: str
    path: str
    query: dict[str, str]
    query_list: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes = b""
    http_version: str = "1.1"

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


@dataclass(slots=True)
class StreamResponse:
    """A chunked response: headers now, then every bytes the iterator yields, flushed."""

    status: int
    body: AsyncIterator[bytes]
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


UpgradeHandler = Callable[[trio.abc.Stream, bytes], Awaitable[None]]


@dataclass(slots=True)
class Upgrade:
    """Answer 101 Switching Protocols and hand the socket (plus bytes already read) over."""

    headers: list[tuple[str, str]]
    handler: UpgradeHandler


AnyResponse = Response | StreamResponse | Upgrade
Handler = Callable[[Request], Awaitable[AnyResponse]]


def parse_target(target: str) -> tuple[str, dict[str, str], list[tuple[str, str]]]:
    parts = urlsplit(target)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    return unquote(parts.path), dict(pairs), pairs


class _Connection:
    def __init__(self, stream: trio.abc.Stream, handler: Handler, server_header: str) -> None:
        self.stream = stream
        self.handler = handler
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        self.server_header = server_header.encode()
        self.gone = False

    async def _read_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            try:
                data = bytes(await self.stream.receive_some(65536))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            self.conn.receive_data(data)

    async def _send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            await self.stream.send_all(data)

    def _headers(
        self, content_type: str, extra: list[tuple[str, str]], length: int | None
    ) -> list[tuple[bytes, bytes]]:
        out = [(b"server", self.server_header)]
        if content_type:
            out.append((b"content-type", content_type.encode()))
        if length is not None:
            out.append((b"content-length", str(length).encode()))
        out.extend((k.encode(), v.encode("latin-1")) for k, v in extra)
        return out

    async def serve(self) -> None:
        try:
            while True:
                keep = await self._one_request()
                if not keep:
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError, AbortConnection):
            pass
        except h11.RemoteProtocolError:
            pass
        finally:
            await _close(self.stream)

    async def _error(self, status: int, message: str) -> None:
        body = (
            b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
            + _json_str(message)
            + b',"reason":"BadRequest","code":'
            + str(status).encode()
            + b"}"
        )
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            await self._send(
                h11.Response(
                    status_code=status,
                    headers=[
                        *self._headers("application/json", [], len(body)),
                        (b"connection", b"close"),
                    ],
                )
            )
            await self._send(h11.Data(data=body))
            await self._send(h11.EndOfMessage())

    async def _one_request(self) -> bool:
        try:
            event = await self._read_event()
        except h11.RemoteProtocolError as error:
            await self._error(error.error_status_hint, f"malformed HTTP request: {error}")
            return False
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return False
        if not isinstance(event, h11.Request):
            return False
        target = event.target.decode("latin-1")
        path, query, query_list = parse_target(target)
        headers: dict[str, str] = {}
        for name, value in event.headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        body = bytearray()
        too_large = False
        while True:
            try:
                part = await self._read_event()
            except h11.RemoteProtocolError as error:
                await self._error(error.error_status_hint, f"malformed HTTP request: {error}")
                return False
            if isinstance(part, h11.Data):
                if len(body) + len(part.data) > MAX_BODY:
                    too_large = True
                else:
                    body += part.data
            elif isinstance(part, h11.EndOfMessage):
                break
            else:
                return False
        request = Request(
            event.method.decode("latin-1"),
            target,
            path,
            query,
            query_list,
            headers,
            bytes(body),
            event.http_version.decode("latin-1"),
        )
        if too_large:
            from rxkube.fakes._errors import StatusError

            too_large_error = StatusError.request_entity_too_large(MAX_BODY)
            await self._respond(Response(413, _status_bytes(too_large_error.status())))
            return self.conn.our_state is h11.DONE and self._next_cycle()
        response: AnyResponse | None = None
        aborted = False
        async with trio.open_nursery() as nursery:
            # Watch for the client leaving while the handler runs or a stream is open.
            nursery.start_soon(self._watch_disconnect, nursery.cancel_scope)
            try:
                response = await self.handler(request)
                if not isinstance(response, Upgrade):
                    await self._respond(response)
            except (AbortConnection, trio.BrokenResourceError, trio.ClosedResourceError):
                aborted = True
            nursery.cancel_scope.cancel()
        if aborted or self.gone or response is None:
            return False
        if isinstance(response, Upgrade):
            await self._send(
                h11.InformationalResponse(
                    status_code=101,
                    headers=[(k.encode(), v.encode()) for k, v in response.headers],
                )
            )
            trailing, _ = self.conn.trailing_data
            await response.handler(self.stream, trailing)
            return False
        if self.conn.our_state is not h11.DONE:
            return False
        return self._next_cycle()

    def _next_cycle(self) -> bool:
        if self.conn.their_state is h11.DONE and self.conn.our_state is h11.DONE:
            try:
                self.conn.start_next_cycle()
            except h11.LocalProtocolError:
                return False
            return True
        return False

    async def _watch_disconnect(self, scope: trio.CancelScope) -> None:
        try:
            data = bytes(await self.stream.receive_some(65536))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if data:
            # A pipelined next request: keep it for h11 and stop watching.
            self.conn.receive_data(data)
            await trio.sleep_forever()
        scope.cancel()
        self.gone = True

    async def _respond(self, response: Response | StreamResponse) -> None:
        if isinstance(response, Response):
            # One write for head and body: fewer syscalls, and no small-packet round trips.
            conn = self.conn
            data = (
                conn.send(
                    h11.Response(
                        status_code=response.status,
                        headers=self._headers(
                            response.content_type, response.headers, len(response.body)
                        ),
                    )
                )
                or b""
            )
            if response.body:
                data += conn.send(h11.Data(data=response.body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
            await self.stream.send_all(data)
            return
        await self._send(
            h11.Response(
                status_code=response.status,
                headers=self._headers(response.content_type, response.headers, None),
            )
        )
        # Send the headers before the first event (reference common mistake 2).
        body = response.body
        try:
            async for chunk in body:
                if chunk:
                    await self._send(h11.Data(data=chunk))
        except AbortConnection:
            await _close(self.stream)
            raise
        finally:
            aclose = getattr(body, "aclose", None)
            if aclose is not None:
                with trio.CancelScope(shield=True):
                    await aclose()
        await self._send(h11.EndOfMessage())


async def _close(stream: trio.abc.Stream) -> None:
    """Close even when cancelled; a TLS stream gets a moment to send its close_notify (a
    client that stopped reading could block that send forever), then is closed regardless."""
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + 1.0
        await stream.aclose()


def _json_str(text: str) -> bytes:
    import orjson

    return orjson.dumps(text)


def _status_bytes(status: object) -> bytes:
    import orjson

    return orjson.dumps(status)


async def serve_http(
    handler: Handler,
    listeners: Sequence[trio.abc.Listener[trio.abc.Stream]],
    *,
    server_header: str = "rxkube-fake-apiserver",
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `handler` on `listeners` (TCP, or TLS over TCP) until cancelled."""

    async def connection(stream: trio.abc.Stream) -> None:
        try:
            await _Connection(stream, handler, server_header).serve()
        except Exception:
            # One broken connection must never take the server down; the handler already
            # turns its own failures into 500 Status answers, so this is a last resort.
            logger.exception("fake API server: connection failed")

    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_loop, listener, connection)
        task_status.started()
        await trio.sleep(math.inf)


async def _accept_loop(
    listener: trio.abc.Listener[trio.abc.Stream],
    connection: Callable[[trio.abc.Stream], Awaitable[None]],
) -> None:
    async with trio.open_nursery() as nursery, listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError:
                # EMFILE and friends: back off briefly rather than spin (as trio.serve_listeners).
                await trio.sleep(0.1)
                continue
            nursery.start_soon(connection, stream)
