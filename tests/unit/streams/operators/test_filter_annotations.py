"""filter_annotations in virtual time."""

from __future__ import annotations

from rxkube.streams.operators import filter_annotations
from tests.unit.streams.operators.kube_events import marbles, pod_event, synced

KEY = "ipb-halle.de/k8sticket.deployment.app.name"


def test_the_docstring_diagram() -> None:
    a = pod_event("ADDED", "app-1", 1, annotations={KEY: "gmweb"})
    b = pod_event("ADDED", "app-2", 2)
    s = synced(2)
    c = pod_event("MODIFIED", "app-1", 3)
    with marbles() as m:
        source = m.hot("-a-b-s-c-|", {"a": a, "b": b, "s": s, "c": c})
        result = m.start(source.pipe(filter_annotations(KEY)))
        assert result == m.exp("-a---s-D-|", {"a": a, "s": s, "D": c.with_type("DELETED")})


def test_a_mapping_compares_free_text_values_as_they_are() -> None:
    note = "users: 3 / 10, see https://example.org"  # not a valid label value
    a = pod_event("ADDED", "app-1", 1, annotations={"note": note})
    b = pod_event("ADDED", "app-2", 2, annotations={"note": "other"})
    with marbles() as m:
        source = m.hot("-a-b-|", {"a": a, "b": b})
        result = m.start(source.pipe(filter_annotations({"note": note})))
        assert result == m.exp("-a---|", {"a": a})
