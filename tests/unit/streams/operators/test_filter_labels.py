"""filter_labels in virtual time: selection, transitions, SYNCED, errors."""

from __future__ import annotations

import pytest

from rxkube.streams import SelectorError
from rxkube.streams.operators import filter_labels
from tests.unit.streams.operators.kube_events import marbles, pod_event, synced

GM = {"app": "gmweb"}
OTHER = {"app": "other"}


def test_the_docstring_diagram() -> None:
    a = pod_event("ADDED", "pod-1", 1, labels=GM)
    b = pod_event("ADDED", "pod-2", 2, labels=OTHER)
    c = pod_event("MODIFIED", "pod-1", 3, labels=OTHER)
    s = synced(3)
    with marbles() as m:
        source = m.hot("-a-b-s-c-|", {"a": a, "b": b, "s": s, "c": c})
        result = m.start(source.pipe(filter_labels("app=gmweb")))
        assert result == m.exp("-a---s-D-|", {"a": a, "s": s, "D": c.with_type("DELETED")})


def test_entering_objects_arrive_as_added_and_deletions_pass_only_if_passed() -> None:
    a = pod_event("ADDED", "pod-1", 1, labels=OTHER)
    b = pod_event("MODIFIED", "pod-1", 2, labels=GM)  # starts matching
    c = pod_event("MODIFIED", "pod-1", 3, labels=GM)
    d = pod_event("DELETED", "pod-1", 4, labels=GM)
    e = pod_event("DELETED", "pod-9", 5, labels=GM)  # never passed: dropped
    lookup = {"a": a, "b": b, "c": c, "d": d, "e": e}
    with marbles() as m:
        source = m.hot("-a-b-c-d-e-|", lookup)
        result = m.start(source.pipe(filter_labels({"app": "gmweb"})))
        assert result == m.exp("---B-c-d---|", {"B": b.with_type("ADDED"), "c": c, "d": d})


def test_set_based_selectors_and_errors_pass_through() -> None:
    a = pod_event("ADDED", "pod-1", 1, labels={"tier": "web"})
    b = pod_event("ADDED", "pod-2", 2, labels={"tier": "db"})
    c = pod_event("ADDED", "pod-3", 3, labels={"tier": "api", "canary": "1"})
    failure = RuntimeError("watch broke")
    with marbles() as m:
        source = m.hot("-a-b-c-#", {"a": a, "b": b, "c": c}, failure)
        result = m.start(source.pipe(filter_labels("tier in (web, api),!canary")))
        assert result == m.exp("-a-----#", {"a": a}, failure)


def test_a_bad_selector_fails_when_the_operator_is_built() -> None:
    with pytest.raises(SelectorError, match="unable to parse requirement"):
        filter_labels("app in gmweb")
