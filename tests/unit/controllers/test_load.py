"""LoadView: the fold of a ticket table's changes gives the table's own numbers, step by step."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from rxkube.controllers import LoadView, load_summary, track_idle
from rxkube.proxy import (
    AppAdded,
    AppRemoved,
    AppSettings,
    AppUpdated,
    Granted,
    ServerAdded,
    ServerRef,
    ServerRemoved,
    ServerUpdated,
    TableEvent,
    Tick,
    TicketIssued,
    TicketReleased,
    TicketReturned,
    TicketTable,
    WaiterGaveUp,
    WaiterLeft,
    WaiterQueued,
)

SERVERS = [ServerRef(f"lab-{i}", f"u{i}") for i in range(3)]
CLIENTS = [f"c{i}" for i in range(6)]

operation = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(SERVERS), st.booleans()),
    st.tuples(st.just("ready"), st.sampled_from(SERVERS), st.booleans()),
    st.tuples(st.just("remove"), st.sampled_from(SERVERS), st.booleans()),
    st.tuples(st.just("request"), st.sampled_from(CLIENTS), st.booleans()),
    st.tuples(st.just("return"), st.sampled_from(CLIENTS), st.booleans()),
    st.tuples(st.just("give up"), st.sampled_from(CLIENTS), st.booleans()),
    st.tuples(st.just("capacity"), st.integers(1, 3), st.booleans()),
    st.tuples(st.just("tick"), st.just(""), st.booleans()),
    st.tuples(st.just("re-add app"), st.just(""), st.booleans()),
)


def event_for(table: TicketTable, op: str, arg: object, flag: bool) -> TableEvent | None:
    servers = set(table.servers("lab")) if "lab" in table.apps else set()
    if "lab" not in table.apps:
        return AppAdded("lab", AppSettings(tickets_max=2, idle_timeout=5.0, leave_after=3.0))
    if op == "add" and arg not in servers:
        assert isinstance(arg, ServerRef)
        return ServerAdded("lab", arg, ready=flag)
    if op == "ready" and arg in servers:
        assert isinstance(arg, ServerRef)
        return ServerUpdated("lab", arg, ready=flag)
    if op == "remove" and arg in servers:
        assert isinstance(arg, ServerRef)
        return ServerRemoved("lab", arg)
    if op == "return" and table.ticket_server("lab", str(arg)) is not None:
        return TicketReturned("lab", str(arg))
    if op == "give up" and table.position("lab", str(arg)) is not None:
        return WaiterGaveUp("lab", str(arg))
    if op == "capacity":
        assert isinstance(arg, int)
        return AppUpdated("lab", AppSettings(tickets_max=arg, idle_timeout=5.0, leave_after=3.0))
    if op == "tick":
        return Tick()
    if op == "re-add app":
        return AppRemoved("lab")
    return None


@settings(max_examples=60, deadline=None)
@given(st.lists(operation, max_size=40))
def test_the_fold_of_the_changes_equals_the_table(ops: list[tuple[str, object, bool]]) -> None:
    table, view = TicketTable(), LoadView()
    idle: dict[str, float] = {}
    for step, (op, arg, flag) in enumerate(ops):
        now = float(step)
        if op == "request" and "lab" in table.apps:
            _, effects = table.request("lab", str(arg), now)
        else:
            event = event_for(table, op, arg, flag)
            effects = [] if event is None else table.apply(event, now)
        for change in effects:
            view.apply(change)
        idle = track_idle(idle, table, "lab", now=now)
        assert view.known("lab") == ("lab" in table.apps)
        if "lab" not in table.apps:
            continue
        capacity = table.settings("lab").tickets_max
        expected = load_summary(table, "lab", idle_since=idle, now=now)
        by_name = tuple(sorted(expected.servers, key=lambda s: s.name))  # the view's order
        assert view.summary("lab", capacity=capacity) == replace(expected, servers=by_name)
        assert view.users("lab") == len(table.tickets("lab"))
        assert view.waiting("lab") == len(table.queue("lab"))
        # A view started late from the table's snapshot has the same numbers (its idle times
        # start at the snapshot: it cannot know them).
        late = LoadView()
        assert late.reset(table.snapshot(now)) == ["lab"]
        assert late.numbers("lab", capacity=capacity) == view.numbers("lab", capacity=capacity)
        assert [(s.name, s.users, s.ready) for s in late.summary("lab", capacity=1).servers] == [
            (s.name, s.users, s.ready) for s in view.summary("lab", capacity=1).servers
        ]


def test_recorded_changes_fold_without_a_table() -> None:
    view = LoadView()
    a = ServerRef("lab-a", "ua")
    from rxkube.proxy import ServerChanged

    view.apply(ServerChanged("lab", None, "app-added", True, 0, 0.0))
    view.apply(ServerChanged("lab", a, "added", True, 2, 1.0))
    view.apply(WaiterQueued("lab", "bob", 0, 1.5))
    view.apply(TicketIssued("lab", "alice", a, 2.0, 0.0))
    view.apply(TicketIssued("lab", "bob", a, 3.0, 1.5))
    assert (view.users("lab"), view.waiting("lab"), view.issued("lab")) == (2, 0, 2)
    view.apply(TicketReleased("lab", "alice", a, 4.0, "idle"))
    view.apply(TicketReleased("lab", "ghost", a, 4.5, "released"))  # never seen: no change
    view.apply(WaiterLeft("lab", "carol", 5.0, "timeout"))
    summary = view.summary("lab", capacity=9)
    assert [(s.users, s.capacity, s.idle_since) for s in summary.servers] == [(1, 2, None)]
    view.apply(TicketReleased("lab", "bob", a, 6.0, "released"))
    assert view.summary("lab", capacity=9).servers[0].idle_since == 6.0
    assert view.apply(ServerChanged("lab", None, "app-removed", False, 0, 7.0)) == "lab"
    assert not view.known("lab")
    assert view.apply(TicketIssued("lab", "x", a, 8.0, 0.0)) is None  # an unknown app
    assert isinstance(Granted("t", a, True), Granted)
