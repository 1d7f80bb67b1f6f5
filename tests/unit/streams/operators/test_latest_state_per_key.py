"""latest_state_per_key in virtual time."""

from __future__ import annotations

from reactivex.notification import OnNext

from rxkube.streams.operators import latest_state_per_key
from tests.unit.streams.operators.kube_events import marbles, pod_event, synced


def test_the_docstring_diagram() -> None:
    a = pod_event("ADDED", "pod-1", 1)
    b = pod_event("ADDED", "pod-2", 2)
    c = pod_event("DELETED", "pod-1", 3)
    s = synced(2)
    with marbles() as m:
        source = m.hot("-a-b-s-c-|", {"a": a, "b": b, "s": s, "c": c})
        result = m.start(source.pipe(latest_state_per_key(wait_synced=True)))
        expected = {"S": {"apps/pod-1": a, "apps/pod-2": b}, "C": {"apps/pod-2": b}}
        assert result == m.exp("-----S-C-|", expected)


def test_without_waiting_every_change_emits_and_unknown_deletions_do_not() -> None:
    a = pod_event("ADDED", "pod-1", 1)
    mod = pod_event("MODIFIED", "pod-1", 2, phase="Failed")
    u = pod_event("DELETED", "pod-7", 3)
    s = synced(3)
    with marbles() as m:
        source = m.hot("-a-m-u-s-|", {"a": a, "m": mod, "u": u, "s": s})
        result = m.start(source.pipe(latest_state_per_key()))
        expected = {"A": {"apps/pod-1": a}, "M": {"apps/pod-1": mod}}
        assert result == m.exp("-A-M-----|", expected)


def test_snapshots_are_immutable_and_independent() -> None:
    a = pod_event("ADDED", "pod-1", 1)
    b = pod_event("ADDED", "pod-2", 2)
    with marbles() as m:
        source = m.hot("-a-b-|", {"a": a, "b": b})
        result = m.start(source.pipe(latest_state_per_key()))
    notification = result[0].value
    assert isinstance(notification, OnNext)
    first = notification.value
    assert dict(first) == {"apps/pod-1": a}  # not changed by the later event
    assert not hasattr(first, "__setitem__")
