"""The status board: the real ticket table, app fold and Events sink feed it; snapshots join."""

from __future__ import annotations

from typing import Any

import pytest
from reactivex.scheduler import HistoricalScheduler
from reactivex.subject import Subject

from rxkube.controllers import (
    AUTOSCALED_LABEL,
    AppEffect,
    AppStatus,
    StatusBoard,
    app_effects,
)
from rxkube.proxy import (
    AppAdded,
    AppSettings,
    AppStatistics,
    LocalTicketAuthority,
    ServerAdded,
    ServerRef,
    ServerRemoved,
    ServerUpdated,
)
from rxkube.streams import DryRunEventSink, EventType, ObjectReference, WatchEvent

APP = "ipb-halle.de/k8sticket.deployment.app.name"
P = "ipb-halle.de/k8sticket.deployment."
POD_A = ServerRef("lab-a", "uid-a")
POD_B = ServerRef("lab-b", "uid-b")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def pod(
    name: str,
    *,
    ready: bool = True,
    autoscaled: bool = False,
    deleting: bool = False,
    ip: str = "10.0.0.1",
) -> dict[str, Any]:
    labels = {APP: "lab"}
    if autoscaled:
        labels[AUTOSCALED_LABEL] = "true"
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def ev(kind: EventType, obj: dict[str, Any] | None = None, stream: str = "pods/ns") -> WatchEvent:
    return WatchEvent(kind, obj, resource_version="1", stream=stream)


def status(**overrides: Any) -> AppStatus:
    values: dict[str, Any] = {
        "app": "lab",
        "deployment": "lab",
        "draining": False,
        "servers": 2,
        "ready_servers": 2,
        "routing": "path",
        "own_port": None,
    }
    values.update(overrides)
    return AppStatus(**values)


def proxy_stats(**overrides: int) -> AppStatistics:
    counts = {
        "servers": 2,
        "ready_servers": 2,
        "tickets": 0,
        "free": 0,
        "queued": 0,
        "requests": 0,
        "upstream_errors": 0,
        "refused_cookies": 0,
        "waiting_pages": 0,
    }
    counts.update(overrides)
    return AppStatistics(name="lab", **counts)


def snapshot(board: StatusBoard, **proxy: int) -> Any:
    return board.snapshot(
        namespace="ns",
        ready=True,
        draining=False,
        leader=True,
        apps={"lab": status()},
        specs={},
        proxy_apps={"lab": proxy_stats(**proxy)},
        connections=3,
        config_errors=0,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def board(clock: Clock) -> StatusBoard:
    return StatusBoard(clock)


async def test_users_per_server_follow_the_ticket_table(board: StatusBoard, clock: Clock) -> None:
    authority = LocalTicketAuthority(clock)
    authority.changes.subscribe(board.on_change)
    for name in ("lab-a", "lab-b"):
        board.on_pod_event(ev("ADDED", pod(name)))
    authority.configure(
        [
            AppAdded("lab", AppSettings(tickets_max=2, idle_timeout=5.0)),
            ServerAdded("lab", POD_A),
            ServerAdded("lab", POD_B, capacity=1),
        ]
    )
    for client in ("u1", "u2", "u3"):
        await authority.request("lab", client)
    servers = {s.pod: (s.users, s.capacity, s.serving) for s in snapshot(board).apps[0].servers}
    # Tickets pack onto the fullest server with room: lab-a takes two, lab-b one.
    assert servers == {"lab-a": (2, 2, True), "lab-b": (1, 1, True)}

    authority.configure([ServerUpdated("lab", POD_B, ready=False, capacity=1)])
    clock.now += 10.0  # u1..u3 idle for longer than the idle timeout
    authority.tick()
    servers = {s.pod: (s.users, s.capacity, s.serving) for s in snapshot(board).apps[0].servers}
    assert servers == {"lab-a": (0, 2, True), "lab-b": (0, 1, False)}

    await authority.request("lab", "u4")
    authority.configure([ServerRemoved("lab", POD_A)])  # its ticket is released with it
    rows = {s.pod: (s.users, s.capacity) for s in snapshot(board).apps[0].servers}
    assert rows == {"lab-a": (0, None), "lab-b": (0, 1)}
    assert board.version > 0


def test_scale_actions_come_from_autoscaled_pods_after_the_first_list(
    board: StatusBoard, clock: Clock
) -> None:
    board.on_pod_event(ev("ADDED", pod("lab-old-scaled", autoscaled=True)))
    board.on_pod_event(ev("ADDED", pod("lab-base")))
    board.on_pod_event(ev("SYNCED"))
    assert board.scale_ups == 0  # pods present at the start are not actions

    clock.now = 110.0
    board.on_pod_event(ev("ADDED", pod("lab-x1", autoscaled=True, ready=False, ip="")))
    board.on_pod_event(ev("ADDED", pod("lab-rs-replacement")))  # not autoscaled
    clock.now = 120.0
    board.on_pod_event(ev("MODIFIED", pod("lab-x1", autoscaled=True, deleting=True)))
    board.on_pod_event(ev("DELETED", pod("lab-x1", autoscaled=True, deleting=True)))
    board.on_pod_event(ev("DELETED", pod("lab-old-scaled", autoscaled=True)))

    snap = snapshot(board)
    assert (snap.scale_ups, snap.scale_downs) == (1, 2)
    assert [(a.at, a.kind, a.app, a.message) for a in snap.activity] == [
        (120.0, "scale-down", "lab", "autoscaled pod lab-old-scaled deleted"),
        (120.0, "scale-down", "lab", "autoscaled pod lab-x1 terminating"),
        (110.0, "scale-up", "lab", "autoscaled pod lab-x1 created"),
    ]
    rows = [(s.pod, s.phase, s.autoscaled) for s in snap.apps[0].servers]
    assert rows == [("lab-base", "Running", False), ("lab-rs-replacement", "Running", False)]


def test_a_terminating_pod_shows_as_terminating(board: StatusBoard) -> None:
    board.on_pod_event(ev("ADDED", pod("lab-a")))
    board.on_pod_event(ev("MODIFIED", pod("lab-a", deleting=True)))
    (row,) = snapshot(board).apps[0].servers
    assert (row.phase, row.ready, row.address) == ("Terminating", True, "10.0.0.1")


def deployment(tickets_max: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "lab",
            "namespace": "ns",
            "uid": "uid-lab",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"ipb-halle.de/k8sticket": "true"},
            "annotations": {P + "port": "none", P + "tickets.max": tickets_max},
        }
    }


def test_problems_stay_until_resolved(board: StatusBoard, clock: Clock) -> None:
    deployments: Subject[WatchEvent] = Subject()
    effects: Subject[AppEffect] = Subject()
    effects.subscribe(board.on_effect)
    deployments.pipe(app_effects()).subscribe(effects)
    deployments.on_next(WatchEvent("ADDED", deployment("2"), resource_version="1", stream="d"))
    deployments.on_next(WatchEvent("SYNCED", resource_version="1", stream="d"))
    clock.now = 105.0
    deployments.on_next(
        WatchEvent("MODIFIED", deployment("lots"), resource_version="2", stream="d")
    )
    snap = snapshot(board)
    assert [(p.at, p.level, p.app) for p in snap.problems] == [(105.0, "error", "lab")]
    assert "tickets.max='lots'" in snap.problems[0].message
    assert [a.kind for a in snap.activity] == ["problem", "app"]

    clock.now = 110.0
    deployments.on_next(ev("MODIFIED", deployment("3"), "d"))
    snap = snapshot(board)
    assert snap.problems == ()
    assert snap.activity[0].message == "Deployment lab: configuration problems fixed"


def test_events_posted_and_dropped_are_listed(board: StatusBoard) -> None:
    sink = DryRunEventSink(HistoricalScheduler())
    sink.outcomes.subscribe(board.on_event_outcome)
    about = ObjectReference("Deployment", "lab", "ns", uid="uid-lab", api_version="apps/v1")
    sink.post(about, "InvalidConfiguration", "tickets.max='lots'", "Warning")
    sink.post(about, "InvalidConfiguration", "tickets.max='lots'", "Warning")
    snap = snapshot(board)
    assert snap.events_posted == 2
    texts = [(a.kind, a.level, a.message) for a in snap.activity]
    assert texts[0] == (
        "event",
        "warning",
        "Event InvalidConfiguration on Deployment lab: tickets.max='lots' (x2)",
    )


def test_history_is_bounded(clock: Clock) -> None:
    board = StatusBoard(clock, history=5)
    board.on_pod_event(ev("SYNCED"))
    for i in range(20):
        board.on_pod_event(ev("ADDED", pod(f"lab-{i}", autoscaled=True)))
    snap = snapshot(board)
    assert len(snap.activity) == 5
    assert snap.scale_ups == 20
    assert snap.activity[0].message == "autoscaled pod lab-19 created"


def test_the_snapshot_joins_statistics_and_is_json(board: StatusBoard) -> None:
    board.on_pod_event(ev("ADDED", pod("lab-a")))
    snap = snapshot(board, tickets=1, free=3, queued=2, requests=7, waiting_pages=4)
    (app,) = snap.apps
    assert (app.users, app.free, app.queued, app.requests, app.waiting_pages) == (1, 3, 2, 7, 4)
    assert (app.tickets_max, app.deployment, app.routing) == (None, "lab", "path")
    data = snap.to_json()
    assert data["apps"][0]["servers"][0]["pod"] == "lab-a"
    assert data["connections"] == 3


def test_listeners_are_told_of_changes(board: StatusBoard) -> None:
    calls: list[int] = []
    remove = board.add_listener(lambda: calls.append(board.version))
    board.on_pod_event(ev("ADDED", pod("lab-a")))
    remove()
    board.on_pod_event(ev("DELETED", pod("lab-a")))
    assert calls == [1]
    assert board.version == 2
