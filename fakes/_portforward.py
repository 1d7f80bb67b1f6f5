"""`pods/portforward`: SPDY/3.1 (plain, or tunneled in WebSocket) and the v4 channel protocol.

What this module is for: answering `/api/v1/namespaces/{ns}/pods/{name}/portforward` as
kube-apiserver and the kubelet's streaming server do, so that `kubectl port-forward` and the
official Python client's `kubernetes.stream.portforward` reach a simulated pod's real backend
(`_backends`). Three ways in, one way out:

- kubectl >= 1.31 (`PortForwardWebsockets`): `GET` with `Upgrade: websocket` and the
  sub-protocol `SPDY/3.1+portforward.k8s.io`; every WebSocket binary message then carries
  raw SPDY bytes, cut anywhere (client-go `tools/portforward/tunneling_connection.go`,
  apiserver `pkg/util/proxy/streamtunnel.go`).
- kubectl's fallback: `POST` with `Upgrade: SPDY/3.1` and
  `X-Stream-Protocol-Version: portforward.k8s.io`; the socket then speaks SPDY.
- the official Python client: a WebSocket with `v4.channel.k8s.io` and `?ports=8080,9090`;
  channel 2k carries port k's data, 2k+1 its error text, and the server's first message on
  each channel is the port, two bytes little-endian (kubelet `cri/streaming/portforward/
  websocket.go`).

Over SPDY, each forwarded connection is a pair of client-initiated streams with the headers
`streamType: error|data`, `port` and `requestID` (kubelet `portforward/httpstream.go`). The
server replies to each, dials the pod's IP and port when the pair is complete, copies bytes both
ways, and writes the kubelet's (containerd's) error text on the error stream when the dial fails.

The SPDY part is a sans-I/O core in the manner of h11 (`SpdyServer`: bytes in, events out;
calls return bytes to send); the trio glue below it does the sockets. It may import trio, the
other `rxkube.fakes` modules it names and the standard library; it must not touch the store.

Rules of the SPDY/3.1 core (spec: chromium.org "SPDY Protocol - Draft 3.1"; the client side
is moby/spdystream as vendored by client-go):

- frame header: control `1 | version(15) | type(16) | flags(8) | length(24)`; data
  `0 | stream id(31) | flags(8) | length(24)`. Control frames must say version 3.
- SYN_STREAM (1): stream id odd (client-initiated) and above every earlier one, else
  `SpdyError`; a zlib-compressed header block follows. SYN_REPLY (2) from the client:
  `SpdyError` (the server opens no streams).
- RST_STREAM (3): length 8, status != 0; closes the stream; unknown ids are ignored (they race
  with our own close).
- SETTINGS (4), HEADERS (8), WINDOW_UPDATE (9, length 8): parsed and reported, nothing more.
  spdystream neither sends nor honours flow-control windows, so neither does this core.
- PING (6): length 4; reported (the glue echoes the client's odd ids, as spdystream does).
- GOAWAY (7): length 8; no new streams afterwards. Other control types: ignored, as the spec
  says (`UnknownFrame`).
- DATA: stream id != 0; on a stream the peer already finished: `SpdyError`; on an unknown
  (closed or reset) stream: dropped.
- Header blocks: one zlib stream per direction for the whole connection, primed with the
  SPDY/3 dictionary, each block ending in a sync flush; names lower-case, values NUL-joined.
- FLAG_FIN (0x01) on SYN_STREAM or DATA: the peer sends no more on that stream.
- Sending: data only on a replied stream this side has not finished (`LocalSpdyError`
  otherwise), in frames of at most 32 KiB.

Stream states (the table `TRANSITIONS` drives them): OPEN -> (peer FIN) REMOTE_CLOSED,
OPEN -> (our FIN) LOCAL_CLOSED; either half-closed state -> (the other FIN) CLOSED; any ->
(RST either way) CLOSED. CLOSED streams are forgotten.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import math
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Protocol

import trio

from rxkube.fakes._errors import StatusError
from rxkube.fakes._http import Request, Response, Upgrade
from rxkube.fakes._websocket import (
    WebSocket,
    handshake_headers,
    is_websocket_upgrade,
    offered_protocols,
)

__all__: list[str] = []

logger = logging.getLogger("rxkube.fakes")

# -- the SPDY/3.1 core (no I/O) -------------------------------------------------------------

VERSION: Final = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1,
    2,
    3,
    4,
    6,
    7,
    8,
    9,
)
FLAG_FIN: Final = 0x01
MAX_DATA_FRAME: Final = 32 * 1024
MAX_FRAME: Final = 1 << 24  # the length field is 24 bits

# RST_STREAM status codes and GOAWAY status codes (spec sections 2.6.3, 2.6.6).
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR = 0, 1


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (spec section 2.6.10.1): these words, each after
    its length as 4 bytes big-endian, then a run of plain text. 1423 bytes."""
    words = [
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ]
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
        "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    out = bytearray()
    for word in words:
        data = word.replace("~", " ").encode()  # "200 OK": the one entry with a space
        out += struct.pack(">I", len(data)) + data
    return bytes(out) + tail.encode()


DICTIONARY: Final = _dictionary()


class SpdyError(Exception):
    """The peer broke the protocol (a bad frame); the connection cannot go on."""


class LocalSpdyError(Exception):
    """This side tried something the protocol forbids (a bug in the caller)."""


class StreamState(Enum):
    OPEN = "open"
    REMOTE_CLOSED = "remote closed"  # the peer sent FIN
    LOCAL_CLOSED = "local closed"  # we sent FIN
    CLOSED = "closed"


# (state, what happened) -> next state. "recv fin"/"send fin": a FIN flag either way;
# "rst": RST_STREAM either way.
TRANSITIONS: Final[dict[tuple[StreamState, str], StreamState]] = {
    (StreamState.OPEN, "recv fin"): StreamState.REMOTE_CLOSED,
    (StreamState.OPEN, "send fin"): StreamState.LOCAL_CLOSED,
    (StreamState.REMOTE_CLOSED, "send fin"): StreamState.CLOSED,
    (StreamState.LOCAL_CLOSED, "recv fin"): StreamState.CLOSED,
    (StreamState.OPEN, "rst"): StreamState.CLOSED,
    (StreamState.REMOTE_CLOSED, "rst"): StreamState.CLOSED,
    (StreamState.LOCAL_CLOSED, "rst"): StreamState.CLOSED,
}

Headers = dict[str, list[str]]


@dataclass(frozen=True, slots=True)
class StreamOpened:
    stream_id: int
    headers: Headers
    fin: bool = False

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""


@dataclass(frozen=True, slots=True)
class DataReceived:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True, slots=True)
class StreamReset:
    stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class PingReceived:
    ping_id: int


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    last_good_stream_id: int
    status: int


@dataclass(frozen=True, slots=True)
class SettingsReceived:
    values: dict[int, int]


@dataclass(frozen=True, slots=True)
class HeadersReceived:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True, slots=True)
class WindowUpdated:
    stream_id: int
    delta: int


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    frame_type: int


Event = (
    StreamOpened
    | DataReceived
    | StreamReset
    | PingReceived
    | GoAwayReceived
    | SettingsReceived
    | HeadersReceived
    | WindowUpdated
    | UnknownFrame
)


def encode_header_block(headers: Mapping[str, Iterable[str]]) -> bytes:
    """The uncompressed name/value block: count, then (length, name, length, NUL-joined values)."""
    out = bytearray(struct.pack(">I", len(headers)))
    for name, values in headers.items():
        key = name.lower().encode()
        value = b"\x00".join(v.encode() for v in values)
        out += struct.pack(">I", len(key)) + key + struct.pack(">I", len(value)) + value
    return bytes(out)


def decode_header_block(block: bytes) -> Headers:
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        offset = 4
        headers: Headers = {}
        for _ in range(count):
            (length,) = struct.unpack_from(">I", block, offset)
            name = block[offset + 4 : offset + 4 + length]
            offset += 4 + length
            (length,) = struct.unpack_from(">I", block, offset)
            value = block[offset + 4 : offset + 4 + length]
            if len(value) != length:
                raise struct.error("value runs past the block")
            offset += 4 + length
            text = name.decode("latin-1")
            if text != text.lower():
                raise SpdyError(f"header name {text!r} is not lower-case")
            if text in headers:
                raise SpdyError(f"header {text!r} appears twice in one block")
            headers[text] = value.decode("latin-1").split("\x00")
    except struct.error as error:
        raise SpdyError(f"truncated header block ({error})") from None
    if offset != len(block):
        raise SpdyError(f"{len(block) - offset} stray bytes after the header block")
    return headers


def control_frame(frame_type: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, frame_type, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


@dataclass
class _Stream:
    state: StreamState = StreamState.OPEN
    replied: bool = False


class SpdyServer:
    """The server side of one SPDY/3.1 connection, without I/O (see the rules above).

    `receive_data(bytes)` returns the events the bytes complete (raising `SpdyError` on a bad
    frame); `reply`, `send_data`, `reset`, `ping`, `goaway` return the bytes to write, which
    must be written in the order they were made (the header compressor is one stream).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(
            9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY
        )
        self.streams: dict[int, _Stream] = {}
        self.last_stream_id = 0
        self.gone_away = False

    # -- incoming

    def receive_data(self, data: bytes) -> list[Event]:
        self._buffer += data
        events: list[Event] = []
        while len(self._buffer) >= 8:
            first, second = struct.unpack_from(">II", self._buffer, 0)
            length = second & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            flags = second >> 24
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            if first & 0x80000000:
                version = (first >> 16) & 0x7FFF
                if version != VERSION:
                    raise SpdyError(f"unsupported SPDY version {version} (this server speaks 3)")
                event = self._control(first & 0xFFFF, flags, payload)
            else:
                event = self._data(first & 0x7FFFFFFF, flags, payload)
            if event is not None:
                events.append(event)
        return events

    def _transition(self, stream_id: int, what: str) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        following = TRANSITIONS.get((stream.state, what))
        if following is None:
            raise LocalSpdyError(f"stream {stream_id}: {what} in state {stream.state.value}")
        if following is StreamState.CLOSED:
            del self.streams[stream_id]
        else:
            stream.state = following

    def _headers(self, block: bytes) -> Headers:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as error:
            raise SpdyError(f"header block does not decompress ({error})") from None
        if self._inflate.unconsumed_tail:
            raise SpdyError("header block decompression left input unread")
        return decode_header_block(raw)

    def _control(self, frame_type: int, flags: int, payload: bytes) -> Event | None:
        def fixed(size: int, name: str) -> None:
            if len(payload) != size:
                raise SpdyError(f"{name} frame has length {len(payload)}, must be {size}")

        if frame_type == SYN_STREAM:
            if len(payload) < 10:
                raise SpdyError(f"SYN_STREAM frame too short ({len(payload)} bytes)")
            stream_id, _associated = struct.unpack_from(">II", payload, 0)
            stream_id &= 0x7FFFFFFF
            headers = self._headers(payload[10:])
            if stream_id == 0:
                raise SpdyError("SYN_STREAM with stream id 0")
            if stream_id % 2 == 0:
                raise SpdyError(f"SYN_STREAM with even stream id {stream_id} from the client")
            if stream_id <= self.last_stream_id:
                raise SpdyError(
                    f"SYN_STREAM id {stream_id} is not above the last one ({self.last_stream_id})"
                )
            self.last_stream_id = stream_id
            fin = bool(flags & FLAG_FIN)
            if not self.gone_away:
                self.streams[stream_id] = _Stream(
                    StreamState.REMOTE_CLOSED if fin else StreamState.OPEN
                )
            return StreamOpened(stream_id, headers, fin)
        if frame_type == SYN_REPLY:
            raise SpdyError("SYN_REPLY from the client (this server opens no streams)")
        if frame_type == RST_STREAM:
            fixed(8, "RST_STREAM")
            stream_id, status = struct.unpack(">II", payload)
            stream_id &= 0x7FFFFFFF
            if stream_id == 0 or status == 0:
                raise SpdyError(f"RST_STREAM with stream id {stream_id} and status {status}")
            self._transition(stream_id, "rst")
            return StreamReset(stream_id, status)
        if frame_type == SETTINGS:
            if len(payload) < 4:
                raise SpdyError("SETTINGS frame too short")
            (count,) = struct.unpack_from(">I", payload, 0)
            if len(payload) != 4 + 8 * count:
                raise SpdyError(f"SETTINGS frame of {len(payload)} bytes for {count} entries")
            values = {}
            for index in range(count):
                key, value = struct.unpack_from(">II", payload, 4 + 8 * index)
                values[key & 0xFFFFFF] = value
            return SettingsReceived(values)
        if frame_type == PING:
            fixed(4, "PING")
            return PingReceived(struct.unpack(">I", payload)[0])
        if frame_type == GOAWAY:
            fixed(8, "GOAWAY")
            last, status = struct.unpack(">II", payload)
            self.gone_away = True
            return GoAwayReceived(last & 0x7FFFFFFF, status)
        if frame_type == HEADERS:
            if len(payload) < 4:
                raise SpdyError("HEADERS frame too short")
            stream_id = struct.unpack_from(">I", payload, 0)[0] & 0x7FFFFFFF
            headers = self._headers(payload[4:])
            fin = bool(flags & FLAG_FIN)
            if fin:
                self._transition(stream_id, "recv fin")
            return HeadersReceived(stream_id, headers, fin)
        if frame_type == WINDOW_UPDATE:
            fixed(8, "WINDOW_UPDATE")
            stream_id, delta = struct.unpack(">II", payload)
            return WindowUpdated(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        return UnknownFrame(frame_type)

    def _data(self, stream_id: int, flags: int, payload: bytes) -> Event | None:
        if stream_id == 0:
            raise SpdyError("DATA frame with stream id 0")
        stream = self.streams.get(stream_id)
        if stream is None:
            return None  # reset or closed already: frames in flight are dropped
        if stream.state in (StreamState.REMOTE_CLOSED, StreamState.CLOSED):
            raise SpdyError(f"DATA on stream {stream_id} after the client finished it")
        fin = bool(flags & FLAG_FIN)
        if fin:
            self._transition(stream_id, "recv fin")
        return DataReceived(stream_id, payload, fin)

    # -- outgoing

    def _compress(self, headers: Mapping[str, Iterable[str]]) -> bytes:
        block = encode_header_block(headers)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def reply(self, stream_id: int, headers: Mapping[str, Iterable[str]] | None = None) -> bytes:
        stream = self.streams.get(stream_id)
        if stream is None or stream.replied:
            raise LocalSpdyError(f"no stream {stream_id} waiting for a reply")
        stream.replied = True
        payload = struct.pack(">I", stream_id) + self._compress(headers or {})
        return control_frame(SYN_REPLY, 0, payload)

    def send_data(self, stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
        stream = self.streams.get(stream_id)
        if stream is None or not stream.replied:
            raise LocalSpdyError(f"stream {stream_id} is not open for sending")
        if stream.state not in (StreamState.OPEN, StreamState.REMOTE_CLOSED):
            raise LocalSpdyError(f"stream {stream_id} was finished by this side")
        chunks = [data[i : i + MAX_DATA_FRAME] for i in range(0, len(data), MAX_DATA_FRAME)]
        if not chunks:
            chunks = [b""]
        out = b"".join(
            data_frame(stream_id, chunk, fin=fin and i == len(chunks) - 1)
            for i, chunk in enumerate(chunks)
        )
        if fin:
            self._transition(stream_id, "send fin")
        return out

    def can_send(self, stream_id: int) -> bool:
        stream = self.streams.get(stream_id)
        return (
            stream is not None
            and stream.replied
            and stream.state in (StreamState.OPEN, StreamState.REMOTE_CLOSED)
        )

    def reset(self, stream_id: int, status: int = CANCEL) -> bytes:
        self._transition(stream_id, "rst")
        return control_frame(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return control_frame(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, status: int = GOAWAY_OK) -> bytes:
        return control_frame(GOAWAY, 0, struct.pack(">II", self.last_stream_id, status))


class SpdyClient:
    """The client half, only as far as tests need it to drive `SpdyServer` (streams, data,
    reset, ping); it shares the framing helpers above and parses what the server sends."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(
            9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, DICTIONARY
        )
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._buffer = bytearray()
        self.next_id = 1

    def open(self, headers: Mapping[str, Iterable[str]], *, fin: bool = False) -> tuple[int, bytes]:
        stream_id = self.next_id
        self.next_id += 2
        block = self._deflate.compress(encode_header_block(headers))
        block += self._deflate.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack(">IIBB", stream_id, 0, 0, 0) + block
        return stream_id, control_frame(SYN_STREAM, FLAG_FIN if fin else 0, payload)

    def frames(self, data: bytes) -> list[tuple[str, int, int, Any]]:
        """(kind, stream id or ping id, flags, payload or headers) for each whole frame."""
        self._buffer += data
        out: list[tuple[str, int, int, Any]] = []
        while len(self._buffer) >= 8:
            first, second = struct.unpack_from(">II", self._buffer, 0)
            length = second & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            flags = second >> 24
            if not first & 0x80000000:
                out.append(("data", first, flags, payload))
                continue
            kind = first & 0xFFFF
            if kind == SYN_REPLY:
                stream_id = struct.unpack_from(">I", payload, 0)[0]
                raw = self._inflate.decompress(payload[4:])
                out.append(("reply", stream_id, flags, decode_header_block(raw)))
            elif kind == RST_STREAM:
                stream_id, status = struct.unpack(">II", payload)
                out.append(("rst", stream_id, flags, status))
            elif kind == PING:
                out.append(("ping", struct.unpack(">I", payload)[0], flags, None))
            elif kind == GOAWAY:
                last, status = struct.unpack(">II", payload)
                out.append(("goaway", last, flags, status))
            else:
                out.append((f"control-{kind}", 0, flags, payload))
        return out


# -- the kubelet's side: pairs of streams, dialing the pod ---------------------------------

PORTFORWARD_PROTOCOL: Final = "portforward.k8s.io"
TUNNEL_PREFIX: Final = "SPDY/3.1+"
V4_PROTOCOLS: Final = {"v4.channel.k8s.io": False, "v4.base64.channel.k8s.io": True}


class Dialer(Protocol):
    """Where container port `port` of the pod answers: (host, port), or None when the pod
    declares no such port (nothing can listen there in the simulation)."""

    def __call__(self, port: int) -> tuple[str, int] | None: ...


@dataclass(frozen=True, slots=True)
class PodTarget:
    """The pod being forwarded to, as the kubelet names it in its errors."""

    sandbox_id: str
    dial: Dialer


def sandbox_id(uid: str) -> str:
    """A stable 64-hex sandbox id for a pod (CRI names pods by sandbox in port-forward errors)."""
    return hashlib.sha256(f"sandbox/{uid}".encode()).hexdigest()


def refused_message(port: int, sandbox: str) -> str:
    """The kubelet's error text when nothing listens on `port` (containerd's dial error inside
    the pod's network namespace, wrapped by the kubelet's `error forwarding port`).
    [unverified: containerd's wording recalled, not re-read at source]"""
    cni = "-".join((sandbox[:8], sandbox[8:12], sandbox[12:16], sandbox[16:20], sandbox[20:32]))
    namespace = f"/var/run/netns/cni-{cni}"
    return (
        f"error forwarding port {port} to pod {sandbox}, uid : failed to execute portforward in "
        f'network namespace "{namespace}": failed to connect to localhost:{port} inside '
        f'namespace "{sandbox}", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused '
        f"IPv6 dial tcp6 [::1]:{port}: connect: connection refused "
    )


async def _connect(target: PodTarget, port: int) -> trio.SocketStream | str:
    """A connection to the pod's `port`, or the error text the client is to see."""
    address = target.dial(port)
    if address is None:
        return refused_message(port, target.sandbox_id)
    try:
        return await trio.open_tcp_stream(*address)
    except OSError:
        return refused_message(port, target.sandbox_id)


# A forward's two copies: when one ends, the other gets this long before it is cut
# (containerd's port forwarder waits one second the same way).
GRACE: Final = 1.0


async def _pipe(
    backend: trio.SocketStream,
    inbound: trio.MemoryReceiveChannel[bytes],
    send: Callable[[bytes], Awaitable[None]],
) -> None:
    """Copy client->backend (from `inbound`) and backend->client (to `send`) until both end,
    or one ends and the other does not within `GRACE`."""

    async def up() -> None:
        async for chunk in inbound:
            await backend.send_all(chunk)
        # The client finished sending: the backend sees EOF (half-close), as over TCP.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await backend.send_eof()

    async def down() -> None:
        while True:
            chunk = await backend.receive_some(65536)
            if not chunk:
                return
            await send(bytes(chunk))

    async with trio.open_nursery() as nursery:
        done = trio.Event()

        async def run(part: Callable[[], Awaitable[None]]) -> None:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                await part()
            if done.is_set():
                nursery.cancel_scope.cancel()
                return
            done.set()
            nursery.cancel_scope.deadline = min(
                nursery.cancel_scope.deadline, trio.current_time() + GRACE
            )

        nursery.start_soon(run, up)
        nursery.start_soon(run, down)


@dataclass
class _Pair:
    """The error and data streams of one forwarded connection (one `requestID`)."""

    request_id: str
    port: int
    error_stream: int | None = None
    data_stream: int | None = None
    inbound: trio.MemorySendChannel[bytes] | None = None
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class _Transport(Protocol):
    async def receive(self) -> bytes: ...  # b"" once the peer is gone

    async def send(self, data: bytes) -> None: ...


class _TunnelTransport:
    """SPDY bytes inside WebSocket binary messages (message boundaries mean nothing)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws

    async def receive(self) -> bytes:
        while True:
            message = await self.ws.receive()
            if message is None:
                return b""
            if isinstance(message, str):
                # client-go's TunnelingConnection refuses text messages the same way.
                raise SpdyError("text message on a SPDY tunnel (binary expected)")
            if message:
                return message

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)


class _SocketTransport:
    """SPDY straight on the upgraded socket (kubectl's fallback)."""

    def __init__(self, stream: trio.abc.Stream, trailing: bytes) -> None:
        self.stream = stream
        self.trailing = trailing

    async def receive(self) -> bytes:
        if self.trailing:
            data, self.trailing = self.trailing, b""
            return data
        try:
            return bytes(await self.stream.receive_some(65536))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return b""

    async def send(self, data: bytes) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.stream.send_all(data)


class _SpdySession:
    """The kubelet's `httpStreamHandler` for one connection: pairs streams by `requestID`
    and runs one forward per complete pair in the session's nursery."""

    def __init__(self, transport: _Transport, target: PodTarget) -> None:
        self.transport = transport
        self.target = target
        self.conn = SpdyServer()
        self.lock = trio.Lock()
        self.pairs: dict[str, _Pair] = {}
        self.by_stream: dict[int, _Pair] = {}

    async def write(self, make: Callable[[SpdyServer], bytes]) -> None:
        """Make the bytes and send them under one lock: the header compressor's output must
        reach the wire in the order it was produced."""
        async with self.lock:
            data = make(self.conn)
            if data:
                await self.transport.send(data)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            try:
                while True:
                    data = await self.transport.receive()
                    if not data:
                        break
                    for event in self.conn.receive_data(data):
                        await self._handle(event, nursery)
            except SpdyError as error:
                logger.info("portforward: closing the connection: %s", error)
                await self.write(lambda c: c.goaway(GOAWAY_PROTOCOL_ERROR))
            nursery.cancel_scope.cancel()

    async def _handle(self, event: Event, nursery: trio.Nursery) -> None:
        if isinstance(event, StreamOpened):
            await self._opened(event, nursery)
        elif isinstance(event, DataReceived):
            pair = self.by_stream.get(event.stream_id)
            if (
                pair is not None
                and pair.inbound is not None
                and event.stream_id == pair.data_stream
            ):
                if event.data:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await pair.inbound.send(event.data)
                if event.fin:
                    await pair.inbound.aclose()
        elif isinstance(event, StreamReset):
            pair = self.by_stream.get(event.stream_id)
            if pair is not None and event.stream_id == pair.data_stream:
                pair.scope.cancel()
        elif isinstance(event, PingReceived) and event.ping_id % 2 == 1:
            # The client's ping (odd ids); spdystream answers only the peer's ids the same way.
            await self.write(lambda c: c.ping(event.ping_id))

    async def _opened(self, event: StreamOpened, nursery: trio.Nursery) -> None:
        if self.conn.gone_away:
            return
        port_text = event.header("port")
        kind = event.header("streamtype")
        problem = ""
        port = 0
        if not port_text:
            problem = '"port" header is required'
        else:
            try:
                port = int(port_text)
                if not 0 <= port < 65536:
                    raise ValueError(port_text)
            except ValueError:
                problem = f'unable to parse "{port_text}" as a port'
            else:
                if port < 1:
                    problem = f'port "{port_text}" must be > 0'
        if not problem and kind not in ("error", "data"):
            problem = f'invalid stream type "{kind}"' if kind else '"streamType" header is required'
        if problem:
            # The kubelet's stream handler refuses the stream; spdystream then resets it.
            logger.info("portforward: refusing stream %d: %s", event.stream_id, problem)
            await self.write(lambda c: c.reset(event.stream_id, CANCEL))
            return
        await self.write(lambda c: c.reply(event.stream_id))
        request_id = event.header("requestid") or (
            # Clients older than request ids: the kubelet pairs by consecutive stream ids.
            str(event.stream_id if kind == "error" else event.stream_id - 2)
        )
        pair = self.pairs.get(request_id)
        if pair is None:
            pair = self.pairs[request_id] = _Pair(request_id, port)
        if (kind == "error" and pair.error_stream is not None) or (
            kind == "data" and pair.data_stream is not None
        ):
            if pair.error_stream is not None:
                message = (
                    f"error processing stream for request {request_id}: "
                    f"{kind} stream already assigned"
                )
                await self._send(pair.error_stream, message.encode())
            return
        if kind == "error":
            pair.error_stream = event.stream_id
        else:
            pair.data_stream = event.stream_id
        self.by_stream[event.stream_id] = pair
        if pair.error_stream is not None and pair.data_stream is not None:
            send_channel, receive_channel = trio.open_memory_channel[bytes](math.inf)
            pair.inbound = send_channel
            nursery.start_soon(self._forward, pair, receive_channel)

    async def _send(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        def make(conn: SpdyServer) -> bytes:
            if not conn.can_send(stream_id):
                return b""
            return conn.send_data(stream_id, data, fin=fin)

        await self.write(make)

    async def _forward(self, pair: _Pair, inbound: trio.MemoryReceiveChannel[bytes]) -> None:
        assert pair.data_stream is not None
        assert pair.error_stream is not None
        data_stream, error_stream = pair.data_stream, pair.error_stream
        try:
            with pair.scope:
                backend = await _connect(self.target, pair.port)
                if isinstance(backend, str):
                    await self._send(error_stream, backend.encode())
                else:
                    async with backend:
                        await _pipe(backend, inbound, lambda d: self._send(data_stream, d))
        finally:
            with trio.CancelScope(shield=True):
                # The kubelet closes both streams when the forward returns (FIN each).
                await self._send(data_stream, b"", fin=True)
                await self._send(error_stream, b"", fin=True)
            self.pairs.pop(pair.request_id, None)
            self.by_stream.pop(data_stream, None)
            self.by_stream.pop(error_stream, None)


# -- the v4 channel protocol (the official Python client) ----------------------------------


async def _channel_session(
    ws: WebSocket, encoded: bool, ports: list[int], target: PodTarget
) -> None:
    """kubelet `handleWebSocketStreams`: one connection per port, for the socket's lifetime."""
    send_lock = trio.Lock()

    async def send(channel: int, data: bytes) -> None:
        async with send_lock:
            if encoded:
                await ws.send(str(channel) + base64.b64encode(data).decode())
            else:
                await ws.send(bytes([channel]) + data)

    inbound: list[tuple[trio.MemorySendChannel[bytes], trio.MemoryReceiveChannel[bytes]]] = [
        trio.open_memory_channel[bytes](math.inf) for _ in ports
    ]
    for index, port in enumerate(ports):
        await send(2 * index, struct.pack("<H", port))
        await send(2 * index + 1, struct.pack("<H", port))

    async def forward(index: int, port: int) -> None:
        backend = await _connect(target, port)
        if isinstance(backend, str):
            await send(2 * index + 1, backend.encode())
            return
        async with backend:
            await _pipe(backend, inbound[index][1], lambda d: send(2 * index, d))

    async def pump(scope: trio.CancelScope) -> None:
        while True:
            message = await ws.receive()
            if message is None:
                scope.cancel()
                return
            if encoded:
                text = message.decode("latin-1") if isinstance(message, bytes) else message
                if not text or not text[0].isdigit():
                    continue
                channel, payload = int(text[0]), base64.b64decode(text[1:])
            else:
                raw = message.encode() if isinstance(message, str) else message
                if not raw:
                    continue
                channel, payload = raw[0], raw[1:]
            if channel % 2 == 0 and channel // 2 < len(ports) and payload:
                await inbound[channel // 2][0].send(payload)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump, nursery.cancel_scope)
        async with trio.open_nursery() as forwards:
            for index, port in enumerate(ports):
                forwards.start_soon(forward, index, port)
        nursery.cancel_scope.cancel()


# -- the HTTP side -------------------------------------------------------------------------


def _ports(request: Request) -> list[int]:
    texts = [v for k, v in request.query_list if k in ("ports", "port")]
    if not texts:
        raise StatusError.bad_request('query parameter "port" is required')
    ports: list[int] = []
    for text in texts:
        if not text:
            raise StatusError.bad_request('query parameter "port" cannot be empty')
        for part in text.split(","):
            try:
                port = int(part)
                if not 0 <= port < 65536:
                    raise ValueError(part)
            except ValueError:
                raise StatusError.bad_request(f'unable to parse "{text}" as a port') from None
            if port < 1:
                raise StatusError.bad_request(f'port "{text}" must be > 0')
            ports.append(port)
    return ports


def serve_portforward(request: Request, pod: Mapping[str, Any], dial: Dialer) -> Response | Upgrade:
    """The answer to a portforward request for `pod` (read from the store already)."""
    meta = pod.get("metadata") or {}
    name = str(meta.get("name") or "")
    if not (pod.get("spec") or {}).get("nodeName"):
        raise StatusError.bad_request(f"pod {name} does not have a host assigned")
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        # kubectl checks the phase itself first ("unable to forward port because pod is not
        # running. Current status=..."); other clients get the kubelet's refusal.
        raise StatusError.bad_request(
            f"unable to forward port because pod is not running. Current status={phase}"
        )
    target = PodTarget(sandbox_id(str(meta.get("uid") or name)), dial)
    headers = request.headers
    if is_websocket_upgrade(headers):
        offered = offered_protocols(headers)
        tunneled = [p for p in offered if p == TUNNEL_PREFIX + PORTFORWARD_PROTOCOL]
        if tunneled:

            async def tunnel(stream: trio.abc.Stream, trailing: bytes) -> None:
                ws = WebSocket(stream, trailing)
                try:
                    await _SpdySession(_TunnelTransport(ws), target).run()
                finally:
                    await ws.close()

            return Upgrade(handshake_headers(headers, tunneled[0]), tunnel)
        chosen = next((p for p in offered if p in V4_PROTOCOLS), None)
        if offered and chosen is None:
            raise StatusError.bad_request(
                f"requested protocol(s) are not supported: [{' '.join(offered)}]; supports "
                f"[{TUNNEL_PREFIX + PORTFORWARD_PROTOCOL} {' '.join(V4_PROTOCOLS)}]"
            )
        ports = _ports(request)
        encoded = V4_PROTOCOLS.get(chosen or "", False)

        async def channels(stream: trio.abc.Stream, trailing: bytes) -> None:
            ws = WebSocket(stream, trailing)
            try:
                await _channel_session(ws, encoded, ports, target)
            finally:
                await ws.close()

        return Upgrade(handshake_headers(headers, chosen), channels)
    connection = [t.strip().lower() for t in headers.get("connection", "").split(",")]
    if "upgrade" not in connection or headers.get("upgrade", "").strip().lower() != "spdy/3.1":
        raise StatusError.bad_request("Upgrade request required")
    # httpstream.Handshake: repeated X-Stream-Protocol-Version headers (comma-joined here);
    # none at all is a legacy client, served without naming a protocol.
    offered_versions = [
        v.strip() for v in headers.get("x-stream-protocol-version", "").split(",") if v.strip()
    ]
    upgrade_headers = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")]
    if offered_versions:
        if PORTFORWARD_PROTOCOL not in offered_versions:
            raise StatusError(
                403,
                "Forbidden",
                "unable to upgrade: unable to negotiate protocol: client supports "
                f"{offered_versions}, server supports [{PORTFORWARD_PROTOCOL}]",
            )
        upgrade_headers.append(("X-Stream-Protocol-Version", PORTFORWARD_PROTOCOL))

    async def plain(stream: trio.abc.Stream, trailing: bytes) -> None:
        try:
            await _SpdySession(_SocketTransport(stream, trailing), target).run()
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()

    return Upgrade(upgrade_headers, plain)
