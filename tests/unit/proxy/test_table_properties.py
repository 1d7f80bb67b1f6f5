"""Every invariant of the ticket table (I1-I7, proxy/_table.py) under random event sequences.

Example counts stay modest: the suite runs on two shared cores.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from rxkube.proxy import (
    AppAdded,
    AppRemoved,
    AppSettings,
    AppUpdated,
    Change,
    ClientState,
    Granted,
    ServerAdded,
    ServerRef,
    ServerRemoved,
    ServerUpdated,
    TableEvent,
    Tick,
    TicketConnectionClosed,
    TicketConnectionOpened,
    TicketIssued,
    TicketReleased,
    TicketReported,
    TicketRestored,
    TicketReturned,
    TicketTable,
    WaiterGaveUp,
    WaiterLeft,
    WaiterReported,
)

APPS = ["a", "b"]
SERVERS = [ServerRef(f"pod-{i}", f"uid-{i}") for i in range(4)]
CLIENTS = [f"c{i}" for i in range(8)]


class TableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = TicketTable()
        self.now = 0.0
        self.connections: dict[tuple[str, str], int] = {}

    # -- helpers ------------------------------------------------------------------------------

    def snapshot(self, app: str) -> dict[str, object]:
        table = self.table
        servers = {
            s: (
                table.server_ready(app, s),
                table.server_tickets(app, s),
                table.server_capacity(app, s),
            )
            for s in table.servers(app)
        }
        free = sum(max(0, cap - used) for ready, used, cap in servers.values() if ready)
        return {
            "servers": servers,
            "queue": table.queue(app),
            "held": table.held(app),
            "free": free,
        }

    def check_effects(self, app: str, before: dict[str, object], effects: list[Change]) -> None:
        servers = before["servers"]
        queue = before["queue"]
        assert isinstance(servers, dict)
        assert isinstance(queue, list)
        held, free = before["held"], before["free"]
        assert isinstance(held, int)
        assert isinstance(free, int)
        issued = [e for e in effects if isinstance(e, TicketIssued)]
        assert len(issued) <= 1
        for issue in issued:
            ready, used, cap = servers[issue.server]
            assert ready, "I1: issued on a draining server"
            assert used < cap, "I1: issued on a full server"
            if issue.ticket in queue:
                # I4: only a waiter whose slot was held is served
                assert queue.index(issue.ticket) < held, "I4: served out of order"
            else:
                assert free - held > 0, "I4: a newcomer took a held slot"
        restored = [e for e in effects if isinstance(e, TicketRestored)]
        assert len(restored) <= 1
        for restore in restored:
            _, used, cap = servers[restore.server]
            assert used < cap, "I8: restored onto a full server"
            assert restore.ticket not in queue, "I8: a waiter became a holder without its turn"
        for change in effects:
            if isinstance(change, TicketReleased) and change.reason == "idle":
                key = (change.app, change.ticket)
                assert self.connections.get(key, 0) == 0, "I7: released with an open connection"

    def step(self, app: str, event: TableEvent) -> list[Change]:
        before = self.snapshot(app) if app in self.table.apps else None
        effects = self.table.apply(event, self.now)
        if before is not None and app in self.table.apps:
            self.check_effects(app, before, effects)
        self.forget_released(effects)
        return effects

    def forget_released(self, effects: list[Change]) -> None:
        for change in effects:
            if isinstance(change, TicketReleased):
                self.connections.pop((change.app, change.ticket), None)

    # -- rules --------------------------------------------------------------------------------

    @initialize(tickets_max=st.just(1), idle=st.sampled_from([2.0, 10.0]))
    def start_with_servers(self, tickets_max: int, idle: float) -> None:
        """Start from two apps with two servers each, so short programs already do something."""
        for app in APPS:
            settings = AppSettings(tickets_max, idle_timeout=idle, hold_time=5.0, leave_after=4.0)
            self.step(app, AppAdded(app, settings))
            for server in SERVERS[:2]:
                self.step(app, ServerAdded(app, server))

    @rule(
        app=st.sampled_from(APPS),
        tickets_max=st.integers(0, 3),
        hold=st.sampled_from([1.0, 5.0]),
        idle=st.sampled_from([2.0, 10.0]),
    )
    def add_or_update_app(self, app: str, tickets_max: int, hold: float, idle: float) -> None:
        settings = AppSettings(tickets_max, idle_timeout=idle, hold_time=hold, leave_after=4.0)
        if app in self.table.apps:
            self.step(app, AppUpdated(app, settings))
        else:
            self.step(app, AppAdded(app, settings))

    @precondition(lambda self: bool(list(self.table.apps)))
    @rule(data=st.data(), server=st.sampled_from(SERVERS), ready=st.booleans())
    def add_or_update_server(self, data: st.DataObject, server: ServerRef, ready: bool) -> None:
        app = data.draw(st.sampled_from(sorted(self.table.apps)))
        capacity = data.draw(st.none() | st.integers(0, 3))
        if server in set(self.table.servers(app)):
            self.step(app, ServerUpdated(app, server, ready, capacity))
        else:
            self.step(app, ServerAdded(app, server, ready, capacity))

    @precondition(lambda self: bool(list(self.table.apps)))
    @rule(data=st.data())
    def remove_server(self, data: st.DataObject) -> None:
        app = data.draw(st.sampled_from(sorted(self.table.apps)))
        servers = list(self.table.servers(app))
        if not servers:
            return
        server = data.draw(st.sampled_from(servers))
        held = [t for t, s in self.table.tickets(app).items() if s == server]
        effects = self.step(app, ServerRemoved(app, server))
        released = {e.ticket for e in effects if isinstance(e, TicketReleased)}
        assert released == set(held), "I2: a removed server's tickets are released"
        assert server not in set(self.table.tickets(app).values())

    @precondition(lambda self: bool(list(self.table.apps)))
    @rule(data=st.data())
    def remove_app(self, data: st.DataObject) -> None:
        app = data.draw(st.sampled_from(sorted(self.table.apps)))
        self.step(app, AppRemoved(app))
        for key in [k for k in self.connections if k[0] == app]:
            del self.connections[key]

    @precondition(lambda self: bool(list(self.table.apps)))
    @rule(
        data=st.data(), client=st.sampled_from(CLIENTS), prefer=st.none() | st.sampled_from(SERVERS)
    )
    def request(self, data: st.DataObject, client: str, prefer: ServerRef | None) -> None:
        app = data.draw(st.sampled_from(sorted(self.table.apps)))
        before = self.snapshot(app)
        was = self.table.client_state(app, client)
        decision, effects = self.table.request(app, client, self.now, prefer)
        self.check_effects(app, before, effects)
        self.forget_released(effects)
        if isinstance(decision, Granted):
            assert self.table.client_state(app, client) is ClientState.TICKETED
            assert decision.new == (was is not ClientState.TICKETED)
        else:
            assert self.table.client_state(app, client) in {
                ClientState.WAITING,
                ClientState.ADMITTED,
            }
            assert self.table.queue(app)[decision.position] == client

    @precondition(lambda self: bool(list(self.table.apps)))
    @rule(data=st.data(), action=st.sampled_from(["touch", "open", "close", "return", "give-up"]))
    def holder_or_waiter_acts(self, data: st.DataObject, action: str) -> None:
        app = data.draw(st.sampled_from(sorted(self.table.apps)))
        tickets = sorted(self.table.tickets(app))
        queue = self.table.queue(app)
        if action == "give-up":
            if queue:
                client = data.draw(st.sampled_from(queue))
                effects = self.step(app, WaiterGaveUp(app, client))
                assert WaiterLeft(app, client, self.now, "left") in effects
            return
        if not tickets:
            return
        ticket = data.draw(st.sampled_from(tickets))
        key = (app, ticket)
        if action == "touch":
            assert self.table.touch(app, ticket, self.now) == self.table.ticket_server(app, ticket)
        elif action == "open":
            self.step(app, TicketConnectionOpened(app, ticket))
            self.connections[key] = self.connections.get(key, 0) + 1
        elif action == "close":
            if self.connections.get(key, 0) > 0:
                self.step(app, TicketConnectionClosed(app, ticket))
                self.connections[key] -= 1
        else:
            self.step(app, TicketReturned(app, ticket))
            assert self.table.ticket_server(app, ticket) is None

    @precondition(lambda self: bool(list(self.table.apps)))
    @rule(data=st.data(), client=st.sampled_from(CLIENTS))
    def connect(self, data: st.DataObject, client: str) -> None:
        """A client asks and, if served, keeps a connection open (a WebSocket, say)."""
        app = data.draw(st.sampled_from(sorted(self.table.apps)))
        decision, effects = self.table.request(app, client, self.now)
        self.forget_released(effects)
        if isinstance(decision, Granted):
            self.step(app, TicketConnectionOpened(app, client))
            self.connections[app, client] = self.connections.get((app, client), 0) + 1

    @precondition(lambda self: bool(list(self.table.apps)))
    @rule(
        data=st.data(),
        client=st.sampled_from(CLIENTS),
        server=st.sampled_from(SERVERS),
        idle=st.sampled_from([0.0, 1.5, 30.0]),
        waiter=st.booleans(),
    )
    def a_replica_reports(
        self, data: st.DataObject, client: str, server: ServerRef, idle: float, waiter: bool
    ) -> None:
        """After a fail-over, replicas report live tickets and waiters (I8)."""
        app = data.draw(st.sampled_from(sorted(self.table.apps)))
        was = self.table.client_state(app, client)
        held_on = self.table.ticket_server(app, client)
        if waiter:
            effects = self.step(app, WaiterReported(app, client))
            if was is ClientState.ABSENT:
                assert self.table.queue(app)[-1] == client
            else:
                assert self.table.client_state(app, client) is was
            return
        effects = self.step(app, TicketReported(app, client, server, idle))
        now_on = self.table.ticket_server(app, client)
        if held_on is not None or was is not ClientState.ABSENT:
            assert now_on == held_on, "a report never moves a holder or serves a waiter"
            assert not effects
        elif now_on is not None:
            assert now_on == server
            assert idle < self.table.settings(app).idle_timeout
            assert self.table.last_seen(app, client) == self.now - idle

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 3.0, 11.0]))
    def tick(self, dt: float) -> None:
        self.now += dt
        effects = self.table.apply(Tick(), self.now)
        for change in effects:
            if isinstance(change, TicketReleased) and change.reason == "idle":
                key = (change.app, change.ticket)
                assert self.connections.get(key, 0) == 0, "I7: released with an open connection"
        self.forget_released(effects)
        # I5, I6, I7 hold right after a tick.
        for app in self.table.apps:
            state = self.table._apps[app]
            s = state.settings
            for waiter in state.waiters.values():
                assert waiter.last_poll > self.now - s.leave_after, "I6: a silent waiter stayed"
                if waiter.hold_until is not None:
                    assert waiter.hold_until > self.now, "I5: a hold outlived hold_time"
                    assert waiter.hold_until <= self.now + s.hold_time
            for ticket in state.tickets.values():
                if ticket.connections == 0:
                    assert ticket.last_seen > self.now - s.idle_timeout, "I7: idle ticket kept"

    # -- invariants after every step ----------------------------------------------------------

    @invariant()
    def structure_holds(self) -> None:
        self.table.check_invariants(self.now)  # I2, I3, I4

    @invariant()
    def connection_counts_agree(self) -> None:
        for (app, ticket), count in self.connections.items():
            assert self.table.connections(app, ticket) == count


TableMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None, derandomize=True
)
TestTable = TableMachine.TestCase
