"""The ticket table: who holds a slot on which server, and who waits for one.

A pure state machine in the style of h11's `_state.py`: `table.apply(event, now)` takes an event
and the time as arguments and returns the effects (the changes it made). It performs no I/O and
reads no clock; for speed its state is mutated in place behind that interface. It imports nothing
from rxkube and knows nothing of sockets, cookies or Kubernetes: the proxy server (`_server.py`)
drives it through a `TicketAuthority` (`_authority.py`), and a replay can drive it from a trace.

Invariants (checked after every step by `check_invariants()` and by the hypothesis state machine
in tests/unit/proxy/test_table_properties.py):

I1  Capacity. A ticket is issued on a server only while the server is ready and holds fewer tickets
    than its capacity. Lowering a capacity (or a server turning not ready) never evicts a holder:
    it only stops new tickets, so `used > capacity` is possible, but only through such a change.
I2  Ownership. Every ticket belongs to exactly one live server of its own app, and that server's
    ticket set contains it; a removed server's tickets are released in the same step (effects say
    so, reason "server-removed"); a removed app's tickets and waiters are released in the same step.
I3  One identity, one place. A client id is at most one of: a ticket holder or a waiter.
I4  First in, first out. Waiters are served in arrival order: the waiters holding a reserved
    ("held") slot are always a prefix of the queue, `held == min(free, len(queue))` after every
    step, and a newcomer gets a ticket only from a slot that no waiter holds. So nobody who came
    later is served while an earlier waiter still waits.
I5  Hold time. A slot held for a waiter is kept for at most `hold_time` after it was offered; a
    waiter who does not claim it in time leaves the queue (reason "hold-expired") and the slot
    passes to the next waiter.
I6  Leaving. A waiter who has not polled for `leave_after` seconds leaves the queue at the next
    tick (reason "timeout"); `WaiterLeft` removes a waiter at once.
I7  Idle release. A ticket with no open connection that was not touched for `idle_timeout` is
    released at the next tick (reason "idle"); a ticket with an open connection is never released
    for idleness.
I8  Restoring. A ticket another authority issued (a replica reports it after a fail-over, see
    `TicketReported`) is not a new ticket: it is restored onto the server it names only if that
    server exists and holds fewer tickets than its capacity (ready or draining: a draining server
    keeps its holders), and only if it was seen within `idle_timeout`; otherwise it is refused and
    nothing changes. So capacity (I1's bound) holds for restored tickets too. A restored ticket
    may take a slot that was held for a waiter: that waiter goes back to WAITING, keeping its
    place (the ticket's holder was there first).

Client lifecycle (one client id, per app). `CLIENT_TRANSITIONS` below is the whole table; a
(state, trigger) pair not in it is a bug in the caller (for example touching a waiter as if it held
a ticket) and raises `TicketTableError` rather than silently doing something:

    ABSENT --request, free slot--> TICKETED --release | idle | server-removed--> ABSENT
    ABSENT --request, no free slot--> WAITING --slot freed--> ADMITTED --request (claim)--> TICKETED
    WAITING | ADMITTED --left | timeout--> ABSENT;  ADMITTED --hold expired--> ABSENT
    ADMITTED --slot lost (capacity shrank, a restored ticket took it)--> WAITING (keeps place)
    ABSENT --restored (a replica reported its ticket)--> TICKETED
    ABSENT --requeued (a replica reported it waiting)--> WAITING (at the end of the queue)

Servers have three states: READY (takes new tickets), DRAINING (not ready: keeps its holders, takes
no new ones), and gone (removed: its tickets are released). Which server a new ticket goes to: the
ready server with room that already holds the most tickets (ties: the one added first). Packing
users onto few servers leaves other servers idle, which is what lets an autoscaler remove them.

Identities are chosen by the caller: a ticket's id is the client id that asked for it. The proxy
gives a newcomer a random token and a returning user the ticket id of its signed cookie, so an id
always belongs to one user, and asking again under it is idempotent (across replicas too). A
request may name the server the client held before (from its cookie, after a proxy restart): it
is re-admitted there if that server is ready and has a slot that no waiter holds.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

__all__ = [
    "AppAdded",
    "AppLoad",
    "AppRemoved",
    "AppSettings",
    "AppUpdated",
    "Change",
    "ClientState",
    "Decision",
    "Granted",
    "LoadChanged",
    "ServerAdded",
    "ServerChanged",
    "ServerRef",
    "ServerRemoved",
    "ServerUpdated",
    "TableEvent",
    "Tick",
    "TicketConnectionClosed",
    "TicketConnectionOpened",
    "TicketIssued",
    "TicketReleased",
    "TicketReported",
    "TicketRequested",
    "TicketRestored",
    "TicketReturned",
    "TicketTable",
    "TicketTableError",
    "TicketTouched",
    "Trigger",
    "WaiterGaveUp",
    "WaiterLeft",
    "WaiterQueued",
    "WaiterReported",
    "Waiting",
]


class TicketTableError(Exception):
    """An event the table cannot accept in its current state (a caller's bug, never a user's)."""


class ServerRef(NamedTuple):
    """A backend server: in Kubernetes, a pod's name and uid (the uid tells a re-created pod of
    the same name apart, so a cookie never re-admits a user to a different pod)."""

    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.name}/{self.uid}"


@dataclass(frozen=True, slots=True)
class AppSettings:
    """The per-app numbers the table needs (the proxy's `AppConfig` carries the rest)."""

    tickets_max: int = 1
    """Capacity of a server that does not state its own."""
    idle_timeout: float = 60.0
    """A ticket without an open connection is released after this long without a request."""
    hold_time: float = 30.0
    """How long a freed slot is held for the head of the queue."""
    leave_after: float = 10.0
    """A waiter who has not polled for this long leaves (the proxy uses twice the refresh)."""

    def __post_init__(self) -> None:
        if self.tickets_max < 0:
            raise ValueError(f"tickets_max must be >= 0, got {self.tickets_max}")
        for name in ("idle_timeout", "hold_time", "leave_after"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


# ---------------------------------------------------------------------------------------------
# Events (inputs)


@dataclass(frozen=True, slots=True)
class AppAdded:
    app: str
    settings: AppSettings = AppSettings()


@dataclass(frozen=True, slots=True)
class AppUpdated:
    app: str
    settings: AppSettings


@dataclass(frozen=True, slots=True)
class AppRemoved:
    app: str


@dataclass(frozen=True, slots=True)
class ServerAdded:
    app: str
    server: ServerRef
    ready: bool = True
    capacity: int | None = None
    """None: the app's `tickets_max`."""


@dataclass(frozen=True, slots=True)
class ServerUpdated:
    app: str
    server: ServerRef
    ready: bool
    capacity: int | None = None


@dataclass(frozen=True, slots=True)
class ServerRemoved:
    app: str
    server: ServerRef


@dataclass(frozen=True, slots=True)
class TicketRequested:
    """A client asks for a ticket (first time, or polling from the waiting room)."""

    app: str
    client: str
    prefer: ServerRef | None = None
    """The server the client held before (from its cookie): re-admit there if it has room."""


@dataclass(frozen=True, slots=True)
class TicketTouched:
    """The holder made a request."""

    app: str
    ticket: str


@dataclass(frozen=True, slots=True)
class TicketConnectionOpened:
    """The holder opened a connection (HTTP keep-alive or WebSocket): no idle release while open."""

    app: str
    ticket: str


@dataclass(frozen=True, slots=True)
class TicketConnectionClosed:
    app: str
    ticket: str


@dataclass(frozen=True, slots=True)
class TicketReturned:
    """The holder gave its ticket back (e.g. logged out); the change is `TicketReleased`."""

    app: str
    ticket: str


@dataclass(frozen=True, slots=True)
class WaiterGaveUp:
    """The waiter went away (e.g. closed the page); the change is `WaiterLeft`."""

    app: str
    client: str


@dataclass(frozen=True, slots=True)
class TicketReported:
    """A replica says `ticket` is live on `server` (after a fail-over, or as keep-alive): I8.

    Held there already: a touch `idle` seconds ago. Unknown: restored if the server has room.
    """

    app: str
    ticket: str
    server: ServerRef
    idle: float = 0.0
    """Seconds since the holder's last request (0 while it has a connection open)."""


@dataclass(frozen=True, slots=True)
class WaiterReported:
    """A replica says `client` waits (a new authority rebuilding its queue, in queue order)."""

    app: str
    client: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: release idle tickets, expire holds, drop waiters who stopped polling."""


TableEvent = (
    AppAdded
    | AppUpdated
    | AppRemoved
    | ServerAdded
    | ServerUpdated
    | ServerRemoved
    | TicketRequested
    | TicketTouched
    | TicketConnectionOpened
    | TicketConnectionClosed
    | TicketReturned
    | WaiterGaveUp
    | TicketReported
    | WaiterReported
    | Tick
)

# ---------------------------------------------------------------------------------------------
# Changes (outputs: effects of `apply`, and what the changes Observable carries)

ReleaseReason = Literal["released", "idle", "server-removed", "app-removed"]
LeaveReason = Literal["left", "timeout", "hold-expired", "app-removed"]


@dataclass(frozen=True, slots=True)
class TicketIssued:
    app: str
    ticket: str
    server: ServerRef
    time: float
    waited: float
    """Seconds the client spent in the waiting room (0 when served at once)."""
    resumed: bool = False
    """Re-admitted to the server its cookie named."""


@dataclass(frozen=True, slots=True)
class TicketReleased:
    app: str
    ticket: str
    server: ServerRef
    time: float
    reason: ReleaseReason


@dataclass(frozen=True, slots=True)
class TicketRestored:
    """A ticket another authority issued is now held here (I8); not a new user."""

    app: str
    ticket: str
    server: ServerRef
    time: float


@dataclass(frozen=True, slots=True)
class WaiterQueued:
    app: str
    client: str
    position: int
    """0-based place in the queue when it joined."""
    time: float


@dataclass(frozen=True, slots=True)
class WaiterLeft:
    app: str
    client: str
    time: float
    reason: LeaveReason


@dataclass(frozen=True, slots=True)
class AppLoad:
    """The numbers an autoscaler and a metrics exporter need about one app, at one time."""

    app: str
    servers: int
    ready_servers: int
    capacity: int
    """Sum of the capacities of ready servers."""
    tickets: int
    """Tickets held, on any server (draining ones included)."""
    free: int
    """Slots a new ticket could take on ready servers, held slots included."""
    queued: int
    """Waiters in the queue (held ones included)."""
    held: int
    """Free slots held for waiters at the head of the queue."""
    time: float


@dataclass(frozen=True, slots=True)
class LoadChanged:
    """An app's `AppLoad` changed in this step (emitted once per step per app that changed)."""

    load: AppLoad


@dataclass(frozen=True, slots=True)
class ServerChanged:
    """Servers and apps coming and going, as recorded by the table."""

    app: str
    server: ServerRef | None
    """None for app-level changes."""
    kind: Literal["app-added", "app-updated", "app-removed", "added", "updated", "removed"]
    ready: bool
    capacity: int
    time: float


Change = (
    TicketIssued
    | TicketReleased
    | TicketRestored
    | WaiterQueued
    | WaiterLeft
    | LoadChanged
    | ServerChanged
)


@dataclass(frozen=True, slots=True)
class Granted:
    """Answer to a request: the client holds `ticket` on `server`."""

    ticket: str
    server: ServerRef
    new: bool
    """False when the client already held this ticket (a repeated request)."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """Answer to a request: the client waits; `position` is 0-based (0 = next)."""

    position: int
    queued: int


Decision = Granted | Waiting

# ---------------------------------------------------------------------------------------------
# The client lifecycle table


class ClientState(enum.Enum):
    ABSENT = "absent"
    WAITING = "waiting"
    ADMITTED = "admitted"
    TICKETED = "ticketed"


class Trigger(enum.Enum):
    REQUEST_FREE = "request with a free slot"
    REQUEST_FULL = "request without a free slot"
    POLL = "request while waiting"
    SLOT_FREED = "a slot is held for the waiter"
    SLOT_LOST = "the held slot went away"
    CLAIM = "request while a slot is held"
    HOLD_EXPIRED = "hold time passed"
    POLL_TIMEOUT = "stopped polling"
    LEFT = "left"
    TOUCH = "request or connection"
    RELEASE = "released"
    IDLE = "idle timeout"
    SERVER_REMOVED = "server removed"
    APP_REMOVED = "app removed"
    RESTORED = "a replica reported the ticket"
    REQUEUED = "a replica reported the waiter"


_A, _W, _D, _T = (
    ClientState.ABSENT,
    ClientState.WAITING,
    ClientState.ADMITTED,
    ClientState.TICKETED,
)

CLIENT_TRANSITIONS: Mapping[tuple[ClientState, Trigger], ClientState] = {
    (_A, Trigger.REQUEST_FREE): _T,
    (_A, Trigger.REQUEST_FULL): _W,
    (_A, Trigger.RESTORED): _T,
    (_A, Trigger.REQUEUED): _W,
    (_W, Trigger.POLL): _W,
    (_W, Trigger.SLOT_FREED): _D,
    (_W, Trigger.POLL_TIMEOUT): _A,
    (_W, Trigger.LEFT): _A,
    (_W, Trigger.APP_REMOVED): _A,
    (_D, Trigger.POLL): _D,
    (_D, Trigger.CLAIM): _T,
    (_D, Trigger.SLOT_LOST): _W,
    (_D, Trigger.HOLD_EXPIRED): _A,
    (_D, Trigger.POLL_TIMEOUT): _A,
    (_D, Trigger.LEFT): _A,
    (_D, Trigger.APP_REMOVED): _A,
    (_T, Trigger.TOUCH): _T,
    (_T, Trigger.RELEASE): _A,
    (_T, Trigger.IDLE): _A,
    (_T, Trigger.SERVER_REMOVED): _A,
    (_T, Trigger.APP_REMOVED): _A,
}
"""(state, trigger) -> next state. Everything the table does to a client is one of these."""


def _step(state: ClientState, trigger: Trigger) -> ClientState:
    try:
        return CLIENT_TRANSITIONS[state, trigger]
    except KeyError:
        raise TicketTableError(
            f"a client in state {state.name} cannot take {trigger.value!r}"
        ) from None


# ---------------------------------------------------------------------------------------------
# State


@dataclass(slots=True)
class _Ticket:
    id: str
    server: _Server
    issued: float
    last_seen: float
    connections: int = 0
    state: ClientState = ClientState.TICKETED


@dataclass(slots=True)
class _Server:
    ref: ServerRef
    ready: bool
    capacity: int | None
    order: int
    tickets: dict[str, _Ticket] = field(default_factory=dict)


@dataclass(slots=True)
class _Waiter:
    id: str
    seq: int
    joined: float
    last_poll: float
    hold_until: float | None = None
    state: ClientState = ClientState.WAITING


@dataclass(slots=True)
class _App:
    name: str
    settings: AppSettings
    servers: dict[ServerRef, _Server] = field(default_factory=dict)
    tickets: dict[str, _Ticket] = field(default_factory=dict)
    waiters: dict[str, _Waiter] = field(default_factory=dict)
    queue: list[int] = field(default_factory=list)
    """Sequence numbers of waiters, ascending (= arrival order); bisect gives a position."""
    by_seq: dict[int, _Waiter] = field(default_factory=dict)
    held: int = 0
    """The first `held` waiters of the queue are ADMITTED (a slot is held for them)."""
    last_load: AppLoad | None = None

    def capacity_of(self, server: _Server) -> int:
        return self.settings.tickets_max if server.capacity is None else server.capacity

    def free(self) -> int:
        free = 0
        for server in self.servers.values():
            if server.ready:
                room = self.capacity_of(server) - len(server.tickets)
                if room > 0:
                    free += room
        return free


class TicketTable:
    """The pure ticket state machine. See the module docstring for its rules.

    >>> table = TicketTable()
    >>> _ = table.apply(AppAdded("lab", AppSettings(tickets_max=1)), now=0.0)
    >>> _ = table.apply(ServerAdded("lab", ServerRef("lab-0", "u0")), now=0.0)
    >>> table.request("lab", "alice", now=1.0)[0]
    Granted(ticket='alice', server=ServerRef(name='lab-0', uid='u0'), new=True)
    >>> table.request("lab", "bob", now=2.0)[0]
    Waiting(position=0, queued=1)
    """

    __slots__ = ("_apps", "_order", "_seq")

    def __init__(self) -> None:
        self._apps: dict[str, _App] = {}
        self._order = 0
        self._seq = 0

    # -- the one entry point --------------------------------------------------------------

    def apply(self, event: TableEvent, now: float) -> list[Change]:
        """Apply one event at time `now`; return the changes it made, in order."""
        effects: list[Change] = []
        match event:
            case AppAdded(app, settings):
                if app in self._apps:
                    raise TicketTableError(f"app {app!r} already exists")
                self._apps[app] = _App(app, settings)
                effects.append(ServerChanged(app, None, "app-added", True, 0, now))
                self._settle(self._apps[app], now, effects)
            case AppUpdated(app, settings):
                state = self._app(app)
                state.settings = settings
                # I5 with the new hold time: a shorter one shortens holds already running.
                for seq in state.queue[: state.held]:
                    admitted = state.by_seq[seq]
                    if admitted.hold_until is not None:
                        admitted.hold_until = min(admitted.hold_until, now + settings.hold_time)
                effects.append(ServerChanged(app, None, "app-updated", True, 0, now))
                self._settle(state, now, effects)
            case AppRemoved(app):
                state = self._app(app)
                self._remove_app(state, now, effects)
            case ServerAdded(app, ref, ready, capacity):
                state = self._app(app)
                if ref in state.servers:
                    raise TicketTableError(f"server {ref} of app {app!r} already exists")
                self._order += 1
                server = _Server(ref, ready, capacity, self._order)
                state.servers[ref] = server
                cap = state.capacity_of(server)
                effects.append(ServerChanged(app, ref, "added", ready, cap, now))
                self._settle(state, now, effects)
            case ServerUpdated(app, ref, ready, capacity):
                state = self._app(app)
                server = self._server(state, ref)
                server.ready = ready
                server.capacity = capacity
                cap = state.capacity_of(server)
                effects.append(ServerChanged(app, ref, "updated", ready, cap, now))
                self._settle(state, now, effects)
            case ServerRemoved(app, ref):
                state = self._app(app)
                server = self._server(state, ref)
                for ticket in list(server.tickets.values()):
                    self._release(state, ticket, Trigger.SERVER_REMOVED, now, effects)
                del state.servers[ref]
                effects.append(ServerChanged(app, ref, "removed", False, 0, now))
                self._settle(state, now, effects)
            case TicketRequested(app, client, prefer):
                self._request(self._app(app), client, prefer, now, effects)
            case TicketTouched(app, ticket):
                self.touch(app, ticket, now)
            case TicketConnectionOpened(app, ticket):
                self._ticket(self._app(app), ticket).connections += 1
                self.touch(app, ticket, now)
            case TicketConnectionClosed(app, ticket):
                held = self._ticket(self._app(app), ticket)
                if held.connections <= 0:
                    raise TicketTableError(f"ticket {ticket!r} has no open connection to close")
                held.connections -= 1
                held.last_seen = now
            case TicketReturned(app, ticket):
                state = self._app(app)
                self._release(state, self._ticket(state, ticket), Trigger.RELEASE, now, effects)
                self._settle(state, now, effects)
            case WaiterGaveUp(app, client):
                state = self._app(app)
                waiter = state.waiters.get(client)
                if waiter is None:
                    raise TicketTableError(f"client {client!r} is not waiting for app {app!r}")
                self._leave(state, waiter, Trigger.LEFT, "left", now, effects)
                self._settle(state, now, effects)
            case TicketReported(app, ticket, ref, idle):
                self._report(self._app(app), ticket, ref, idle, now, effects)
            case WaiterReported(app, client):
                state = self._app(app)
                if client not in state.tickets and client not in state.waiters:
                    self._enqueue(state, client, Trigger.REQUEUED, now, effects)
                    self._settle(state, now, effects)
            case Tick():
                for state in self._apps.values():
                    self._tick(state, now, effects)
            case _:  # pragma: no cover - mypy checks exhaustiveness
                raise TicketTableError(f"unknown event {event!r}")
        return effects

    # -- hot-path shortcuts (same rules, no event object, no effects list) ------------------

    def request(
        self, app: str, client: str, now: float, prefer: ServerRef | None = None
    ) -> tuple[Decision, list[Change]]:
        """`apply(TicketRequested(...))` that also returns the decision for the client."""
        effects: list[Change] = []
        decision = self._request(self._app(app), client, prefer, now, effects)
        return decision, effects

    def touch(self, app: str, ticket: str, now: float) -> ServerRef | None:
        """Note a request by a ticket's holder; return its server, or None if it holds none.

        This is the per-request path of the proxy: one or two dict lookups, no allocation. An
        unknown app or ticket is not an error here (the cookie may predate a restart or release).
        """
        state = self._apps.get(app)
        if state is None:
            return None
        held = state.tickets.get(ticket)
        if held is None:
            return None
        held.last_seen = now
        return held.server.ref

    # -- queries ------------------------------------------------------------------------------

    @property
    def apps(self) -> Iterable[str]:
        return self._apps.keys()

    def load(self, app: str, now: float) -> AppLoad:
        state = self._app(app)
        return self._load(state, now)

    def client_state(self, app: str, client: str) -> ClientState:
        state = self._app(app)
        if client in state.tickets:
            return ClientState.TICKETED
        waiter = state.waiters.get(client)
        return ClientState.ABSENT if waiter is None else waiter.state

    def ticket_server(self, app: str, ticket: str) -> ServerRef | None:
        state = self._apps.get(app)
        held = None if state is None else state.tickets.get(ticket)
        return None if held is None else held.server.ref

    def tickets(self, app: str) -> Mapping[str, ServerRef]:
        return {t: held.server.ref for t, held in self._app(app).tickets.items()}

    def server_tickets(self, app: str, server: ServerRef) -> int:
        return len(self._server(self._app(app), server).tickets)

    def server_capacity(self, app: str, server: ServerRef) -> int:
        state = self._app(app)
        return state.capacity_of(self._server(state, server))

    def server_ready(self, app: str, server: ServerRef) -> bool:
        return self._server(self._app(app), server).ready

    def servers(self, app: str) -> Iterator[ServerRef]:
        return iter(list(self._app(app).servers))

    def queue(self, app: str) -> list[str]:
        """Client ids in queue order."""
        state = self._app(app)
        return [state.by_seq[seq].id for seq in state.queue]

    def snapshot(self, now: float) -> list[Change]:
        """The changes that build this table's current state from an empty one: per app,
        `app-added`, each server `added`, each ticket `TicketRestored` (held already, not a new
        user) and each waiter `WaiterQueued`, in the table's own orders. For a consumer that
        starts reading `changes` late (a replica that starts to lead)."""
        out: list[Change] = []
        for state in self._apps.values():
            name = state.name
            out.append(ServerChanged(name, None, "app-added", True, 0, now))
            for server in sorted(state.servers.values(), key=lambda s: s.order):
                cap = state.capacity_of(server)
                out.append(ServerChanged(name, server.ref, "added", server.ready, cap, now))
                for ticket in server.tickets:
                    out.append(TicketRestored(name, ticket, server.ref, now))
            for position, seq in enumerate(state.queue):
                out.append(WaiterQueued(name, state.by_seq[seq].id, position, now))
        return out

    def held(self, app: str) -> int:
        return self._app(app).held

    def position(self, app: str, client: str) -> int | None:
        state = self._app(app)
        waiter = state.waiters.get(client)
        if waiter is None:
            return None
        return bisect.bisect_left(state.queue, waiter.seq)

    def settings(self, app: str) -> AppSettings:
        return self._app(app).settings

    def connections(self, app: str, ticket: str) -> int:
        return self._ticket(self._app(app), ticket).connections

    def last_seen(self, app: str, ticket: str) -> float:
        """When the holder last made a request (or closed a connection)."""
        return self._ticket(self._app(app), ticket).last_seen

    def check_invariants(self, now: float) -> None:
        """Raise AssertionError if a structural invariant (I2-I4) does not hold."""
        for state in self._apps.values():
            seen: set[str] = set()
            for server in state.servers.values():
                for tid, held in server.tickets.items():
                    assert held.server is server, f"ticket {tid} points at another server"
                    assert state.tickets.get(tid) is held, f"ticket {tid} not in the app's index"
                    assert tid not in seen, f"ticket {tid} on two servers"
                    seen.add(tid)
            assert seen == set(state.tickets), "the app's ticket index names a dead server"
            assert not (seen & set(state.waiters)), "a client both holds a ticket and waits"
            assert state.queue == sorted(state.queue), "queue out of arrival order"
            assert len(state.queue) == len(state.waiters) == len(state.by_seq)
            assert state.held == min(state.free(), len(state.queue)), "held != min(free, queue)"
            for i, seq in enumerate(state.queue):
                waiter = state.by_seq[seq]
                admitted = i < state.held
                assert (waiter.state is ClientState.ADMITTED) == admitted, "held is not a prefix"
                assert (waiter.hold_until is not None) == admitted

    # -- internals ----------------------------------------------------------------------------

    def _app(self, app: str) -> _App:
        try:
            return self._apps[app]
        except KeyError:
            raise TicketTableError(f"unknown app {app!r}") from None

    @staticmethod
    def _server(state: _App, ref: ServerRef) -> _Server:
        try:
            return state.servers[ref]
        except KeyError:
            raise TicketTableError(f"unknown server {ref} of app {state.name!r}") from None

    @staticmethod
    def _ticket(state: _App, ticket: str) -> _Ticket:
        try:
            return state.tickets[ticket]
        except KeyError:
            raise TicketTableError(f"no ticket {ticket!r} in app {state.name!r}") from None

    def _request(
        self, state: _App, client: str, prefer: ServerRef | None, now: float, effects: list[Change]
    ) -> Decision:
        held = state.tickets.get(client)
        if held is not None:
            held.state = _step(held.state, Trigger.TOUCH)
            held.last_seen = now
            return Granted(client, held.server.ref, new=False)
        waiter = state.waiters.get(client)
        if waiter is not None:
            waiter.last_poll = now
            if waiter.state is ClientState.ADMITTED:
                waiter.state = _step(waiter.state, Trigger.CLAIM)
                server = self._pick(state, None)
                assert server is not None, "a held slot always has a server (I4)"
                self._dequeue(state, waiter)
                state.held -= 1
                granted = self._issue(state, server, client, now, now - waiter.joined, effects)
                self._settle(state, now, effects)
                return granted
            waiter.state = _step(waiter.state, Trigger.POLL)
            return Waiting(bisect.bisect_left(state.queue, waiter.seq), len(state.queue))
        # A newcomer takes only a slot that no waiter holds (I4).
        if state.free() - state.held > 0:
            server = self._pick(state, prefer)
            assert server is not None
            _step(ClientState.ABSENT, Trigger.REQUEST_FREE)
            resumed = prefer is not None and server.ref == prefer
            granted = self._issue(state, server, client, now, 0.0, effects, resumed=resumed)
            self._settle(state, now, effects)
            return granted
        self._enqueue(state, client, Trigger.REQUEST_FULL, now, effects)
        self._settle(state, now, effects)
        return Waiting(len(state.queue) - 1, len(state.queue))

    def _enqueue(
        self, state: _App, client: str, trigger: Trigger, now: float, effects: list[Change]
    ) -> None:
        self._seq += 1
        waiter = _Waiter(client, self._seq, now, now)
        waiter.state = _step(ClientState.ABSENT, trigger)
        state.waiters[client] = waiter
        state.by_seq[waiter.seq] = waiter
        state.queue.append(waiter.seq)
        effects.append(WaiterQueued(state.name, client, len(state.queue) - 1, now))

    def _report(
        self,
        state: _App,
        ticket: str,
        ref: ServerRef,
        idle: float,
        now: float,
        effects: list[Change],
    ) -> None:
        """I8: touch a ticket held on `ref`, or restore it there if it has room."""
        seen = now - max(0.0, idle)
        held = state.tickets.get(ticket)
        if held is not None:
            if held.server.ref == ref:  # held elsewhere: this authority's placement wins
                held.state = _step(held.state, Trigger.TOUCH)
                held.last_seen = max(held.last_seen, seen)
            return
        if ticket in state.waiters or idle >= state.settings.idle_timeout:
            return  # waiting here now (the queue decides), or idle-released by now anyway
        server = state.servers.get(ref)
        if server is None or len(server.tickets) >= state.capacity_of(server):
            return
        restored = _Ticket(ticket, server, now, seen)
        restored.state = _step(ClientState.ABSENT, Trigger.RESTORED)
        server.tickets[ticket] = restored
        state.tickets[ticket] = restored
        effects.append(TicketRestored(state.name, ticket, ref, now))
        self._settle(state, now, effects)

    def _pick(self, state: _App, prefer: ServerRef | None) -> _Server | None:
        if prefer is not None:
            server = state.servers.get(prefer)
            if (
                server is not None
                and server.ready
                and len(server.tickets) < state.capacity_of(server)
            ):
                return server
        best: _Server | None = None
        best_used = -1
        for server in state.servers.values():
            if not server.ready:
                continue
            used = len(server.tickets)
            if used < state.capacity_of(server) and used > best_used:
                best, best_used = server, used
        return best

    def _issue(
        self,
        state: _App,
        server: _Server,
        client: str,
        now: float,
        waited: float,
        effects: list[Change],
        *,
        resumed: bool = False,
    ) -> Granted:
        # I1: only on a ready server below its capacity.
        if not server.ready or len(server.tickets) >= state.capacity_of(server):
            raise TicketTableError(f"server {server.ref} has no free slot")  # pragma: no cover
        ticket = _Ticket(client, server, now, now)
        server.tickets[client] = ticket
        state.tickets[client] = ticket
        effects.append(TicketIssued(state.name, client, server.ref, now, waited, resumed))
        return Granted(client, server.ref, new=True)

    def _release(
        self, state: _App, ticket: _Ticket, trigger: Trigger, now: float, effects: list[Change]
    ) -> None:
        ticket.state = _step(ticket.state, trigger)
        del ticket.server.tickets[ticket.id]
        del state.tickets[ticket.id]
        reason: ReleaseReason = {
            Trigger.RELEASE: "released",
            Trigger.IDLE: "idle",
            Trigger.SERVER_REMOVED: "server-removed",
            Trigger.APP_REMOVED: "app-removed",
        }[trigger]  # type: ignore[assignment]
        effects.append(TicketReleased(state.name, ticket.id, ticket.server.ref, now, reason))

    def _dequeue(self, state: _App, waiter: _Waiter) -> int:
        index = bisect.bisect_left(state.queue, waiter.seq)
        del state.queue[index]
        del state.by_seq[waiter.seq]
        del state.waiters[waiter.id]
        return index

    def _leave(
        self,
        state: _App,
        waiter: _Waiter,
        trigger: Trigger,
        reason: LeaveReason,
        now: float,
        effects: list[Change],
    ) -> None:
        waiter.state = _step(waiter.state, trigger)
        index = self._dequeue(state, waiter)
        if index < state.held:
            state.held -= 1
        effects.append(WaiterLeft(state.name, waiter.id, now, reason))

    def _settle(self, state: _App, now: float, effects: list[Change]) -> None:
        """Restore I4 (`held == min(free, queue)`, held a prefix), then report the load."""
        target = min(state.free(), len(state.queue))
        while state.held < target:
            waiter = state.by_seq[state.queue[state.held]]
            waiter.state = _step(waiter.state, Trigger.SLOT_FREED)
            waiter.hold_until = now + state.settings.hold_time
            state.held += 1
        while state.held > target:
            state.held -= 1
            waiter = state.by_seq[state.queue[state.held]]
            waiter.state = _step(waiter.state, Trigger.SLOT_LOST)
            waiter.hold_until = None
        load = self._load(state, now)
        last = state.last_load
        if last is None or _numbers(last) != _numbers(load):
            state.last_load = load
            effects.append(LoadChanged(load))

    def _tick(self, state: _App, now: float, effects: list[Change]) -> None:
        settings = state.settings
        idle_before = now - settings.idle_timeout
        for ticket in [
            t for t in state.tickets.values() if t.connections == 0 and t.last_seen <= idle_before
        ]:
            self._release(state, ticket, Trigger.IDLE, now, effects)
        poll_before = now - settings.leave_after
        for seq in list(state.queue):
            waiter = state.by_seq[seq]
            if waiter.last_poll <= poll_before:
                self._leave(state, waiter, Trigger.POLL_TIMEOUT, "timeout", now, effects)
        # Expired holds: the slot passes on, so this loops until every head's hold is fresh.
        while True:
            self._settle(state, now, effects)
            expired = [
                state.by_seq[seq]
                for seq in state.queue[: state.held]
                if (until := state.by_seq[seq].hold_until) is not None and until <= now
            ]
            if not expired:
                break
            for waiter in expired:
                self._leave(state, waiter, Trigger.HOLD_EXPIRED, "hold-expired", now, effects)

    def _remove_app(self, state: _App, now: float, effects: list[Change]) -> None:
        for ticket in list(state.tickets.values()):
            self._release(state, ticket, Trigger.APP_REMOVED, now, effects)
        for seq in list(state.queue):
            waiter = state.by_seq[seq]
            waiter.state = _step(waiter.state, Trigger.APP_REMOVED)
            self._dequeue(state, waiter)
            effects.append(WaiterLeft(state.name, waiter.id, now, "app-removed"))
        state.held = 0
        del self._apps[state.name]
        effects.append(ServerChanged(state.name, None, "app-removed", False, 0, now))
        effects.append(
            LoadChanged(AppLoad(state.name, 0, 0, 0, 0, 0, 0, 0, now)),
        )

    def _load(self, state: _App, now: float) -> AppLoad:
        ready = [s for s in state.servers.values() if s.ready]
        return AppLoad(
            app=state.name,
            servers=len(state.servers),
            ready_servers=len(ready),
            capacity=sum(state.capacity_of(s) for s in ready),
            tickets=len(state.tickets),
            free=state.free(),
            queued=len(state.queue),
            held=state.held,
            time=now,
        )


def _numbers(load: AppLoad) -> tuple[int, ...]:
    return (
        load.servers,
        load.ready_servers,
        load.capacity,
        load.tickets,
        load.free,
        load.queued,
        load.held,
    )
