"""The messages replicas exchange with the ticket authority (see `_replica.py`), as JSON.

Typed with msgspec: every message decodes into a Struct or one of the table's own dataclasses, so
a malformed or hostile body fails decoding with a `msgspec.ValidationError` naming the field,
instead of surfacing later as a wrong type. Changes travel as `{"kind": <class name>, "change":
<its fields>}` because the table's changes are plain dataclasses (no msgspec tag).

No I/O.
"""

from __future__ import annotations

from typing import Final

import msgspec

from rxkube.proxy._table import (
    AppLoad,
    Change,
    Granted,
    LoadChanged,
    ServerChanged,
    ServerRef,
    TicketIssued,
    TicketReleased,
    TicketRestored,
    WaiterLeft,
    WaiterQueued,
    Waiting,
)

__all__: list[str] = []

CHANGE_TYPES: Final[dict[str, type[Change]]] = {
    cls.__name__: cls
    for cls in (
        TicketIssued,
        TicketReleased,
        TicketRestored,
        WaiterQueued,
        WaiterLeft,
        LoadChanged,
        ServerChanged,
    )
}


class TicketRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    app: str
    client: str
    prefer: ServerRef | None = None


class DecisionAnswer(msgspec.Struct, frozen=True, omit_defaults=True):
    granted: Granted | None = None
    waiting: Waiting | None = None


class GiveBack(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    app: str
    ticket: str


class GiveUp(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    app: str
    client: str


class Report(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Tickets live on the reporting replica: (app, ticket, server, idle seconds)."""

    tickets: list[tuple[str, str, ServerRef, float]]


class ReportAnswer(msgspec.Struct, frozen=True):
    refused: list[tuple[str, str]]
    """(app, ticket) that the authority does not hold where the report said."""


class ErrorAnswer(msgspec.Struct, frozen=True, omit_defaults=True):
    error: str
    leader: str | None = None


class Health(msgspec.Struct, frozen=True):
    identity: str
    role: str
    leader: str | None


class AppState(msgspec.Struct, frozen=True):
    tickets: list[tuple[str, ServerRef]]
    """In the order they were issued."""
    waiters: list[str]
    """In queue order."""
    load: AppLoad


class Snapshot(msgspec.Struct, frozen=True, tag="snapshot"):
    identity: str
    apps: dict[str, AppState]


class ChangeLine(msgspec.Struct, frozen=True, tag="change"):
    kind: str
    change: msgspec.Raw


class Heartbeat(msgspec.Struct, frozen=True, tag="heartbeat"):
    pass


FeedLine = Snapshot | ChangeLine | Heartbeat

_encoder = msgspec.json.Encoder()
_feed_decoder = msgspec.json.Decoder(FeedLine)


def encode(message: object) -> bytes:
    return _encoder.encode(message)


def encode_change(change: Change) -> bytes:
    """One line of the changes feed (newline included)."""
    raw = msgspec.Raw(_encoder.encode(change))
    return _encoder.encode(ChangeLine(type(change).__name__, raw)) + b"\n"


def decode_feed_line(line: bytes | str) -> Snapshot | Change | None:
    """A snapshot, a change, or None for a heartbeat; raises msgspec.ValidationError (or
    DecodeError) on anything else."""
    message = _feed_decoder.decode(line)
    if isinstance(message, Heartbeat):
        return None
    if isinstance(message, Snapshot):
        return message
    cls = CHANGE_TYPES.get(message.kind)
    if cls is None:
        raise msgspec.ValidationError(f"unknown change kind {message.kind!r}")
    return msgspec.json.decode(message.change, type=cls)


HEARTBEAT_LINE: Final = encode(Heartbeat()) + b"\n"
