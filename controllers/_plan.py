"""The serving plan: app lifecycle, server lists and load in, the proxy's desired state out.

What this module is for: the step between the apps fold, the pod pipeline and the proxy (issue
7 items 2 and 3). `ServePlan` is a pure state machine (`apply(item, now) -> outputs`; no I/O,
no clock, state mutated in place behind that interface like the ticket table); `serve_plan`
runs it as a pipeable operator, with time and drain deadlines from the scheduler it is given.

Outputs:
- `ProxyApp`: the desired state of ONE app in the proxy: its `AppConfig` and servers, or
  absent (`config is None`). Emitted only when it differs from the last one for that app, so
  the edge that applies it (the runner) can keep just the latest per app: bursts coalesce and
  its queue is bounded by the number of apps (DESIGN section 4, "Orchestrator sinks").
- `AppNotice`: something the Deployment's owner should read in `kubectl describe` (an Event)
  and the log: an app served, moved, withdrawn, removed, or served other than asked.

Rules:
1. Live changes. `AppChanged` re-derives the config; the proxy applies it in place, so
   tickets.max, idle timeout and hold time change without dropping a ticket (tickets.spare,
   pods.max and cooldown are the autoscaler's). A change of own port, routing or host is a
   move: said in an `AppMoved` notice.
2. Drain. `AppWithdrawn` (label off, Deployment deleted, renamed, claim lost) keeps the app in
   the proxy with every server not ready: holders keep their tickets, nobody new gets one. The
   app is removed when its last ticket is released (a `LoadChanged` with no tickets) or when its
   drain deadline (`rxkube.io/drain-deadline`, default 1 h) passes, whichever comes first;
   at once when it holds no ticket. An app served again while draining is simply served.
3. Servers. A `ServerList` is kept per app name even while no app of that name is served (pods
   often list before their Deployment), and applied as soon as the app is.
4. Routing fallback. Host routing needs the proxy's domain: an app asking for another domain
   than the proxy serves (`--domain`) is served by path instead, with a Warning notice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, TypeAlias

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable

from rxkube.controllers._apps import AppChanged, AppServed, AppWithdrawn, DeploymentRef
from rxkube.controllers._appspec import AppSpec
from rxkube.controllers._pods import ServerList
from rxkube.proxy import AppConfig, LoadChanged, ServerSpec

__all__ = [
    "AppNotice",
    "DrainExpired",
    "PlanInput",
    "PlanOutput",
    "ProxyApp",
    "ServePlan",
    "app_config",
    "serve_plan",
]


@dataclass(frozen=True, slots=True)
class ProxyApp:
    """The desired state of one app in the proxy (`config` None: not in the proxy)."""

    app: str
    config: AppConfig | None
    servers: tuple[ServerSpec, ...] = ()
    spec: AppSpec | None = None
    """The spec it is served from (to name its Deployment); None when absent."""
    draining: bool = False


NoticeReason: TypeAlias = Literal[
    "AppServed", "AppMoved", "AppWithdrawn", "AppRemoved", "RoutingFallback", "PortUnavailable"
]
"""PortUnavailable comes from the edge that applies the plan (an own port it could not bind)."""


@dataclass(frozen=True, slots=True)
class AppNotice:
    """Something to tell about an app, as an Event on its Deployment and a log line."""

    deployment: DeploymentRef
    application: str
    reason: NoticeReason
    message: str
    type: Literal["Normal", "Warning"] = "Normal"


@dataclass(frozen=True, slots=True)
class DrainExpired:
    """An app's drain deadline came (the operator feeds this in from its scheduler)."""

    app: str
    deadline: float
    """The deadline it was armed for: a timer of an earlier drain does nothing."""


@dataclass(frozen=True, slots=True)
class _DrainTimer:
    app: str
    at: float


PlanInput: TypeAlias = (
    AppServed | AppChanged | AppWithdrawn | ServerList | LoadChanged | DrainExpired
)
PlanOutput: TypeAlias = ProxyApp | AppNotice


def _ref(spec: AppSpec) -> DeploymentRef:
    return DeploymentRef(spec.namespace, spec.deployment, spec.deployment_uid)


def app_config(
    spec: AppSpec, *, listen_host: str, domain: str | None
) -> tuple[AppConfig, AppNotice | None]:
    """The proxy's `AppConfig` for a spec, and a notice when it cannot be served as asked."""
    routing = spec.routing
    notice = None
    if routing == "host" and (domain is None or spec.domain != domain):
        routing = "path"
        served = f"{spec.app}.{domain}" if domain else "no host at all (no --domain)"
        notice = AppNotice(
            _ref(spec),
            spec.app,
            "RoutingFallback",
            f"host routing at {spec.app}.{spec.domain} is not available: this proxy serves "
            f"{served}; app {spec.app!r} is served at {spec.path_prefix} instead",
            "Warning",
        )
    config = AppConfig(
        spec.app,
        routing=routing,
        strip_prefix=spec.strip_prefix,
        tickets_max=spec.tickets_max,
        idle_timeout=spec.ticket_idle_timeout,
        hold_time=spec.ticket_hold_time,
        listen=None if spec.port is None else (listen_host, spec.port),
    )
    return config, notice


def _where(config: AppConfig, domain: str | None) -> str:
    place = f"{config.name}.{domain}" if config.routing == "host" else f"/{config.name}/"
    if config.listen is not None:
        place += f" and on its own port {config.listen[1]}"
    return place


@dataclass(slots=True)
class _App:
    spec: AppSpec | None = None
    config: AppConfig | None = None
    draining: bool = False
    deadline: float = math.inf
    servers: tuple[ServerSpec, ...] = ()
    tickets: int = 0
    fallback: str | None = None
    """The routing fallback last reported (reported again only when it changes)."""


class ServePlan:
    """The pure state machine of the serving plan (see the module docstring)."""

    def __init__(self, *, listen_host: str = "0.0.0.0", domain: str | None = None) -> None:
        self.listen_host = listen_host
        self.domain = domain
        self._apps: dict[str, _App] = {}
        self._emitted: dict[str, ProxyApp] = {}

    @property
    def desired(self) -> dict[str, ProxyApp]:
        """The last desired state emitted per app in the proxy (absent apps left out)."""
        return {name: app for name, app in self._emitted.items() if app.config is not None}

    def draining(self) -> dict[str, float]:
        """Apps draining now, with their deadlines."""
        return {name: a.deadline for name, a in self._apps.items() if a.draining}

    def apply(self, item: PlanInput, now: float) -> list[PlanOutput | _DrainTimer]:
        out: list[PlanOutput | _DrainTimer] = []
        if isinstance(item, AppServed):
            self._serve(item.spec, out, served=True)
            name = item.spec.app
        elif isinstance(item, AppChanged):
            # The fold keeps the name across an AppChanged (a rename is withdrawn + served).
            name = item.new.app
            app = self._apps.get(name)
            before = app.config if app is not None else None
            self._serve(item.new, out, served=False)
            after = self._apps[name].config
            if item.moved and before is not None and after is not None:
                out.append(self._moved(item.old, item.new, before, after))
            if item.old.deployment != item.new.deployment and after is not None:
                # An older claimant's Deployment went: this one takes the name over.
                out.append(
                    AppNotice(
                        _ref(item.new),
                        name,
                        "AppServed",
                        f"serving app {name!r} at {_where(after, self.domain)} (it was served "
                        f"from Deployment {item.old.deployment!r})",
                    )
                )
        elif isinstance(item, AppWithdrawn):
            name = item.spec.app
            self._withdraw(item, now, out)
        elif isinstance(item, ServerList):
            name = item.app
            app = self._apps.setdefault(name, _App())
            app.servers = item.servers
        elif isinstance(item, LoadChanged):
            name = item.load.app
            app = self._apps.get(name)
            if app is None:
                return out
            app.tickets = item.load.tickets
            if not app.draining:
                return out  # tickets matter only to a drain; the desired state is unchanged
            if app.tickets == 0:
                self._remove(name, "its last user left", out)
        else:
            name = item.app
            app = self._apps.get(name)
            if app is None or not app.draining or app.deadline != item.deadline:
                return out  # served again, or drained meanwhile
            self._remove(name, "its drain deadline passed", out, cut=app.tickets)
        self._emit(name, out)
        return out

    # -- transitions ------------------------------------------------------------------------

    def _serve(self, spec: AppSpec, out: list[PlanOutput | _DrainTimer], *, served: bool) -> None:
        app = self._apps.setdefault(spec.app, _App())
        config, notice = app_config(spec, listen_host=self.listen_host, domain=self.domain)
        app.spec, app.config = spec, config
        app.draining, app.deadline = False, math.inf
        fallback = notice.message if notice is not None else None
        if notice is not None and (served or fallback != app.fallback):
            out.append(notice)
        app.fallback = fallback
        if served:
            out.append(
                AppNotice(
                    _ref(spec),
                    spec.app,
                    "AppServed",
                    f"serving app {spec.app!r} at {_where(config, self.domain)}; "
                    f"{spec.tickets_max} user(s) per pod",
                )
            )

    def _moved(self, old: AppSpec, new: AppSpec, before: AppConfig, after: AppConfig) -> AppNotice:
        changes = []
        if old.port != new.port:
            changes.append(f"own port {old.port or 'none'} -> {new.port or 'none'}")
        if old.routing != new.routing or old.host != new.host:
            changes.append(f"routing {old.routing} -> {new.routing}")
        return AppNotice(
            _ref(new),
            new.app,
            "AppMoved",
            f"app {new.app!r} moved ({', '.join(changes)}): now at {_where(after, self.domain)}, "
            f"before at {_where(before, self.domain)}; current users keep their tickets",
        )

    def _withdraw(
        self, item: AppWithdrawn, now: float, out: list[PlanOutput | _DrainTimer]
    ) -> None:
        spec = item.spec
        app = self._apps.get(spec.app)
        if app is None or app.config is None:
            return
        if app.spec is not None and (app.spec.namespace, app.spec.deployment) != (
            spec.namespace,
            spec.deployment,
        ):
            return  # another Deployment serves this name now
        deadline = spec.drain_deadline
        out.append(
            AppNotice(
                _ref(spec),
                spec.app,
                "AppWithdrawn",
                f"app {spec.app!r} is withdrawn ({item.reason}): it takes no new users; "
                f"{app.tickets} current user(s) may stay for up to {deadline:g} s",
            )
        )
        if app.tickets == 0 or deadline <= 0:
            self._remove(
                spec.app,
                "it had no users" if app.tickets == 0 else "its drain deadline is 0",
                out,
                cut=app.tickets,
            )
            return
        app.draining, app.deadline = True, now + deadline
        out.append(_DrainTimer(spec.app, app.deadline))

    def _remove(
        self, name: str, why: str, out: list[PlanOutput | _DrainTimer], *, cut: int = 0
    ) -> None:
        app = self._apps[name]
        spec = app.spec
        if spec is not None:
            users = f"; {cut} user(s) lost their tickets" if cut else ""
            out.append(
                AppNotice(
                    _ref(spec),
                    name,
                    "AppRemoved",
                    f"app {name!r} is no longer served: {why}{users}",
                )
            )
        app.spec = app.config = app.fallback = None
        app.draining, app.deadline = False, math.inf

    def _emit(self, name: str, out: list[PlanOutput | _DrainTimer]) -> None:
        app = self._apps.get(name)
        if app is None:
            return
        if app.config is None:
            desired = ProxyApp(name, None)
        elif app.draining:
            servers = tuple(replace(s, ready=False) if s.ready else s for s in app.servers)
            desired = ProxyApp(name, app.config, servers, app.spec, draining=True)
        else:
            desired = ProxyApp(name, app.config, app.servers, app.spec)
        previous = self._emitted.get(name)
        if previous != desired and not (previous is None and desired.config is None):
            self._emitted[name] = desired
            out.append(desired)
        if app.config is None and not app.servers:
            del self._apps[name]
            self._emitted.pop(name, None)


def serve_plan(
    scheduler: abc.SchedulerBase,
    *,
    listen_host: str = "0.0.0.0",
    domain: str | None = None,
) -> Callable[[Observable[PlanInput]], Observable[PlanOutput]]:
    """Run a `ServePlan` over its inputs; drain deadlines come due on `scheduler`.

    ::

        s = AppServed lab        l = ServerList lab [pod-1]        w = AppWithdrawn lab
        (lab holds one ticket; its drain deadline is 30)

        inputs:  -s--l--w-------------------|
              [ serve_plan(scheduler) ]
        outputs: -(pn)-P--(wD)--------(rA)--|     at w + 30:
                 p: ProxyApp lab, no server   n: AppServed notice   P: ProxyApp lab [pod-1]
                 w: AppWithdrawn notice       D: ProxyApp lab [pod-1 not ready], draining
                 r: AppRemoved notice         A: ProxyApp lab absent

    Each subscription starts a fresh plan. Time is `scheduler.now` (seconds since the epoch).
    """

    def operator(source: Observable[PlanInput]) -> Observable[PlanOutput]:
        def subscribe(
            observer: abc.ObserverBase[PlanOutput],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            plan = ServePlan(listen_host=listen_host, domain=domain)
            timers: dict[str, SerialDisposable] = {}

            def now() -> float:
                return scheduler.now.timestamp()

            def feed(item: PlanInput) -> None:
                try:
                    outputs = plan.apply(item, now())
                except Exception as error:  # a bug in the plan ends the stream visibly
                    observer.on_error(error)
                    return
                for output in outputs:
                    if isinstance(output, _DrainTimer):
                        arm(output)
                    else:
                        observer.on_next(output)

            def arm(timer: _DrainTimer) -> None:
                slot = timers.setdefault(timer.app, SerialDisposable())

                def fire(_: abc.SchedulerBase, __: object) -> None:
                    feed(DrainExpired(timer.app, timer.at))

                slot.disposable = scheduler.schedule_relative(max(0.0, timer.at - now()), fire)

            def dispose_timers() -> None:
                for slot in timers.values():
                    slot.dispose()
                timers.clear()

            subscription = source.subscribe(
                # The source gets the subscriber's scheduler, not the timers' one: a merge
                # would otherwise subscribe to its inputs only on the timers' next turn.
                feed,
                observer.on_error,
                observer.on_completed,
                scheduler=subscribe_scheduler,
            )
            return CompositeDisposable(subscription, Disposable(dispose_timers))

        return Observable(subscribe)

    return operator
