"""`distinct_until_changed_by`: drop an object's events that leave a projection unchanged."""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable, abc

from rxkube.streams import WatchEvent

__all__ = ["distinct_until_changed_by"]


def distinct_until_changed_by(
    projection: Callable[[WatchEvent], object],
    *,
    key: Callable[[WatchEvent], str] | None = None,
) -> Callable[[Observable[WatchEvent]], Observable[WatchEvent]]:
    """Pass an object's ADDED/MODIFIED only when `projection(event)` differs from its last one.

    Per object (by `key`, default `namespace/name`), not across the stream: so a change to a
    field the projection ignores (a pod's `status.conditions[].lastProbeTime`, a
    resourceVersion) emits nothing, while each object's first event always passes. DELETED
    always passes and forgets the object; SYNCED passes. Projections are compared with `==`:
    project onto tuples, frozensets or strings. Prefer projections on `event.meta` (free) over
    `event.object` (decodes).

    ::

        a = ADDED    pod-1 phase=Pending      b = MODIFIED pod-1 phase=Pending (new rv)
        c = MODIFIED pod-1 phase=Running      d = ADDED    pod-2 phase=Running
        x = DELETED  pod-1

        source:  -a-b-c-d-x-|
              [ distinct_until_changed_by(lambda e: e.object["status"]["phase"]) ]
        result:  -a---c-d-x-|
    """
    key_of = key or _object_key

    def operator(source: Observable[WatchEvent]) -> Observable[WatchEvent]:
        def subscribe(
            observer: abc.ObserverBase[WatchEvent], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            last: dict[str, object] = {}

            def on_next(event: WatchEvent) -> None:
                if event.type == "SYNCED":
                    observer.on_next(event)
                    return
                try:
                    object_key = key_of(event)
                    if event.type == "DELETED":
                        last.pop(object_key, None)
                    else:
                        projected = projection(event)
                        if object_key in last and last[object_key] == projected:
                            return
                        last[object_key] = projected
                except Exception as error:
                    observer.on_error(error)
                    return
                observer.on_next(event)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return operator


def _object_key(event: WatchEvent) -> str:
    return event.meta.key
