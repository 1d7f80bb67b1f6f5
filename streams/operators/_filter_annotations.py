"""`filter_annotations`: keep the objects whose annotations match a selector."""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable

from rxkube.streams import Requirement, Selector, SelectorLike, WatchEvent, parse_selector
from rxkube.streams.operators._filter_selector import filter_selected

__all__ = ["filter_annotations"]


def filter_annotations(
    selector: SelectorLike,
) -> Callable[[Observable[WatchEvent]], Observable[WatchEvent]]:
    """Pass the events of objects whose annotations match `selector`, with transitions.

    The same contract as `filter_labels`, on `metadata.annotations` (which the API server
    cannot select on): entering objects arrive as ADDED, leaving ones as DELETED, SYNCED
    passes. Annotation values are free text: compare them with `=`, `!=`, `in`, `notin` or
    test a key's presence; use a mapping `{"key": "value"}` for values that are not valid
    label values (they are compared as they are).

    ::

        a = ADDED    app-1 {k8sticket.deployment.app.name: gmweb}
        b = ADDED    app-2 {}                          s = SYNCED
        c = MODIFIED app-1 {}

        source:  -a-b-s-c-|
              [ filter_annotations("ipb-halle.de/k8sticket.deployment.app.name") ]
        result:  -a---s-D-|         D = DELETED app-1 (its state in c)
    """
    if isinstance(selector, str | Selector):
        parsed = parse_selector(selector)
    else:
        # Annotation values may be any text: build the equality requirements unchecked.
        parsed = Selector(tuple(Requirement(key, "=", (value,)) for key, value in selector.items()))
    return filter_selected(lambda event: event.meta.annotations, parsed)
