"""The pod pipeline in virtual time: join when ready, drain when not, leave when gone."""

from __future__ import annotations

from typing import Any

from reactivex import Observable
from reactivex.notification import OnCompleted, OnNext
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.recorded import Recorded

from rxkube.controllers import PodProblem, PodUpdate, ServerList, pod_servers, servers_by_app
from rxkube.proxy import ServerRef, ServerSpec
from rxkube.streams import EventType, WatchEvent

on_next, on_completed = ReactiveTest.on_next, ReactiveTest.on_completed
APP_LABEL = "ipb-halle.de/k8sticket.deployment.app.name"
PORT = "ipb-halle.de/k8sticket.pod.port"
PATH = "ipb-halle.de/k8sticket.pod.path"


def pod(
    name: str,
    *,
    app: str = "lab",
    phase: str = "Running",
    ready: bool = True,
    ip: str | None = "10.0.0.7",
    uid: str | None = None,
    annotations: dict[str, str] | None = None,
    terminating: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "lab",
        "uid": uid or f"uid-{name}",
        "labels": {APP_LABEL: app},
        "annotations": {PORT: "8888"} if annotations is None else annotations,
    }
    if terminating:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip is not None:
        status["podIP"] = ip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": status}


def ev(kind: EventType, obj: dict[str, Any] | None = None) -> WatchEvent:
    return WatchEvent(kind, obj, resource_version="1", stream="pods/lab")


def server(name: str, address: str = "10.0.0.7:8888", **kw: Any) -> ServerSpec:
    return ServerSpec(ServerRef(name, kw.pop("uid", f"uid-{name}")), address, **kw)


def run(
    messages: list[Recorded[WatchEvent]], *, grouped: bool = False
) -> list[tuple[int, PodUpdate | str]]:
    scheduler = TestScheduler()
    source: Observable[WatchEvent] = scheduler.create_hot_observable(messages)
    op = servers_by_app() if grouped else pod_servers("lab")
    results = scheduler.start(lambda: source.pipe(op))
    out: list[tuple[int, PodUpdate | str]] = []
    for message in results.messages:
        if isinstance(message.value, OnNext):
            out.append((message.time, message.value.value))
        elif isinstance(message.value, OnCompleted):
            out.append((message.time, "C"))
    return out


def test_the_docstring_diagram() -> None:
    assert run(
        [
            on_next(210, ev("ADDED", pod("pod-1", phase="Pending", ready=False, ip=None))),
            on_next(220, ev("MODIFIED", pod("pod-1"))),
            on_next(230, ev("MODIFIED", pod("pod-1", ready=False))),
            on_next(240, ev("DELETED", pod("pod-1", ready=False))),
            on_completed(250),
        ]
    ) == [
        (220, ServerList("lab", (server("pod-1"),))),
        (230, ServerList("lab", (server("pod-1", ready=False),))),
        (240, ServerList("lab", ())),
        (250, "C"),
    ]


def test_a_pod_joins_only_when_running_ready_with_an_ip() -> None:
    assert run(
        [
            on_next(210, ev("ADDED", pod("p", ready=False))),  # running, not ready
            on_next(220, ev("MODIFIED", pod("p", phase="Pending"))),  # "ready" but pending
            on_next(230, ev("MODIFIED", pod("p", ip=None))),  # no IP yet
            on_next(240, ev("MODIFIED", pod("p", terminating=True))),  # on its way out
            on_next(250, ev("MODIFIED", pod("p", ip="fd00::7"))),
        ]
    ) == [(250, ServerList("lab", (server("p", "[fd00::7]:8888"),)))]


def test_terminating_or_unready_pods_drain_and_failed_ones_leave() -> None:
    assert run(
        [
            on_next(210, ev("ADDED", pod("a"))),
            on_next(220, ev("ADDED", pod("b", ip="10.0.0.8"))),
            on_next(230, ev("MODIFIED", pod("a", terminating=True))),
            on_next(240, ev("MODIFIED", pod("b", ip="10.0.0.8", phase="Failed"))),
            on_next(250, ev("MODIFIED", pod("a", terminating=True))),  # no change: nothing
            on_next(260, ev("MODIFIED", pod("a", ip=None))),  # lost its IP
        ]
    ) == [
        (210, ServerList("lab", (server("a"),))),
        (220, ServerList("lab", (server("a"), server("b", "10.0.0.8:8888")))),
        (230, ServerList("lab", (server("a", ready=False), server("b", "10.0.0.8:8888")))),
        (240, ServerList("lab", (server("a", ready=False),))),
        (260, ServerList("lab", ())),
    ]


def test_port_and_path_come_from_the_pods_annotations() -> None:
    updates = run(
        [
            on_next(210, ev("ADDED", pod("a", annotations={}))),  # k8sTicket defaults
            on_next(220, ev("ADDED", pod("b", annotations={PORT: "3838", PATH: "/app/"}))),
        ]
    )
    assert updates[-1] == (
        220,
        ServerList("lab", (server("a", "10.0.0.7:80"), server("b", "10.0.0.7:3838", path="/app/"))),
    )


def test_a_re_created_pod_is_a_new_server() -> None:
    assert run(
        [
            on_next(210, ev("ADDED", pod("a", uid="one"))),
            on_next(220, ev("MODIFIED", pod("a", uid="two", ready=False))),
            on_next(230, ev("MODIFIED", pod("a", uid="two"))),
        ]
    ) == [
        (210, ServerList("lab", (server("a", uid="one"),))),
        (220, ServerList("lab", ())),
        (230, ServerList("lab", (server("a", uid="two"),))),
    ]


def test_bad_pod_annotations_are_reported_once_and_not_served() -> None:
    updates = run(
        [
            on_next(210, ev("ADDED", pod("a"))),
            on_next(220, ev("MODIFIED", pod("a", annotations={PORT: "http"}))),
            on_next(230, ev("MODIFIED", pod("a", annotations={PORT: "http"}))),
            on_next(240, ev("MODIFIED", pod("a", annotations={PORT: "70000", PATH: "x"}))),
            on_next(250, ev("MODIFIED", pod("a"))),
        ]
    )
    times = [(t, type(u).__name__) for t, u in updates]
    assert times == [
        (210, "ServerList"),
        (220, "PodProblem"),
        (220, "ServerList"),
        (240, "PodProblem"),
        (250, "ServerList"),
    ]
    problem = updates[1][1]
    assert isinstance(problem, PodProblem)
    assert problem.pod.kind == "Pod"
    assert (problem.pod.name, problem.pod.uid) == ("a", "uid-a")
    assert problem.application == "lab"
    assert "ipb-halle.de/k8sticket.pod.port='http'" in problem.message
    assert "not served" in problem.message
    second = updates[3][1]
    assert isinstance(second, PodProblem)
    assert [e.key for e in second.errors] == [PORT, PATH]
    assert updates[2][1] == ServerList("lab", ())


def test_grouped_by_app_label_one_list_per_app() -> None:
    assert run(
        [
            on_next(210, ev("ADDED", pod("x-1", app="x"))),
            on_next(220, ev("ADDED", pod("y-1", app="y", ip="10.0.0.8"))),
            on_next(230, ev("MODIFIED", pod("x-1", app="y"))),  # relabelled: moves
            on_next(240, ev("SYNCED")),
            on_next(250, ev("DELETED", pod("x-1", app="y"))),
        ],
        grouped=True,
    ) == [
        (210, ServerList("x", (server("x-1"),))),
        (220, ServerList("y", (server("y-1", "10.0.0.8:8888"),))),
        (230, ServerList("x", ())),
        (230, ServerList("y", (server("x-1"), server("y-1", "10.0.0.8:8888")))),
        (250, ServerList("y", (server("y-1", "10.0.0.8:8888"),))),
    ]
