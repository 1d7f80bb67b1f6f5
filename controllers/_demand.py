"""Demand and decisions in a trace: the proxy's ticket events and the autoscaler's commands.

What this module is for: DESIGN section 4 ("Trace format") says a trace holds what the
pipelines saw, demand included, so that a replay can re-create the users. This module is the
one place that writes and reads those records (pure: no I/O, no clock; times are arguments).

The ticket stream, `tickets/<namespace>` (all apps: a trace header declares its streams up
front, before any app is known), one record per change of the ticket authority::

    {"t": 12.5, "stream": "tickets/lab", "type": "issued",
     "data": {"app": "nb", "user": "c1f3", "server": "nb-rxkube-x2bq9", "uid": "...",
              "waited": 3.25, "resumed": false}}
    type "released": {"app", "user", "server", "reason"}   (released|idle|server-removed|...)
    type "restored": {"app", "user", "server", "uid"}  (re-registered with a new table leader)
    type "queued":   {"app", "user", "position"}
    type "left":     {"app", "user", "reason"}             (left|timeout|hold-expired|...)

`user` is the client id (a ticket's id is its client's, by the table's rule). Older traces with
one stream per app (`tickets/<app>`, the app in the header's stream spec, servers written as
`<namespace>/<pod>`, a `requested` record before each outcome, no `waited`) read the same.

The autoscaler's stream, `autoscaler/<namespace>`: what it decided and what the API said::

    {"type": "create", "data": {"app": "nb", "pod": "nb-rxkube-x2bq9"}}
    {"type": "delete", "data": {"app": "nb", "pod": "nb-rxkube-x2bq9", "uid": "...",
                                "reason": "idle"}}
    {"type": "failed", "data": {"app": "nb", "pod": "...", "command": "create",
                                "reason": "Forbidden", "message": "..."}}

`Visit`s are the demand model of a what-if replay: who came when, how long they held their
ticket, and how long they waited before giving up (if they did), per app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from rxkube.controllers._reconcile import CreatePod, PodCommand
from rxkube.controllers._scaling import PodCommandFailed
from rxkube.proxy import (
    Change,
    ServerRef,
    TicketIssued,
    TicketReleased,
    TicketRestored,
    WaiterLeft,
    WaiterQueued,
)
from rxkube.streams import StreamEvent, TraceRecord

__all__ = [
    "RecordedCommand",
    "Visit",
    "autoscaler_stream",
    "tickets_stream",
    "visits",
]

_RELEASE_REASONS: Final = frozenset({"released", "idle", "server-removed", "app-removed"})
_LEAVE_REASONS: Final = frozenset({"left", "timeout", "hold-expired", "app-removed"})


def tickets_stream(namespace: str) -> str:
    """The id of a namespace's ticket stream in a trace."""
    return f"tickets/{namespace}"


def autoscaler_stream(namespace: str) -> str:
    """The id of a namespace's autoscaler stream in a trace."""
    return f"autoscaler/{namespace}"


def ticket_record(change: Change, stream: str) -> StreamEvent | None:
    """The trace record of one change of the ticket authority (None: not demand)."""
    if isinstance(change, TicketIssued):
        return StreamEvent(
            stream,
            "issued",
            {
                "app": change.app,
                "user": change.ticket,
                "server": change.server.name,
                "uid": change.server.uid,
                "waited": round(change.waited, 6),
                "resumed": change.resumed,
            },
        )
    if isinstance(change, TicketRestored):
        return StreamEvent(
            stream,
            "restored",
            {
                "app": change.app,
                "user": change.ticket,
                "server": change.server.name,
                "uid": change.server.uid,
            },
        )
    if isinstance(change, TicketReleased):
        return StreamEvent(
            stream,
            "released",
            {
                "app": change.app,
                "user": change.ticket,
                "server": change.server.name,
                "reason": change.reason,
            },
        )
    if isinstance(change, WaiterQueued):
        data = {"app": change.app, "user": change.client, "position": change.position}
        return StreamEvent(stream, "queued", data)
    if isinstance(change, WaiterLeft):
        return StreamEvent(
            stream, "left", {"app": change.app, "user": change.client, "reason": change.reason}
        )
    return None


def command_record(command: PodCommand, stream: str) -> StreamEvent:
    """The trace record of one command the autoscaler sent."""
    if isinstance(command, CreatePod):
        return StreamEvent(stream, "create", {"app": command.app, "pod": command.name})
    return StreamEvent(
        stream,
        "delete",
        {"app": command.app, "pod": command.name, "uid": command.uid, "reason": command.reason},
    )


def failure_record(outcome: PodCommandFailed, stream: str) -> StreamEvent:
    """The trace record of a command the API refused."""
    command = outcome.command
    return StreamEvent(
        stream,
        "failed",
        {
            "app": command.app,
            "pod": command.name,
            "command": command.kind,
            "reason": outcome.reason,
            "message": outcome.message[:500],
        },
    )


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _pod_name(server: str) -> str:
    # Older traces name servers `<namespace>/<pod>`.
    return server.rpartition("/")[2]


class DemandDecoder:
    """Turns a trace's ticket records back into the authority's changes (a plain replay).

    `stream_apps`: stream id -> app, for traces with one ticket stream per app.
    """

    def __init__(self, stream_apps: Mapping[str, str] | None = None) -> None:
        self._stream_apps = dict(stream_apps or {})
        self._queued: dict[tuple[str, str], float] = {}

    def app_of(self, event: StreamEvent) -> str:
        return _text(event.data, "app") or self._stream_apps.get(event.stream, "")

    def decode(self, event: StreamEvent, now: float) -> Change | None:
        """The change a ticket record stands for, at time `now` (None: nothing to replay)."""
        data = event.data
        app = self.app_of(event)
        user = _text(data, "user")
        if not app or not user:
            return None
        kind = event.type
        if kind == "issued":
            queued_at = self._queued.pop((app, user), None)
            waited = _number(data, "waited")
            if waited is None:
                waited = 0.0 if queued_at is None else now - queued_at
            ref = ServerRef(_pod_name(_text(data, "server")), _text(data, "uid"))
            return TicketIssued(app, user, ref, now, waited, data.get("resumed") is True)
        if kind == "restored":
            ref = ServerRef(_pod_name(_text(data, "server")), _text(data, "uid"))
            return TicketRestored(app, user, ref, now)
        if kind == "released":
            reason = _text(data, "reason")
            ref = ServerRef(_pod_name(_text(data, "server")), _text(data, "uid"))
            return TicketReleased(
                app,
                user,
                ref,
                now,
                reason if reason in _RELEASE_REASONS else "released",  # type: ignore[arg-type]
            )
        if kind == "queued":
            self._queued[app, user] = now
            position = data.get("position")
            return WaiterQueued(app, user, position if isinstance(position, int) else 0, now)
        if kind == "left":
            self._queued.pop((app, user), None)
            reason = _text(data, "reason")
            return WaiterLeft(
                app,
                user,
                now,
                reason if reason in _LEAVE_REASONS else "left",  # type: ignore[arg-type]
            )
        return None  # "requested", "touched": nothing the autoscaler's view needs


@dataclass(frozen=True, slots=True)
class RecordedCommand:
    """A command the live autoscaler sent, or a failure the API reported, as recorded."""

    t: float
    app: str
    kind: str
    """"create", "delete", or "failed"."""
    pod: str
    reason: str = ""
    command: str = ""
    """For "failed": the kind of command that failed."""


def recorded_commands(
    records: Iterable[TraceRecord], streams: Iterable[str]
) -> list[RecordedCommand]:
    """The autoscaler records of a trace, in order."""
    wanted = frozenset(streams)
    out = []
    for record in records:
        event = record.event
        if not isinstance(event, StreamEvent) or event.stream not in wanted:
            continue
        data = event.data
        out.append(
            RecordedCommand(
                record.t,
                _text(data, "app"),
                event.type,
                _text(data, "pod"),
                _text(data, "reason"),
                _text(data, "command"),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Visit:
    """One user's visit to one app, as recorded: the demand a what-if replay re-creates."""

    app: str
    user: str
    arrival: float
    """When the user asked (seconds since the trace started)."""
    session: float | None
    """How long they held their ticket (None: never served in the recording)."""
    patience: float | None
    """How long they waited before leaving the queue (None: they were served, so they would
    have waited at least as long as they did: a replay lets them wait until served)."""


def visits(
    records: Iterable[TraceRecord],
    streams: Mapping[str, str],
    *,
    end: float,
) -> list[Visit]:
    """The visits in a trace's ticket records (`streams`: ticket stream id -> its app, ""
    when the records name their app), in arrival order. A visit still open at `end` holds
    its ticket (or waits) until then."""
    decoder = DemandDecoder({sid: app for sid, app in streams.items() if app})
    waiting: dict[tuple[str, str], float] = {}
    holding: dict[tuple[str, str], tuple[float, float]] = {}  # -> (arrival, issued)
    done: list[Visit] = []
    for record in records:
        event = record.event
        if not isinstance(event, StreamEvent) or event.stream not in streams:
            continue
        app = decoder.app_of(event)
        user = _text(event.data, "user")
        if not app or not user:
            continue
        key, t = (app, user), record.t
        if event.type == "queued":
            if key not in waiting and key not in holding:
                waiting[key] = t
        elif event.type == "issued":
            arrival = waiting.pop(key, None)
            if arrival is None:
                if key in holding:
                    continue  # a repeated issue of a ticket held already
                waited = _number(event.data, "waited") or 0.0
                arrival = max(0.0, t - waited)
            holding[key] = (arrival, t)
        elif event.type == "restored":
            if key not in holding:
                holding[key] = (t, t)  # a user from before: the visit counts from here
        elif event.type == "released":
            held = holding.pop(key, None)
            if held is not None:
                done.append(Visit(app, user, held[0], t - held[1], None))
        elif event.type == "left":
            arrival = waiting.pop(key, None)
            if arrival is not None:
                done.append(Visit(app, user, arrival, None, t - arrival))
    for (app, user), (arrival, issued) in holding.items():
        done.append(Visit(app, user, arrival, max(0.0, end - issued), None))
    for (app, user), arrival in waiting.items():
        done.append(Visit(app, user, arrival, None, max(0.0, end - arrival)))
    done.sort(key=lambda v: (v.arrival, v.app, v.user))
    return done
