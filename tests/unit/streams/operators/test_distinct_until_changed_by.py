"""distinct_until_changed_by in virtual time."""

from __future__ import annotations

from rxkube.streams import WatchEvent
from rxkube.streams.operators import distinct_until_changed_by
from tests.unit.streams.operators.kube_events import marbles, pod_event, synced


def phase(event: WatchEvent) -> str:
    phase_value: str = event.object["status"]["phase"]
    return phase_value


def test_the_docstring_diagram() -> None:
    a = pod_event("ADDED", "pod-1", 1, phase="Pending")
    b = pod_event("MODIFIED", "pod-1", 2, phase="Pending")
    c = pod_event("MODIFIED", "pod-1", 3, phase="Running")
    d = pod_event("ADDED", "pod-2", 4, phase="Running")
    x = pod_event("DELETED", "pod-1", 5, phase="Running")
    lookup = {"a": a, "b": b, "c": c, "d": d, "x": x}
    with marbles() as m:
        source = m.hot("-a-b-c-d-x-|", lookup)
        result = m.start(source.pipe(distinct_until_changed_by(phase)))
        assert result == m.exp("-a---c-d-x-|", lookup)


def test_a_deleted_object_starts_afresh_and_synced_passes() -> None:
    a = pod_event("ADDED", "pod-1", 1)
    x = pod_event("DELETED", "pod-1", 2)
    b = pod_event("ADDED", "pod-1", 3)  # recreated with the same projection: passes
    s = synced(3)
    with marbles() as m:
        source = m.hot("-a-x-b-s-|", {"a": a, "x": x, "b": b, "s": s})
        result = m.start(source.pipe(distinct_until_changed_by(phase)))
        assert result == m.exp("-a-x-b-s-|", {"a": a, "x": x, "b": b, "s": s})


def test_a_failing_projection_is_an_error_of_the_stream() -> None:
    a = pod_event("ADDED", "pod-1", 1)
    failure = KeyError("spec")

    def broken(event: WatchEvent) -> object:
        raise failure

    with marbles() as m:
        source = m.hot("-a-|", {"a": a})
        result = m.start(source.pipe(distinct_until_changed_by(broken)))
        assert result == m.exp("-#", None, failure)
