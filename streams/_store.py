"""`Store`: the informer cache, folded from a stream of `WatchEvent`s.

What this module is for: the cache every controller reads (client-go's `cache.Indexer`):
objects by key (`namespace/name`), indexes (by namespace, by a label's value, user-defined),
and the relist diff. It may import `_codec` and `_events`, and reactivex's observer interface;
it does no I/O and reads no clock.

Keep the garbage collector out of the store (DESIGN section 4). Each object is kept as a
`RawObject`: its JSON bytes (after the transform) and a `gc=False` metadata view. Neither is
traversed by CPython's cyclic collector, and neither is the dict that maps keys to them, nor
the index buckets (dicts of keys to None, used as ordered sets, which CPython leaves untracked).
So holding 100,000 pods costs the collector nothing; decoding happens on read
(`store[key].object`), where the reader pays for what it reads. `bench/replay_throughput.py`
measures the choice against a store of decoded dicts.

Relists: deletions are synthesized in ONE place, `Store.replace(listed, ...)`. It diffs a full
list against what the store holds and returns (and applies) the events that describe the
change: ADDED for new keys, MODIFIED for changed resourceVersions, DELETED with
`final_state_unknown=True` (carrying the last known state) for keys that vanished, then SYNCED.
The watch source keeps a Store and emits what `replace` returns, so a downstream Store that
merely applies the stream ends in the same state as one that saw the list (tested).

Event semantics of `apply` (tolerant, as client-go's): ADDED or MODIFIED store the object
(an ADDED for a known key replaces it, a MODIFIED for an unknown key adds it); DELETED removes
it (an unknown key is ignored); SYNCED marks the store synced at that resourceVersion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias

from reactivex import abc

from rxkube.streams._codec import (
    ObjectMetaView,
    RawObject,
    RawTransform,
    decode_meta,
    drop_managed_fields,
)
from rxkube.streams._events import WatchEvent

__all__ = [
    "Indexer",
    "Store",
    "StoreStatistics",
    "label_indexer",
]

Indexer: TypeAlias = Callable[[RawObject], Iterable[str]]
"""Index values of an object, e.g. `lambda o: [o.meta.labels.get("app", "")]`.

Prefer indexers that read only `o.meta`: reading `o.object` decodes the whole object.
An indexer must be deterministic (it is called again on the old state to unindex it)."""

NAMESPACE_INDEX: Final = "namespace"


def _by_namespace(obj: RawObject) -> tuple[str]:
    return (obj.meta.namespace,)


def label_indexer(label: str) -> Indexer:
    """An indexer by the value of one label; objects without the label are not indexed.

    `Store(indexers={"app": label_indexer("app.kubernetes.io/name")})`
    """

    def index(obj: RawObject) -> tuple[str, ...]:
        value = obj.meta.labels.get(label)
        return () if value is None else (value,)

    return index


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """What `Store.statistics()` reports."""

    objects: int
    raw_bytes: int
    """Bytes of JSON held (after the transform)."""
    events_applied: int
    synced: bool
    resource_version: str


class Store(abc.ObserverBase[WatchEvent]):
    """The informer cache: objects by key, indexes, and relist diffs.

    ::

        store = Store(indexers={"app": label_indexer("ipb-halle.de/k8sticket.deployment.app.name")})
        pod_events.subscribe(store)          # a Store is an Observer of WatchEvents
        for pod in store.by_index("app", "gmweb"):
            print(pod.key, pod.meta.resource_version, pod.object["status"]["phase"])

    `transform` rewrites each object's JSON bytes before it is kept (default: drop
    `metadata.managedFields`; `None` keeps objects as received). A `namespace` index is always
    there; `indexers` adds more. Reads return `RawObject`s (`.key`, `.meta`, `.raw`, and
    `.object`, which decodes).
    """

    def __init__(
        self,
        *,
        transform: RawTransform | None = drop_managed_fields,
        indexers: Mapping[str, Indexer] | None = None,
    ) -> None:
        if indexers and NAMESPACE_INDEX in indexers:
            raise ValueError(f"the {NAMESPACE_INDEX!r} index is built in; name yours otherwise")
        self._transform = transform
        self._indexers: dict[str, Indexer] = {NAMESPACE_INDEX: _by_namespace, **(indexers or {})}
        self._items: dict[str, RawObject] = {}
        # index name -> index value -> keys (a dict used as an ordered set: untracked by gc)
        self._indexes: dict[str, dict[str, dict[str, None]]] = {name: {} for name in self._indexers}
        self._raw_bytes = 0
        self._applied = 0
        self._synced = False
        self._resource_version = ""
        self.error: Exception | None = None
        """The error the event stream ended with, if the Store was subscribed as an Observer."""

    # -- folding events --------------------------------------------------------------------

    def apply(self, event: WatchEvent) -> RawObject | None:
        """Fold one event into the store; returns the object's previous state, if any."""
        self._applied += 1
        kind = event.type
        if kind == "SYNCED":
            self._synced = True
            self._resource_version = event.resource_version
            return None
        meta = event.meta
        key = meta.key
        if event.resource_version:
            self._resource_version = event.resource_version
        if kind == "DELETED":
            return self._remove(key)
        return self._put(key, self._prepare(event.raw, meta))

    def replace(
        self, listed: Iterable[WatchEvent | RawObject], *, resource_version: str, stream: str
    ) -> list[WatchEvent]:
        """Make the store hold exactly `listed` (a complete list) and say what changed.

        Returns the events that turn the old contents into the new, already applied: ADDED
        for new keys, MODIFIED for keys whose resourceVersion changed, DELETED with
        `final_state_unknown=True` and the last known state for keys missing from the list,
        then SYNCED at `resource_version`. Unchanged objects produce no event. The events are
        attributed to `stream`. The watch source emits exactly these after a (re)list.
        """
        fresh: dict[str, RawObject] = {}
        for item in listed:
            obj = self._prepare(item.raw, item.meta)
            fresh[obj.meta.key] = obj
        events: list[WatchEvent] = []
        for key, obj in fresh.items():
            old = self._items.get(key)
            if old is not None and old.meta.resource_version == obj.meta.resource_version:
                continue
            events.append(
                WatchEvent(
                    "ADDED" if old is None else "MODIFIED",
                    raw=obj.raw,
                    meta=obj.meta,
                    resource_version=obj.meta.resource_version,
                    stream=stream,
                )
            )
            self._put(key, obj)
        vanished = [key for key in self._items if key not in fresh]
        for key in vanished:
            last = self._items[key]
            events.append(
                WatchEvent(
                    "DELETED",
                    raw=last.raw,
                    meta=last.meta,
                    resource_version=last.meta.resource_version,
                    stream=stream,
                    final_state_unknown=True,
                )
            )
            self._remove(key)
        synced = WatchEvent("SYNCED", resource_version=resource_version, stream=stream)
        events.append(synced)
        self._applied += len(events) - 1
        self.apply(synced)
        return events

    def clear(self) -> None:
        """Forget everything (objects, indexes, synced state)."""
        self._items.clear()
        for buckets in self._indexes.values():
            buckets.clear()
        self._raw_bytes = 0
        self._synced = False
        self._resource_version = ""

    # -- the Observer interface -------------------------------------------------------------

    def on_next(self, value: WatchEvent) -> None:
        self.apply(value)

    def on_error(self, error: Exception) -> None:
        self.error = error

    def on_completed(self) -> None:
        pass

    # -- reads -------------------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        """True once a SYNCED event (a complete list) has been applied."""
        return self._synced

    @property
    def resource_version(self) -> str:
        """The resourceVersion of the last event or list applied."""
        return self._resource_version

    def get(self, key: str) -> RawObject | None:
        return self._items.get(key)

    def __getitem__(self, key: str) -> RawObject:
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def keys(self) -> list[str]:
        """The keys, in the order objects were first stored."""
        return list(self._items)

    def values(self) -> list[RawObject]:
        return list(self._items.values())

    def items(self) -> list[tuple[str, RawObject]]:
        return list(self._items.items())

    def index_names(self) -> list[str]:
        return list(self._indexers)

    def index_values(self, index: str) -> list[str]:
        """The values `index` currently has objects for."""
        return list(self._index(index))

    def index_keys(self, index: str, value: str) -> list[str]:
        """The keys of the objects whose `index` has `value`."""
        return list(self._index(index).get(value, ()))

    def by_index(self, index: str, value: str) -> list[RawObject]:
        """The objects whose `index` has `value` (client-go's `ByIndex`)."""
        items = self._items
        return [items[key] for key in self._index(index).get(value, ())]

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            objects=len(self._items),
            raw_bytes=self._raw_bytes,
            events_applied=self._applied,
            synced=self._synced,
            resource_version=self._resource_version,
        )

    # -- internals -----------------------------------------------------------------------------

    def _index(self, index: str) -> dict[str, dict[str, None]]:
        try:
            return self._indexes[index]
        except KeyError:
            raise KeyError(
                f"no index named {index!r}; this store has {sorted(self._indexers)}"
            ) from None

    def _prepare(self, raw: bytes, meta: ObjectMetaView) -> RawObject:
        transform = self._transform
        if transform is not None:
            transformed = transform(raw)
            if transformed is not raw and transform is not drop_managed_fields:
                # A user's transform may rewrite metadata: the view must describe what is kept.
                meta = decode_meta(transformed)
            raw = transformed
        return RawObject(raw, meta)

    def _put(self, key: str, obj: RawObject) -> RawObject | None:
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
            self._raw_bytes -= len(old.raw)
        self._items[key] = obj
        self._raw_bytes += len(obj.raw)
        for name, indexer in self._indexers.items():
            buckets = self._indexes[name]
            for value in indexer(obj):
                bucket = buckets.get(value)
                if bucket is None:
                    buckets[value] = {key: None}
                else:
                    bucket[key] = None
        return old

    def _remove(self, key: str) -> RawObject | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
            self._raw_bytes -= len(old.raw)
        return old

    def _unindex(self, key: str, obj: RawObject) -> None:
        for name, indexer in self._indexers.items():
            buckets = self._indexes[name]
            for value in indexer(obj):
                bucket = buckets.get(value)
                if bucket is not None:
                    bucket.pop(key, None)
                    if not bucket:
                        del buckets[value]
