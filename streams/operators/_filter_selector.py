"""The selecting filter behind `filter_labels` and `filter_annotations` (internal)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reactivex import Observable, abc

from rxkube.streams import Selector, WatchEvent


def filter_selected(
    select: Callable[[WatchEvent], Mapping[str, str]], selector: Selector
) -> Callable[[Observable[WatchEvent]], Observable[WatchEvent]]:
    def operator(source: Observable[WatchEvent]) -> Observable[WatchEvent]:
        def subscribe(
            observer: abc.ObserverBase[WatchEvent], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            # Keys of the objects currently passed downstream (per subscription).
            inside: dict[str, None] = {}

            def on_next(event: WatchEvent) -> None:
                if event.type == "SYNCED":
                    observer.on_next(event)
                    return
                key = event.meta.key
                if event.type == "DELETED":
                    if key in inside:
                        del inside[key]
                        observer.on_next(event)
                    return
                try:
                    selected = selector.matches(select(event))
                except Exception as error:
                    observer.on_error(error)
                    return
                if selected:
                    if key in inside:
                        observer.on_next(event)
                    else:
                        inside[key] = None
                        observer.on_next(event.with_type("ADDED"))
                elif key in inside:
                    del inside[key]
                    observer.on_next(event.with_type("DELETED"))

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return operator
