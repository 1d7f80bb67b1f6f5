"""The ticket table, event by event, at exact times (no clock: `now` is an argument)."""

from __future__ import annotations

import pytest

from rxkube.proxy import (
    AppAdded,
    AppLoad,
    AppRemoved,
    AppSettings,
    ClientState,
    Granted,
    LoadChanged,
    ServerAdded,
    ServerRef,
    ServerRemoved,
    ServerUpdated,
    Tick,
    TicketConnectionClosed,
    TicketConnectionOpened,
    TicketIssued,
    TicketReleased,
    TicketReported,
    TicketRestored,
    TicketReturned,
    TicketTable,
    TicketTableError,
    Trigger,
    WaiterGaveUp,
    WaiterLeft,
    WaiterQueued,
    WaiterReported,
    Waiting,
)
from rxkube.proxy._table import CLIENT_TRANSITIONS

S0 = ServerRef("lab-0", "uid-0")
S1 = ServerRef("lab-1", "uid-1")


def table_with(
    *servers: ServerRef, tickets_max: int = 1, hold: float = 30.0, idle: float = 60.0
) -> TicketTable:
    table = TicketTable()
    settings = AppSettings(tickets_max=tickets_max, hold_time=hold, idle_timeout=idle)
    table.apply(AppAdded("lab", settings), 0.0)
    for server in servers:
        table.apply(ServerAdded("lab", server), 0.0)
    return table


def test_a_free_slot_gives_a_ticket_at_once() -> None:
    table = table_with(S0)
    decision, effects = table.request("lab", "alice", 1.0)
    assert decision == Granted("alice", S0, new=True)
    assert effects == [
        TicketIssued("lab", "alice", S0, 1.0, waited=0.0),
        LoadChanged(AppLoad("lab", 1, 1, 1, tickets=1, free=0, queued=0, held=0, time=1.0)),
    ]
    again, effects = table.request("lab", "alice", 2.0)
    assert again == Granted("alice", S0, new=False)
    assert effects == []


def test_tickets_are_packed_onto_the_busiest_server_with_room() -> None:
    table = table_with(S0, S1, tickets_max=2)
    assert table.request("lab", "a", 1.0)[0] == Granted("a", S0, True)
    assert table.request("lab", "b", 1.0)[0] == Granted("b", S0, True)
    assert table.request("lab", "c", 1.0)[0] == Granted("c", S1, True)


def test_waiting_room_is_first_in_first_out_with_a_hold_for_the_head() -> None:
    table = table_with(S0, hold=30.0)
    table.request("lab", "alice", 0.0)
    assert table.request("lab", "bob", 1.0)[0] == Waiting(position=0, queued=1)
    assert table.request("lab", "carol", 2.0)[0] == Waiting(position=1, queued=2)
    effects = table.apply(TicketReturned("lab", "alice"), 5.0)
    assert TicketReleased("lab", "alice", S0, 5.0, "released") in effects
    assert table.client_state("lab", "bob") is ClientState.ADMITTED
    # The held slot is bob's: carol, polling, still waits, and so would a newcomer.
    assert table.request("lab", "carol", 6.0)[0] == Waiting(position=1, queued=2)
    assert table.request("lab", "dave", 6.0)[0] == Waiting(position=2, queued=3)
    decision, effects = table.request("lab", "bob", 7.0)
    assert decision == Granted("bob", S0, new=True)
    assert effects[0] == TicketIssued("lab", "bob", S0, 7.0, waited=6.0)
    assert table.queue("lab") == ["carol", "dave"]


def test_a_silent_head_leaves_and_the_slot_passes_to_the_next_waiter() -> None:
    table = table_with(S0, hold=30.0)  # leave_after is 10 s
    table.request("lab", "alice", 0.0)
    table.request("lab", "bob", 1.0)
    table.request("lab", "carol", 2.0)
    table.apply(TicketReturned("lab", "alice"), 10.0)
    assert table.client_state("lab", "bob") is ClientState.ADMITTED
    table.request("lab", "carol", 10.0)
    effects = table.apply(Tick(), 15.0)
    assert effects[0] == WaiterLeft("lab", "bob", 15.0, "timeout")
    assert table.client_state("lab", "carol") is ClientState.ADMITTED
    decision, effects = table.request("lab", "carol", 16.0)
    assert decision == Granted("carol", S0, new=True)
    assert effects[0] == TicketIssued("lab", "carol", S0, 16.0, waited=14.0)


def test_hold_expires_at_exactly_hold_time() -> None:
    table = TicketTable()
    settings = AppSettings(tickets_max=1, hold_time=30.0, idle_timeout=1000.0, leave_after=1000.0)
    table.apply(AppAdded("lab", settings), 0.0)
    table.apply(ServerAdded("lab", S0), 0.0)
    table.request("lab", "alice", 0.0)
    table.request("lab", "bob", 0.0)
    table.request("lab", "carol", 0.0)
    table.apply(TicketReturned("lab", "alice"), 21.0)
    assert table.client_state("lab", "bob") is ClientState.ADMITTED
    assert table.apply(Tick(), 50.999) == []
    effects = table.apply(Tick(), 51.0)
    assert effects[0] == WaiterLeft("lab", "bob", 51.0, "hold-expired")
    assert table.client_state("lab", "carol") is ClientState.ADMITTED
    # A claim inside the hold succeeds.
    assert table.request("lab", "carol", 80.9)[0] == Granted("carol", S0, new=True)


def test_a_waiter_who_stops_polling_leaves() -> None:
    table = TicketTable()
    table.apply(AppAdded("lab", AppSettings(tickets_max=0, leave_after=10.0)), 0.0)
    table.apply(ServerAdded("lab", S0), 0.0)
    table.request("lab", "bob", 0.0)
    table.request("lab", "carol", 0.0)
    table.request("lab", "carol", 5.0)
    assert table.apply(Tick(), 9.0) == []
    effects = table.apply(Tick(), 10.0)
    assert effects[0] == WaiterLeft("lab", "bob", 10.0, "timeout")
    assert table.queue("lab") == ["carol"]
    effects = table.apply(WaiterGaveUp("lab", "carol"), 11.0)
    assert effects[0] == WaiterLeft("lab", "carol", 11.0, "left")


def test_idle_tickets_are_released_but_not_while_a_connection_is_open() -> None:
    table = table_with(S0, S1, idle=60.0)
    table.request("lab", "alice", 0.0)
    table.request("lab", "bob", 0.0)
    table.apply(TicketConnectionOpened("lab", "bob"), 1.0)
    table.touch("lab", "alice", 30.0)
    assert [e for e in table.apply(Tick(), 89.9) if isinstance(e, TicketReleased)] == []
    effects = table.apply(Tick(), 90.0)
    assert [e for e in effects if isinstance(e, TicketReleased)] == [
        TicketReleased("lab", "alice", S0, 90.0, "idle")
    ]
    assert table.apply(Tick(), 500.0) == []  # bob's connection is still open
    table.apply(TicketConnectionClosed("lab", "bob"), 600.0)
    assert table.apply(Tick(), 659.0) == []
    assert TicketReleased("lab", "bob", S1, 660.0, "idle") in table.apply(Tick(), 660.0)


def test_drain_keeps_holders_and_stops_new_tickets() -> None:
    table = table_with(S0, S1, tickets_max=2)
    table.request("lab", "a", 0.0)
    table.apply(ServerUpdated("lab", S0, ready=False), 1.0)
    assert table.ticket_server("lab", "a") == S0
    assert table.request("lab", "b", 2.0)[0] == Granted("b", S1, True)
    assert table.request("lab", "c", 2.0)[0] == Granted("c", S1, True)
    assert isinstance(table.request("lab", "d", 2.0)[0], Waiting)


def test_lowering_capacity_never_evicts() -> None:
    table = table_with(S0, tickets_max=3)
    for client in "abc":
        table.request("lab", client, 0.0)
    effects = table.apply(ServerUpdated("lab", S0, ready=True, capacity=1), 1.0)
    assert not [e for e in effects if isinstance(e, TicketReleased)]
    assert table.server_tickets("lab", S0) == 3
    assert isinstance(table.request("lab", "d", 2.0)[0], Waiting)
    table.apply(TicketReturned("lab", "a"), 3.0)
    table.apply(TicketReturned("lab", "b"), 3.0)
    assert table.client_state("lab", "d") is ClientState.WAITING  # 1 holder on capacity 1
    table.apply(TicketReturned("lab", "c"), 3.0)
    assert table.client_state("lab", "d") is ClientState.ADMITTED


def test_removing_a_server_releases_its_tickets() -> None:
    table = table_with(S0, S1)
    table.request("lab", "a", 0.0)
    table.request("lab", "b", 0.0)
    effects = table.apply(ServerRemoved("lab", S0), 5.0)
    assert TicketReleased("lab", "a", S0, 5.0, "server-removed") in effects
    assert table.ticket_server("lab", "a") is None
    assert table.ticket_server("lab", "b") == S1
    assert table.touch("lab", "a", 6.0) is None


def test_a_slot_lost_to_shrinking_capacity_keeps_the_waiters_place() -> None:
    table = table_with(S0, S1)
    table.request("lab", "a", 0.0)
    table.request("lab", "b", 0.0)
    table.request("lab", "w1", 0.0)
    table.request("lab", "w2", 0.0)
    table.apply(TicketReturned("lab", "a"), 1.0)
    assert table.client_state("lab", "w1") is ClientState.ADMITTED
    table.apply(ServerUpdated("lab", S0, ready=False), 2.0)
    assert table.client_state("lab", "w1") is ClientState.WAITING
    assert table.queue("lab") == ["w1", "w2"]


def test_resume_prefers_the_server_the_cookie_names() -> None:
    table = table_with(S0, S1, tickets_max=2)
    table.request("lab", "a", 0.0)
    decision, effects = table.request("lab", "b", 1.0, prefer=S1)
    assert decision == Granted("b", S1, new=True)
    assert effects[0] == TicketIssued("lab", "b", S1, 1.0, 0.0, resumed=True)
    # A full or unknown preferred server falls back to the normal choice.
    decision, _ = table.request("lab", "c", 1.0, prefer=ServerRef("gone", "x"))
    assert decision == Granted("c", S0, new=True)


def test_a_reported_ticket_is_restored_where_it_names_only_if_there_is_room() -> None:
    table = table_with(S0, S1, tickets_max=1, idle=60.0)
    table.apply(ServerUpdated("lab", S1, ready=False), 0.0)  # draining keeps holders (I8)
    effects = table.apply(TicketReported("lab", "t1", S1, idle=5.0), 10.0)
    assert effects[0] == TicketRestored("lab", "t1", S1, 10.0)
    assert table.ticket_server("lab", "t1") == S1
    assert table.last_seen("lab", "t1") == 5.0
    # Full, unknown, or idle too long: refused, nothing changes.
    table.request("lab", "a", 10.0)
    assert table.apply(TicketReported("lab", "t2", S0), 11.0) == []
    assert table.apply(TicketReported("lab", "t3", ServerRef("gone", "x")), 11.0) == []
    table.apply(TicketReturned("lab", "a"), 11.0)
    assert table.apply(TicketReported("lab", "t4", S0, idle=60.0), 12.0) == []
    assert table.ticket_server("lab", "t2") is None
    # Held already: a touch, never a move.
    assert table.apply(TicketReported("lab", "t1", S0, idle=0.0), 20.0) == []
    assert (table.ticket_server("lab", "t1"), table.last_seen("lab", "t1")) == (S1, 5.0)
    assert table.apply(TicketReported("lab", "t1", S1, idle=0.0), 20.0) == []
    assert table.last_seen("lab", "t1") == 20.0
    assert table.apply(TicketReported("lab", "t1", S1, idle=30.0), 21.0) == []
    assert table.last_seen("lab", "t1") == 20.0  # an older report does not turn back time


def test_a_restored_ticket_takes_a_held_slot_and_the_waiter_keeps_its_place() -> None:
    table = table_with(S0, tickets_max=1)
    table.request("lab", "a", 0.0)
    table.request("lab", "w", 1.0)
    table.apply(TicketReturned("lab", "a"), 2.0)
    assert table.client_state("lab", "w") is ClientState.ADMITTED
    table.apply(TicketReported("lab", "old", S0), 3.0)
    assert table.client_state("lab", "w") is ClientState.WAITING
    assert table.queue("lab") == ["w"]
    table.check_invariants(3.0)


def test_reported_waiters_rejoin_in_the_order_given() -> None:
    table = table_with(S0)
    table.request("lab", "a", 0.0)
    for client in ("w2", "w1", "a", "w2"):  # a holder and a repeat change nothing
        table.apply(WaiterReported("lab", client), 1.0)
    assert table.queue("lab") == ["w2", "w1"]
    assert table.request("lab", "w1", 2.0)[0] == Waiting(position=1, queued=2)


def test_removing_an_app_releases_everyone() -> None:
    table = table_with(S0)
    table.request("lab", "a", 0.0)
    table.request("lab", "w", 0.0)
    effects = table.apply(AppRemoved("lab"), 1.0)
    assert TicketReleased("lab", "a", S0, 1.0, "app-removed") in effects
    assert WaiterLeft("lab", "w", 1.0, "app-removed") in effects
    assert list(table.apps) == []


def test_queue_changes_are_reported_as_load() -> None:
    table = table_with(S0)
    table.request("lab", "a", 0.0)
    _, effects = table.request("lab", "w", 1.0)
    assert effects == [
        WaiterQueued("lab", "w", 0, 1.0),
        LoadChanged(AppLoad("lab", 1, 1, 1, tickets=1, free=0, queued=1, held=0, time=1.0)),
    ]


@pytest.mark.parametrize(
    "event",
    [
        AppAdded("lab"),
        ServerAdded("lab", S0),
        ServerUpdated("lab", ServerRef("x", "y"), ready=True),
        ServerRemoved("nope", S0),
        TicketReturned("lab", "nobody"),
        WaiterGaveUp("lab", "nobody"),
        TicketConnectionClosed("lab", "nobody"),
    ],
)
def test_events_that_make_no_sense_raise(event: object) -> None:
    table = table_with(S0)
    with pytest.raises(TicketTableError):
        table.apply(event, 1.0)  # type: ignore[arg-type]


def test_the_transition_table_is_the_whole_story() -> None:
    # Every state is reachable and ABSENT is reachable from every state.
    targets = {to for (_, _), to in CLIENT_TRANSITIONS.items()}
    assert targets == set(ClientState)
    for state in ClientState:
        if state is not ClientState.ABSENT:
            assert ClientState.ABSENT in {
                to for (frm, _), to in CLIENT_TRANSITIONS.items() if frm is state
            }
    # A pair missing from the table is refused, not improvised.
    assert (ClientState.ABSENT, Trigger.CLAIM) not in CLIENT_TRANSITIONS
    assert (ClientState.WAITING, Trigger.IDLE) not in CLIENT_TRANSITIONS
