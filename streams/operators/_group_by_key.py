"""`group_by_key`: one stream per key (e.g. per app), completed when its last object is deleted."""

from __future__ import annotations

from collections.abc import Callable

from reactivex import GroupedObservable, Observable, abc
from reactivex.subject import Subject

from rxkube.streams import LocalSubject, WatchEvent

__all__ = ["group_by_key"]


def group_by_key(
    key: Callable[[WatchEvent], str | None],
) -> Callable[[Observable[WatchEvent]], Observable[GroupedObservable[str, WatchEvent]]]:
    """Split a watch stream into one stream per key; a group completes when it empties.

    `key(event)` names the group of an object's event (e.g. its app label), or None for no
    group. A group is emitted (as a `GroupedObservable` with `.key`) just before its first
    event: subscribe to it in `on_next`, as with Rx's `group_by`. An object whose key
    changes leaves its old group as DELETED (its new state) and enters the new one as ADDED.
    When the last object of a group is deleted, that DELETED is delivered and the group
    completes; a later object with the same key opens a new group. DELETED is routed by
    where the object is, not by `key` (a deleted object's labels may have changed). SYNCED
    is not forwarded to groups. An error or completion of the source reaches every group.

    ::

        a = ADDED pod-1 app=x     b = ADDED pod-2 app=y     c = ADDED pod-3 app=x
        d = DELETED pod-1         e = DELETED pod-3         f = ADDED pod-4 app=x

        source:   -a-b-c-d-e-f-|
              [ group_by_key(lambda e: e.meta.labels.get("app")) ]
        group x:  -a---c-d-e|           (completes with the deletion of its last pod)
        group y:  ---b---------|
        group x:  -----------f-|        (a new group for the same key)
    """

    def operator(source: Observable[WatchEvent]) -> Observable[GroupedObservable[str, WatchEvent]]:
        def subscribe(
            observer: abc.ObserverBase[GroupedObservable[str, WatchEvent]],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            groups: dict[str, Subject[WatchEvent]] = {}
            members: dict[str, dict[str, None]] = {}  # group key -> object keys
            where: dict[str, str] = {}  # object key -> group key

            def leave(obj: str, group: str, event: WatchEvent) -> None:
                del where[obj]
                inside = members[group]
                del inside[obj]
                subject = groups[group]
                subject.on_next(event)
                if not inside:
                    del members[group]
                    del groups[group]
                    subject.on_completed()

            def on_next(event: WatchEvent) -> None:
                if event.type == "SYNCED":
                    return
                obj = event.meta.key
                current = where.get(obj)
                if event.type == "DELETED":
                    if current is not None:
                        leave(obj, current, event)
                    return
                try:
                    group = key(event)
                except Exception as error:
                    observer.on_error(error)
                    return
                if current is not None and current != group:
                    leave(obj, current, event.with_type("DELETED"))
                    current = None
                if group is None:
                    return
                subject = groups.get(group)
                if subject is None:
                    subject = groups[group] = LocalSubject()
                    members[group] = {}
                    observer.on_next(GroupedObservable(group, subject))
                members[group][obj] = None
                where[obj] = group
                subject.on_next(event if current is not None else event.with_type("ADDED"))

            def on_error(error: Exception) -> None:
                for subject in list(groups.values()):
                    subject.on_error(error)
                groups.clear()
                observer.on_error(error)

            def on_completed() -> None:
                for subject in list(groups.values()):
                    subject.on_completed()
                groups.clear()
                observer.on_completed()

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return operator
