"""`open_informer()`: one watch feeding one `Store`, shared by any number of consumers.

What this module is for: the informer of DESIGN section 4 and issue 11 (client-go's shared
informer): a single list+watch (`_watch._Reflector`) writes into a `Store` and publishes its
events on a hot stream. Consumers read the store (`informer.store`), wait for the first
complete list (`await informer.wait_synced()`), and subscribe to `informer.events`; a
subscriber that joins late first gets the store's current contents as ADDED events and a
SYNCED (as client-go replays existing objects to a handler added after start), then the live
events. `statistics()` is a frozen snapshot of the watch's health and the store's size.

Structured concurrency: the watch runs in a nursery the `async with` block owns; leaving the
block stops it and closes its connection. Events are delivered on the trio thread, inside the
watch task: a subscriber that raises crashes the block (a bug must not pass silently).

It may import the watch, store, codec, client, scheduler and events modules of
`rxkube.streams`, trio and reactivex.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import reactivex
import trio
from reactivex import abc
from reactivex.disposable import Disposable

from rxkube.streams._client import KubeClient
from rxkube.streams._codec import RawTransform, drop_managed_fields
from rxkube.streams._events import WatchEvent
from rxkube.streams._resources import Resource
from rxkube.streams._store import Indexer, Store
from rxkube.streams._trace import TraceWriter
from rxkube.streams._watch import (
    WatchCounters,
    WatchPolicy,
    WatchStatistics,
    _Reflector,
    _Terminal,
    stream_id,
    stream_spec,
)

__all__ = ["Informer", "InformerStatistics", "open_informer"]


@dataclass(frozen=True, slots=True)
class InformerStatistics(WatchStatistics):
    """The watch's statistics (see `WatchStatistics`) plus the store's size.

    - `objects`: objects the store holds; `raw_bytes`: their JSON bytes.
    - `subscribers`: consumers currently subscribed to `events`.
    """

    objects: int = 0
    raw_bytes: int = 0
    subscribers: int = 0


class Informer:
    """A running list+watch, its store and its shared event stream. Open with
    `open_informer(...)`; see the module docstring."""

    def __init__(
        self, resource: Resource, stream: str, spec: Mapping[str, str | bool], store: Store
    ) -> None:
        self.resource = resource
        self.stream = stream
        """The watch's stream id (DESIGN section 4, "Trace format")."""
        self.spec = spec
        """What the watch watches, as a trace header declares it (`stream_spec`)."""
        self.store = store
        self.counters = WatchCounters()
        # A plain tuple of observers, rebuilt on (un)subscribe: publishing is the hot path
        # (tens of thousands of events a second), and a reactivex Subject takes two locks and
        # copies its observer list per event. Everything runs on the trio thread.
        self._observers: tuple[abc.ObserverBase[WatchEvent], ...] = ()
        self._error: Exception | None = None
        self._synced = trio.Event()
        self.events: reactivex.Observable[WatchEvent] = reactivex.create(self._subscribe)
        """Hot: the live events, after a replay of the store's contents (ADDED..., SYNCED)
        for whoever subscribes once the store has synced."""

    def _publish(self, event: WatchEvent) -> None:
        if event.type == "SYNCED":
            self._synced.set()
        for observer in self._observers:
            observer.on_next(event)
        self.counters.changed()

    def _subscribe(
        self, observer: abc.ObserverBase[WatchEvent], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        # Replay then join, with nothing in between: both happen now, on the trio thread, so
        # no live event can slip between the snapshot and the subscription.
        if self.store.synced:
            stream = self.stream
            for obj in self.store.values():
                observer.on_next(
                    WatchEvent(
                        "ADDED",
                        raw=obj.raw,
                        meta=obj.meta,
                        resource_version=obj.meta.resource_version,
                        stream=stream,
                    )
                )
            observer.on_next(
                WatchEvent("SYNCED", resource_version=self.store.resource_version, stream=stream)
            )
        if self._error is not None:
            observer.on_error(self._error)
            return Disposable()
        self._observers = (*self._observers, observer)

        def unsubscribe() -> None:
            self._observers = tuple(o for o in self._observers if o is not observer)

        return Disposable(unsubscribe)

    def _fail(self, error: Exception) -> None:
        self._error = error
        observers, self._observers = self._observers, ()
        for observer in observers:
            observer.on_error(error)

    @property
    def synced(self) -> bool:
        """A complete list has been delivered (the store holds the cluster's state)."""
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        """Wait until the first complete list is in the store."""
        await self._synced.wait()

    async def wait_until(
        self, predicate: Callable[[InformerStatistics], bool]
    ) -> InformerStatistics:
        """Wait until `predicate(statistics())` holds; re-checked after every event, list,
        watch and error. E.g. `await pods.wait_until(lambda s: s.errors.get("Forbidden"))`,
        or a condition on `pods.store` (ignore the argument)."""
        while True:
            stats = self.statistics()
            if predicate(stats):
                return stats
            await self.counters._lot.park()

    def statistics(self) -> InformerStatistics:
        c = self.counters
        store = self.store.statistics()
        return InformerStatistics(
            events=c.events,
            bookmarks=c.bookmarks,
            lists=c.lists,
            relists=c.relists,
            watches=c.watches,
            reconnects=c.reconnects,
            synthesized_deletions=c.synthesized_deletions,
            errors=dict(c.errors),
            resource_version=c.resource_version,
            synced=c.synced,
            last_error=c.last_error,
            objects=store.objects,
            raw_bytes=store.raw_bytes,
            subscribers=len(self._observers),
        )

    def __repr__(self) -> str:
        return f"Informer({self.stream!r}, objects={len(self.store)}, synced={self.synced})"


@asynccontextmanager
async def open_informer(
    client: KubeClient,
    resource: Resource,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    metadata_only: bool = False,
    indexers: Mapping[str, Indexer] | None = None,
    transform: RawTransform | None = drop_managed_fields,
    policy: WatchPolicy | None = None,
    rng: random.Random | None = None,
    record: TraceWriter | None = None,
) -> AsyncIterator[Informer]:
    """Run a list+watch of `resource` into a `Store` for the duration of the block.

    `indexers` add store indexes (`label_indexer(...)`); `transform` rewrites each object's
    JSON before it is kept and published (default: drop `metadata.managedFields`; None keeps
    objects as received). `record` tees every event, from the first list on, to a trace
    writer whose header declares this stream (`{stream_id(...): stream_spec(...)}` of the
    same arguments). The other arguments are `watch()`'s.

        async with open_informer(client, PODS, namespace="apps") as pods:
            await pods.wait_synced()
            pods.events.subscribe(on_pod_event)
            print(len(pods.store), pods.statistics().relists)

    Recording an informer that is already running works too: a late subscriber gets the
    store's contents first, so `pods.events.subscribe(writer)` starts the trace with a
    consistent snapshot (declare `{pods.stream: pods.spec}` in the writer's header).
    """
    sid = stream_id(
        resource,
        namespace=namespace,
        label_selector=label_selector,
        field_selector=field_selector,
        metadata_only=metadata_only,
    )
    spec = stream_spec(
        resource,
        namespace=namespace,
        label_selector=label_selector,
        field_selector=field_selector,
        metadata_only=metadata_only,
    )
    if record is not None and sid not in record.header.streams:
        raise ValueError(
            f"the trace writer's header does not declare the stream {sid!r}; open it with "
            f"streams={{{sid!r}: {spec!r}, ...}}"
        )
    # The reflector applies the transform, so the events and the store share the same bytes.
    store = Store(transform=None, indexers=indexers)
    informer = Informer(resource, sid, spec, store)
    if record is not None:
        informer.events.subscribe(record)
    reflector = _Reflector(
        client,
        resource,
        namespace=namespace,
        label_selector=label_selector,
        field_selector=field_selector,
        metadata_only=metadata_only,
        policy=policy or WatchPolicy(),
        rng=rng or random.Random(),
        counters=informer.counters,
        stream=sid,
        on_next=informer._publish,
        store=store,
        transform=transform,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_run, reflector, informer, name=f"informer {sid}")
        try:
            yield informer
        finally:
            nursery.cancel_scope.cancel()


async def _run(reflector: _Reflector, informer: Informer) -> None:
    try:
        await reflector.run()
    except _Terminal as exc:
        # Nothing a retry can fix (a bad selector): subscribers hear it, and so does the
        # block's owner, from the nursery.
        informer._fail(exc.error)
        raise exc.error from None
