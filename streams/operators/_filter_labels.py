"""`filter_labels`: keep the objects whose labels match a selector, as the API server would."""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable

from rxkube.streams import SelectorLike, WatchEvent, parse_selector
from rxkube.streams.operators._filter_selector import filter_selected

__all__ = ["filter_labels"]


def filter_labels(
    selector: SelectorLike,
) -> Callable[[Observable[WatchEvent]], Observable[WatchEvent]]:
    """Pass the events of objects whose labels match `selector`, with selector transitions.

    Like a watch with `labelSelector=` (wire reference 4.4): an object that starts matching
    arrives as ADDED, one that stops matching leaves as DELETED (its new state), DELETED
    passes only for objects that were passed, SYNCED always passes. Reads only the metadata
    view (no decoding). `selector` is text (`"app=gmweb,tier in (web,api)"`), a `Selector`,
    or a mapping of labels to equal.

    ::

        a = ADDED    pod-1 app=gmweb       b = ADDED pod-2 app=other
        c = MODIFIED pod-1 app=other       s = SYNCED

        source:  -a-b-s-c-|
              [ filter_labels("app=gmweb") ]
        result:  -a---s-D-|         D = DELETED pod-1 (its state in c)
    """
    parsed = parse_selector(selector)
    return filter_selected(lambda event: event.meta.labels, parsed)
