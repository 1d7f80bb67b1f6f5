"""Demand records from the proxy's changes (virtual time), and the trace header's streams."""

from __future__ import annotations

from typing import Any

from reactivex import Observable
from reactivex.notification import OnNext
from reactivex.testing import ReactiveTest, TestScheduler

from rxkube.controllers import controller_trace_streams, demand_events, ticket_stream
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
        ReactiveTest.on_next(260, WaiterQueued("lab", "c", position=0, time=4.0)),
        ReactiveTest.on_next(270, WaiterLeft("lab", "c", time=5.0, reason="timeout")),
        ReactiveTest.on_next(280, TicketIssued("lab", "d", POD, time=6.0, waited=0, resumed=True)),
        ReactiveTest.on_completed(300),
    )
    results = scheduler.start(lambda: changes.pipe(demand_events("ns")))
    records: list[tuple[int, str, dict[str, Any]]] = []
    for message in results.messages:
        if isinstance(message.value, OnNext):
            event: StreamEvent = message.value.value
            assert event.stream == "tickets/lab"
            records.append((message.time, event.type, dict(event.data)))
    server = "ns/lab-7d9f-x2"
    assert records == [
        (210, "requested", {"user": "a"}),
        (210, "issued", {"user": "a", "server": server, "waited": 0.0}),
        (230, "requested", {"user": "b"}),
        (230, "queued", {"user": "b", "position": 0}),
        (240, "released", {"user": "a", "server": server, "reason": "idle"}),
        (250, "issued", {"user": "b", "server": server, "waited": 1.25}),
        (260, "requested", {"user": "c"}),
        (260, "queued", {"user": "c", "position": 0}),
        (270, "left", {"user": "c", "reason": "timeout"}),
        # Re-admitted from its cookie (after a restart): no new arrival.
        (280, "issued", {"user": "d", "server": server, "waited": 0}),
    ]
    assert results.messages[-1].time == 300


def test_the_header_names_the_runners_watches_and_the_apps_demand() -> None:
    streams = controller_trace_streams("lab", ["notebook", "chat"])
    assert list(streams) == [
        "deployments.apps/lab?meta",
        "deployments.apps/lab?labelSelector=ipb-halle.de%2Fk8sticket%3Dtrue",
        "pods/lab?labelSelector=ipb-halle.de%2Fk8sticket.deployment.app.name",
        "tickets/chat",
        "tickets/notebook",
    ]
    assert streams["deployments.apps/lab?meta"]["metadataOnly"] is True
    assert streams[ticket_stream("chat")] == {"kind": "tickets", "app": "chat"}
