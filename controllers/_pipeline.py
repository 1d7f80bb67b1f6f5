"""The ticket pipeline: the whole composition of issue 7's operators, without any I/O.

What this module is for: one place that wires the operators the same way for a live run (the
runner feeds it informer streams and the proxy's load changes) and for a replay (a trace's
streams in virtual time, loads from a simulated ticket table). Same inputs, same outputs, on
every run. No I/O, no clock but the scheduler it is given (for drain deadlines).

    deployment_metadata --+
                          join_deployments --> app_effects --> effects ----+----------------+
    deployments ----------+                                                |                |
    pods --> servers_by_app --> pod_updates --------------------------------+                |
    loads (LoadChanged) -----------------------------------------------------> serve_plan --> plan
    effects + pod_updates + plan + notices --> event_commands --> events

`effects`, `pod_updates` and `plan` are published (hot, shared by every subscriber): subscribe
to what you need, then `connect()`; nothing flows before. `events` is what the Events sink
should post; subscribe it before `connect()` too. The inputs must be hot (informer events, a
trace being replayed, Subjects): the pipeline subscribes to them without a scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable
from reactivex.observable import ConnectableObservable

from rxkube.controllers._app_effects import app_effects
from rxkube.controllers._apps import AppChanged, AppEffect, AppServed, AppWithdrawn
from rxkube.controllers._appspec import ParserDefaults
from rxkube.controllers._deployments import join_deployments
from rxkube.controllers._notices import event_commands
from rxkube.controllers._plan import AppNotice, PlanInput, PlanOutput, serve_plan
from rxkube.controllers._pods import PodUpdate, ServerList, servers_by_app
from rxkube.proxy import Change, LoadChanged
from rxkube.streams import LocalSubject, PostEvent, WatchEvent

__all__ = ["TicketPipeline", "ticket_pipeline"]


@dataclass(frozen=True, slots=True)
class TicketPipeline:
    """The pipeline's outputs (see the module docstring). Call `connect()` once subscribed."""

    effects: Observable[AppEffect]
    """The apps fold's effects: lifecycle, configuration problems and their resolution."""
    pod_updates: Observable[PodUpdate]
    """Every app's server list, and pods that cannot be served."""
    plan: Observable[PlanOutput]
    """The proxy's desired state per app (`ProxyApp`) and notices (`AppNotice`)."""
    events: Observable[PostEvent]
    """The Kubernetes Events to post."""
    _connectables: tuple[ConnectableObservable[Any], ...]

    def connect(self) -> abc.DisposableBase:
        """Start the flow (downstream first: the plan listens before pods and Deployments
        flow); dispose the result to stop it.

        Subscriptions are made synchronously, with no scheduler: handing one down would let
        `merge` defer subscribing to its sources to that scheduler's next turn, and whatever
        a hot input emitted meanwhile (an informer replaying its store) would be lost.
        """
        return CompositeDisposable(*(c.connect() for c in self._connectables))


def _publish() -> Callable[[Observable[Any]], ConnectableObservable[Any]]:
    """`ops.publish()` on a lock-free subject: the pipeline runs on one thread."""
    subject: LocalSubject[Any] = LocalSubject()
    return ops.multicast(subject=subject)


def _is_lifecycle(effect: AppEffect) -> bool:
    return isinstance(effect, AppServed | AppChanged | AppWithdrawn)


def ticket_pipeline(
    *,
    deployment_metadata: Observable[WatchEvent],
    deployments: Observable[WatchEvent],
    pods: Observable[WatchEvent],
    loads: Observable[Change],
    scheduler: abc.SchedulerBase,
    defaults: ParserDefaults | None = None,
    listen_host: str = "0.0.0.0",
    domain: str | None = None,
    notices: Observable[AppNotice] | None = None,
) -> TicketPipeline:
    """Compose the pipeline over its input streams.

    - `deployment_metadata`: metadata-only events of all Deployments in the namespace;
      `deployments`: full events of the opted-in ones (label-selected); `pods`: the
      namespace's pods with the app label. SYNCED marks complete lists, as from a watch.
    - `loads`: the ticket table's changes (only `LoadChanged` is read: a draining app goes
      when its last ticket is released).
    - `scheduler`: drain deadlines come due on it (a TrioScheduler live, virtual in replays).
    - `notices`: extra notices to post as Events (the runner's, e.g. an own port it could not
      bind).
    """
    effects = deployment_metadata.pipe(
        join_deployments(deployments), app_effects(defaults), _publish()
    )
    pod_updates = pods.pipe(servers_by_app(), _publish())
    lifecycle = cast(Observable[PlanInput], effects.pipe(ops.filter(_is_lifecycle)))
    server_lists = cast(
        Observable[PlanInput], pod_updates.pipe(ops.filter(lambda u: isinstance(u, ServerList)))
    )
    load_changes = cast(
        Observable[PlanInput], loads.pipe(ops.filter(lambda c: isinstance(c, LoadChanged)))
    )
    plan = reactivex.merge(lifecycle, server_lists, load_changes).pipe(
        serve_plan(scheduler, listen_host=listen_host, domain=domain), _publish()
    )
    reports: list[Observable[Any]] = [effects, pod_updates, plan]
    if notices is not None:
        reports.append(notices)
    events = reactivex.merge(*reports).pipe(event_commands())
    return TicketPipeline(
        effects=effects,
        pod_updates=pod_updates,
        plan=plan,
        events=events,
        _connectables=(plan, pod_updates, effects),
    )
