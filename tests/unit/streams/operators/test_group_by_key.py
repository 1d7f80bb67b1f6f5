"""group_by_key in virtual time: groups, completion on the last deletion, moves, errors."""

from __future__ import annotations

from reactivex import GroupedObservable
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.mockobserver import MockObserver
from reactivex.testing.recorded import Recorded

from rxkube.streams import WatchEvent
from rxkube.streams.operators import group_by_key
from tests.unit.streams.operators.kube_events import pod_event, synced

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error


def app(event: WatchEvent) -> str | None:
    return event.meta.labels.get("app")


def run(
    messages: list[Recorded[WatchEvent]],
) -> tuple[list[tuple[str, MockObserver[WatchEvent]]], MockObserver[object]]:
    """Subscribe to every group as it appears; return (key, recorder) per group, in order."""
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(messages)
    groups: list[tuple[str, MockObserver[WatchEvent]]] = []
    outer: MockObserver[object] = scheduler.create_observer()

    def on_group(group: GroupedObservable[str, WatchEvent]) -> None:
        recorder: MockObserver[WatchEvent] = scheduler.create_observer()
        groups.append((group.key, recorder))
        group.subscribe(recorder)
        outer.on_next(group.key)

    scheduler.schedule_absolute(
        200,
        lambda *_: source.pipe(group_by_key(app)).subscribe(
            on_group, outer.on_error, outer.on_completed
        ),
    )
    scheduler.start()
    return groups, outer


def test_the_docstring_diagram() -> None:
    a = pod_event("ADDED", "pod-1", 1, labels={"app": "x"})
    b = pod_event("ADDED", "pod-2", 2, labels={"app": "y"})
    c = pod_event("ADDED", "pod-3", 3, labels={"app": "x"})
    d = pod_event("DELETED", "pod-1", 4, labels={"app": "x"})
    e = pod_event("DELETED", "pod-3", 5, labels={"app": "x"})
    f = pod_event("ADDED", "pod-4", 6, labels={"app": "x"})
    groups, outer = run(
        [
            on_next(210, a),
            on_next(220, b),
            on_next(230, c),
            on_next(235, synced(3)),
            on_next(240, d),
            on_next(250, e),
            on_next(260, f),
            on_completed(270),
        ]
    )
    assert [key for key, _ in groups] == ["x", "y", "x"]
    (_, first_x), (_, y), (_, second_x) = groups
    assert first_x.messages == [
        on_next(210, a),
        on_next(230, c),
        on_next(240, d),
        on_next(250, e),
        on_completed(250),
    ]
    assert y.messages == [on_next(220, b), on_completed(270)]
    assert second_x.messages == [on_next(260, f), on_completed(270)]
    assert outer.messages == [
        on_next(210, "x"),
        on_next(220, "y"),
        on_next(260, "x"),
        on_completed(270),
    ]


def test_an_object_whose_key_changes_moves_between_groups() -> None:
    a = pod_event("ADDED", "pod-1", 1, labels={"app": "x"})
    b = pod_event("MODIFIED", "pod-1", 2, labels={"app": "y"})
    c = pod_event("MODIFIED", "pod-1", 3, labels={})  # no key: leaves every group
    d = pod_event("DELETED", "pod-1", 4, labels={})  # not in a group: nothing
    groups, _ = run([on_next(210, a), on_next(220, b), on_next(230, c), on_next(240, d)])
    (_, x), (_, y) = groups
    assert x.messages == [
        on_next(210, a),
        on_next(220, b.with_type("DELETED")),
        on_completed(220),
    ]
    assert y.messages == [
        on_next(220, b.with_type("ADDED")),
        on_next(230, c.with_type("DELETED")),
        on_completed(230),
    ]


def test_errors_reach_every_open_group() -> None:
    failure = ConnectionError("watch lost")
    a = pod_event("ADDED", "pod-1", 1, labels={"app": "x"})
    groups, outer = run([on_next(210, a), on_error(220, failure)])
    assert groups[0][1].messages == [on_next(210, a), on_error(220, failure)]
    assert outer.messages == [on_next(210, "x"), on_error(220, failure)]
