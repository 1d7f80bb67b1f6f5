"""What the Deployment's (and pod's) owner reads in `kubectl describe`: Events to post.

What this module is for: one pure translation from what the pipelines report (configuration
problems and their resolution, pod problems, lifecycle notices) to `PostEvent` commands for the
Events sink (`rxkube.streams.open_event_sink`), as a pipeable operator. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable, abc

from rxkube.controllers._apps import ConfigProblem, ConfigResolved, DeploymentRef
from rxkube.controllers._plan import AppNotice
from rxkube.controllers._pods import PodProblem
from rxkube.streams import ObjectReference, PostEvent

__all__ = ["Reportable", "event_commands", "to_event"]

Reportable = ConfigProblem | ConfigResolved | PodProblem | AppNotice


def _deployment(ref: DeploymentRef) -> ObjectReference:
    return ObjectReference("Deployment", ref.name, ref.namespace, ref.uid, "apps/v1")


def to_event(item: object) -> PostEvent | None:
    """The Event to post for `item`, or None when there is nothing to tell."""
    if isinstance(item, ConfigProblem):
        return PostEvent(_deployment(item.deployment), item.reason, item.message, "Warning")
    if isinstance(item, ConfigResolved):
        if item.withdrawn:
            return None  # deleted or opted out: nobody reads its Events any more
        return PostEvent(
            _deployment(item.deployment),
            "ConfigurationResolved",
            "the configuration problems reported before are fixed",
        )
    if isinstance(item, PodProblem):
        return PostEvent(item.pod, "InvalidConfiguration", item.message, "Warning")
    if isinstance(item, AppNotice):
        return PostEvent(_deployment(item.deployment), item.reason, item.message, item.type)
    return None


def event_commands() -> Callable[[Observable[object]], Observable[PostEvent]]:
    """Reports in, Event commands out; anything else is ignored.

    ::

        reports:  -p--r--x--n-|      p: ConfigProblem   r: ConfigResolved (fixed)
              [ event_commands() ]   x: AppServed (not reported)   n: AppNotice
        events:   -P--R-----N-|
    """

    def operator(source: Observable[object]) -> Observable[PostEvent]:
        def subscribe(
            observer: abc.ObserverBase[PostEvent], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(item: object) -> None:
                event = to_event(item)
                if event is not None:
                    observer.on_next(event)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return operator
