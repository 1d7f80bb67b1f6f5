"""The demo's trace: demand records from the proxy's changes, and the header's streams."""

from __future__ import annotations

from typing import Any

from reactivex import Observable
from reactivex.notification import OnNext
from reactivex.testing import ReactiveTest, TestScheduler

from rxkube.controllers._record import controller_trace_streams, demand_events
from rxkube.proxy import (
    AppLoad,
    Change,
    LoadChanged,
    ServerRef,
    TicketIssued,
    TicketReleased,
    WaiterLeft,
    WaiterQueued,
)
from rxkube.streams import StreamEvent

POD = ServerRef("lab-7d9f-x2", "uid-1")


def test_demand_records_marble() -> None:
    scheduler = TestScheduler()
    load = AppLoad("lab", 1, 1, 1, 1, 0, 1, 0, time=0.0)
    changes: Observable[Change] = scheduler.create_hot_observable(
        ReactiveTest.on_next(210, TicketIssued("lab", "a", POD, time=1.0, waited=0.0)),
        ReactiveTest.on_next(220, LoadChanged(load)),
        ReactiveTest.on_next(230, WaiterQueued("lab", "b", position=0, time=2.0)),
        ReactiveTest.on_next(240, TicketReleased("lab", "a", POD, time=3.0, reason="idle")),
        ReactiveTest.on_next(250, TicketIssued("lab", "b", POD, time=3.0, waited=1.25)),
        ReactiveTest.on_next(270, WaiterLeft("other", "c", time=5.0, reason="timeout")),
        ReactiveTest.on_completed(300),
    )
    results = scheduler.start(lambda: changes.pipe(demand_events("ns")))
    records: list[tuple[int, str, dict[str, Any]]] = []
    for message in results.messages:
        if isinstance(message.value, OnNext):
            event: StreamEvent = message.value.value
            assert event.stream == "tickets/ns"
            records.append((message.time, event.type, dict(event.data)))
    pod = {"server": "lab-7d9f-x2"}
    assert records == [
        (
            210,
            "issued",
            {"app": "lab", "user": "a", **pod, "uid": "uid-1", "waited": 0.0, "resumed": False},
        ),
        (230, "queued", {"app": "lab", "user": "b", "position": 0}),
        (240, "released", {"app": "lab", "user": "a", **pod, "reason": "idle"}),
        (
            250,
            "issued",
            {"app": "lab", "user": "b", **pod, "uid": "uid-1", "waited": 1.25, "resumed": False},
        ),
        (270, "left", {"app": "other", "user": "c", "reason": "timeout"}),
    ]
    assert results.messages[-1].time == 300


def test_the_header_names_the_runners_watches_and_the_demand() -> None:
    streams = controller_trace_streams("lab")
    assert list(streams) == [
        "deployments.apps/lab?meta",
        "deployments.apps/lab?labelSelector=ipb-halle.de%2Fk8sticket%3Dtrue",
        "pods/lab?labelSelector=ipb-halle.de%2Fk8sticket.deployment.app.name",
        "tickets/lab",
    ]
    assert streams["deployments.apps/lab?meta"]["metadataOnly"] is True
    assert streams["tickets/lab"] == {"kind": "tickets", "namespace": "lab"}
