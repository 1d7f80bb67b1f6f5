"""`latest_state_per_key`: the current state of every object, as a snapshot per change."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from reactivex import Observable, abc

from rxkube.streams import WatchEvent

__all__ = ["latest_state_per_key"]


def latest_state_per_key(
    *,
    key: Callable[[WatchEvent], str] | None = None,
    wait_synced: bool = False,
) -> Callable[[Observable[WatchEvent]], Observable[Mapping[str, WatchEvent]]]:
    """Fold events into `{key: latest event}` and emit a read-only snapshot after each change.

    ADDED/MODIFIED set the key's latest event, DELETED removes it (a DELETED for an unknown
    key changes nothing and emits nothing). `key` defaults to `namespace/name`. With
    `wait_synced=True` nothing is emitted before the first SYNCED, which emits the first
    complete snapshot (so a consumer never acts on a half-listed state). Each snapshot is a
    new immutable mapping, built in O(n): meant for small sets (the pods of one app, after
    `group_by_key`); for a whole cluster's objects keep a `Store`.

    ::

        a = ADDED pod-1      b = ADDED pod-2      c = DELETED pod-1      s = SYNCED

        source:  -a-b-s-c-|
              [ latest_state_per_key(wait_synced=True) ]
        result:  -----S-C-|        S = {pod-1: a, pod-2: b}   C = {pod-2: b}
    """
    key_of = key or _object_key

    def operator(source: Observable[WatchEvent]) -> Observable[Mapping[str, WatchEvent]]:
        def subscribe(
            observer: abc.ObserverBase[Mapping[str, WatchEvent]],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            state: dict[str, WatchEvent] = {}
            synced = not wait_synced

            def on_next(event: WatchEvent) -> None:
                nonlocal synced
                if event.type == "SYNCED":
                    if synced:
                        return
                    synced = True
                else:
                    try:
                        object_key = key_of(event)
                    except Exception as error:
                        observer.on_error(error)
                        return
                    if event.type == "DELETED":
                        if state.pop(object_key, None) is None:
                            return
                    else:
                        state[object_key] = event
                    if not synced:
                        return
                observer.on_next(MappingProxyType(dict(state)))

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return operator


def _object_key(event: WatchEvent) -> str:
    return event.meta.key
