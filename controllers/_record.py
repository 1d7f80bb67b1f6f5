"""What a trace of the ticket controller holds: its three watches and the proxy's demand.

What this module is for: DESIGN section 4, "Trace format": "a trace holds exactly what the
pipelines saw", and demand is recorded as one stream per app so that a replay can re-create the
users. `controller_trace_streams(namespace, apps)` is the header's `streams=` for a trace of
`open_ticket_controller(..., record=writer)` (the runner opens its informers with `record=`,
and feeds `demand_events` of the proxy's changes to the same writer). `demand_events` is a
pure operator: no I/O, no clock (each change carries its time on the proxy's clock; the
writer stamps records with its scheduler's).

Demand records (`StreamEvent`s on `tickets/<app>`), with `user` the client's id (a waiter's id
becomes its ticket's id when admitted, so one user is one id from arrival to release) and
`server` `<namespace>/<pod>`:

    requested {user}                        a user without a ticket arrived
    issued    {user, server, waited}        waited: seconds in the waiting room (0: at once)
    queued    {user, position}              no free ticket: it waits (position 0 = next)
    left      {user, reason}                left the queue: left, timeout, hold-expired, ...
    released  {user, server, reason}        released, idle, server-removed, app-removed

Touches (each request of a holder) are not in the proxy's changes, so not recorded: a replay
knows a ticket's life from issued to released, and its idle release from the reason.

It may import `rxkube.streams` and `rxkube.proxy`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reactivex import Observable, abc

from rxkube.controllers._appspec import APP_LABEL, OPT_IN_LABEL
from rxkube.proxy import Change, TicketIssued, TicketReleased, WaiterLeft, WaiterQueued
from rxkube.streams import DEPLOYMENTS, PODS, StreamEvent, stream_id, stream_spec

__all__ = [
    "controller_trace_streams",
    "demand_events",
    "ticket_stream",
]


def ticket_stream(app: str) -> str:
    """The trace stream id of an app's demand: `tickets/<app>`."""
    return f"tickets/{app}"


def controller_watches(namespace: str) -> dict[str, dict[str, Any]]:
    """The runner's three watches (by role) as `open_informer` arguments."""
    return {
        "deployment-metadata": {"resource": DEPLOYMENTS, "metadata_only": True},
        "deployments": {"resource": DEPLOYMENTS, "label_selector": f"{OPT_IN_LABEL}=true"},
        "pods": {"resource": PODS, "label_selector": APP_LABEL},
    }


def controller_trace_streams(
    namespace: str, apps: Iterable[str] = ()
) -> dict[str, Mapping[str, Any]]:
    """The header `streams=` for a trace of the ticket controller watching `namespace`,
    with demand streams for `apps` (demand of other apps is not recorded: a trace header
    names its streams before the first record)."""
    streams: dict[str, Mapping[str, Any]] = {}
    for watch in controller_watches(namespace).values():
        arguments = {k: v for k, v in watch.items() if k != "resource"}
        resource = watch["resource"]
        sid = stream_id(resource, namespace=namespace, **arguments)
        streams[sid] = stream_spec(resource, namespace=namespace, **arguments)
    for app in sorted(apps):
        streams[ticket_stream(app)] = {"kind": "tickets", "app": app}
    return streams


def _records(namespace: str, change: Change) -> list[StreamEvent]:
    if isinstance(change, TicketIssued):
        stream = ticket_stream(change.app)
        issued = StreamEvent(
            stream,
            "issued",
            {
                "user": change.ticket,
                "server": f"{namespace}/{change.server.name}",
                "waited": round(change.waited, 6),
            },
        )
        if change.waited == 0 and not change.resumed:
            return [StreamEvent(stream, "requested", {"user": change.ticket}), issued]
        return [issued]
    if isinstance(change, WaiterQueued):
        stream = ticket_stream(change.app)
        return [
            StreamEvent(stream, "requested", {"user": change.client}),
            StreamEvent(stream, "queued", {"user": change.client, "position": change.position}),
        ]
    if isinstance(change, WaiterLeft):
        data = {"user": change.client, "reason": change.reason}
        return [StreamEvent(ticket_stream(change.app), "left", data)]
    if isinstance(change, TicketReleased):
        data = {
            "user": change.ticket,
            "server": f"{namespace}/{change.server.name}",
            "reason": change.reason,
        }
        return [StreamEvent(ticket_stream(change.app), "released", data)]
    return []


def demand_events(namespace: str) -> Callable[[Observable[Change]], Observable[StreamEvent]]:
    """The proxy's changes as demand records (module docstring); other changes are dropped.

    ::

        changes:  --Issued(a, waited 0)--Queued(b, 0)------Issued(b, waited 4)--Released(a)--|
        demand:   --requested(a),issued(a)--requested(b),queued(b)--issued(b)--released(a)--|
    """

    def operator(source: Observable[Change]) -> Observable[StreamEvent]:
        def subscribe(
            observer: abc.ObserverBase[StreamEvent], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(change: Change) -> None:
                for record in _records(namespace, change):
                    observer.on_next(record)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return operator
