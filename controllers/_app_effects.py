"""The `app_effects` operator: Deployment watch events in, app lifecycle and config effects out.

What this module is for: driving the pure fold of `_apps.py` from a stream. Each subscription
starts from its own fresh state (so a replay subscribes again and gets the same effects), and
every effect of one event is emitted, in order, before the next event is taken. No I/O, no
scheduler: the operator emits synchronously on the source's `on_next`.
"""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable

from rxkube.controllers._apps import AppEffect, AppsState, apply_deployment_event
from rxkube.controllers._appspec import ParserDefaults
from rxkube.controllers._outstanding import Outstanding
from rxkube.streams import WatchEvent

__all__ = ["app_effects"]


def app_effects(
    defaults: ParserDefaults | None = None,
    *,
    outstanding: Outstanding | None = None,
) -> Callable[[Observable[WatchEvent]], Observable[AppEffect]]:
    """Fold Deployment watch events into app effects (see `apply_deployment_event`).

    ::

        events:  -A--B--S--M---D-|        A, B: ADDED; S: SYNCED; M: MODIFIED; D: DELETED
                 [ app_effects() ]
        effects: -------(ab)-u---r-|      a, b: AppServed; u: AppChanged; r: AppWithdrawn

    Nothing comes out before the first SYNCED; errors and completion pass through.
    `outstanding`: while subscribed, the fold's current problems (`AppsState.problems`) are
    registered there.
    """

    def operator(source: Observable[WatchEvent]) -> Observable[AppEffect]:
        def subscribe(
            observer: abc.ObserverBase[AppEffect],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            state = AppsState(defaults=defaults or ParserDefaults())

            def on_next(event: WatchEvent) -> None:
                nonlocal state
                try:
                    state, effects = apply_deployment_event(state, event)
                except Exception as error:  # a bug in the fold ends the stream visibly
                    observer.on_error(error)
                    return
                for effect in effects:
                    observer.on_next(effect)

            subscription = source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )
            if outstanding is None:
                return Disposable(subscription.dispose)
            return CompositeDisposable(subscription, outstanding.add(lambda: state.problems))

        return Observable(subscribe)

    return operator
