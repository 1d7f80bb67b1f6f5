"""The ticket controller: serves a namespace's annotated Deployments through the ticket proxy.

What this module is for: issue 7 item 4, the composition behind `rxkube run` and its library
form `open_ticket_controller`. Everything runs in one nursery the `async with` block owns.

The pipeline (DESIGN section 3); every arrow is a pipeable operator without I/O or clock, the
edges (marked *) do the I/O::

    *informer: Deployments, metadata only ----+
                                               join_deployments --> app_effects --+-- lifecycle --+
    *informer: Deployments, label-selected ---+                                   |               |
                                                                                   +-- problems   |
    *informer: Pods (one for the namespace) --> servers_by_app (group_by_key) --+-- ServerList ---+
                                                                                +-- PodProblem    |
    *proxy.changes (LoadChanged) ------------------------------------------------------------------+
                                                                                                   v
                                                       serve_plan (drain timers on the scheduler)
                                                         |-- ProxyApp --> *applier --> proxy
                                                         '-- AppNotice
    problems, PodProblem, AppNotice, applier notices --> event_commands --> *Events sink
    effects, pod problems, proxy changes ---------------------------------> *metrics (registry)

The autoscaler (issue 8; `_scaling.py`): the plan's apps, the pod informer, the proxy's changes,
the pod sink's outcomes and the leader election feed the `autoscaler` operator; its steps'
commands go to the pod sink (`open_pod_sink`, or one passed in), its numbers to the metrics.
Only the leader steps. `record=` writes a trace of what the pipelines saw: the three informers,
the proxy's ticket events (`tickets/<namespace>`) and the autoscaler's commands and failures
(`autoscaler/<namespace>`), which `replay_trace` replays.

The applier keeps only the latest desired state per app and applies it in a task of its own
(`set_app` binds sockets, so it is async), so a burst of pod events coalesces and its queue is
bounded by the number of apps. An own port that cannot be bound (taken, or still held by a
draining app) is served on the shared listener meanwhile, said in a `PortUnavailable` Event, and
retried when an app goes away and every `port_retry` seconds.

Readiness (`/readyz`, `wait_ready()`): all three informers have listed once and the applier has
applied what that list asked for. Leaving the block drains: readiness turns false, the pipeline
stops, the proxy stops accepting and lets open requests finish within `shutdown_grace`
(`--drain-deadline`), queued Events are flushed, then the watches close.

It may import `rxkube.streams`, `rxkube.proxy` and this package's cores; never `rxkube.fakes`.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal

import reactivex
import trio
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from reactivex import Observable
from reactivex import operators as ops
from reactivex.abc import DisposableBase
from reactivex.disposable import CompositeDisposable
from reactivex.subject import Subject

from rxkube.controllers._admin import serve_admin
from rxkube.controllers._apps import (
    AppChanged,
    AppEffect,
    AppServed,
    AppWithdrawn,
    ConfigProblem,
    ConfigResolved,
    DeploymentRef,
)
from rxkube.controllers._appspec import APP_LABEL, OPT_IN_LABEL, AppSpec, ParserDefaults
from rxkube.controllers._demand import (
    autoscaler_stream,
    command_record,
    failure_record,
    ticket_record,
    tickets_stream,
)
from rxkube.controllers._endpoints import serve_endpoints
from rxkube.controllers._logs import fields
from rxkube.controllers._metrics import AppMetrics
from rxkube.controllers._pipeline import ticket_pipeline
from rxkube.controllers._plan import AppNotice, PlanOutput, ProxyApp
from rxkube.controllers._pod_sink import PodSink, PodSinkStatistics, open_pod_sink
from rxkube.controllers._pods import PodProblem, PodUpdate
from rxkube.controllers._reconcile import CreatePod, seeded_suffixes
from rxkube.controllers._replication import Replication, open_replication
from rxkube.controllers._scaling import (
    AuthoritySnapshot,
    AutoscalerInput,
    AutoscalerSettings,
    LeaderChanged,
    PodCommandApplied,
    PodOutcome,
    ScaleStep,
    autoscaler,
)
from rxkube.controllers._status import StatusBoard, StatusSnapshot
from rxkube.proxy import (
    Change,
    LoadChanged,
    ProxyConfig,
    ProxyStatistics,
    TicketIssued,
    TicketProxy,
    open_ticket_proxy,
)
from rxkube.streams import (
    DEPLOYMENTS,
    PODS,
    EventLimits,
    EventSink,
    EventSinkStatistics,
    Informer,
    InformerStatistics,
    KubeClient,
    LeaderElection,
    LeasePolicy,
    ObjectReference,
    PostEvent,
    Resource,
    TraceWriter,
    TrioScheduler,
    WatchPolicy,
    open_event_sink,
    open_informer,
    open_trace_writer,
    stream_id,
    stream_spec,
)

__all__ = [
    "AppStatus",
    "ControllerStatistics",
    "TicketController",
    "open_ticket_controller",
]

log: Final = logging.getLogger("rxkube.controllers.runner")
_AUTOSCALING: Final = AutoscalerSettings()


@dataclass(frozen=True, slots=True)
class _Watch:
    resource: Resource
    label_selector: str | None = None
    metadata_only: bool = False


WATCHES: Final[Mapping[str, _Watch]] = {
    "deployment-metadata": _Watch(DEPLOYMENTS, metadata_only=True),
    "deployments": _Watch(DEPLOYMENTS, label_selector=f"{OPT_IN_LABEL}=true"),
    "pods": _Watch(PODS, label_selector=APP_LABEL),
}
"""The controller's three informers, by role, in the order they are opened: what it watches
of a namespace (and what `rxkube record` records)."""


def watch_streams(namespace: str) -> dict[str, Mapping[str, Any]]:
    """The trace streams (id -> spec) of the controller's watches of `namespace`."""
    streams: dict[str, Mapping[str, Any]] = {}
    for watched in WATCHES.values():
        options: dict[str, Any] = {
            "namespace": namespace,
            "label_selector": watched.label_selector,
            "metadata_only": watched.metadata_only,
        }
        streams[stream_id(watched.resource, **options)] = stream_spec(watched.resource, **options)
    return streams


@dataclass(frozen=True, slots=True)
class AppStatus:
    """One app as the controller serves it now."""

    app: str
    deployment: str
    draining: bool
    servers: int
    ready_servers: int
    routing: str
    own_port: int | None
    """The own listener's bound port, None when the app has none (or it could not be bound)."""
    autoscaled_starting: int = 0
    """Autoscaled pods created (or being created) that are not ready servers yet."""
    autoscaled_ready: int = 0
    """Autoscaled pods that are ready servers."""
    autoscaled_terminating: int = 0


@dataclass(frozen=True, slots=True)
class ControllerStatistics:
    ready: bool
    draining: bool
    leader: bool
    """This replica leads (always true without leader election)."""
    apps: Mapping[str, AppStatus]
    informers: Mapping[str, InformerStatistics]
    """By role: "deployment-metadata", "deployments", "pods"."""
    proxy: ProxyStatistics
    events: EventSinkStatistics
    config_errors: int
    """Configuration errors found (Deployments and pods) since the start."""
    apply_errors: int
    """Desired states the proxy could not take as asked (own ports not bound)."""
    scale_actions: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """Pod commands by (direction "up"|"down", outcome "applied"|"failed"), all apps."""
    pods: PodSinkStatistics | None = None
    """The pod sink's statistics (None when the autoscaler is off)."""


class _Applier:
    """The edge from the plan to the proxy: the latest `ProxyApp` per app, applied in order."""

    def __init__(self, controller: TicketController, port_retry: float) -> None:
        self._controller = controller
        self._proxy = controller.proxy
        self._port_retry = port_retry
        self.pending: dict[str, ProxyApp] = {}
        self.applied: dict[str, ProxyApp] = {}
        self.degraded: dict[str, int] = {}
        """App -> the own port it wants and does not have."""
        self.busy = False
        self.errors = 0
        self._wake = trio.Event()
        self._idle = trio.lowlevel.ParkingLot()

    def offer(self, desired: ProxyApp) -> None:
        self.pending[desired.app] = desired
        self._wake.set()

    async def wait_idle(self) -> None:
        while self.pending or self.busy:
            await self._idle.park()

    async def run(self) -> None:
        while True:
            while self.pending:
                name = next(iter(self.pending))
                desired = self.pending.pop(name)
                self.busy = True
                try:
                    await self._apply(desired)
                except Exception:
                    # A bug here must cost one app's update, never every app's service.
                    self.errors += 1
                    log.exception("could not apply app", extra=fields(app=name))
                finally:
                    self.busy = False
                self._controller._touch()
            self._idle.unpark_all()
            self._wake = trio.Event()
            with trio.move_on_after(self._port_retry if self.degraded else math.inf):
                await self._wake.wait()
            if not self._wake.is_set():
                self._retry_degraded()

    def _retry_degraded(self) -> None:
        for name in self.degraded:
            if name not in self.pending and name in self.applied:
                self.pending[name] = self.applied[name]

    async def _apply(self, desired: ProxyApp) -> None:
        proxy, name = self._proxy, desired.app
        metrics = self._controller.metrics
        if desired.config is None:
            self.applied.pop(name, None)
            self.degraded.pop(name, None)
            if name in proxy.apps:
                await proxy.remove_app(name)
                metrics.remove_app(name)
                log.info("app removed from the proxy", extra=fields(app=name))
            self._retry_degraded()  # its own port may be free now
            return
        config = desired.config
        current = self.applied.get(name)
        changed = current is None or current.config != config
        if config.listen is None:
            self.degraded.pop(name, None)  # no own port wanted any more
        if changed or name in self.degraded:
            try:
                await proxy.set_app(config)
                if self.degraded.pop(name, None) is not None and config.listen is not None:
                    log.info("own port bound", extra=fields(app=name, port=config.listen[1]))
            except OSError as error:
                assert config.listen is not None  # only binding an own port raises OSError
                await proxy.set_app(replace(config, listen=None))
                if self.degraded.get(name) != config.listen[1]:
                    self.errors += 1
                    self._controller._port_unavailable(desired, config.listen[1], error)
                self.degraded[name] = config.listen[1]
            if (
                current is not None
                and current.config is not None
                and (current.config.listen != config.listen)
            ):
                self._retry_degraded()  # it may have let go of a port another app wants
        if changed:
            log.info(
                "app configured",
                extra=fields(
                    app=name,
                    routing=config.routing,
                    port=None if config.listen is None else config.listen[1],
                    tickets_max=config.tickets_max,
                    draining=desired.draining,
                ),
            )
        if current is None or current.servers != desired.servers:
            proxy.set_servers(name, desired.servers)
            log.debug(
                "servers set",
                extra=fields(
                    app=name,
                    servers=len(desired.servers),
                    ready=sum(1 for s in desired.servers if s.ready),
                ),
            )
        self.applied[name] = desired


class TicketController:
    """A running ticket controller. Made by `open_ticket_controller`; see its docstring."""

    def __init__(
        self,
        *,
        namespace: str,
        proxy: TicketProxy,
        informers: Mapping[str, Informer],
        events: EventSink,
        registry: CollectorRegistry,
        metrics: AppMetrics,
        scheduler: TrioScheduler,
        defaults: ParserDefaults,
        listen_host: str,
        domain: str | None,
        port_retry: float,
        election: LeaderElection | None = None,
        pod_sink: PodSink | None = None,
        autoscaling: AutoscalerSettings | None = None,
        recorder: TraceWriter | None = None,
        rng: random.Random | None = None,
        replication: Replication | None = None,
    ) -> None:
        self.namespace = namespace
        self.proxy = proxy
        self.informers = informers
        self.events = events
        self.registry = registry
        self.metrics = metrics
        self.scheduler = scheduler
        self.defaults = defaults
        self.listen_host = listen_host
        self.domain = domain
        self.election = election
        """The leader election this replica takes part in (None: none, it leads alone)."""
        self.pod_sink = pod_sink
        """Where the autoscaler's pod commands go (None: the autoscaler is off)."""
        self.autoscaling = autoscaling
        self.recorder = recorder
        """The trace being recorded (None: none)."""
        self._rng = rng or random.Random()
        self._steps: dict[str, ScaleStep] = {}
        self._scale_steps: Subject[ScaleStep] = Subject()
        self._scale_actions: dict[tuple[str, str], int] = {}
        self.replication = replication
        """The replicated ticket authority and its role (with leader election), else None."""
        self._applier = _Applier(self, port_retry)
        self._ready = trio.Event()
        self._draining = False
        self._config_errors = 0
        self._notices: Subject[AppNotice] = Subject()
        self._effects: Subject[AppEffect] = Subject()
        self._plan: Subject[PlanOutput] = Subject()
        self._subscription: DisposableBase | None = None
        self._changed = trio.lowlevel.ParkingLot()
        self.metrics_address: tuple[str, int] | None = None
        """Where `/metrics`, `/healthz` and `/readyz` are served (None: nowhere)."""
        self.admin_address: tuple[str, int] | None = None
        """Where the status page is served (None: nowhere)."""
        self.board = StatusBoard(lambda: scheduler.now.timestamp())
        """What the status page shows (fed from the start; read it with `status()`)."""

    # -- the public surface ----------------------------------------------------------------

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The proxy's shared listeners (host, port), port 0 resolved."""
        return self.proxy.addresses

    def app_address(self, app: str) -> tuple[str, int] | None:
        """The app's own listener, if it has one now."""
        return self.proxy.app_address(app)

    @property
    def app_effects(self) -> Observable[AppEffect]:
        """Every effect of the apps fold, live (hot): lifecycle, problems, resolutions."""
        return self._effects

    @property
    def plan(self) -> Observable[PlanOutput]:
        """The serving plan's outputs, live (hot): desired proxy states and notices."""
        return self._plan

    @property
    def scale_steps(self) -> Observable[ScaleStep]:
        """The autoscaler's steps, live (hot): each app's numbers and the commands sent. The
        commands' outcomes are on `pod_sink.outcomes`."""
        return self._scale_steps

    @property
    def apps(self) -> Mapping[str, AppSpec]:
        """The apps in the proxy now (draining ones included), by name, with their specs."""
        return {
            name: desired.spec
            for name, desired in self._applier.applied.items()
            if desired.spec is not None
        }

    @property
    def leader(self) -> bool:
        """Whether this replica leads (always, without leader election)."""
        return self.election is None or self.election.is_leader

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._draining

    @property
    def draining(self) -> bool:
        return self._draining

    async def wait_ready(self) -> None:
        """Wait until the informers have listed once and that state is in the proxy."""
        await self._ready.wait()

    async def wait_applied(self) -> None:
        """Wait until every desired state produced so far is in the proxy."""
        await self._applier.wait_idle()

    async def wait_until(
        self, predicate: Callable[[ControllerStatistics], bool]
    ) -> ControllerStatistics:
        """Wait until `predicate(statistics())` holds; re-checked after everything the
        controller sees or does (watch events, plan outputs, proxy changes, Events posted).
        E.g. `await controller.wait_until(lambda s: "lab" in s.apps)`."""
        while True:
            stats = self.statistics()
            if predicate(stats):
                return stats
            await self._changed.park()

    def _touch(self, *_: object) -> None:
        self._changed.unpark_all()

    def readiness(self) -> tuple[bool, str]:
        """What `/readyz` answers: (ok, reason)."""
        if self._draining:
            return False, "draining"
        if not self._ready.is_set():
            waiting = [role for role, i in self.informers.items() if not i.synced]
            if self.replication is not None and not self.replication.authority.statistics().synced:
                waiting.append("the ticket table's leader")
            return False, "waiting for " + (", ".join(waiting) or "the first state to apply")
        return True, "ready"

    def statistics(self) -> ControllerStatistics:
        proxy = self.proxy.statistics()
        apps = {}
        for name, desired in self._applier.applied.items():
            if desired.config is None:
                continue
            own = self.proxy.app_address(name)
            app_stats = proxy.apps.get(name)
            apps[name] = AppStatus(
                app=name,
                deployment=desired.spec.deployment if desired.spec is not None else "",
                draining=desired.draining,
                servers=app_stats.servers if app_stats is not None else 0,
                ready_servers=app_stats.ready_servers if app_stats is not None else 0,
                routing=desired.config.routing,
                own_port=None if own is None else own[1],
            )
            step = self._steps.get(name)
            if step is not None:
                apps[name] = replace(
                    apps[name],
                    autoscaled_starting=step.starting,
                    autoscaled_ready=step.ready,
                    autoscaled_terminating=step.terminating,
                )
        return ControllerStatistics(
            ready=self.ready,
            draining=self._draining,
            leader=self.leader,
            apps=apps,
            informers={role: i.statistics() for role, i in self.informers.items()},
            proxy=proxy,
            events=self.events.statistics(),
            config_errors=self._config_errors,
            apply_errors=self._applier.errors,
            scale_actions=dict(self._scale_actions),
            pods=None if self.pod_sink is None else self.pod_sink.statistics(),
        )

    def status(self) -> StatusSnapshot:
        """The status page's content now: apps, their pods with users and readiness, free
        tickets, the queue, configuration problems, recent scale actions and Events."""
        stats = self.statistics()
        return self.board.snapshot(
            namespace=self.namespace,
            ready=stats.ready,
            draining=stats.draining,
            leader=stats.leader,
            apps=stats.apps,
            specs=self.apps,
            proxy_apps=stats.proxy.apps,
            connections=stats.proxy.connections,
            config_errors=stats.config_errors,
        )

    # -- wiring ----------------------------------------------------------------------------

    def _wire(self) -> None:
        pipeline = ticket_pipeline(
            deployment_metadata=self.informers["deployment-metadata"].events,
            deployments=self.informers["deployments"].events,
            pods=self.informers["pods"].events,
            loads=self.proxy.changes,
            scheduler=self.scheduler,
            defaults=self.defaults,
            listen_host=self.listen_host,
            domain=self.domain,
            notices=self._notices,
        )
        leader = (
            () if self.election is None else (self.election.changes.subscribe(self._on_leader),)
        )
        scaling: list[DisposableBase] = []
        if self.pod_sink is not None:
            proxy_apps = pipeline.plan.pipe(ops.filter(lambda o: isinstance(o, ProxyApp)))
            sources: list[Observable[Any]] = [
                proxy_apps,
                self.informers["pods"].events,
                self.proxy.changes,
                self.pod_sink.outcomes,
            ]
            if self.election is not None:
                sources.append(self.election.changes.pipe(ops.flat_map(self._leading)))
            inputs: Observable[AutoscalerInput] = reactivex.merge(*sources)
            steps = inputs.pipe(
                autoscaler(
                    self.scheduler,
                    settings=self.autoscaling,
                    new_suffix=self._suffixes,
                    leader=self.election is None,
                )
            )
            scaling = [
                self.pod_sink.outcomes.subscribe(self._on_outcome),
                steps.subscribe(self._on_step, self._on_autoscaler_error),
            ]
        recording: list[DisposableBase] = []
        if self.recorder is not None:
            recording.append(self.proxy.changes.subscribe(self._record_change))
        self._subscription = CompositeDisposable(
            *recording,
            *scaling,
            pipeline.plan.subscribe(self._on_plan),
            pipeline.plan.subscribe(self._plan),
            pipeline.effects.subscribe(self._on_effect),
            pipeline.effects.subscribe(self._effects),
            pipeline.pod_updates.subscribe(self._on_pod_update),
            pipeline.events.subscribe(self._post),
            self.proxy.changes.subscribe(self._on_change),
            self.events.outcomes.subscribe(self._touch),
            *leader,
            *(informer.events.subscribe(self._touch) for informer in self.informers.values()),
            pipeline.connect(),
        )

    def _leading(self, leads: bool) -> Observable[AutoscalerInput]:
        inputs: list[AutoscalerInput] = [LeaderChanged(leads)]
        if leads:
            # The table this replica leads now: its apps were configured while it followed.
            inputs.append(AuthoritySnapshot(tuple(self.proxy.authority.snapshot())))
        return reactivex.from_iterable(inputs)

    def _suffixes(self, app: str) -> Callable[[], str]:
        return seeded_suffixes(self._rng.getrandbits(64))

    def _on_step(self, step: ScaleStep) -> None:
        self._touch()
        sink = self.pod_sink
        assert sink is not None
        for command in step.commands:
            if self.recorder is not None:
                self.recorder.write(command_record(command, autoscaler_stream(self.namespace)))
            sink.on_next(command)
        if step.commands and step.decision is not None:
            log.info(
                "scaling: %s",
                step.decision.summary,
                extra=fields(app=step.app, users=step.users, waiting=step.waiting),
            )
        if step.decision is None:
            self._steps.pop(step.app, None)
        else:
            self._steps[step.app] = step
            if step.app in self.proxy.apps:
                self.metrics.set_autoscaled_pods(step.app, starting=step.starting, ready=step.ready)
        self._scale_steps.on_next(step)

    def _on_outcome(self, outcome: PodOutcome) -> None:
        self._touch()
        command = outcome.command
        direction: Literal["up", "down"] = "up" if isinstance(command, CreatePod) else "down"
        result: Literal["applied", "failed"] = (
            "applied" if isinstance(outcome, PodCommandApplied) else "failed"
        )
        key = (direction, result)
        self._scale_actions[key] = self._scale_actions.get(key, 0) + 1
        if command.app in self.proxy.apps:
            self.metrics.scale_action(command.app, direction=direction, outcome=result)
        if self.recorder is not None and not isinstance(outcome, PodCommandApplied):
            self.recorder.write(failure_record(outcome, autoscaler_stream(self.namespace)))

    def _on_autoscaler_error(self, error: Exception) -> None:
        # A bug, not an API error (those are outcomes): say so loudly; serving goes on.
        log.error("the autoscaler stopped", exc_info=error)

    def _record_change(self, change: Change) -> None:
        recorder = self.recorder
        assert recorder is not None
        record = ticket_record(change, tickets_stream(self.namespace))
        if record is not None and not isinstance(change, LoadChanged):
            # At the change's own time (the authority's clock is the scheduler's), not the
            # time of writing: the tickets one tick releases share one time, and a replay
            # must see them so (idle times order the autoscaler's deletions). Never before
            # the previous record: a trace is in time order.
            at = change.time - recorder.opened.timestamp()
            recorder.write(record, t=max(at, recorder.last_t))

    def _post(self, event: PostEvent) -> None:
        # Followers see the same problems: only the leader tells, so each is posted once.
        if self.leader:
            self.events.on_next(event)

    def _on_leader(self, leads: bool) -> None:
        self._touch()
        if not leads or self.election is None:
            return
        lease = ObjectReference(
            "Lease", self.election.name, self.namespace, api_version="coordination.k8s.io/v1"
        )
        self.events.post(lease, "LeaderElection", f"{self.election.identity} became leader")

    def _unwire(self) -> None:
        if self._subscription is not None:
            self._subscription.dispose()
            self._subscription = None

    def _on_plan(self, output: PlanOutput) -> None:
        self._touch()
        if isinstance(output, ProxyApp):
            self._applier.offer(output)
            return
        level = logging.WARNING if output.type == "Warning" else logging.INFO
        log.log(
            level,
            output.message,
            extra=fields(
                app=output.application, reason=output.reason, deployment=output.deployment.name
            ),
        )

    def _on_effect(self, effect: AppEffect) -> None:
        if isinstance(effect, ConfigProblem):
            if effect.severity == "error":
                self._config_errors += 1
                self.metrics.config_error(effect.application)
            log.log(
                logging.WARNING if effect.severity == "error" else logging.INFO,
                "configuration problem: %s",
                effect.message,
                extra=fields(
                    app=effect.application,
                    deployment=effect.deployment.name,
                    reason=effect.reason,
                    key=effect.error.key,
                ),
            )
        elif isinstance(effect, ConfigResolved):
            log.info(
                "configuration problems resolved",
                extra=fields(deployment=effect.deployment.name, withdrawn=effect.withdrawn),
            )
            if effect.withdrawn:
                for label in effect.applications:
                    if label not in self.proxy.apps:
                        self.metrics.remove_app(label)
        elif isinstance(effect, AppServed):
            log.info(
                "app served",
                extra=fields(app=effect.spec.app, deployment=effect.spec.deployment),
            )
        elif isinstance(effect, AppChanged):
            log.info(
                "app changed",
                extra=fields(
                    app=effect.new.app, deployment=effect.new.deployment, moved=effect.moved
                ),
            )
        elif isinstance(effect, AppWithdrawn):
            log.info(
                "app withdrawn",
                extra=fields(
                    app=effect.spec.app, deployment=effect.spec.deployment, reason=effect.reason
                ),
            )

    def _on_pod_update(self, update: PodUpdate) -> None:
        if isinstance(update, PodProblem):
            self._config_errors += 1
            self.metrics.config_error(update.application)
            log.warning(
                "pod not served: %s",
                update.message,
                extra=fields(app=update.application, pod=update.pod.name),
            )

    def _on_change(self, change: Change) -> None:
        self._touch()
        # Only apps in the proxy have series: changes during a removal must not re-create them.
        if isinstance(change, LoadChanged):
            load = change.load
            if load.app in self.proxy.apps:
                self.metrics.set_load(
                    load.app, users=load.tickets, free_tickets=load.free, waiting=load.queued
                )
        elif isinstance(change, TicketIssued) and change.app in self.proxy.apps and self.leader:
            # Followers relay the leader's changes: counted once, by the leader.
            self.metrics.ticket_issued(change.app, waited=change.waited)

    def _port_unavailable(self, desired: ProxyApp, port: int, error: OSError) -> None:
        spec = desired.spec
        if spec is None:
            return
        reason = error.strerror or str(error)
        self._notices.on_next(
            AppNotice(
                deployment=_deployment_ref(spec),
                application=desired.app,
                reason="PortUnavailable",
                message=(
                    f"own port {port} of app {desired.app!r} cannot be bound on "
                    f"{self.listen_host} ({reason}); the app is served on the shared listener "
                    "only until it can"
                ),
                type="Warning",
            )
        )
        log.warning(
            "own port unavailable",
            extra=fields(app=desired.app, port=port, error=reason),
        )

    async def _watch_ready(self) -> None:
        for informer in self.informers.values():
            await informer.wait_synced()
        await self._applier.wait_idle()
        if self.replication is not None:
            await self.replication.authority.wait_synced()
        self._ready.set()
        self._touch()
        log.info(
            "ready",
            extra=fields(namespace=self.namespace, apps=len(self._applier.applied)),
        )


def _deployment_ref(spec: AppSpec) -> DeploymentRef:
    return DeploymentRef(spec.namespace, spec.deployment, spec.deployment_uid)


class _ProxyMetrics:
    """The proxy's observer: request latency and upstream failures into the app's metrics."""

    def __init__(self, controller: TicketController) -> None:
        self._controller = controller

    def request_done(self, app: str, seconds: float) -> None:
        if app in self._controller.proxy.apps:
            self._controller.metrics.proxy_request(app, seconds=seconds)

    def upstream_failed(self, app: str, reason: str) -> None:
        if app in self._controller.proxy.apps:
            self._controller.metrics.upstream_error(app, reason=reason)


class _ControllerCollector(Collector):
    """The proxy's, the watches' and the Events sink's counters, read at scrape time."""

    def __init__(self, controller: TicketController) -> None:
        self._controller = controller

    def collect(self) -> Iterable[Metric]:
        stats = self._controller.statistics()
        ready = GaugeMetricFamily("rxkube_controller_ready", "1 when ready (/readyz is 200).")
        ready.add_metric([], 1.0 if stats.ready else 0.0)
        yield ready
        leader = GaugeMetricFamily(
            "rxkube_leader", "1 when this replica leads (or runs without leader election)."
        )
        leader.add_metric([], 1.0 if stats.leader else 0.0)
        yield leader
        apps = GaugeMetricFamily("rxkube_apps", "Apps in the proxy, by state.", labels=["state"])
        draining = sum(1 for a in stats.apps.values() if a.draining)
        apps.add_metric(["served"], float(len(stats.apps) - draining))
        apps.add_metric(["draining"], float(draining))
        yield apps
        servers = GaugeMetricFamily(
            "rxkube_app_servers", "Pods in the app's server list.", labels=["application", "ready"]
        )
        for status in stats.apps.values():
            servers.add_metric([status.app, "true"], float(status.ready_servers))
            servers.add_metric([status.app, "false"], float(status.servers - status.ready_servers))
        yield servers
        proxy = stats.proxy
        connections = GaugeMetricFamily("rxkube_proxy_connections", "Client connections open now.")
        connections.add_metric([], float(proxy.connections))
        yield connections
        bad = CounterMetricFamily(
            "rxkube_proxy_bad_requests", "Requests the proxy answered 4xx itself."
        )
        bad.add_metric([], float(proxy.bad_requests))
        yield bad
        per_app = {
            "requests": "Requests proxied to the app's pods.",
            "upstream_errors": "502/504 answers: a pod refused, died or timed out.",
            "refused_cookies": "Ticket cookies refused (forged, expired, foreign).",
            "waiting_pages": "Waiting-room pages served.",
        }
        for name, help_text in per_app.items():
            family = CounterMetricFamily(f"rxkube_proxy_{name}", help_text, labels=["application"])
            for app in proxy.apps.values():
                family.add_metric([app.name], float(getattr(app, name)))
            yield family
        events = stats.events
        posted = CounterMetricFamily(
            "rxkube_kube_events", "Kubernetes Events by outcome.", labels=["outcome"]
        )
        posted.add_metric(["created"], float(events.created))
        posted.add_metric(["patched"], float(events.patched))
        posted.add_metric(["failed"], float(events.failed))
        for reason, count in sorted(events.dropped.items()):
            posted.add_metric([f"dropped-{reason}"], float(count))
        yield posted
        synced = GaugeMetricFamily(
            "rxkube_informer_synced", "1 once the watch has listed.", labels=["informer"]
        )
        objects = GaugeMetricFamily(
            "rxkube_informer_objects", "Objects in the informer's store.", labels=["informer"]
        )
        watch_events = CounterMetricFamily(
            "rxkube_watch_events", "Watch events received.", labels=["informer"]
        )
        relists = CounterMetricFamily(
            "rxkube_watch_relists", "Relists (410 Gone and recoveries).", labels=["informer"]
        )
        errors = CounterMetricFamily(
            "rxkube_watch_errors", "Watch errors by kind.", labels=["informer", "kind"]
        )
        for role, informer in sorted(stats.informers.items()):
            synced.add_metric([role], 1.0 if informer.synced else 0.0)
            objects.add_metric([role], float(informer.objects))
            watch_events.add_metric([role], float(informer.events))
            relists.add_metric([role], float(informer.relists))
            for kind, count in sorted(informer.errors.items()):
                errors.add_metric([role, kind], float(count))
        yield from (synced, objects, watch_events, relists, errors)


@asynccontextmanager
async def open_ticket_controller(
    client: KubeClient,
    *,
    namespace: str,
    listen: Sequence[tuple[str, int]] = (("127.0.0.1", 0),),
    app_listen_host: str | None = None,
    domain: str | None = None,
    proxy_config: ProxyConfig | None = None,
    registry: CollectorRegistry | None = None,
    events: EventSink | None = None,
    event_limits: EventLimits | None = None,
    instance: str = "",
    leader_election: LeasePolicy | None = None,
    lease_name: str = "rxkube",
    authority_listen: tuple[str, int] | None = None,
    authority_host: str | None = None,
    metrics_listen: tuple[str, int] | None = None,
    admin_listen: tuple[str, int] | None = None,
    shutdown_grace: float | None = None,
    watch_policy: WatchPolicy | None = None,
    port_retry: float = 30.0,
    rng: random.Random | None = None,
    autoscaling: AutoscalerSettings | None = _AUTOSCALING,
    pod_sink: PodSink | None = None,
    record: str | Path | None = None,
    record_source: str | None = None,
) -> AsyncIterator[TicketController]:
    """Watch `namespace` and serve its annotated Deployments through a ticket proxy.

    ::

        async with open_client(load_config()) as client:
            async with open_ticket_controller(client, namespace="apps") as controller:
                await controller.wait_ready()
                print(controller.addresses, controller.statistics().apps)
                await trio.sleep_forever()

    - `listen`: the proxy's shared listeners. Apps' own ports (k8sTicket's `deployment.port`)
      are bound on `app_listen_host` (default: the first listener's host).
    - `domain`: host routing serves `<app>.<domain>`; also the parser's default domain.
    - `proxy_config`: the proxy's settings (ticket keys, limits, trusted proxies); its `domain`
      is replaced by `domain` when that is given.
    - `registry`: where the metrics go (a fresh `CollectorRegistry` when None): AppMetrics'
      series plus the proxy's, the watches' and the Events sink's counters.
    - `events`: an Events sink to use (e.g. a `DryRunEventSink`); None opens the live one on
      `client`, reporting as component "rxkube", `instance` (the pod's name).
    - `leader_election`: take part in the election for Lease `namespace/lease_name` as
      `instance` (required then); only the leader posts Events (issue 8's autoscaler reads
      `controller.leader` too). Every replica serves users either way. None: no election,
      this replica counts as the leader.
    - `authority_listen`, `authority_host` (with `leader_election`): the replicas share one
      ticket table, led by the Lease holder (rxkube.controllers._replication); its API listens
      on `authority_listen` (default: the first listener's host, a free port) and the others
      reach it at `authority_host` (default: that host; the pod IP in a cluster). Needs
      `proxy_config.ticket_keys`. Readiness waits for the leader's table too.
    - `metrics_listen`: serve `/metrics`, `/healthz`, `/readyz` there (None: no listener).
    - `admin_listen`: serve the status page there (`/`, `/status.json`, `/status/events`;
      None: no listener). `controller.status()` gives the same content in-process.
    - `shutdown_grace`: on leaving, how long open requests may finish (default: the proxy
      config's `shutdown_grace`).
    - `watch_policy`: the watches' timings (tests shorten them).
    - `autoscaling`: the autoscaler's retry settings; None turns the autoscaler off (no pod is
      created or deleted). Only the leader scales.
    - `pod_sink`: where pod commands go (default: `open_pod_sink(client)`).
    - `record`: write a trace of what the pipelines see to this file (`.gz`: compressed),
      for `replay_trace` / `rxkube replay`: the three watches, the proxy's ticket events
      (`tickets/<namespace>`) and the autoscaler's commands (`autoscaler/<namespace>`).
      `record_source` is the header's `source` (default: `rxkube run, namespace <ns>`).
    """
    config = proxy_config or ProxyConfig()
    if domain is not None:
        config = replace(config, domain=domain)
    if shutdown_grace is not None:
        config = replace(config, shutdown_grace=shutdown_grace)
    registry = registry if registry is not None else CollectorRegistry()
    listen_host = app_listen_host if app_listen_host is not None else listen[0][0]
    policy = watch_policy or WatchPolicy()
    rng = rng or random.Random()
    async with trio.open_nursery() as nursery:
        try:
            async with AsyncExitStack() as stack:
                scheduler = TrioScheduler(nursery)
                recorder: TraceWriter | None = None
                if record is not None:
                    streams = watch_streams(namespace)
                    streams[tickets_stream(namespace)] = {"kind": "tickets", "namespace": namespace}
                    streams[autoscaler_stream(namespace)] = {
                        "kind": "autoscaler",
                        "namespace": namespace,
                    }
                    recorder = stack.enter_context(
                        open_trace_writer(
                            record,
                            streams=streams,
                            scheduler=scheduler,
                            source=record_source or f"rxkube run, namespace {namespace}",
                        )
                    )
                informers: dict[str, Informer] = {}
                for role, watched in WATCHES.items():
                    informers[role] = await stack.enter_async_context(
                        open_informer(
                            client,
                            watched.resource,
                            namespace=namespace,
                            label_selector=watched.label_selector,
                            metadata_only=watched.metadata_only,
                            policy=policy,
                            rng=rng,
                            record=recorder,
                        )
                    )
                sink: EventSink = (
                    events
                    if events is not None
                    else await stack.enter_async_context(
                        open_event_sink(
                            client, component="rxkube", instance=instance, limits=event_limits
                        )
                    )
                )
                election = replication = None
                if leader_election is not None:
                    if not instance:
                        raise ValueError("leader election needs an instance name (the pod's)")
                    replication = await stack.enter_async_context(
                        open_replication(
                            client,
                            namespace=namespace,
                            lease_name=lease_name,
                            identity=instance,
                            policy=leader_election,
                            keys=config.ticket_keys,
                            listen=authority_listen or (listen[0][0], 0),
                            advertise_host=authority_host,
                            registry=registry,
                            rng=rng,
                        )
                    )
                    election = replication.election
                proxy = await stack.enter_async_context(
                    open_ticket_proxy(
                        config,
                        listen=listen,
                        authority=None if replication is None else replication.authority,
                    )
                )
                if autoscaling is not None and pod_sink is None:
                    pod_sink = await stack.enter_async_context(open_pod_sink(client))
                metrics = AppMetrics(registry)
                controller = TicketController(
                    namespace=namespace,
                    proxy=proxy,
                    informers=informers,
                    events=sink,
                    registry=registry,
                    metrics=metrics,
                    scheduler=scheduler,
                    defaults=ParserDefaults(domain=config.domain),
                    listen_host=listen_host,
                    domain=config.domain,
                    port_retry=port_retry,
                    election=election,
                    pod_sink=pod_sink if autoscaling is not None else None,
                    autoscaling=autoscaling,
                    recorder=recorder,
                    rng=rng,
                    replication=replication,
                )
                proxy.observer = _ProxyMetrics(controller)
                stack.callback(
                    controller.board.attach(
                        changes=proxy.changes,
                        pods=informers["pods"].events,
                        effects=controller.app_effects,
                        event_outcomes=sink.outcomes,
                    ).dispose
                )
                collector = _ControllerCollector(controller)
                registry.register(collector)
                stack.callback(registry.unregister, collector)
                applier_scope = trio.CancelScope()

                async def run_applier() -> None:
                    with applier_scope:
                        await controller._applier.run()

                nursery.start_soon(run_applier, name="rxkube applier")
                controller._wire()
                stack.callback(controller._unwire)
                stack.callback(applier_scope.cancel)
                nursery.start_soon(controller._watch_ready, name="rxkube readiness")
                if metrics_listen is not None:
                    controller.metrics_address = await nursery.start(
                        partial(
                            serve_endpoints,
                            metrics_listen[0],
                            metrics_listen[1],
                            registry=registry,
                            ready=controller.readiness,
                        )
                    )
                if admin_listen is not None:
                    controller.admin_address = await nursery.start(
                        partial(
                            serve_admin,
                            admin_listen[0],
                            admin_listen[1],
                            status=controller.status,
                            board=controller.board,
                        )
                    )
                log.info(
                    "started",
                    extra=fields(
                        namespace=namespace,
                        listen=",".join(f"{h}:{p}" for h, p in proxy.addresses),
                    ),
                )
                try:
                    yield controller
                finally:
                    controller._draining = True
                    controller._touch()
                    log.info("draining", extra=fields(grace=config.shutdown_grace))
        finally:
            nursery.cancel_scope.cancel()
