"""A WebSocket client over the one Kubernetes client's connection (for `pods/exec`).

What this module is for: httpx has no WebSocket. The upgrade request goes through
`KubeClient.stream` like any request (same TLS, credentials, 401 refresh, rate limit and typed
errors for a refused upgrade), and after the server's `101 Switching Protocols` httpx hands over
the raw connection (`response.extensions["network_stream"]`); wsproto does the framing on it.

Why wsproto on the handed-over stream rather than httpx-ws: httpx-ws runs a background task group
(a receive task and a keepalive task), so exceptions come out wrapped in ExceptionGroups and
messages are read ahead of the consumer; it does not check `Sec-WebSocket-Accept` nor that the
server picked one of the offered subprotocols. Here every read happens in the caller's task when
it asks for a message (so a slow consumer slows the socket, never a buffer), cancellation is
plain trio, and the handshake is checked. wsproto is the same protocol engine httpx-ws uses.

It may import the client, errors and resources modules of `rxkube.streams`, wsproto and trio.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import httpx
import trio
import wsproto
import wsproto.events as ws_events
from wsproto.connection import Connection, ConnectionState

from rxkube.streams._client import KubeClient
from rxkube.streams._errors import KubeConnectionError, KubeError

__all__: list[str] = []  # private helpers of the orchestrator, nothing public

_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_READ_SIZE: Final = 65536
MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024


def accept_key(key: str) -> str:
    """`Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


class WebSocket:
    """An open client WebSocket: `send` binary messages, `receive` whole messages."""

    def __init__(self, stream: Any, subprotocol: str, *, max_message_bytes: int) -> None:
        self._stream = stream  # httpcore's AsyncNetworkStream (read/write/aclose)
        self._connection = Connection(wsproto.ConnectionType.CLIENT)
        self.subprotocol = subprotocol
        self._max = max_message_bytes
        self._pending: list[ws_events.Event] = []
        self._closed = False

    async def send(self, data: bytes) -> None:
        """Send one binary message."""
        if self._connection.state is not ConnectionState.OPEN:
            raise KubeConnectionError("the WebSocket is closed; cannot send")
        await self._write(self._connection.send(ws_events.BytesMessage(data=data)))

    async def _write(self, data: bytes) -> None:
        try:
            await self._stream.write(data)
        except Exception as error:
            raise KubeConnectionError(f"WebSocket write failed: {error!r}") from error

    async def receive(self) -> bytes | None:
        """The next whole message (a text message as its UTF-8 bytes), or None once the server
        has closed the connection (with a close frame, or by ending the stream)."""
        buffer = bytearray()
        while True:
            while not self._pending:
                if self._closed:
                    return None
                try:
                    data = await self._stream.read(_READ_SIZE)
                except Exception as error:
                    raise KubeConnectionError(f"WebSocket read failed: {error!r}") from error
                if not data:
                    # The API server may end the stream right after the exec status, without
                    # a close frame: that is an end like any other.
                    self._closed = True
                    return None
                self._connection.receive_data(data)
                self._pending.extend(self._connection.events())
            event = self._pending.pop(0)
            if isinstance(event, ws_events.Ping):
                await self._write(self._connection.send(event.response()))
            elif isinstance(event, ws_events.CloseConnection):
                if self._connection.state is ConnectionState.REMOTE_CLOSING:
                    await self._write(self._connection.send(event.response()))
                self._closed = True
                return None
            elif isinstance(event, ws_events.Message):
                chunk = event.data.encode("utf-8") if isinstance(event.data, str) else event.data
                buffer += chunk
                if len(buffer) > self._max:
                    raise KubeError(
                        f"a WebSocket message exceeded {self._max} bytes; refusing to buffer it"
                    )
                if event.message_finished:
                    return bytes(buffer)

    async def close(self) -> None:
        """Send a close frame (if still open) and close the connection."""
        try:
            if self._connection.state is ConnectionState.OPEN:
                await self._write(
                    self._connection.send(ws_events.CloseConnection(code=1000, reason=""))
                )
        except KubeError:
            pass
        finally:
            self._closed = True
            await self._stream.aclose()


@asynccontextmanager
async def open_websocket(
    client: KubeClient,
    path: str,
    *,
    params: Mapping[str, str | bool | Sequence[str] | None],
    subprotocols: Sequence[str],
    verb: str,
    resource: str,
    namespace: str | None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> AsyncIterator[WebSocket]:
    """Upgrade a GET of `path` to a WebSocket offering `subprotocols` (most preferred first).

    A refused upgrade raises the client's typed `ApiError` (the server's Status); a server that
    answers 2xx instead of 101, picks no offered subprotocol, or sends a wrong
    `Sec-WebSocket-Accept` raises `KubeError`. Leaving the block closes the connection.
    """
    key = base64.b64encode(secrets.token_bytes(16)).decode("ascii")
    headers = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Protocol": ", ".join(subprotocols),
    }
    async with client.stream(
        "GET",
        path,
        verb=verb,
        resource=resource,
        namespace=namespace,
        params=params,
        headers=headers,
        read_timeout=None,
    ) as response:
        _check_handshake(response, key, subprotocols, path)
        socket = WebSocket(
            response.extensions["network_stream"],
            response.headers["sec-websocket-protocol"],
            max_message_bytes=max_message_bytes,
        )
        try:
            yield socket
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await socket.close()


def _check_handshake(
    response: httpx.Response, key: str, subprotocols: Sequence[str], path: str
) -> None:
    if response.status_code != 101:
        raise KubeError(
            f"GET {path}: the server answered HTTP {response.status_code} instead of upgrading "
            "to a WebSocket (101); it may not support WebSocket exec (Kubernetes < 1.29 needs "
            "SPDY, which rxkube does not speak)"
        )
    if response.headers.get("sec-websocket-accept") != accept_key(key):
        raise KubeError(f"GET {path}: the server sent a wrong Sec-WebSocket-Accept")
    chosen = response.headers.get("sec-websocket-protocol", "")
    if chosen not in subprotocols:
        raise KubeError(
            f"GET {path}: the server chose the WebSocket subprotocol {chosen!r}, not one of "
            f"{list(subprotocols)}"
        )
