"""Ticket accounting across proxy replicas: one replica (the leader) decides, the others follow.

Why this design (issue 10; docs/reliability.md has the failure modes and figures). The ticket
table needs one writer for `tickets <= capacity` to hold without distributed locking. Keeping
counts in the API server with optimistic concurrency would put a write (and on conflict a retry)
on every ticket issue and an update on every idle release, and still needs a local copy for the
per-request check. So one replica owns the table and answers the rare questions (a new ticket, a
poll from the waiting room) over a small HTTP API; every replica keeps a copy of who holds which
ticket, fed by the leader's stream of changes, and answers the per-request question ("does this
cookie's ticket hold a slot, and where?") from that copy without a round trip. Which replica
leads is decided outside (the controllers layer holds a coordination.k8s.io Lease) and told here
with `lead()` and `follow(address)`: this module knows nothing of Kubernetes.

The leader's API (HTTP/1.1, JSON, `Authorization: Bearer <HMAC of the ticket key>`):
    POST /v1/request     {app, client, prefer}     -> {granted | waiting}
    POST /v1/give-back   {app, ticket};  POST /v1/give-up {app, client}
    POST /v1/report      {tickets: [[app, ticket, server, idle], ...]} -> {refused: [...]}
    GET  /v1/changes     newline-delimited JSON: a snapshot, then every change, heartbeats
    GET  /v1/health      {identity, role, leader} (no token needed)
A replica that does not lead answers 503 with the leader it follows, if any.

Activity. A follower reports, about once a tick, the tickets its users touched since the last
report and those it holds connections for (`idle` = 0). The leader's idle release (I7) then
sees every replica's users. The same report, sent in full after every snapshot, re-registers a
follower's live tickets with a new leader (I8: restored only where there is room).

Fail-over. `lead()` on a follower rebuilds the table from what it has: the apps and servers its
own embedder configured (every replica watches the same cluster), the tickets and queue order of
its copy of the old leader's state, and its own users' live tickets; then it serves. Followers
told to `follow()` the new leader send their full reports, which restore tickets that the copy
missed (issued in the instants before the old leader died). Users holding tickets never wait on
the leader: while no leader answers, only new tickets and waiting-room polls get 503.

I/O: a TCP listener (the API), an httpx client to the leader, all in the nursery of
`open_replicated_authority`. Time comes from the injected clock.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Final, Literal, TypeVar

import h11
import httpx
import msgspec
import trio
from reactivex import Observable, abc
from reactivex.subject import Subject

from rxkube.proxy import _wire as wire
from rxkube.proxy._authority import AuthorityUnavailable, LocalTicketAuthority
from rxkube.proxy._table import (
    AppAdded,
    AppLoad,
    AppRemoved,
    AppSettings,
    AppUpdated,
    Change,
    Decision,
    Granted,
    LoadChanged,
    ServerAdded,
    ServerChanged,
    ServerRef,
    ServerRemoved,
    ServerUpdated,
    TableEvent,
    TicketIssued,
    TicketReleased,
    TicketRestored,
    TicketTable,
    WaiterLeft,
    WaiterQueued,
)

__all__ = ["AuthorityStatistics", "ReplicatedTicketAuthority", "open_replicated_authority"]

_log = logging.getLogger("rxkube.proxy.replica")

Role = Literal["leader", "follower"]
_T = TypeVar("_T")

_MAX_HEAD: Final = 16 * 1024
_MAX_BODY: Final = 16 * 2**20
_IDLE_PEER: Final = 120.0
"""A peer connection with no request for this long is closed."""
_FEED_BUFFER: Final = 4096
"""Changes queued for one follower; a follower this far behind is cut and starts again from a
snapshot (memory stays bounded, and a snapshot is cheaper than a backlog)."""
_RETRY_MIN: Final = 0.05
_RETRY_MAX: Final = 2.0
_TOKEN_CONTEXT: Final = b"rxkube-ticket-authority-v1"


def _token(key: bytes) -> str:
    return hmac.new(key, _TOKEN_CONTEXT, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthorityStatistics:
    identity: str
    role: Role
    leader: str | None
    """The address this replica follows (None while it leads, or before it is told)."""
    address: tuple[str, int]
    """Where this replica's API listens."""
    synced: bool
    """Leading, or following with the leader's snapshot in hand and its feed up."""
    followers: int
    """Change feeds open now (leader)."""
    mirrored_tickets: int
    """Tickets in this follower's copy of the leader's table."""
    live_tickets: int
    """Tickets this follower's users used within their idle timeout, or hold connections for."""
    reports: int
    """Activity reports the leader accepted."""
    refused: int
    """Reported tickets the leader refused (no room where they were, or the server is gone)."""
    promotions: int
    restored: int
    """Tickets restored by the last promotion."""
    last_promotion: float | None
    """Seconds (of the injected clock) the last `lead()` took to rebuild the table."""


@dataclass(slots=True)
class _AppConfig:
    settings: AppSettings
    servers: dict[ServerRef, tuple[bool, int | None]]


class ReplicatedTicketAuthority:
    """A `TicketAuthority` for one of several proxy replicas. Made by `open_replicated_authority`.

    It starts as a follower of nobody (new tickets get 503) until told `lead()` or
    `follow(address)`; the controllers layer calls those from its Lease.
    """

    def __init__(
        self,
        nursery: trio.Nursery,
        listener: trio.SocketListener,
        *,
        keys: Sequence[bytes],
        identity: str,
        clock: Callable[[], float],
        heartbeat: float,
        timeout: float,
    ) -> None:
        self._nursery = nursery
        host, port = listener.socket.getsockname()[:2]
        self.address: tuple[str, int] = (str(host), int(port))
        self.identity = identity or f"{host}:{port}"
        self._clock = clock
        self._heartbeat = heartbeat
        self._timeout = timeout
        self._tokens: set[str] = set()
        self._token = ""
        self.set_keys(keys)
        self._changes: Subject[Change] = Subject()
        self._table = TicketTable()
        self._config: dict[str, _AppConfig] = {}
        # Leading:
        self._local: LocalTicketAuthority | None = None
        self._local_subscription: abc.DisposableBase | None = None
        self._feeds: set[trio.MemorySendChannel[bytes]] = set()
        # Following:
        self._leader: str | None = None
        self._client: httpx.AsyncClient | None = None
        self._follow_scope: trio.CancelScope | None = None
        self._synced = False
        self._synced_event = trio.Event()
        self._mirror: dict[str, dict[str, ServerRef]] = {}
        self._queue: dict[str, dict[str, None]] = {}
        self._loads: dict[str, AppLoad] = {}
        self._recent: dict[tuple[str, str], tuple[ServerRef, float]] = {}
        self._open: dict[tuple[str, str], int] = {}
        self._report_all = True
        self._reported_at = -math.inf
        self._wake = trio.Event()
        # Counters:
        self._reports = 0
        self._refused = 0
        self._promotions = 0
        self._restored = 0
        self._last_promotion: float | None = None

    # -- roles (called by whoever holds the Lease) ----------------------------------------------

    @property
    def role(self) -> Role:
        return "leader" if self._local is not None else "follower"

    @property
    def leader(self) -> str | None:
        """The address followed; None while leading or before `follow()`."""
        return self._leader

    def lead(self) -> None:
        """Become the authority: rebuild the table from the copy and this replica's users."""
        if self._local is not None:
            return
        started = self._clock()
        self._stop_following()
        local = LocalTicketAuthority(self._clock, self._table)
        self._local_subscription = local.changes.subscribe(self._on_local_change)
        self._local = local
        now = self._clock()
        restored = 0
        for app, tickets in self._mirror.items():
            for ticket, server in tickets.items():
                restored += local.report(app, ticket, server, idle=self._idle((app, ticket), now))
        for key, (server, _) in self._recent.items():
            app, ticket = key
            if app in self._table.apps and self._table.ticket_server(app, ticket) is None:
                restored += local.report(app, ticket, server, idle=self._idle(key, now))
        for app, waiters in self._queue.items():
            for client in waiters:
                local.report_waiter(app, client)
        for (app, ticket), count in self._open.items():
            if self._table.ticket_server(app, ticket) is not None:
                for _ in range(count):
                    local.connection_opened(app, ticket)
        self._mirror, self._queue, self._loads = {}, {}, {}
        self._recent.clear()
        self._open.clear()
        self._promotions += 1
        self._restored = restored
        self._last_promotion = self._clock() - started
        self._synced_event.set()  # `wait_synced` waits for leading too
        _log.info("%s leads the ticket table now: %d tickets restored", self.identity, restored)

    def follow(self, address: str) -> None:
        """Follow the leader at `address` ("host:port" of its API)."""
        if self._local is None and self._leader == address:
            return
        if self._local is not None:
            self._step_down()
        self._stop_following()
        self._leader = address
        client = httpx.AsyncClient(
            base_url=f"http://{address}",
            headers={"authorization": f"Bearer {self._token}"},
            timeout=httpx.Timeout(self._timeout),
            trust_env=False,  # replica to replica: never through an HTTP(S)_PROXY
        )
        self._client = client
        self._synced = False
        if self._synced_event.is_set():  # an unset one may have waiters: keep it
            self._synced_event = trio.Event()
        scope = trio.CancelScope()
        self._follow_scope = scope
        self._nursery.start_soon(self._follow, address, client, scope)

    def stand_by(self) -> None:
        """Neither lead nor follow: the Lease was lost (or has no holder) and who leads next is
        not known yet. Holders go on from the copy (a leader's table becomes the copy, handed
        to the next leader in the first report); new tickets get 503 until `lead()` or
        `follow()`. Idempotent."""
        if self._local is not None:
            self._step_down()
        if self._leader is not None or self._follow_scope is not None:
            _log.info("%s stands by: no leader of the ticket table is known", self.identity)
        self._stop_following()
        if self._synced_event.is_set():
            self._synced_event = trio.Event()

    async def wait_synced(self) -> None:
        """Wait until this replica leads, or holds a snapshot of its leader's table."""
        if self._local is None and not self._synced:
            await self._synced_event.wait()

    def set_keys(self, keys: Sequence[bytes]) -> None:
        """The shared ticket keys (first signs): the API's token derives from them."""
        if not keys:
            raise ValueError("replicas need a shared ticket key (ProxyConfig.ticket_keys)")
        self._tokens = {_token(key) for key in keys}
        self._token = _token(keys[0])

    def statistics(self) -> AuthorityStatistics:
        return AuthorityStatistics(
            identity=self.identity,
            role=self.role,
            leader=self._leader,
            address=self.address,
            synced=self._local is not None or self._synced,
            followers=len(self._feeds),
            mirrored_tickets=sum(len(t) for t in self._mirror.values()),
            live_tickets=len(self._recent),
            reports=self._reports,
            refused=self._refused,
            promotions=self._promotions,
            restored=self._restored,
            last_promotion=self._last_promotion,
        )

    # -- TicketAuthority -------------------------------------------------------------------------

    @property
    def changes(self) -> Observable[Change]:
        """The leader's changes, wherever read (a follower relays them, stamped with its clock)."""
        return self._changes

    def configure(self, events: Sequence[TableEvent]) -> None:
        # Every replica's embedder watches the same cluster: each keeps its own table's apps and
        # servers, which the leader's table is and a promoted follower's table becomes.
        local = self._local
        for event in events:
            if local is not None:
                local.configure([event])
            else:
                self._table.apply(event, self._clock())
            self._remember(event)

    async def request(self, app: str, client: str, *, prefer: ServerRef | None = None) -> Decision:
        local = self._local
        if local is not None:
            return await local.request(app, client, prefer=prefer)
        answer = await self._call(
            "/v1/request", wire.TicketRequest(app, client, prefer), wire.DecisionAnswer
        )
        if answer.granted is not None:
            granted = answer.granted
            self._mirror.setdefault(app, {})[granted.ticket] = granted.server
            self._recent[app, granted.ticket] = (granted.server, self._clock())
            waiters = self._queue.get(app)
            if waiters is not None:
                waiters.pop(client, None)
            return granted
        if answer.waiting is not None:
            return answer.waiting
        raise AuthorityUnavailable(f"the leader at {self._leader} answered without a decision")

    async def give_back(self, app: str, ticket: str) -> None:
        local = self._local
        if local is not None:
            await local.give_back(app, ticket)
            return
        self._forget(app, ticket)
        await self._call("/v1/give-back", wire.GiveBack(app, ticket), wire.ErrorAnswer)

    async def give_up(self, app: str, client: str) -> None:
        local = self._local
        if local is not None:
            await local.give_up(app, client)
            return
        await self._call("/v1/give-up", wire.GiveUp(app, client), wire.ErrorAnswer)

    def touch(self, app: str, ticket: str) -> ServerRef | None:
        local = self._local
        if local is not None:
            return local.touch(app, ticket)
        tickets = self._mirror.get(app)
        server = None if tickets is None else tickets.get(ticket)
        if server is not None:
            self._recent[app, ticket] = (server, self._clock())
        return server

    def connection_opened(self, app: str, ticket: str) -> bool:
        local = self._local
        if local is not None:
            return local.connection_opened(app, ticket)
        if self.touch(app, ticket) is None:
            return False
        key = (app, ticket)
        self._open[key] = self._open.get(key, 0) + 1
        return True

    def connection_closed(self, app: str, ticket: str) -> None:
        local = self._local
        if local is not None:
            local.connection_closed(app, ticket)
            return
        key = (app, ticket)
        count = self._open.get(key, 0)
        if count > 1:
            self._open[key] = count - 1
        elif count == 1:
            del self._open[key]
        recent = self._recent.get(key)
        if recent is not None:
            self._recent[key] = (recent[0], self._clock())

    def tick(self) -> None:
        local = self._local
        if local is not None:
            local.tick()
            return
        now = self._clock()
        for key, (_, seen) in list(self._recent.items()):
            if key in self._open:
                continue
            config = self._config.get(key[0])
            if config is None or now - seen > config.settings.idle_timeout:
                del self._recent[key]
        self._wake.set()

    def loads(self) -> list[AppLoad]:
        local = self._local
        if local is not None:
            return local.loads()
        return list(self._loads.values())

    def snapshot(self) -> list[Change]:
        local = self._local
        if local is not None:
            return local.snapshot()
        # A follower: its own apps and servers, the leader's tickets and queue (its copy).
        now = self._clock()
        out = self._table.snapshot(now)
        for app in self._table.apps:
            servers = set(self._table.servers(app))
            for ticket, server in self._mirror.get(app, {}).items():
                if server in servers:
                    out.append(TicketRestored(app, ticket, server, now))
            for position, client in enumerate(self._queue.get(app, {})):
                out.append(WaiterQueued(app, client, position, now))
        return out

    # -- internals: the table's configuration --------------------------------------------------

    def _remember(self, event: TableEvent) -> None:
        match event:
            case AppAdded(app, settings):
                self._config[app] = _AppConfig(settings, {})
            case AppUpdated(app, settings):
                self._config[app].settings = settings
            case AppRemoved(app):
                self._config.pop(app, None)
            case ServerAdded(app, ref, ready, capacity) | ServerUpdated(app, ref, ready, capacity):
                self._config[app].servers[ref] = (ready, capacity)
            case ServerRemoved(app, ref):
                self._config[app].servers.pop(ref, None)
            case _:
                pass

    def _configured_table(self) -> TicketTable:
        """A table with this replica's apps and servers and no tickets."""
        table = TicketTable()
        now = self._clock()
        for app, config in self._config.items():
            table.apply(AppAdded(app, config.settings), now)
            for ref, (ready, capacity) in config.servers.items():
                table.apply(ServerAdded(app, ref, ready, capacity), now)
        return table

    def _idle(self, key: tuple[str, str], now: float) -> float:
        if key in self._open:
            return 0.0
        recent = self._recent.get(key)
        return 0.0 if recent is None else max(0.0, now - recent[1])

    def _forget(self, app: str, ticket: str) -> None:
        # With a TicketReleased the proxy unpins the ticket's connections without closing them
        # (the count goes with the ticket), so the count here goes too.
        self._recent.pop((app, ticket), None)
        self._open.pop((app, ticket), None)
        tickets = self._mirror.get(app)
        if tickets is not None:
            tickets.pop(ticket, None)

    # -- internals: leading ----------------------------------------------------------------------

    def _step_down(self) -> None:
        """Leader -> follower: keep serving this replica's users from a copy of the table, and
        hand its tickets to the new leader in the first (full) report."""
        local = self._local
        assert local is not None
        table = self._table
        now = self._clock()
        self._mirror = {app: dict(table.tickets(app)) for app in table.apps}
        self._queue = {app: dict.fromkeys(table.queue(app)) for app in table.apps}
        self._loads = {app: table.load(app, now) for app in table.apps}
        for app, tickets in self._mirror.items():
            for ticket, server in tickets.items():
                self._recent[app, ticket] = (server, table.last_seen(app, ticket))
                count = table.connections(app, ticket)
                if count:
                    self._open[app, ticket] = count
        if self._local_subscription is not None:
            self._local_subscription.dispose()
            self._local_subscription = None
        self._local = None
        for feed in self._feeds:
            feed.close()
        self._feeds.clear()
        self._table = self._configured_table()
        self._report_all = True
        _log.info("%s steps down as leader of the ticket table", self.identity)

    def _on_local_change(self, change: Change) -> None:
        self._changes.on_next(change)
        if not self._feeds:
            return
        line = wire.encode_change(change)
        for feed in list(self._feeds):
            try:
                feed.send_nowait(line)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                _log.warning("a follower fell %d changes behind: its feed restarts", _FEED_BUFFER)
                feed.close()
                self._feeds.discard(feed)

    def _snapshot(self, local: LocalTicketAuthority) -> wire.Snapshot:
        table = local.table
        now = self._clock()
        return wire.Snapshot(
            self.identity,
            {
                app: wire.AppState(
                    list(table.tickets(app).items()), table.queue(app), table.load(app, now)
                )
                for app in table.apps
            },
        )

    # -- internals: following --------------------------------------------------------------------

    def _stop_following(self) -> None:
        if self._follow_scope is not None:
            self._follow_scope.cancel()
            self._follow_scope = None
        self._client = None
        self._leader = None
        self._synced = False

    async def _follow(
        self, address: str, client: httpx.AsyncClient, scope: trio.CancelScope
    ) -> None:
        """Keep a copy of the leader's table from its changes feed, reconnecting as needed."""
        delay = _RETRY_MIN
        timeout = httpx.Timeout(self._timeout, read=3 * self._heartbeat)
        try:
            with scope:
                while True:
                    try:
                        async with client.stream("GET", "/v1/changes", timeout=timeout) as response:
                            if response.status_code != 200:
                                body = await response.aread()
                                raise _FeedError(f"answered {response.status_code}: {body[:200]!r}")
                            async for line in response.aiter_lines():
                                if line:
                                    self._on_feed_line(line)
                                    delay = _RETRY_MIN
                            raise _FeedError("the leader ended the feed")
                    except (httpx.HTTPError, _FeedError, msgspec.MsgspecError) as error:
                        if self._synced:
                            _log.warning(
                                "%s lost the changes feed of the leader at %s: %s",
                                self.identity,
                                address,
                                error,
                            )
                        self._synced = False
                    await trio.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX)
        finally:
            if self._client is client:
                self._client = None
                self._synced = False
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                await client.aclose()

    def _on_feed_line(self, line: str) -> None:
        message = wire.decode_feed_line(line)
        if message is None:
            return
        if isinstance(message, wire.Snapshot):
            self._apply_snapshot(message)
        else:
            self._apply_change(message)

    def _apply_snapshot(self, snapshot: wire.Snapshot) -> None:
        now = self._clock()
        self._mirror = {app: dict(state.tickets) for app, state in snapshot.apps.items()}
        self._queue = {app: dict.fromkeys(state.waiters) for app, state in snapshot.apps.items()}
        self._loads = {app: replace(state.load, time=now) for app, state in snapshot.apps.items()}
        # Own users' tickets stay usable until the full report below says otherwise (a new
        # leader's copy may have missed them); where the leader placed a ticket, it wins.
        for (app, ticket), (server, _) in self._recent.items():
            tickets = self._mirror.get(app)
            if tickets is not None:
                tickets.setdefault(ticket, server)
        self._synced = True
        self._synced_event.set()
        self._report_all = True
        self._wake.set()
        _log.info(
            "%s follows %s (%s): %d tickets",
            self.identity,
            self._leader,
            snapshot.identity,
            sum(len(t) for t in self._mirror.values()),
        )
        for load in self._loads.values():
            self._changes.on_next(LoadChanged(load))

    def _apply_change(self, change: Change) -> None:
        now = self._clock()
        match change:
            case TicketIssued(app, ticket, server) | TicketRestored(app, ticket, server):
                self._mirror.setdefault(app, {})[ticket] = server
                waiters = self._queue.get(app)
                if waiters is not None:
                    waiters.pop(ticket, None)
            case TicketReleased(app, ticket):
                self._forget(app, ticket)
            case WaiterQueued(app, client):
                self._queue.setdefault(app, {})[client] = None
            case WaiterLeft(app, client):
                waiters = self._queue.get(app)
                if waiters is not None:
                    waiters.pop(client, None)
            case LoadChanged(load):
                load = replace(load, time=now)
                change = LoadChanged(load)
                if load.app in self._mirror:  # not after its app was removed
                    self._loads[load.app] = load
            case ServerChanged(app, None, "app-added"):
                self._mirror.setdefault(app, {})
                self._queue.setdefault(app, {})
            case ServerChanged(app, None, "app-removed"):
                self._mirror.pop(app, None)
                self._queue.pop(app, None)
                self._loads.pop(app, None)
            case _:
                pass
        if not isinstance(change, LoadChanged):
            change = replace(change, time=now)
        self._changes.on_next(change)

    async def _reporter(self) -> None:
        """Send activity reports when `tick` asks, while following a synced leader."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if self._local is None and self._client is not None and self._synced:
                await self._report()

    async def _report(self) -> None:
        now = self._clock()
        full = self._report_all
        since = self._reported_at
        entries = []
        for key, (server, seen) in self._recent.items():
            open_now = key in self._open
            if full or open_now or seen > since:
                idle = 0.0 if open_now else max(0.0, now - seen)
                entries.append((key[0], key[1], server, idle))
        self._report_all = False
        if not entries:
            self._reported_at = now
            return
        try:
            answer = await self._call("/v1/report", wire.Report(entries), wire.ReportAnswer)
        except AuthorityUnavailable as error:
            # Nothing is lost: `since` stays, so the same tickets go again with the next tick.
            self._report_all = self._report_all or full
            _log.debug("%s could not report activity: %s", self.identity, error)
            return
        self._reported_at = now
        self._reports += 1
        for app, ticket in answer.refused:
            self._refused += 1
            self._forget(app, ticket)

    async def _call(self, path: str, message: object, answer: type[_T]) -> _T:
        client, leader = self._client, self._leader
        if client is None:
            raise AuthorityUnavailable(
                "no leader of the ticket table is known yet"
                if leader is None
                else f"not connected to the leader at {leader}"
            )
        try:
            response = await client.post(path, content=wire.encode(message))
        except httpx.HTTPError as error:
            raise AuthorityUnavailable(
                f"the leader at {leader} did not answer: {error!r}"
            ) from None
        if response.status_code == 200:
            try:
                return msgspec.json.decode(response.content, type=answer)
            except msgspec.MsgspecError as error:
                raise AuthorityUnavailable(
                    f"the leader at {leader} sent a bad answer: {error}"
                ) from None
        try:
            detail = msgspec.json.decode(response.content, type=wire.ErrorAnswer).error
        except msgspec.MsgspecError:
            detail = response.text[:200]
        if response.status_code == 401:
            _log.error(
                "the leader at %s refused this replica's token: the replicas' ticket keys differ "
                "(give every replica the same key file or Secret)",
                leader,
            )
        raise AuthorityUnavailable(
            f"the leader at {leader} answered {response.status_code}: {detail}"
        )

    # -- internals: the API ----------------------------------------------------------------------

    async def _serve_peer(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
        try:
            while True:
                event: object = None
                with trio.move_on_after(_IDLE_PEER):
                    event = await _next_event(connection, stream)
                if not isinstance(event, h11.Request):
                    return
                with trio.fail_after(5 * self._timeout):
                    body = await _read_body(connection, stream)
                if body is None:
                    await _send_json(connection, stream, 413, wire.ErrorAnswer("body too large"))
                    return
                if not await self._dispatch(connection, stream, event, body):
                    return
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    return
                connection.start_next_cycle()
        except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        except trio.TooSlowError:
            return
        finally:
            await stream.aclose()

    async def _dispatch(
        self,
        connection: h11.Connection,
        stream: trio.SocketStream,
        request: h11.Request,
        body: bytes,
    ) -> bool:
        """Answer one request; False if the connection should close."""
        method, target = request.method, request.target
        send = partial(_send_json, connection, stream)
        if target == b"/v1/health" and method == b"GET":
            await send(200, wire.Health(self.identity, self.role, self._leader))
            return True
        if not self._authorized(request.headers):
            await send(
                401, wire.ErrorAnswer("a token derived from the shared ticket key is needed")
            )
            return False
        local = self._local
        if local is None:
            await send(503, wire.ErrorAnswer("not the leader", leader=self._leader))
            return True
        try:
            if method == b"GET" and target == b"/v1/changes":
                await self._feed(connection, stream, local)
                return False
            if method != b"POST":
                await send(405, wire.ErrorAnswer(f"{method.decode()} is not allowed here"))
                return True
            if target == b"/v1/request":
                asked = msgspec.json.decode(body, type=wire.TicketRequest)
                if asked.app not in local.table.apps:
                    await send(404, wire.ErrorAnswer(f"the leader serves no app {asked.app!r}"))
                    return True
                decision = await local.request(asked.app, asked.client, prefer=asked.prefer)
                if isinstance(decision, Granted):
                    await send(200, wire.DecisionAnswer(granted=decision))
                else:
                    await send(200, wire.DecisionAnswer(waiting=decision))
            elif target == b"/v1/report":
                report = msgspec.json.decode(body, type=wire.Report)
                refused = [
                    (app, ticket)
                    for app, ticket, server, idle in report.tickets
                    if not local.report(app, ticket, server, idle=idle)
                ]
                await send(200, wire.ReportAnswer(refused))
            elif target == b"/v1/give-back":
                back = msgspec.json.decode(body, type=wire.GiveBack)
                await local.give_back(back.app, back.ticket)
                await send(200, wire.ErrorAnswer(""))
            elif target == b"/v1/give-up":
                up = msgspec.json.decode(body, type=wire.GiveUp)
                await local.give_up(up.app, up.client)
                await send(200, wire.ErrorAnswer(""))
            else:
                await send(404, wire.ErrorAnswer(f"no such endpoint {target.decode('latin-1')}"))
        except msgspec.MsgspecError as error:
            await send(400, wire.ErrorAnswer(f"malformed request: {error}"))
        return True

    def _authorized(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name == b"authorization" and value.startswith(b"Bearer "):
                token = value[7:].decode("latin-1")
                return any(hmac.compare_digest(token, known) for known in self._tokens)
        return False

    async def _feed(
        self, connection: h11.Connection, stream: trio.SocketStream, local: LocalTicketAuthority
    ) -> None:
        """Stream a snapshot, then every change; a heartbeat when there is nothing to say."""
        sender, receiver = trio.open_memory_channel[bytes](_FEED_BUFFER)
        # The snapshot and the registration happen in one step: no change falls between them.
        first = wire.encode(self._snapshot(local)) + b"\n"
        self._feeds.add(sender)
        try:
            head = h11.Response(
                status_code=200,
                headers=[("content-type", "application/x-ndjson"), ("cache-control", "no-store")],
            )
            await stream.send_all(_wire_bytes(connection, head, h11.Data(first)))
            done = False
            while not done:
                lines: list[bytes] = []
                with trio.move_on_after(self._heartbeat):
                    try:
                        lines.append(await receiver.receive())
                    except trio.EndOfChannel:
                        done = True
                while not done:
                    try:
                        lines.append(receiver.receive_nowait())
                    except trio.WouldBlock:
                        break
                    except trio.EndOfChannel:
                        done = True
                data = b"".join(lines) or (b"" if done else wire.HEARTBEAT_LINE)
                if data:
                    with trio.fail_after(5 * self._timeout):
                        await stream.send_all(_wire_bytes(connection, h11.Data(data)))
            with trio.fail_after(self._timeout):
                await stream.send_all(_wire_bytes(connection, h11.EndOfMessage()))
        finally:
            self._feeds.discard(sender)
            sender.close()


class _FeedError(Exception):
    pass


async def _next_event(
    connection: h11.Connection, stream: trio.SocketStream
) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some(65536))
            continue
        return event


async def _read_body(connection: h11.Connection, stream: trio.SocketStream) -> bytes | None:
    parts: list[bytes] = []
    size = 0
    while True:
        event = await _next_event(connection, stream)
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > _MAX_BODY:
                return None
            parts.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(parts)
        else:
            raise h11.RemoteProtocolError("the request ended early")


async def _send_json(
    connection: h11.Connection, stream: trio.SocketStream, status: int, message: object
) -> None:
    body = wire.encode(message)
    head = h11.Response(
        status_code=status,
        headers=[("content-type", "application/json"), ("content-length", str(len(body)))],
    )
    await stream.send_all(_wire_bytes(connection, head, h11.Data(body), h11.EndOfMessage()))


def _wire_bytes(connection: h11.Connection, *events: h11.Event) -> bytes:
    return b"".join(connection.send(event) or b"" for event in events)


@asynccontextmanager
async def open_replicated_authority(
    *,
    keys: Sequence[bytes],
    listen: tuple[str, int] = ("127.0.0.1", 0),
    identity: str = "",
    clock: Callable[[], float] = trio.current_time,
    heartbeat: float = 1.0,
    call_timeout: float = 2.0,
    lead: bool = False,
) -> AsyncIterator[ReplicatedTicketAuthority]:
    """Run the authority of one proxy replica (its API listener, its feed and report tasks).

    Pass it to `open_ticket_proxy(config, authority=...)` inside this block; then tell it its
    role with `lead()` or `follow("host:port")` (`lead=True` leads from the start, for a single
    replica or a test). `keys` are the shared ticket keys: the replicas' API token derives from
    them. `heartbeat` paces the changes feed; a follower that hears nothing for three heartbeats
    reconnects. `call_timeout` bounds each call to the leader.
    """
    if not keys:
        raise ValueError("replicas need a shared ticket key (ProxyConfig.ticket_keys)")
    listeners = await trio.open_tcp_listeners(listen[1], host=listen[0])
    async with trio.open_nursery() as nursery:
        authority = ReplicatedTicketAuthority(
            nursery,
            listeners[0],
            keys=keys,
            identity=identity,
            clock=clock,
            heartbeat=heartbeat,
            timeout=call_timeout,
        )
        nursery.start_soon(partial(trio.serve_listeners, authority._serve_peer, listeners[:1]))
        for extra in listeners[1:]:
            await extra.aclose()
        nursery.start_soon(authority._reporter)
        if lead:
            authority.lead()
        try:
            yield authority
        finally:
            nursery.cancel_scope.cancel()
            authority._changes.on_completed()
