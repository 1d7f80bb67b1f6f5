"""The app_effects operator in virtual time: exact ticks, fresh state per subscription."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reactivex import Observable
from reactivex.notification import Notification, OnNext
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.recorded import Recorded

from rxkube.controllers import AppChanged, AppEffect, AppServed, AppWithdrawn, app_effects
from rxkube.streams import EventType, WatchEvent

P = "ipb-halle.de/k8sticket.deployment."


def dep(name: str, port: str, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "lab",
            "uid": f"uid-{name}",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"ipb-halle.de/k8sticket": "true"},
            "annotations": {P + "port": port, **annotations},
        }
    }


def ev(kind: EventType, obj: dict[str, Any] | None = None) -> WatchEvent:
    return WatchEvent(kind, obj, resource_version="1", stream="deployments.apps/lab")


def note(message: Recorded[Any]) -> Notification[Any]:
    assert isinstance(message.value, Notification)
    return message.value


def kinds(messages: Sequence[Recorded[Any]]) -> list[tuple[int, str]]:
    out = []
    for message in messages:
        value = note(message)
        if isinstance(value, OnNext):
            effect: AppEffect = value.value
            name = type(effect).__name__
            app = effect.spec.app if isinstance(effect, AppServed | AppWithdrawn) else ""
            if isinstance(effect, AppChanged):
                app = effect.new.app
            out.append((message.time, f"{name}:{app}"))
        else:
            out.append((message.time, value.kind))
    return out


def test_marble_timeline() -> None:
    scheduler = TestScheduler()
    source: Observable[WatchEvent] = scheduler.create_hot_observable(
        ReactiveTest.on_next(210, ev("ADDED", dep("a", "9001"))),
        ReactiveTest.on_next(220, ev("ADDED", dep("b", "9002"))),
        ReactiveTest.on_next(230, ev("SYNCED")),
        ReactiveTest.on_next(240, ev("MODIFIED", dep("a", "9001", **{P + "tickets.max": "3"}))),
        ReactiveTest.on_next(250, ev("DELETED", dep("b", "9002"))),
        ReactiveTest.on_completed(260),
    )
    results = scheduler.start(lambda: source.pipe(app_effects()))
    assert kinds(results.messages) == [
        (230, "AppServed:a"),
        (230, "AppServed:b"),
        (240, "AppChanged:a"),
        (250, "AppWithdrawn:b"),
        (260, "C"),
    ]


def test_each_subscription_starts_fresh_so_replays_agree() -> None:
    scheduler = TestScheduler()
    source: Observable[WatchEvent] = scheduler.create_cold_observable(
        ReactiveTest.on_next(10, ev("ADDED", dep("a", "9001"))),
        ReactiveTest.on_next(20, ev("SYNCED")),
        ReactiveTest.on_completed(30),
    )
    pipeline = source.pipe(app_effects())
    one = scheduler.create_observer()
    two = scheduler.create_observer()
    scheduler.schedule_absolute(100, lambda *_: pipeline.subscribe(one))
    scheduler.schedule_absolute(500, lambda *_: pipeline.subscribe(two))
    scheduler.start()
    # A shared state would give the second run nothing: the app would already be served.
    assert kinds(one.messages) == [(120, "AppServed:a"), (130, "C")]
    assert kinds(two.messages) == [(520, "AppServed:a"), (530, "C")]
    first, second = note(one.messages[0]), note(two.messages[0])
    assert isinstance(first, OnNext)
    assert isinstance(second, OnNext)
    assert first.value == second.value


def test_errors_pass_through() -> None:
    scheduler = TestScheduler()
    boom = RuntimeError("watch failed")
    source: Observable[WatchEvent] = scheduler.create_hot_observable(
        ReactiveTest.on_next(210, ev("SYNCED")), ReactiveTest.on_error(220, boom)
    )
    results = scheduler.start(lambda: source.pipe(app_effects()))
    assert [(m.time, note(m).kind) for m in results.messages] == [(220, "E")]
