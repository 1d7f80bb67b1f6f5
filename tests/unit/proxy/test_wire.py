"""The replicas' wire format: every change survives the trip; anything else is refused by name."""

from __future__ import annotations

import msgspec
import pytest
import trio
import trio.lowlevel

from rxkube.proxy import (
    AppLoad,
    Change,
    LoadChanged,
    ServerChanged,
    ServerRef,
    TicketAuthority,
    TicketIssued,
    TicketReleased,
    TicketRestored,
    WaiterLeft,
    WaiterQueued,
    open_replicated_authority,
)
from rxkube.proxy import _wire as wire

S = ServerRef("lab-0", "uid-0")
LOAD = AppLoad("lab", 2, 1, 4, tickets=3, free=1, queued=2, held=1, time=7.5)
CHANGES: list[Change] = [
    TicketIssued("lab", "t1", S, 1.0, 0.5, resumed=True),
    TicketReleased("lab", "t1", S, 2.0, "idle"),
    TicketRestored("lab", "t2", S, 3.0),
    WaiterQueued("lab", "w", 0, 4.0),
    WaiterLeft("lab", "w", 5.0, "hold-expired"),
    LoadChanged(LOAD),
    ServerChanged("lab", S, "updated", False, 2, 6.0),
    ServerChanged("lab", None, "app-removed", False, 0, 6.5),
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: type(c).__name__)
def test_every_change_round_trips(change: Change) -> None:
    line = wire.encode_change(change)
    assert line.endswith(b"\n")
    assert wire.decode_feed_line(line) == change


def test_snapshots_and_heartbeats() -> None:
    snapshot = wire.Snapshot("a", {"lab": wire.AppState([("t1", S)], ["w"], LOAD)})
    assert wire.decode_feed_line(wire.encode(snapshot)) == snapshot
    assert wire.decode_feed_line(wire.HEARTBEAT_LINE) is None


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b'{"type": "nope"}',
        b'{"type": "change", "kind": "TicketStolen", "change": {}}',
        b'{"type": "change", "kind": "TicketReleased", "change": {"app": 1}}',
        b'{"type": "change", "kind": "TicketReleased", "change": {"app": "lab", "ticket": "t",'
        b' "server": ["a", "b"], "time": 1, "reason": "stolen"}}',
        b'{"type": "snapshot", "identity": "a", "apps": {"lab": {"tickets": [["t"]]}}}',
    ],
)
def test_malformed_lines_are_refused(line: bytes) -> None:
    with pytest.raises(msgspec.MsgspecError):
        wire.decode_feed_line(line)


async def test_the_replicated_authority_is_a_ticket_authority() -> None:
    async with open_replicated_authority(keys=[b"k" * 32]) as authority:
        assert isinstance(authority, TicketAuthority)
        assert authority.role == "follower"
        authority.lead()
        assert authority.statistics().role == "leader"
    with pytest.raises(ValueError, match="shared ticket key"):
        async with open_replicated_authority(keys=[]):
            await trio.lowlevel.checkpoint()  # pragma: no cover
