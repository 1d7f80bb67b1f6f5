"""Server-side WebSocket on a trio stream, after an HTTP/1.1 upgrade parsed elsewhere (h11).

What this module is for: exec (`_exec`) and the simulated pod backends (`_backends`) both get a
request from h11, answer `101 Switching Protocols` themselves, and then speak WebSocket frames
on the raw stream. wsproto's frame-level `Connection` does the framing (masking, fragments,
ping/pong, close handshake); this module adds the handshake headers (RFC 6455 section 4.2.2)
and a small receive/send/close API. No extensions (permessage-deflate is not offered).
"""

from __future__ import annotations

from collections import deque

import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.utilities import RemoteProtocolError, generate_accept_token, split_comma_header

__all__: list[str] = []


def is_websocket_upgrade(headers: dict[str, str]) -> bool:
    """True for `Connection: upgrade` + `Upgrade: websocket` (headers keyed lower-case)."""
    connection = [t.strip().lower() for t in headers.get("connection", "").split(",")]
    return "upgrade" in connection and headers.get("upgrade", "").strip().lower() == "websocket"


def offered_protocols(headers: dict[str, str]) -> list[str]:
    return split_comma_header(headers.get("sec-websocket-protocol", "").encode())


def handshake_headers(headers: dict[str, str], protocol: str | None) -> list[tuple[str, str]]:
    """The 101 answer's headers for a request with these headers."""
    key = headers.get("sec-websocket-key", "").strip().encode()
    out = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", generate_accept_token(key).decode()),
    ]
    if protocol:
        out.append(("Sec-WebSocket-Protocol", protocol))
    return out


class WebSocket:
    """One accepted WebSocket connection (the 101 was already sent)."""

    def __init__(self, stream: trio.abc.Stream, trailing: bytes = b"") -> None:
        self.stream = stream
        self.connection = Connection(ConnectionType.SERVER, trailing_data=trailing)
        self._pending: deque[bytes | str] = deque()
        self._partial_bytes = bytearray()
        self._partial_text: list[str] = []
        self.closed = False
        self.close_code: int | None = None
        self._send_lock = trio.Lock()

    async def _flush(self, data: bytes) -> None:
        if not data:
            return
        async with self._send_lock:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.closed = True

    async def receive(self) -> bytes | str | None:
        """The next whole message, or None once the peer closed (or the socket broke)."""
        while not self._pending:
            if self.closed:
                return None
            for event in self.connection.events():
                if isinstance(event, Message):
                    if isinstance(event, BytesMessage):
                        self._partial_bytes.extend(event.data)
                        if event.message_finished:
                            self._pending.append(bytes(self._partial_bytes))
                            self._partial_bytes.clear()
                    elif isinstance(event, TextMessage):
                        self._partial_text.append(event.data)
                        if event.message_finished:
                            self._pending.append("".join(self._partial_text))
                            self._partial_text.clear()
                elif isinstance(event, Ping):
                    await self._flush(self.connection.send(event.response()))
                elif isinstance(event, CloseConnection):
                    self.close_code = event.code
                    if self.connection.state is ConnectionState.REMOTE_CLOSING:
                        await self._flush(self.connection.send(event.response()))
                    self.closed = True
            if self._pending or self.closed:
                continue
            try:
                data = await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            try:
                self.connection.receive_data(bytes(data) if data else None)
            except RemoteProtocolError:
                self.closed = True
            if not data:
                # receive_data(None) queued a CloseConnection event (abnormal closure).
                continue
        return self._pending.popleft()

    async def send(self, message: bytes | str) -> None:
        if self.closed or self.connection.state is not ConnectionState.OPEN:
            return
        event = BytesMessage(message) if isinstance(message, bytes) else TextMessage(message)
        await self._flush(self.connection.send(event))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake (if still open) and close the socket."""
        if self.connection.state is ConnectionState.OPEN:
            await self._flush(self.connection.send(CloseConnection(code, reason or None)))
            # Give the peer a moment to answer the close frame, then drop the socket.
            with trio.move_on_after(1.0):
                while not self.closed:
                    if await self.receive() is None:
                        break
        self.closed = True
        with trio.CancelScope(shield=True):
            await self.stream.aclose()
