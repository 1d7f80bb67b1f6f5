"""The autoscaler's view of the ticket table, folded from the table's changes alone.

What this module is for: the autoscaler needs, per app, every server with its users, readiness
and the time it became idle, and the number of waiting users (`LoadSummary`). The ticket table
knows all that, but it may not live in this process (issue 10 moves the authority; a replay has
only a trace), so `LoadView` rebuilds it from the `Change`s every authority publishes, in the
order they were published: `ServerChanged` (apps and servers coming and going), `TicketIssued`,
`TicketRestored` (a ticket re-registered with a new leader of the table), `TicketReleased`,
`WaiterQueued`, `WaiterLeft`. The same fold serves the live runner (the
proxy's `changes`), a plain replay (the changes recorded in a trace) and a what-if replay (a
simulated table's changes), so all three see the same numbers for the same history.

Rules of the fold:
- Idle times come from the changes' own `time` (the authority's clock, which is the
  scheduler's): a server is idle since it was added, or since its last ticket was released.
- A ticket id is the client id that asked for it (the table's rule), so an issued ticket takes
  its client out of the waiting room.
- A removed server takes its tickets with it; a release of a ticket the view does not hold (a
  recording that was cut, a server already removed) changes nothing.
- Server capacities: `ServerChanged` carries each server's resolved capacity; after an
  `app-updated` change (tickets.max may have changed) the view does not know them any more
  and `summary` uses the capacity it is given (the app's tickets.max, which is what every
  server of an rxkube app gets: `pod_servers` never sets a capacity of its own).

Pure: no I/O, no clock; state mutated in place behind `apply` for speed. It imports the
proxy's change types and this package's `LoadSummary`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rxkube.controllers._autoscaler import LoadSummary, ServerLoad
from rxkube.proxy import (
    Change,
    ServerChanged,
    TicketIssued,
    TicketReleased,
    TicketRestored,
    WaiterLeft,
    WaiterQueued,
)

__all__ = ["LoadView"]


@dataclass(slots=True)
class _Server:
    uid: str
    ready: bool
    capacity: int | None
    users: int = 0
    idle_since: float | None = None


@dataclass(slots=True)
class _App:
    servers: dict[str, _Server] = field(default_factory=dict)
    tickets: dict[str, str] = field(default_factory=dict)
    """Ticket (= client id) -> server name."""
    waiting: dict[str, None] = field(default_factory=dict)
    """Client ids in the waiting room (a dict: ordered, so iteration is deterministic)."""
    issued: int = 0


class LoadView:
    """Per-app load, folded from a ticket authority's changes (see the module docstring).

    >>> view = LoadView()
    >>> for change in proxy_changes: view.apply(change)       # doctest: +SKIP
    >>> view.summary("lab", capacity=2)                         # doctest: +SKIP
    LoadSummary(servers=(ServerLoad(name='lab-0', capacity=2, users=1, ...),), waiting=0)
    """

    __slots__ = ("_apps",)

    def __init__(self) -> None:
        self._apps: dict[str, _App] = {}

    def apply(self, change: Change) -> str | None:
        """Fold one change in; return the app it concerns (None for a change that does not
        alter the view: `LoadChanged` carries nothing the other changes do not)."""
        if isinstance(change, TicketIssued | TicketRestored):
            app = self._apps.get(change.app)
            if app is None:
                return None
            name = change.server.name
            previous = app.tickets.get(change.ticket)
            if previous is not None:
                self._drop_ticket(app, previous, change.time)
            app.tickets[change.ticket] = name
            app.waiting.pop(change.ticket, None)
            if isinstance(change, TicketIssued):
                app.issued += 1
            server = app.servers.get(name)
            if server is not None:
                server.users += 1
                server.idle_since = None
            return change.app
        if isinstance(change, TicketReleased):
            app = self._apps.get(change.app)
            if app is None:
                return None
            held = app.tickets.pop(change.ticket, None)
            if held is not None:
                self._drop_ticket(app, held, change.time)
            return change.app
        if isinstance(change, WaiterQueued):
            app = self._apps.get(change.app)
            if app is None:
                return None
            app.waiting[change.client] = None
            return change.app
        if isinstance(change, WaiterLeft):
            app = self._apps.get(change.app)
            if app is None:
                return None
            app.waiting.pop(change.client, None)
            return change.app
        if isinstance(change, ServerChanged):
            return self._server_changed(change)
        # LoadChanged, or a change kind this view does not know (a newer authority's).
        return None

    def _drop_ticket(self, app: _App, name: str, now: float) -> None:
        server = app.servers.get(name)
        if server is not None and server.users > 0:
            server.users -= 1
            if server.users == 0:
                server.idle_since = now

    def _server_changed(self, change: ServerChanged) -> str | None:
        kind = change.kind
        if kind == "app-added":
            self._apps[change.app] = _App()
            return change.app
        app = self._apps.get(change.app)
        if app is None:
            return None
        if kind == "app-removed":
            del self._apps[change.app]
            return change.app
        if kind == "app-updated":
            for server in app.servers.values():
                server.capacity = None
            return change.app
        ref = change.server
        if ref is None:
            return None
        if kind == "removed":
            app.servers.pop(ref.name, None)
            for ticket in [t for t, s in app.tickets.items() if s == ref.name]:
                del app.tickets[ticket]
            return change.app
        known = app.servers.get(ref.name)
        if known is not None and known.uid == ref.uid:
            known.ready = change.ready
            known.capacity = change.capacity
        else:
            users = sum(1 for s in app.tickets.values() if s == ref.name)
            server = _Server(ref.uid, change.ready, change.capacity, users)
            server.idle_since = None if users else change.time
            app.servers[ref.name] = server
        return change.app

    def reset(self, snapshot: Iterable[Change]) -> list[str]:
        """Forget everything and fold in an authority's `snapshot()` (a replica that starts to
        lead reads the table it now leads); return the apps it has."""
        self._apps.clear()
        for change in snapshot:
            self.apply(change)
        return list(self._apps)

    # -- queries ------------------------------------------------------------------------------

    def known(self, app: str) -> bool:
        """The authority has the app (its `app-added` was seen, its removal not)."""
        return app in self._apps

    @property
    def apps(self) -> list[str]:
        return list(self._apps)

    def servers(self, app: str) -> dict[str, tuple[str, bool]]:
        """Server name -> (uid, ready), as the authority has them."""
        state = self._apps.get(app)
        if state is None:
            return {}
        return {name: (s.uid, s.ready) for name, s in state.servers.items()}

    def has_servers(self, app: str, wanted: Mapping[str, bool]) -> bool:
        """Whether the authority has exactly the servers `wanted` (name -> ready)."""
        state = self._apps.get(app)
        servers = state.servers if state is not None else {}
        if len(servers) != len(wanted):
            return False
        for name, server in servers.items():
            if name not in wanted or wanted[name] != server.ready:
                return False
        return True

    def is_waiting(self, app: str, client: str) -> bool:
        state = self._apps.get(app)
        return state is not None and client in state.waiting

    def server_users(self, app: str, server: str) -> int:
        state = self._apps.get(app)
        found = None if state is None else state.servers.get(server)
        return 0 if found is None else found.users

    def users(self, app: str) -> int:
        state = self._apps.get(app)
        return 0 if state is None else len(state.tickets)

    def waiting(self, app: str) -> int:
        state = self._apps.get(app)
        return 0 if state is None else len(state.waiting)

    def issued(self, app: str) -> int:
        """Tickets issued since the app was added."""
        state = self._apps.get(app)
        return 0 if state is None else state.issued

    def numbers(self, app: str, *, capacity: int) -> tuple[int, int, int, int, int, int]:
        """(servers, ready servers, their capacity, users, free tickets, waiting): the
        numbers of the table's `AppLoad`, without building a summary."""
        state = self._apps.get(app)
        if state is None:
            return (0, 0, 0, 0, 0, 0)
        ready = total = free = 0
        for server in state.servers.values():
            if server.ready:
                cap = capacity if server.capacity is None else server.capacity
                ready += 1
                total += cap
                if cap > server.users:
                    free += cap - server.users
        return (len(state.servers), ready, total, len(state.tickets), free, len(state.waiting))

    def summary(self, app: str, *, capacity: int) -> LoadSummary:
        """The autoscaler's `LoadSummary` of `app` (servers in name order); `capacity` is the
        capacity of servers whose own the view does not know (see the module docstring)."""
        state = self._apps.get(app)
        if state is None:
            return LoadSummary()
        servers = tuple(
            ServerLoad(
                name=name,
                capacity=capacity if s.capacity is None else s.capacity,
                users=s.users,
                ready=s.ready,
                idle_since=s.idle_since,
            )
            for name, s in sorted(state.servers.items())
        )
        return LoadSummary(servers, len(state.waiting))
