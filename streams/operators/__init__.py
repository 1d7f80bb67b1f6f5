"""rxkube.streams.operators: pipeable operators on streams of `WatchEvent`s.

Each operator lives in its own private module with a marble diagram in its docstring, and is
a plain function returning `Observable[A] -> Observable[B]` (use with `.pipe(...)`). None does
I/O or reads a clock. They keep the watch contract: SYNCED passes through, an object that
starts or stops being selected arrives as ADDED or leaves as DELETED.
"""

from rxkube.streams.operators._distinct_until_changed_by import distinct_until_changed_by
from rxkube.streams.operators._filter_annotations import filter_annotations
from rxkube.streams.operators._filter_labels import filter_labels
from rxkube.streams.operators._group_by_key import group_by_key
from rxkube.streams.operators._latest_state_per_key import latest_state_per_key

__all__ = [
    "distinct_until_changed_by",
    "filter_annotations",
    "filter_labels",
    "group_by_key",
    "latest_state_per_key",
]
