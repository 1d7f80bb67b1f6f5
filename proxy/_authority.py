"""The ticket authority: the one narrow interface through which the proxy reaches the ticket table.

Why a seam here: with one proxy replica the table lives in the process (`LocalTicketAuthority`).
With several replicas behind one Service (issue 10) the authority moves: one replica owns the
table and the others ask it, or counts live in the API server. The proxy server only ever calls
the methods of `TicketAuthority`, so that move replaces the implementation, not the proxy.

The split of the methods follows what a remote authority can do cheaply:
- `request`, `give_back` and `give_up` are rare (once per user, poll or logout) and may wait on
  a round trip, so they are `async`;
- `touch`, `connection_opened` and `connection_closed` run on every proxied request or connection,
  so they are synchronous: a remote authority answers them from a local replica of the tickets
  (fed by `changes`) and batches the activity it reports;
- `tick` is called by the proxy on a timer (its nursery owns that loop); the local authority
  applies the table's `Tick`, a remote one flushes batched activity.

This module may import the table and `reactivex`; it does no I/O. Time comes from the injected
`clock` (the proxy passes `trio.current_time`, so trio's MockClock drives it in tests).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from reactivex import Observable
from reactivex.subject import Subject

from rxkube.proxy._table import (
    AppLoad,
    Change,
    Decision,
    ServerRef,
    TableEvent,
    Tick,
    TicketConnectionClosed,
    TicketConnectionOpened,
    TicketReported,
    TicketReturned,
    TicketTable,
    WaiterGaveUp,
    WaiterReported,
)

__all__ = ["AuthorityUnavailable", "LocalTicketAuthority", "TicketAuthority"]


class AuthorityUnavailable(Exception):
    """The authority cannot decide right now (a follower whose leader is unreachable or not
    yet known). The proxy answers 503 with Retry-After; users holding tickets are unaffected,
    since `touch` is answered locally."""


@runtime_checkable
class TicketAuthority(Protocol):
    """Who decides who holds a ticket. The proxy server calls nothing else of the table."""

    @property
    def changes(self) -> Observable[Change]:
        """Every change the authority makes, in order (a hot Observable)."""
        ...

    def configure(self, events: Sequence[TableEvent]) -> None:
        """Apply app and server events (`AppAdded`, `ServerUpdated`, ...) in order."""
        ...

    async def request(self, app: str, client: str, *, prefer: ServerRef | None = None) -> Decision:
        """Ask for a ticket (or poll from the waiting room) for `client`.

        Raises `AuthorityUnavailable` when no decision can be made now (a remote authority)."""
        ...

    async def give_back(self, app: str, ticket: str) -> None:
        """The holder is done with its ticket (a no-op if it holds none)."""
        ...

    async def give_up(self, app: str, client: str) -> None:
        """The waiter leaves the queue (a no-op if it is not waiting)."""
        ...

    def touch(self, app: str, ticket: str) -> ServerRef | None:
        """Note a request by the holder; its server, or None if `ticket` is not held."""
        ...

    def connection_opened(self, app: str, ticket: str) -> bool:
        """The holder opened a connection; False if `ticket` is not held (nothing to close)."""
        ...

    def connection_closed(self, app: str, ticket: str) -> None:
        """Pairs with a `connection_opened` that returned True."""
        ...

    def tick(self) -> None:
        """Time passed (called about once a second by the proxy)."""
        ...

    def loads(self) -> list[AppLoad]:
        """The current load of every app."""
        ...

    def snapshot(self) -> list[Change]:
        """The changes that build the authority's current state from nothing (apps, servers,
        tickets as `TicketRestored`, waiters): for a consumer of `changes` that starts late."""
        ...


class LocalTicketAuthority:
    """The authority of a single replica: the table in this process, a clock, a Subject."""

    __slots__ = ("_changes", "_clock", "_table")

    def __init__(self, clock: Callable[[], float], table: TicketTable | None = None) -> None:
        self._clock = clock
        self._table = TicketTable() if table is None else table
        self._changes: Subject[Change] = Subject()

    @property
    def table(self) -> TicketTable:
        """The table itself, for statistics and tests (read it; change it through events)."""
        return self._table

    @property
    def changes(self) -> Observable[Change]:
        return self._changes

    def _publish(self, effects: list[Change]) -> None:
        for change in effects:
            self._changes.on_next(change)

    def configure(self, events: Sequence[TableEvent]) -> None:
        now = self._clock()
        for event in events:
            self._publish(self._table.apply(event, now))

    async def request(self, app: str, client: str, *, prefer: ServerRef | None = None) -> Decision:
        decision, effects = self._table.request(app, client, self._clock(), prefer)
        self._publish(effects)
        return decision

    async def give_back(self, app: str, ticket: str) -> None:
        if self._table.ticket_server(app, ticket) is not None:
            self._publish(self._table.apply(TicketReturned(app, ticket), self._clock()))

    async def give_up(self, app: str, client: str) -> None:
        if app in self._table.apps and self._table.position(app, client) is not None:
            self._publish(self._table.apply(WaiterGaveUp(app, client), self._clock()))

    def touch(self, app: str, ticket: str) -> ServerRef | None:
        return self._table.touch(app, ticket, self._clock())

    def connection_opened(self, app: str, ticket: str) -> bool:
        if self._table.ticket_server(app, ticket) is None:
            return False
        self._table.apply(TicketConnectionOpened(app, ticket), self._clock())
        return True

    def connection_closed(self, app: str, ticket: str) -> None:
        # The ticket may have gone meanwhile (server removed), or been issued again under the
        # same id (its user came back) without this connection: then there is nothing to close.
        table = self._table
        if table.ticket_server(app, ticket) is not None and table.connections(app, ticket) > 0:
            table.apply(TicketConnectionClosed(app, ticket), self._clock())

    def report(self, app: str, ticket: str, server: ServerRef, *, idle: float = 0.0) -> bool:
        """A replica says `ticket` is live on `server` (I8): touch or restore it there.

        True if the ticket is now held on `server`; False if refused (unknown app or server,
        no room, held elsewhere, or idle for longer than the app's idle timeout)."""
        if app not in self._table.apps:
            return False
        self._publish(self._table.apply(TicketReported(app, ticket, server, idle), self._clock()))
        return self._table.ticket_server(app, ticket) == server

    def report_waiter(self, app: str, client: str) -> None:
        """A replica says `client` waits: it joins the end of the queue unless known already."""
        if app in self._table.apps:
            self._publish(self._table.apply(WaiterReported(app, client), self._clock()))

    def tick(self) -> None:
        self._publish(self._table.apply(Tick(), self._clock()))

    def loads(self) -> list[AppLoad]:
        now = self._clock()
        return [self._table.load(app, now) for app in self._table.apps]

    def snapshot(self) -> list[Change]:
        return self._table.snapshot(self._clock())

    def complete(self) -> None:
        """End the changes stream (the proxy calls it when it closes)."""
        self._changes.on_completed()
