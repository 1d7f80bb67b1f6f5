"""The ticket proxy server: HTTP/1.1 and WebSocket reverse proxy on trio, in front of the table.

What this module may do: socket I/O on its listeners and upstream connections, read the wall clock
for cookie timestamps (through `ProxyConfig.wall_clock`), and call the ticket authority. It knows
nothing of Kubernetes; apps and servers are set through `TicketProxy`'s methods.

Design, and why (issue 4 measured hypercorn + httpx at ~800 req/s and h11 at ~80 us a request):
- The request parser is httptools (llhttp, in C): strict (it refuses conflicting Content-Length
  and Transfer-Encoding, duplicate Content-Length, obsolete line folding, bare LF) and about ten
  times cheaper than h11. Its callbacks only append to lists.
- Sockets are raw and non-blocking; a task waits only when the kernel would block (see
  `_upstream.py`), so a proxied request costs two scheduler round trips, not six.
- One cancel scope per client connection, whose deadline moves with the phase (idle keep-alive,
  request head, body, backend answer), instead of a new timeout scope per operation.
- Response bodies with Content-Length are relayed as raw bytes, counted, never parsed; chunked
  ones are decoded by httptools and re-chunked, so a backend cannot smuggle bytes past the end
  of its response onto the client's connection. Nothing is buffered whole: bodies stream through
  64 KiB at a time in both directions.
- The ticket check on the hot path is a dict lookup of the verified cookie value and one of the
  ticket (`TicketAuthority.touch`); signatures are verified once per cookie value.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import re
import secrets
import socket
import time
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final, Protocol

import httptools
import orjson
import trio
from reactivex import Observable

from rxkube.proxy import _pages as pages
from rxkube.proxy._authority import AuthorityUnavailable, LocalTicketAuthority, TicketAuthority
from rxkube.proxy._config import (
    AppConfig,
    AppStatistics,
    ProxyConfig,
    ProxyStatistics,
    ServerSpec,
)
from rxkube.proxy._cookies import CookieRefused, TicketClaims, TicketSigner
from rxkube.proxy._frames import FrameGuard, FrameTooLarge
from rxkube.proxy._table import (
    AppAdded,
    AppRemoved,
    AppUpdated,
    Change,
    Granted,
    ServerAdded,
    ServerRef,
    ServerRemoved,
    ServerUpdated,
    TableEvent,
    TicketReleased,
    Waiting,
)
from rxkube.proxy._upstream import (
    UpstreamError,
    UpstreamPool,
    close_socket,
    recv,
    send_all,
)

__all__ = ["ProxyObserver", "TicketProxy", "open_ticket_proxy"]

_log = logging.getLogger("rxkube.proxy")

# Headers that describe one hop, not the message (RFC 9110 section 7.6.1), plus the ones the
# proxy sets itself. Matched on lowercased names.
_HOP_BY_HOP: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_FORWARDED: Final = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"forwarded"}
)
_QUEUE_PATH: Final = b"/.rxkube/queue"
_TOKEN: Final = re.compile(rb"^[A-Za-z0-9_-]{16,64}$")
_NO_BODY_STATUS: Final = frozenset({204, 304})
_PLAIN_TOKENS: Final = frozenset({b"keep-alive", b"close", b"upgrade"})
"""Connection options that name no other header (nothing more to strip)."""
_SWEEP_INTERVAL: Final = 0.1
_HOST: Final = re.compile(rb"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?$")


class _ClientError(Exception):
    """Answer the client with `page` (a complete response) and close the connection."""

    def __init__(self, page: bytes) -> None:
        self.page = page


class _TooManyHeaders(Exception):
    pass


class _UpstreamBroke(BrokenPipeError):
    """The backend broke its response after the head went out: only cutting the client's
    connection can tell the client (counted as an upstream error)."""


@dataclass(slots=True)
class _Request:
    method: bytes
    target: bytes
    headers: list[tuple[bytes, bytes]]
    http10: bool
    keep_alive: bool
    version_ok: bool = True
    body: deque[bytes] = field(default_factory=deque)
    complete: bool = False
    upgrade: bool = False
    leftover: bytes = b""


@dataclass(slots=True)
class _AppCounters:
    requests: int = 0
    upstream_errors: int = 0
    refused_cookies: int = 0
    waiting_pages: int = 0
    oversized_frames: int = 0
    unavailable: int = 0


class _App:
    """An app as the server needs it: its config, routing bytes and server pools."""

    __slots__ = (
        "config",
        "cookie_name",
        "counters",
        "name",
        "prefix",
        "servers",
        "wait_cookie_name",
    )

    def __init__(self, config: AppConfig) -> None:
        self.name = config.name
        self.config = config
        self.prefix = b"/" + config.name.encode() if config.routing == "path" else b""
        self.cookie_name = b"rxkube-ticket-" + config.name.encode()
        self.wait_cookie_name = b"rxkube-wait-" + config.name.encode()
        self.servers: dict[ServerRef, UpstreamPool] = {}
        self.counters = _AppCounters()


def _cookie(headers: list[bytes], name: bytes) -> bytes | None:
    for header in headers:
        start = 0
        while True:
            at = header.find(name, start)
            if at < 0:
                break
            end = at + len(name)
            if (at == 0 or header[at - 1] in b"; ") and header[end : end + 1] == b"=":
                stop = header.find(b";", end)
                return header[end + 1 : stop if stop >= 0 else len(header)].strip()
            start = end
    return None


def _escapes(path: bytes) -> bool:
    """True if the path has a `.` or `..` segment, raw or percent-encoded (up to thrice)."""
    for _ in range(3):
        for segment in re.split(rb"[/\\]", path):
            if segment in (b".", b".."):
                return True
        decoded = urllib.parse.unquote_to_bytes(path)
        if decoded == path:
            return False
        path = decoded
    return True  # still changing after three decodings: refuse rather than guess


def _is_trusted(networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network], ip: str) -> bool:
    if not networks:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


class _Listener:
    __slots__ = ("address", "app", "sock")

    def __init__(self, sock: socket.socket, app: str | None) -> None:
        self.sock = sock
        self.app = app
        # Kept: a closed socket (during shutdown) can no longer say where it was bound.
        self.address = _sockname(sock)


class ProxyObserver(Protocol):
    """Told about every proxied exchange (metrics: the runner's latency histogram and upstream
    error counter). Called on the proxy's hot path: do little, never block, never raise."""

    def request_done(self, app: str, seconds: float) -> None:
        """A backend answered: `seconds` from sending the request to its response head."""
        ...

    def upstream_failed(self, app: str, reason: str) -> None:
        """A request to the app's backend failed (502/504): `reason` is `connect` (could not
        connect or send), `send` (the body could not be sent), `response` (closed or broke
        before a complete response head), or `timeout` (no answer in time)."""
        ...


class TicketProxy:
    """A running ticket proxy. Made by `open_ticket_proxy`; see the package docstring."""

    def __init__(
        self,
        config: ProxyConfig,
        nursery: trio.Nursery,
        authority: TicketAuthority | None = None,
    ) -> None:
        self.config = config
        self.limits = config.limits
        self._nursery = nursery
        self._local: LocalTicketAuthority | None = None
        if authority is None:
            self._local = LocalTicketAuthority(trio.current_time)
            authority = self._local
        self.authority: TicketAuthority = authority
        self.pins: dict[tuple[str, str], set[_Connection]] = {}
        """Connections pinned to each held ticket (they count as its open connections)."""
        authority.changes.subscribe(self._on_change)
        keys = config.ticket_keys or (secrets.token_bytes(32),)
        self.signer = TicketSigner(keys, max_lifetime=config.cookie_max_lifetime)
        self.wall_clock: Callable[[], float] = config.wall_clock or time.time
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in config.trusted_proxies]
        self.apps: dict[str, _App] = {}
        self.path_apps: dict[bytes, _App] = {}
        self.host_apps: dict[bytes, _App] = {}
        self._app_listeners: dict[str, _Listener] = {}
        self._listeners: list[_Listener] = []
        self.connections: set[_Connection] = set()
        self.bad_requests = 0
        self.closing = False
        self._all_closed = trio.Event()
        self.now = trio.current_time()
        """Coarse clock for the upstream pools' idle times, advanced by `_sweeper`."""
        self._domain = (config.domain or "").lower().encode()
        self.observer: ProxyObserver | None = None
        """Told about every proxied exchange (set it, or pass `observer=` when opening)."""

    # -- the embedding API ---------------------------------------------------------------------

    @property
    def changes(self) -> Observable[Change]:
        """Tickets issued/released, waiters queued/left, servers and apps, `LoadChanged`."""
        return self.authority.changes

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Bound (host, port) of the shared listeners (port 0 resolved)."""
        return [listener.address for listener in self._listeners]

    def app_address(self, app: str) -> tuple[str, int] | None:
        listener = self._app_listeners.get(app)
        return None if listener is None else listener.address

    async def set_app(self, config: AppConfig) -> None:
        """Add an app, or update it in place (holders keep their tickets)."""
        current = self.apps.get(config.name)
        if current is not None and current.config.routing != config.routing:
            self._unroute(current)
        if config.routing == "host" and not self._domain:
            raise ValueError(
                f"app {config.name!r} uses host routing but ProxyConfig.domain is unset"
            )
        old_listen = None if current is None else current.config.listen
        if config.listen != old_listen:
            listener = self._app_listeners.pop(config.name, None)
            if listener is not None:
                close_socket(listener.sock)
            if config.listen is not None:
                sock = _bind(*config.listen)
                listener = _Listener(sock, config.name)
                self._app_listeners[config.name] = listener
                self._nursery.start_soon(self._accept, listener)
        if current is None:
            app = _App(config)
            self.apps[config.name] = app
            self.authority.configure([AppAdded(config.name, config.table_settings)])
        else:
            app = current
            app.config = config
            self.authority.configure([AppUpdated(config.name, config.table_settings)])
        if config.routing == "path":
            self.path_apps[config.name.encode()] = app
        else:
            self.host_apps[config.name.encode() + b"." + self._domain] = app

    async def remove_app(self, name: str) -> None:
        """Stop serving an app: its tickets and waiters are released, its listener closed."""
        app = self.apps.pop(name, None)
        if app is None:
            return
        self._unroute(app)
        listener = self._app_listeners.pop(name, None)
        if listener is not None:
            close_socket(listener.sock)
        for pool in app.servers.values():
            pool.close()
        self.authority.configure([AppRemoved(name)])

    def set_servers(self, app: str, servers: Iterable[ServerSpec]) -> None:
        """Make `servers` the app's whole server list (added, updated and removed as needed)."""
        state = self._app(app)
        wanted = {spec.ref: spec for spec in servers}
        events: list[TableEvent] = []
        for ref in [ref for ref in state.servers if ref not in wanted]:
            state.servers.pop(ref).close()
            events.append(ServerRemoved(app, ref))
        for spec in wanted.values():
            events.extend(self._upsert(state, spec))
        self.authority.configure(events)

    def set_server(self, app: str, spec: ServerSpec) -> None:
        """Add or update one server (by `spec.ref`)."""
        self.authority.configure(self._upsert(self._app(app), spec))

    def remove_server(self, app: str, ref: ServerRef) -> None:
        """Remove one server: its tickets are released; requests in flight finish."""
        state = self._app(app)
        pool = state.servers.pop(ref, None)
        if pool is not None:
            pool.close()
            self.authority.configure([ServerRemoved(app, ref)])

    def set_ticket_keys(self, keys: Sequence[bytes]) -> None:
        """Rotate cookie keys at run time: the first signs, all are accepted (see `_cookies`)."""
        self.signer.set_keys(keys)

    def statistics(self) -> ProxyStatistics:
        loads = {load.app: load for load in self.authority.loads()}
        apps = {}
        for name, app in self.apps.items():
            load = loads.get(name)
            c = app.counters
            apps[name] = AppStatistics(
                name=name,
                servers=len(app.servers),
                ready_servers=sum(1 for p in app.servers.values() if p.spec.ready),
                tickets=0 if load is None else load.tickets,
                free=0 if load is None else load.free,
                queued=0 if load is None else load.queued,
                requests=c.requests,
                upstream_errors=c.upstream_errors,
                refused_cookies=c.refused_cookies,
                waiting_pages=c.waiting_pages,
                oversized_frames=c.oversized_frames,
                unavailable=c.unavailable,
            )
        return ProxyStatistics(
            apps=apps,
            connections=len(self.connections),
            bad_requests=self.bad_requests,
            addresses=tuple(self.addresses),
        )

    # -- internals -----------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        # A released ticket's open-connection count goes with it. Its id may be issued again
        # (its user comes back under the same id): connections pinned to the old one must not
        # close the new one's count, so they are unpinned here, without a close.
        if change.__class__ is TicketReleased:
            assert isinstance(change, TicketReleased)
            for connection in self.pins.pop((change.app, change.ticket), ()):
                connection.pinned = None

    def _app(self, name: str) -> _App:
        try:
            return self.apps[name]
        except KeyError:
            raise KeyError(f"unknown app {name!r}: add it with set_app() first") from None

    def _unroute(self, app: _App) -> None:
        self.path_apps.pop(app.name.encode(), None)
        self.host_apps.pop(app.name.encode() + b"." + self._domain, None)

    def _upsert(self, state: _App, spec: ServerSpec) -> list[TableEvent]:
        pool = state.servers.get(spec.ref)
        if pool is None:
            state.servers[spec.ref] = UpstreamPool(spec, max_idle=self.limits.max_idle_upstream)
            return [ServerAdded(state.name, spec.ref, spec.ready, spec.capacity)]
        if pool.spec.address != spec.address or pool.spec.path != spec.path:
            pool.close()
            state.servers[spec.ref] = UpstreamPool(spec, max_idle=self.limits.max_idle_upstream)
        else:
            pool.spec = spec
        return [ServerUpdated(state.name, spec.ref, spec.ready, spec.capacity)]

    async def _listen(self, addresses: Sequence[tuple[str, int]]) -> None:
        for host, port in addresses:
            listener = _Listener(_bind(host, port), None)
            self._listeners.append(listener)
            self._nursery.start_soon(self._accept, listener)

    async def _accept(self, listener: _Listener) -> None:
        sock = listener.sock
        while True:
            try:
                client, address = sock.accept()
            except BlockingIOError:
                try:
                    await trio.lowlevel.wait_readable(sock)
                except (trio.ClosedResourceError, OSError):
                    return
                continue
            except OSError as error:
                if sock.fileno() < 0:
                    return
                # EMFILE and friends: back off briefly instead of spinning.
                if error.errno in (24, 23, 105, 12):
                    await trio.sleep(0.1)
                    continue
                continue
            client.setblocking(False)
            if client.family in (socket.AF_INET, socket.AF_INET6):
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._nursery.start_soon(self._serve, client, address, listener.app)

    async def _serve(self, sock: socket.socket, address: object, app: str | None) -> None:
        peer = address[0] if isinstance(address, tuple) else "unix"
        connection = _Connection(self, sock, str(peer), app)
        self.connections.add(connection)
        try:
            await connection.run()
        except Exception:
            # A bug must cost one connection, never the proxy and everyone else's.
            _log.exception("proxy connection from %s failed", peer)
        finally:
            self.connections.discard(connection)
            connection.release()
            if self.closing and not self.connections:
                self._all_closed.set()

    async def _sweeper(self) -> None:
        """Keep the coarse clock and cancel connections past their deadline.

        One loop for all connections replaces a trio deadline per request phase; timeouts are
        then never early and late by up to `_SWEEP_INTERVAL` (more while the loop is late),
        which is plenty for limits counted in seconds.
        """
        while True:
            await trio.sleep(_SWEEP_INTERVAL)
            now = self.now = trio.current_time()
            for connection in self.connections:
                if connection.expires <= now and not connection.input_waiting():
                    connection.scope.cancel()

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(self.config.tick_interval)
            self.authority.tick()

    async def _shutdown(self) -> None:
        self.closing = True
        for listener in [*self._listeners, *self._app_listeners.values()]:
            close_socket(listener.sock)
        for connection in list(self.connections):
            connection.close_when_idle()
        with trio.move_on_after(self.config.shutdown_grace):
            if self.connections:
                await self._all_closed.wait()
        for app in self.apps.values():
            for pool in app.servers.values():
                pool.close()


def _sockname(sock: socket.socket) -> tuple[str, int]:
    name = sock.getsockname()
    return (str(name[0]), int(name[1]))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise OSError(error.errno, f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


_IDLE, _HEAD, _BODY, _UPSTREAM, _RESPONSE, _TUNNEL = range(6)


class _Connection:
    """One client connection: reads requests one after another, routes and checks each."""

    def __init__(self, proxy: TicketProxy, sock: socket.socket, peer: str, app: str | None) -> None:
        self.proxy = proxy
        self.sock = sock
        self.peer = peer
        self.bound_app = app
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[_Request] = deque()
        self.current: _Request | None = None
        self._url: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self.in_head = True
        self.head_bytes = 0
        self.phase = _IDLE
        self.scope = trio.CancelScope()
        self.expires = math.inf
        self.pinned: tuple[str, str] | None = None
        self.upstream: socket.socket | None = None
        self.frame_guard: FrameGuard | None = None
        self.exchange_app: _App | None = None
        self.started = 0.0
        self.close_after = False
        self.eof = False
        self.trusted = _is_trusted(proxy.trusted, peer)
        host = f'"[{peer}]"' if ":" in peer else peer
        self.forwarded_for = host.encode()
        self.peer_bytes = peer.encode()

    # -- httptools callbacks (sync; they only record) ----------------------------------------

    def on_message_begin(self) -> None:
        self._url = []
        self._headers = []
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._head_size += len(name) + len(value) + 4
        if (
            len(self._headers) > self.proxy.limits.max_headers
            or self._head_size > self.proxy.limits.max_header_bytes
        ):
            raise _TooManyHeaders

    def on_headers_complete(self) -> None:
        parser = self.parser
        version = parser.get_http_version()
        request = _Request(
            parser.get_method(),
            b"".join(self._url),
            self._headers,
            version == "1.0",
            parser.should_keep_alive(),
            version == "1.1" or version == "1.0",
        )
        self.pending.append(request)
        self.current = request
        self.in_head = False
        self.head_bytes = 0

    def on_body(self, body: bytes) -> None:
        assert self.current is not None
        self.current.body.append(bytes(body))

    def on_message_complete(self) -> None:
        assert self.current is not None
        self.current.complete = True
        self.in_head = True

    # -- lifecycle ---------------------------------------------------------------------------

    def release(self) -> None:
        if self.pinned is not None:
            self.unpin()
        if self.upstream is not None:
            close_socket(self.upstream)
            self.upstream = None
        close_socket(self.sock)

    def unpin(self) -> None:
        key = self.pinned
        assert key is not None
        self.pinned = None
        self.proxy.authority.connection_closed(*key)
        pinned = self.proxy.pins.get(key)
        if pinned is not None:
            pinned.discard(self)
            if not pinned:
                del self.proxy.pins[key]

    def input_waiting(self) -> bool:
        """Whether an idle connection has a request waiting that this process has not read yet.

        Then the client is not idle: this process ran late (a busy machine) and its read is
        due. Cutting it would close a fresh connection whose request came in time, without an
        answer. Only idle connections are asked (one `MSG_PEEK`, once past their deadline)."""
        if self.phase != _IDLE:
            return False
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except OSError:  # nothing yet (BlockingIOError), or a reset: idle or gone
            return False

    def close_when_idle(self) -> None:
        self.close_after = True
        if self.phase == _IDLE:
            self.scope.cancel()

    async def run(self) -> None:
        with self.scope:
            try:
                while not self.close_after:
                    request = await self._next_request()
                    if request is None:
                        return
                    await self._handle(request)
            except _ClientError as error:
                self.proxy.bad_requests += 1
                self.expires = math.inf
                with trio.move_on_after(1.0):
                    await send_all(self.sock, error.page)
                    await self._linger()
                return
            except (BrokenPipeError, ConnectionResetError):
                return
        if self.scope.cancelled_caught:
            if self.phase == _HEAD:
                self.proxy.bad_requests += 1
                self._send_nowait(pages.error_page(408, "The request took too long.", close=True))
            elif self.phase == _UPSTREAM:
                if self.exchange_app is not None:
                    self.exchange_app.counters.upstream_errors += 1
                    observer = self.proxy.observer
                    if observer is not None:
                        observer.upstream_failed(self.exchange_app.name, "timeout")
                self._send_nowait(
                    pages.error_page(504, "The application did not answer in time.", close=True)
                )

    async def _linger(self) -> None:
        """Close gently: stop writing, read (and drop) what the client still sends, briefly.

        Closing a socket with unread input makes the kernel send a reset, which can destroy the
        error page before the client reads it (nginx's `lingering_close` does the same).
        """
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        with trio.move_on_after(0.5):
            for _ in range(16):
                if not await recv(self.sock):
                    return

    def _send_nowait(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.send(data)

    def _deadline(self, seconds: float) -> None:
        # A float store, not `scope.deadline = ...`: trio files every new deadline in a heap (a
        # context manager and a heap push, ~7 % of a proxied request when profiled); the
        # proxy's sweeper cancels overdue connections instead (see `TicketProxy._sweeper`).
        # From the real clock, not the sweeper's coarse one: a sweep that runs late (a busy
        # machine) left that one behind by more than its interval, and a deadline counted
        # from it would cut a client before its limit (~0.2 us a call, ~1 % of a request).
        self.expires = trio.current_time() + seconds

    async def _read(self) -> None:
        """Read once from the client and feed the parser."""
        data = await recv(self.sock)
        if not data:
            self.eof = True
            return
        if self.in_head:
            if self.phase == _IDLE:
                self.phase = _HEAD
                self._deadline(self.proxy.limits.head_timeout)
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            assert self.current is not None
            self.current.upgrade = True
            self.current.leftover = data[upgrade.args[0] :]
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _TooManyHeaders):
                raise _ClientError(
                    pages.error_page(431, "The request head is too large.", close=True)
                ) from None
            raise
        except httptools.HttpParserError as error:
            raise _ClientError(
                pages.error_page(400, f"Malformed HTTP request: {error}.", close=True)
            ) from None
        if self.in_head and self.head_bytes > self.proxy.limits.max_header_bytes:
            raise _ClientError(pages.error_page(431, "The request head is too large.", close=True))

    async def _next_request(self) -> _Request | None:
        if not self.pending:
            self.phase = _IDLE
            self._deadline(self.proxy.limits.keepalive_timeout)
            while not self.pending:
                await self._read()
                if self.eof:
                    if self.phase == _HEAD:
                        self.proxy.bad_requests += 1
                    return None
        self.phase = _BODY
        return self.pending.popleft()

    async def _body_chunks(self, request: _Request, limit: int | None) -> AsyncIterator[bytes]:
        """The request body as it arrives (Content-Length and chunked alike, de-chunked).

        Besides the pause limit (`body_timeout`), the body must keep an average rate of
        `min_body_rate` once it has taken `body_timeout`: a byte now and then (slow POST,
        "R-U-Dead-Yet") would otherwise hold this connection and one to the backend forever.
        """
        limits = self.proxy.limits
        min_rate = limits.min_body_rate
        started = trio.current_time()
        size = 0
        while True:
            while request.body:
                chunk = request.body.popleft()
                size += len(chunk)
                if limit is not None and size > limit:
                    raise _ClientError(
                        pages.error_page(413, "The request body is too large.", close=True)
                    )
                yield chunk
            if request.complete:
                return
            elapsed = trio.current_time() - started
            if min_rate is not None and elapsed > limits.body_timeout and size < min_rate * elapsed:
                raise _ClientError(
                    pages.error_page(408, "The request body arrives too slowly.", close=True)
                )
            self._deadline(limits.body_timeout)
            await self._read()
            if self.eof:
                raise BrokenPipeError("client closed during the request body")

    # -- one request -------------------------------------------------------------------------

    async def _handle(self, request: _Request) -> None:
        proxy = self.proxy
        if not request.keep_alive:
            self.close_after = True
        if not request.version_ok:
            # llhttp accepts any digit pair (HTTP/2.0 in plain text is a confused or hostile
            # client); the proxy speaks HTTP/1.x only, so that is what it forwards.
            raise _ClientError(
                pages.error_page(505, "Only HTTP/1.0 and HTTP/1.1 are served.", close=True)
            )
        if request.method == b"CONNECT":
            raise _ClientError(pages.error_page(405, "CONNECT is not supported.", close=True))
        target = request.target
        if not target.startswith(b"/"):
            raise _ClientError(
                pages.error_page(400, "The request target must be a path.", close=True)
            )
        path, _, query = target.partition(b"?")
        if (b"%" in path or b"/." in path or b"\\" in path) and _escapes(path):
            raise _ClientError(
                pages.error_page(400, "The path may not contain '.' or '..' segments.", close=True)
            )

        # One pass over the headers: what routing and the ticket need, and what to forward.
        host = b""
        cookies: list[bytes] = []
        connection_tokens: list[bytes] = []
        incoming_forwarded: list[tuple[bytes, bytes]] = []
        chunked = False
        has_length = False
        declared = b"0"
        expect = False
        forward: list[bytes] = []
        for name, value in request.headers:
            lower = name.lower()
            if lower == b"host":
                if host:
                    raise _ClientError(
                        pages.error_page(400, "More than one Host header.", close=True)
                    )
                host = value
            elif lower == b"cookie":
                cookies.append(value)
            elif lower in _HOP_BY_HOP:
                if lower == b"connection":
                    connection_tokens.extend(t.strip().lower() for t in value.split(b","))
                elif lower == b"transfer-encoding":
                    if request.http10:
                        # RFC 9112 section 6.1: framing of such a message is faulty.
                        raise _ClientError(
                            pages.error_page(
                                400, "Transfer-Encoding is not allowed in HTTP/1.0.", close=True
                            )
                        )
                    if value.strip().lower() != b"chunked":
                        raise _ClientError(
                            pages.error_page(
                                501, "Only chunked transfer coding is supported.", close=True
                            )
                        )
                    chunked = True
                continue
            elif lower in _FORWARDED:
                if self.trusted:
                    incoming_forwarded.append((lower, value))
                continue
            elif lower == b"content-length":
                has_length = True
                declared = value  # llhttp let only digits (and spaces around) through
                continue
            elif lower == b"expect":
                if value.strip().lower() != b"100-continue":
                    raise _ClientError(
                        pages.error_page(400, "Unsupported Expect header.", close=True)
                    )
                expect = True
                continue
            if b"_" in lower:
                # Dropped, as nginx does by default: some servers read '_' as '-', so a
                # `Transfer_Encoding` we did not frame by could frame the body for them.
                continue
            forward.append(b"%s: %s\r\n" % (name, value))
        if host and not _HOST.match(host):
            raise _ClientError(pages.error_page(400, "Malformed Host header.", close=True))
        if not host and not request.http10:
            raise _ClientError(
                pages.error_page(400, "HTTP/1.1 requests need a Host header.", close=True)
            )

        # Route: the app's own listener, else host mode, else the first path segment.
        app: _App | None
        rest = path
        by_path = False
        if self.bound_app is not None:
            app = proxy.apps.get(self.bound_app)
        else:
            app = None
            if proxy.host_apps:
                app = proxy.host_apps.get(
                    host.rpartition(b":")[0].lower() if b":" in host else host.lower()
                )
            if app is None:
                end = path.find(b"/", 1)
                name = path[1:] if end < 0 else path[1:end]
                app = proxy.path_apps.get(name)
                if app is not None:
                    if end < 0:
                        location = path + b"/" + (b"?" + query if query else b"")
                        await self._send_simple(
                            pages.response(308, b"", headers=[b"Location: " + location])
                        )
                        return
                    rest = path[end:]
                    by_path = True
        if app is None:
            proxy.bad_requests += 1
            await self._send_simple(
                pages.error_page(404, "No application is served here.", close=self.close_after)
            )
            return
        base = app.prefix if by_path else b""
        limit = app.config.max_body_size
        if has_length and limit is not None and int(declared) > limit:
            raise _ClientError(
                pages.error_page(413, "The request body is too large.", close=True)
            )  # refused before a byte of it is read or forwarded
        if rest == _QUEUE_PATH:
            await self._queue_events(app, cookies)
            return

        # The ticket: a valid cookie whose ticket is still held, else a new ticket or the queue.
        name_str = app.name
        authority = proxy.authority
        set_cookie: bytes | None = None
        server: ServerRef | None = None
        ticket: str | None = None
        prefer: ServerRef | None = None
        claims: TicketClaims | None = None
        cookie_value = _cookie(cookies, app.cookie_name) if cookies else None
        if cookie_value:
            try:
                claims = proxy.signer.verify(
                    cookie_value.decode("latin-1"), app=name_str, now=proxy.wall_clock()
                )
            except CookieRefused as refused:
                app.counters.refused_cookies += 1
                proxy.bad_requests += 1
                clear = b"Set-Cookie: %s=; Path=%s/; Max-Age=0; HttpOnly; SameSite=Lax" % (
                    app.cookie_name,
                    base,
                )
                await self._send_simple(
                    pages.error_page(
                        403,
                        f"Your ticket for {name_str} is not valid ({refused.reason}). "
                        "It has been removed: reload the page to get a new one.",
                        headers=[clear],
                        close=self.close_after,
                    )
                )
                return
            server = authority.touch(name_str, claims.ticket)
            if server is None:
                prefer = claims.server  # released or a restart: try the same pod first
            else:
                ticket = claims.ticket
        if ticket is None:
            if claims is not None:
                # The signed ticket id is this user's identity: asking again under it is
                # idempotent (a replica whose copy of the tickets lags gets the held ticket
                # back, not a second one), and after a restart it re-admits the user to the
                # pod the cookie names if that pod has room (the table's `prefer`).
                client = claims.ticket
            else:
                waiter = _cookie(cookies, app.wait_cookie_name) if cookies else None
                client = (
                    waiter.decode()
                    if waiter and _TOKEN.match(waiter)
                    else secrets.token_urlsafe(16)
                )
            try:
                decision = await authority.request(name_str, client, prefer=prefer)
            except AuthorityUnavailable as error:
                app.counters.unavailable += 1
                _log.warning("no ticket for app %s: %s", name_str, error)
                await self._send_simple(
                    pages.error_page(
                        503,
                        f"Tickets for {name_str} cannot be handed out this moment; "
                        "please try again in a few seconds.",
                        headers=[b"Retry-After: 2"],
                        close=self.close_after,
                    )
                )
                return
            if not isinstance(decision, Granted):
                app.counters.waiting_pages += 1
                page = self._waiting(app, base, client, decision, close=self.close_after)
                await self._send_simple(page)
                return
            ticket, server = decision.ticket, decision.server
            if claims is None or claims.ticket != ticket or claims.server != server:
                set_cookie = self._ticket_cookie(app, base, ticket, server, incoming_forwarded)
            # else: re-admitted where the cookie says; it stays valid until it expires (a
            # restart must not extend a ticket's maximum lifetime)
        assert server is not None
        pool = app.servers.get(server)
        if pool is None:  # pragma: no cover - the table and the pools change together
            app.counters.upstream_errors += 1
            await self._send_simple(
                pages.error_page(502, "The application's server is gone.", close=True)
            )
            return
        if self.pinned != (name_str, ticket):
            if self.pinned is not None:
                self.unpin()
            if authority.connection_opened(name_str, ticket):
                self.pinned = key = (name_str, ticket)
                pinned = proxy.pins.get(key)
                if pinned is None:
                    proxy.pins[key] = {self}
                else:
                    pinned.add(self)

        # The request head for the backend.
        upstream_target = pool.path_prefix + (rest if app.config.strip_prefix else path)
        if query:
            upstream_target += b"?" + query
        scheme = self._scheme(incoming_forwarded)
        forward.append(self._forwarded_headers(host, scheme, incoming_forwarded))
        if not host:  # an HTTP/1.0 client may omit Host; HTTP/1.1 upstream needs one
            forward.append(b"Host: %s\r\n" % pool.spec.address.encode())
        if connection_tokens and not _PLAIN_TOKENS.issuperset(connection_tokens):
            named = set(connection_tokens) - _PLAIN_TOKENS
            forward = [h for h in forward if h.split(b":", 1)[0].lower() not in named]
        upgrade = request.upgrade and b"upgrade" in connection_tokens
        if upgrade:
            for name, value in request.headers:
                if name.lower() == b"upgrade":
                    forward.append(b"Upgrade: %s\r\nConnection: Upgrade\r\n" % value)
                    limit = app.config.max_websocket_frame
                    if limit is not None and b"websocket" in value.lower():
                        self.frame_guard = FrameGuard(limit)
                    break
        elif request.upgrade:
            self.close_after = True
        if chunked:
            forward.append(b"Transfer-Encoding: chunked\r\n")
        elif has_length:
            forward.append(b"Content-Length: %d\r\n" % int(declared))
        head = b"%s %s HTTP/1.1\r\n%s\r\n" % (request.method, upstream_target, b"".join(forward))
        has_body = chunked or has_length
        if expect and has_body:
            await send_all(self.sock, b"HTTP/1.1 100 Continue\r\n\r\n")
        app.counters.requests += 1
        await self._exchange(app, pool, request, head, has_body, chunked, set_cookie, upgrade)

    def _scheme(self, incoming: list[tuple[bytes, bytes]]) -> bytes:
        for name, value in incoming:
            if name == b"x-forwarded-proto":
                return value.split(b",")[0].strip().lower()
        return b"http"

    def _forwarded_headers(
        self, host: bytes, scheme: bytes, incoming: list[tuple[bytes, bytes]]
    ) -> bytes:
        xff = self.peer_bytes
        fwd = b'for=%s;host="%s";proto=%s' % (self.forwarded_for, host, scheme)
        x_host = host
        for name, value in incoming:  # only from trusted proxies
            if name == b"x-forwarded-for":
                xff = value + b", " + xff
            elif name == b"forwarded":
                fwd = value + b", " + fwd
            elif name == b"x-forwarded-host":
                x_host = value
        return (
            b"X-Forwarded-For: %s\r\nX-Forwarded-Proto: %s\r\n"
            b"X-Forwarded-Host: %s\r\nForwarded: %s\r\n" % (xff, scheme, x_host, fwd)
        )

    def _ticket_cookie(
        self,
        app: _App,
        base: bytes,
        ticket: str,
        server: ServerRef,
        incoming: list[tuple[bytes, bytes]],
    ) -> bytes:
        proxy = self.proxy
        value = proxy.signer.sign(app.name, server, ticket, issued_at=proxy.wall_clock())
        secure = b"; Secure" if self._scheme(incoming) == b"https" else b""
        return (
            b"Set-Cookie: %s=%s; Path=%s/; HttpOnly; SameSite=Lax%s\r\n"
            b"Set-Cookie: %s=; Path=%s/; Max-Age=0\r\n"
            % (app.cookie_name, value.encode(), base, secure, app.wait_cookie_name, base)
        )

    def _waiting(
        self, app: _App, base: bytes, client: str, decision: Waiting, *, close: bool
    ) -> bytes:
        page = pages.waiting_page(
            app.name,
            position=decision.position,
            queued=decision.queued,
            refresh=app.config.refresh_interval,
            events_url=(base + _QUEUE_PATH).decode(),
        )
        cookie = b"Set-Cookie: %s=%s; Path=%s/; HttpOnly; SameSite=Lax\r\n" % (
            app.wait_cookie_name,
            client.encode(),
            base,
        )
        head, _, body = page.partition(b"\r\n\r\n")
        connection = b"Connection: close\r\n" if close else b""
        return head + b"\r\n" + cookie + connection + b"\r\n" + body

    async def _send_simple(self, page: bytes) -> None:
        self.phase = _RESPONSE
        self._deadline(self.proxy.limits.body_timeout)
        if self.current is not None and not self.current.complete:
            # The request body was not read: rather than drain an unknown amount, close.
            self.close_after = True
            if b"\r\nConnection: close\r\n" not in page.partition(b"\r\n\r\n")[0] + b"\r\n":
                page = page.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
        await send_all(self.sock, page)

    async def _queue_events(self, app: _App, cookies: list[bytes]) -> None:
        """Server-sent events with the waiter's queue position; `ready` when it may come in."""
        waiter = _cookie(cookies, app.wait_cookie_name) if cookies else None
        if not waiter or not _TOKEN.match(waiter):
            await self._send_simple(
                pages.error_page(404, "You are not in the queue.", close=self.close_after)
            )
            return
        self.close_after = True
        self.phase = _TUNNEL
        self.expires = math.inf
        await send_all(
            self.sock,
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
            b"Connection: close\r\n\r\n",
        )
        client = waiter.decode()
        last = None
        while not self.proxy.closing:
            try:
                decision = await self.proxy.authority.request(app.name, client)
            except AuthorityUnavailable:
                await send_all(self.sock, b": no decision now, retrying\n\n")
                await trio.sleep(1.0)
                continue
            if isinstance(decision, Granted):
                await send_all(self.sock, b"event: ready\ndata: {}\n\n")
                return
            now = (decision.position, decision.queued)
            if now != last:
                data = orjson.dumps({"position": decision.position, "queued": decision.queued})
                await send_all(self.sock, b"event: position\ndata: %s\n\n" % data)
                last = now
            else:
                await send_all(self.sock, b": keep-alive\n\n")
            await trio.sleep(min(1.0, app.config.refresh_interval / 2))

    # -- the exchange with the backend ---------------------------------------------------------

    async def _exchange(
        self,
        app: _App,
        pool: UpstreamPool,
        request: _Request,
        head: bytes,
        has_body: bool,
        chunked: bool,
        set_cookie: bytes | None,
        upgrade: bool,
    ) -> None:
        limits = self.proxy.limits
        self.phase = _UPSTREAM
        self.exchange_app = app
        self.started = trio.current_time()
        self._deadline(limits.connect_timeout)
        for attempt in (0, 1):
            upstream = pool.checkout(self.proxy.now)
            reused = upstream is not None
            try:
                if upstream is None:
                    upstream = await pool.connect()
                self.upstream = upstream
                await send_all(upstream, head)
            except (OSError, UpstreamError):
                if reused and attempt == 0 and not has_body:
                    continue  # the backend closed an idle connection as we reused it
                await self._bad_gateway(app, "connect")
                return
            if has_body:
                self.phase = _BODY
                try:
                    async for chunk in self._body_chunks(request, app.config.max_body_size):
                        if chunked:
                            chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
                        self._deadline(limits.body_timeout)
                        await send_all(upstream, chunk)
                    if chunked:
                        await send_all(upstream, b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError) as error:
                    if error.__class__ is BrokenPipeError and self.eof:
                        raise
                    await self._bad_gateway(app, "send")
                    return
                self.phase = _UPSTREAM
            self._deadline(limits.upstream_timeout)
            try:
                result = await self._relay_response(
                    app, pool, upstream, request, set_cookie, upgrade
                )
            except _UpstreamBroke:
                app.counters.upstream_errors += 1
                observer = self.proxy.observer
                if observer is not None:
                    observer.upstream_failed(app.name, "response")
                raise
            if result == "retry" and attempt == 0 and reused and not has_body:
                close_socket(upstream)
                self.upstream = None
                continue
            if result == "retry":
                await self._bad_gateway(app, "response")
            return

    async def _bad_gateway(self, app: _App, reason: str) -> None:
        app.counters.upstream_errors += 1
        observer = self.proxy.observer
        if observer is not None:
            observer.upstream_failed(app.name, reason)
        if self.upstream is not None:
            close_socket(self.upstream)
            self.upstream = None
        self.close_after = True
        await self._send_simple(
            pages.error_page(502, "The application is not reachable right now.", close=True)
        )

    async def _relay_response(
        self,
        app: _App,
        pool: UpstreamPool,
        upstream: socket.socket,
        request: _Request,
        set_cookie: bytes | None,
        upgrade: bool,
    ) -> str:
        """Relay one response; 'done', or 'retry' if the backend closed before answering."""
        limits = self.proxy.limits
        buffer = b""
        while True:
            data = await recv(upstream)
            if not data:
                return "retry" if not buffer else self._abort_upstream()
            buffer += data
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                response = _Response()
                parser = httptools.HttpResponseParser(response)
                try:
                    parser.feed_data(buffer[: end + 4])
                except httptools.HttpParserUpgrade:
                    pass
                except httptools.HttpParserError:
                    return self._abort_upstream()
                status = parser.get_status_code()
                if 100 <= status < 200 and status != 101:
                    await send_all(self.sock, buffer[: end + 4])  # 103 Early Hints and the like
                    buffer = buffer[end + 4 :]
                    continue
                observer = self.proxy.observer
                if observer is not None:
                    observer.request_done(app.name, trio.current_time() - self.started)
                break
            if len(buffer) > limits.max_header_bytes * 4:
                return self._abort_upstream()
        body = buffer[end + 4 :]
        keep_upstream = parser.should_keep_alive()
        out = [b"HTTP/1.1 %d %s\r\n" % (status, response.reason)]
        length = -1
        response_chunked = False
        tokens: list[bytes] = []
        upgrade_to: bytes | None = None
        for name, value in response.headers:
            lower = name.lower()
            if lower in _HOP_BY_HOP:
                if lower == b"transfer-encoding":
                    response_chunked = b"chunked" in value.lower()
                elif lower == b"connection":
                    tokens.extend(t.strip().lower() for t in value.split(b","))
                elif lower == b"upgrade":
                    upgrade_to = value
                continue
            if lower == b"content-length":
                length = int(value)
            out.append(b"%s: %s\r\n" % (name, value))
        if tokens and not _PLAIN_TOKENS.issuperset(tokens):
            out = [
                line
                for line in out
                if line.split(b":", 1)[0].lower() not in tokens or line.startswith(b"HTTP/")
            ]
        if set_cookie is not None:
            out.append(set_cookie)
        if status == 101 and upgrade_to is not None:
            out.append(b"Upgrade: %s\r\nConnection: Upgrade\r\n" % upgrade_to)

        if status == 101:
            if not upgrade:
                return self._abort_upstream()
            out.append(b"\r\n")
            await send_all(self.sock, b"".join(out))
            await self._tunnel(app, upstream, request.leftover, body)
            return "done"
        if upgrade:
            self.close_after = True  # the upgrade was refused: do not reuse this connection

        no_body = request.method == b"HEAD" or status in _NO_BODY_STATUS
        until_close = not no_body and not response_chunked and length < 0
        if until_close or (response_chunked and request.http10):
            self.close_after = True
            keep_upstream = False
        elif response_chunked:
            out.append(b"Transfer-Encoding: chunked\r\n")
        if self.close_after:
            out.append(b"Connection: close\r\n")
        out.append(b"\r\n")
        head = b"".join(out)

        self.phase = _RESPONSE
        if no_body:
            await send_all(self.sock, head)
            if body:
                keep_upstream = False
        elif response_chunked:
            usable = await self._relay_chunked(
                upstream, parser, response, head, body, request.http10
            )
            keep_upstream = keep_upstream and usable
        elif length >= 0:
            if len(body) >= length:
                if len(body) > length:
                    keep_upstream = False
                await send_all(self.sock, head + body[:length] if body else head)
            else:
                await send_all(self.sock, head + body)
                remaining = length - len(body)
                while remaining > 0:
                    self._deadline(limits.upstream_timeout)
                    data = await recv(upstream)
                    if not data:
                        return self._abort_upstream()
                    if len(data) > remaining:
                        data = data[:remaining]
                        keep_upstream = False
                    remaining -= len(data)
                    self._deadline(limits.body_timeout)
                    await send_all(self.sock, data)
        else:
            await send_all(self.sock, head + body)
            while True:
                self._deadline(limits.upstream_timeout)
                data = await recv(upstream)
                if not data:
                    break
                self._deadline(limits.body_timeout)
                await send_all(self.sock, data)
        self.upstream = None
        if keep_upstream:
            pool.checkin(upstream, self.proxy.now)
        else:
            close_socket(upstream)
        return "done"

    def _abort_upstream(self) -> str:
        """The backend broke the response: the client connection cannot be trusted either."""
        self.close_after = True
        if self.phase == _RESPONSE:
            # Part of the response went out: cut the connection so the client sees it failed.
            raise _UpstreamBroke("backend failed mid-response")
        return "retry"

    async def _relay_chunked(
        self,
        upstream: socket.socket,
        parser: httptools.HttpResponseParser,
        sink: _Response,
        head: bytes,
        body: bytes,
        http10: bool,
    ) -> bool:
        """Decode with httptools and re-chunk; True if the backend connection stays usable."""
        pending = head
        data = body
        limits = self.proxy.limits
        while True:
            if data:
                try:
                    parser.feed_data(data)
                except httptools.HttpParserError:
                    raise _UpstreamBroke("backend sent a malformed chunked body") from None
            out = [pending] if pending else []
            for chunk in sink.chunks:
                out.append(chunk if http10 else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sink.chunks.clear()
            if sink.complete and not http10:
                out.append(b"0\r\n\r\n")
            if out:
                self._deadline(limits.body_timeout)
                await send_all(self.sock, b"".join(out))
            pending = b""
            if sink.complete:
                return not sink.extra
            self._deadline(limits.upstream_timeout)
            data = await recv(upstream)
            if not data:
                raise _UpstreamBroke("backend closed mid-response")

    async def _tunnel(
        self, app: _App, upstream: socket.socket, from_client: bytes, from_upstream: bytes
    ) -> None:
        """After a 101: relay bytes both ways until both sides are done.

        A WebSocket's client frames pass the app's `FrameGuard`; a frame over the limit cuts
        both connections before its head reaches the backend (the client sees close code 1006:
        a close frame of our own could land inside a backend frame on its way to the client).
        """
        self.phase = _TUNNEL
        self.expires = math.inf
        self.close_after = True
        self.upstream = upstream

        async def pump(
            source: socket.socket, sink: socket.socket, first: bytes, guard: FrameGuard | None
        ) -> None:
            try:
                if first:
                    if guard is not None:
                        guard.feed(first)
                    await send_all(sink, first)
                while True:
                    data = await recv(source)
                    if not data:
                        break
                    if guard is not None:
                        guard.feed(data)
                    await send_all(sink, data)
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
            except OSError:
                nursery.cancel_scope.cancel()
            except FrameTooLarge as error:
                app.counters.oversized_frames += 1
                _log.warning("app %s: WebSocket from %s cut: %s", app.name, self.peer, error)
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, self.sock, upstream, from_client, self.frame_guard)
            nursery.start_soon(pump, upstream, self.sock, from_upstream, None)


class _Response:
    """httptools callbacks for one backend response (the head; a chunked body, de-chunked)."""

    __slots__ = ("begun", "chunks", "complete", "extra", "headers", "reason")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.chunks: list[bytes] = []
        self.begun = False
        self.complete = False
        self.extra = False

    def on_message_begin(self) -> None:
        if self.begun:
            self.extra = True
        self.begun = True

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        if not self.complete:
            self.chunks.append(bytes(body))

    def on_message_complete(self) -> None:
        self.complete = True


@asynccontextmanager
async def open_ticket_proxy(
    config: ProxyConfig | None = None,
    *,
    listen: Sequence[tuple[str, int]] = (("127.0.0.1", 0),),
    authority: TicketAuthority | None = None,
    observer: ProxyObserver | None = None,
) -> AsyncIterator[TicketProxy]:
    """Run a ticket proxy in a nursery of its own for the duration of the block.

    On exit it stops accepting, lets open requests finish within `config.shutdown_grace`, then
    closes everything. `authority` defaults to a `LocalTicketAuthority` on `trio.current_time`.
    `observer` is told about every proxied exchange (latency, upstream failures).
    """
    config = ProxyConfig() if config is None else config
    async with trio.open_nursery() as nursery:
        proxy = TicketProxy(config, nursery, authority)
        proxy.observer = observer
        try:
            await proxy._listen(listen)
            nursery.start_soon(proxy._ticker)
            nursery.start_soon(proxy._sweeper)
            yield proxy
        finally:
            with trio.CancelScope(shield=True):
                await proxy._shutdown()
            nursery.cancel_scope.cancel()
            if proxy._local is not None:
                proxy._local.complete()
