"""`rxkube demo --record`: a trace of what the ticket controller sees, written from outside it.

What this module is for: until the runner records by itself (issue 8's `record=` of
`open_ticket_controller`, on h/autoscaler), the demo writes the same trace contents from the
controller's public streams: the three informers (a late subscriber gets each store's contents
first, then the live events: a consistent start) and the proxy's demand, in the format of
`controllers/_demand.py` on that branch (DESIGN section 4, "Trace format"):

- the watches' streams, with the ids and specs `open_informer(record=...)` uses;
- `tickets/<namespace>`: one stream for every app (a header names its streams before any app is
  known), one record per change of the ticket authority::

      issued   {app, user, server, uid, waited, resumed}
      released {app, user, server, reason}     (released, idle, server-removed, app-removed)
      queued   {app, user, position}
      left     {app, user, reason}             (left, timeout, hold-expired, app-removed)

  `user` is the client's id (a waiter's id becomes its ticket's id when admitted) and `server`
  the pod's name. Touches are not among the proxy's changes, so not recorded.

`demand_events` is a pure operator (no I/O, no clock); `record_controller` subscribes a trace
writer and is the only edge. It may import `rxkube.streams`, `rxkube.proxy` and the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable

from rxkube.controllers._appspec import APP_LABEL, OPT_IN_LABEL
from rxkube.controllers._runner import TicketController
from rxkube.proxy import Change, TicketIssued, TicketReleased, WaiterLeft, WaiterQueued
from rxkube.streams import DEPLOYMENTS, PODS, StreamEvent, TraceWriter, stream_id, stream_spec

# The demo's own machinery until the runner records: not public API of rxkube.controllers.
__all__: list[str] = []


def tickets_stream(namespace: str) -> str:
    """The trace stream id of a namespace's demand: `tickets/<namespace>`."""
    return f"tickets/{namespace}"


def controller_trace_streams(namespace: str) -> dict[str, Mapping[str, Any]]:
    """The header `streams=` for a trace of the ticket controller watching `namespace`."""
    watches: list[dict[str, Any]] = [
        {"resource": DEPLOYMENTS, "metadata_only": True},
        {"resource": DEPLOYMENTS, "label_selector": f"{OPT_IN_LABEL}=true"},
        {"resource": PODS, "label_selector": APP_LABEL},
    ]
    streams: dict[str, Mapping[str, Any]] = {}
    for watch in watches:
        resource = watch.pop("resource")
        sid = stream_id(resource, namespace=namespace, **watch)
        streams[sid] = stream_spec(resource, namespace=namespace, **watch)
    streams[tickets_stream(namespace)] = {"kind": "tickets", "namespace": namespace}
    return streams


def _record(change: Change, stream: str) -> StreamEvent | None:
    if isinstance(change, TicketIssued):
        data: dict[str, Any] = {
            "app": change.app,
            "user": change.ticket,
            "server": change.server.name,
            "uid": change.server.uid,
            "waited": round(change.waited, 6),
            "resumed": change.resumed,
        }
        return StreamEvent(stream, "issued", data)
    if isinstance(change, TicketReleased):
        data = {
            "app": change.app,
            "user": change.ticket,
            "server": change.server.name,
            "reason": change.reason,
        }
        return StreamEvent(stream, "released", data)
    if isinstance(change, WaiterQueued):
        data = {"app": change.app, "user": change.client, "position": change.position}
        return StreamEvent(stream, "queued", data)
    if isinstance(change, WaiterLeft):
        data = {"app": change.app, "user": change.client, "reason": change.reason}
        return StreamEvent(stream, "left", data)
    return None


def demand_events(namespace: str) -> Callable[[Observable[Change]], Observable[StreamEvent]]:
    """The proxy's changes as demand records (module docstring); other changes are dropped.

    ::

        changes:  --Issued(a)--Load--Queued(b)--Released(a, idle)--Issued(b, waited 4)--|
        demand:   --issued(a)--------queued(b)--released(a)---------issued(b)------------|
    """
    stream = tickets_stream(namespace)

    def operator(source: Observable[Change]) -> Observable[StreamEvent]:
        def subscribe(
            observer: abc.ObserverBase[StreamEvent], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(change: Change) -> None:
                record = _record(change, stream)
                if record is not None:
                    observer.on_next(record)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return operator


def record_controller(controller: TicketController, writer: TraceWriter) -> abc.DisposableBase:
    """Write the controller's watches and demand to `writer` (opened with
    `streams=controller_trace_streams(controller.namespace)`); dispose the result to stop."""
    informers = controller.informers
    return CompositeDisposable(
        *(informers[role].events.subscribe(writer.write) for role in sorted(informers)),
        controller.proxy.changes.pipe(demand_events(controller.namespace)).subscribe(writer.write),
    )
