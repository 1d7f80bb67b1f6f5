"""The autoscaler as a pipeline: apps, pods and ticket changes in, steps with pod commands out.

What this module is for: issue 8 item 1, the wiring around the pure cores. `decide` (rules
R1-R9, `_autoscaler.py`) and `autoscale`/`reconcile` (`_reconcile.py`) say what one app needs at
one time; `Autoscaler` keeps what they need between steps, and the `autoscaler` operator runs it
on a scheduler. The same operator runs live (the runner feeds it the serving plan, the pod
informer, the proxy's changes, the pod sink's outcomes and the leader election) and in a replay
(a trace's streams in virtual time): same inputs, same steps, same commands.

Inputs (`AutoscalerInput`, one merged stream):
- `ProxyApp` (the serving plan's desired state): the app's spec and whether it is served,
  draining, or gone (`config is None`);
- `WatchEvent`s of the pod informer (every pod with the app label; only autoscaled ones are
  kept: `rxkube.io/autoscaled` or k8sTicket's `ipb-halle.de/k8sTicket.scaled`);
- `Change`s of the ticket authority, folded into a `LoadView` (users, free tickets, waiting
  users, idle times per server);
- `PodCommandApplied`/`PodCommandFailed` from the pod sink (a failed create backs off, a failed
  delete is retried after `delete_retry`);
- `LeaderChanged`: only the leader steps (issue 10 item 4). A replica that starts to lead
  forgets what it expected before (another leader acted meanwhile) and steps every app;
  an `AuthoritySnapshot` then restarts its view of the ticket table from the table itself.

Rules of the wiring:
- W1 coalesce. An input marks its app dirty; the dirty apps are stepped once, on the
  scheduler's next turn at the same time (`schedule_relative(0)`), in the order they became
  dirty. A burst of ticket events in one turn makes one step; expectations in the reconcile
  state make sure a step never repeats a command already under way.
- W2 no polling. After a step, the app's timer is set to the step's `next_check` (an idle pod
  reaching its cooldown, a starting pod its grace, a back-off or a retry ending); a timer that
  fires marks the app dirty. Nothing else wakes the autoscaler.
- W3 synced views only. Nothing is decided before the pod stream's first SYNCED (before it,
  "no pods" is not the truth), nor for an app the ticket authority does not have yet, nor
  while the authority's servers of the app differ from the plan's (the proxy has not applied
  the plan yet: its free tickets would be stale, and the step would create pods for tickets
  that are on their way).
- W4 draining. An app that is withdrawn but still has users (the plan drains it) creates
  nothing and lets idle pods go at once (spare 0, no cooldown); busy pods stay until idle.
- W5 removal. When the app is gone from the plan, every autoscaled pod of it is deleted (busy
  and starting ones too: nobody can reach them any more), then the app is forgotten.
- W6 shortcut. More demand (a ticket taken by a newcomer, a user queued) can only make
  `decide` create, never delete (fewer free tickets and more busy pods make every deletion
  rule harder to meet), and it creates only once the decision's `slack` is used up. Less
  demand (a ticket released, a waiter gone) can never create, and can delete only a pod
  that R7 or R8 keeps as "needed" (idle past its cooldown, or on an old template), or the
  released pod itself once idle if it is autoscaled (R7, R9, or R8's cooldown starts; an
  idle pod of the Deployment's own is only free tickets to `decide`). So after a step
  that sent nothing, while only such events come and none of those cases holds, the step is
  not recomputed: its numbers are refreshed from the view (a "light" step, same decision).
  Any other input, and every timer, makes the next step a full one. The shortcut changes no
  command (a property test checks it against full steps); it saves most steps of a replay.

Outputs: a `ScaleStep` per step that changed something (commands, or the app's numbers: users,
free tickets, waiting users, autoscaled pods by state), so the stream is also the decision
timeline of a replay. The commands go to a pod sink; the numbers to the metrics.

No I/O, no clock but the scheduler given. It imports this package's cores, the proxy's change
types and `rxkube.streams`' `WatchEvent`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final, TypeAlias

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable

from rxkube.controllers._appspec import APP_LABEL, AppSpec
from rxkube.controllers._autoscaler import ScaleDecision
from rxkube.controllers._load import LoadView
from rxkube.controllers._plan import ProxyApp
from rxkube.controllers._reconcile import (
    AUTOSCALED_LABEL,
    K8STICKET_SCALED_LABEL,
    DeletePod,
    PodCommand,
    PodFacts,
    ReconcileState,
    autoscale,
    command_failed,
    pod_facts,
    seeded_suffixes,
)
from rxkube.proxy import (
    Change,
    LoadChanged,
    ServerChanged,
    TicketIssued,
    TicketReleased,
    TicketRestored,
    WaiterLeft,
    WaiterQueued,
)
from rxkube.streams import WatchEvent

__all__ = [
    "AuthoritySnapshot",
    "Autoscaler",
    "AutoscalerInput",
    "AutoscalerSettings",
    "LeaderChanged",
    "PodCommandApplied",
    "PodCommandFailed",
    "PodOutcome",
    "ScaleStep",
    "autoscaler",
]

_CHANGES: Final = (
    TicketIssued,
    TicketRestored,
    TicketReleased,
    WaiterQueued,
    WaiterLeft,
    ServerChanged,
    LoadChanged,
)


@dataclass(frozen=True, slots=True)
class LeaderChanged:
    """Whether this replica leads (the leader election's value, on subscription and on change)."""

    leads: bool


@dataclass(frozen=True, slots=True)
class AuthoritySnapshot:
    """The ticket authority's state as changes (`TicketAuthority.snapshot()`): the view of the
    table starts again from it. The runner sends it when this replica starts to lead, after
    the `LeaderChanged`: a replica that followed never saw its own table's apps announced."""

    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class PodCommandApplied:
    """The pod sink applied `command` (a delete of a pod already gone counts as applied)."""

    command: PodCommand


@dataclass(frozen=True, slots=True)
class PodCommandFailed:
    """The pod sink could not apply `command`: `reason` is the API's (`Forbidden`,
    `AlreadyExists`, `InternalError`, ...) or the error's class name for a lost connection."""

    command: PodCommand
    reason: str
    message: str = ""


PodOutcome: TypeAlias = PodCommandApplied | PodCommandFailed

AutoscalerInput: TypeAlias = (
    ProxyApp
    | WatchEvent
    | TicketIssued
    | TicketRestored
    | TicketReleased
    | WaiterQueued
    | WaiterLeft
    | ServerChanged
    | LoadChanged
    | PodCommandApplied
    | PodCommandFailed
    | LeaderChanged
    | AuthoritySnapshot
)


@dataclass(frozen=True, slots=True)
class AutoscalerSettings:
    """How the reconciling step retries (seconds on the scheduler's clock)."""

    create_timeout: float = 60.0
    """A create not seen in the pod informer by then is taken as lost (and may be redone)."""
    delete_retry: float = 30.0
    """A delete not seen taking effect (or failed) is sent again after this long."""
    backoff_first: float = 1.0
    backoff_max: float = 60.0
    """After a failed create, creates wait `backoff_first`, doubling up to `backoff_max`
    (reset when a created pod appears)."""
    shortcut: bool = True
    """W6: skip recomputing steps that cannot change (off: every step is a full one; the
    commands are the same either way, tests compare the two)."""

    def __post_init__(self) -> None:
        for name in ("create_timeout", "delete_retry", "backoff_first", "backoff_max"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"AutoscalerSettings.{name} must be > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class ScaleStep:
    """One step of one app's autoscaler: its commands and the numbers it decided on."""

    app: str
    time: float
    """The scheduler's time of the step (seconds)."""
    commands: tuple[PodCommand, ...]
    decision: ScaleDecision | None
    """None for a removed app (W5: everything of it is deleted)."""
    users: int
    free_tickets: int
    """Free tickets on ready servers (the Deployment's own pods too)."""
    waiting: int
    servers: int
    """Ready servers of the app (its own pods and autoscaled ones)."""
    starting: int
    """Autoscaled pods created (or being created) that are not ready servers yet."""
    ready: int
    """Autoscaled pods that are ready servers."""
    terminating: int
    """Autoscaled pods being deleted (or asked to be)."""
    next_check: float | None

    @property
    def autoscaled(self) -> int:
        """Autoscaled pods that exist or are being created (starting, ready, terminating)."""
        return self.starting + self.ready + self.terminating

    def _numbers(self) -> tuple[int, ...]:
        return (
            self.users,
            self.free_tickets,
            self.waiting,
            self.servers,
            self.starting,
            self.ready,
            self.terminating,
        )


SuffixFactory: TypeAlias = Callable[[str], Callable[[], str]]
"""App name -> a source of pod name suffixes for it."""


def _random_suffixes(app: str) -> Callable[[], str]:
    return seeded_suffixes(secrets.token_hex(8))


@dataclass(slots=True)
class _App:
    spec: AppSpec
    mode: str  # "served" | "draining" | "removed"
    servers: dict[str, bool]
    """The plan's servers of the app: pod name -> ready."""
    state: ReconcileState
    suffix: Callable[[], str]
    last: tuple[int, ...] | None = None
    full: bool = True
    """The next step must be a full one (W6)."""
    slack: int | None = None
    """What is left of the last full step's slack (W6); None: no shortcut."""
    releasable: bool = False
    """The last full decision keeps no pod as "needed": less demand deletes nothing (W6)."""
    last_step: ScaleStep | None = None


@dataclass(slots=True)
class _StepResult:
    step: ScaleStep | None
    next_check: float | None
    dirty_again: bool = False


def _autoscaled(event: WatchEvent) -> str | None:
    labels = event.meta.labels
    app = labels.get(APP_LABEL)
    if not app:
        return None
    if labels.get(AUTOSCALED_LABEL) == "true" or labels.get(K8STICKET_SCALED_LABEL) == "true":
        return app
    return None


class Autoscaler:
    """What the autoscaler remembers between steps, and the steps (see the module docstring).

    Pure: `apply(item, now)` folds an input and returns the apps it made dirty; `step(app,
    now)` runs one app's step. The `autoscaler` operator drives it with a scheduler.
    """

    def __init__(
        self,
        *,
        settings: AutoscalerSettings | None = None,
        new_suffix: SuffixFactory | None = None,
        leader: bool = True,
    ) -> None:
        self.settings = settings or AutoscalerSettings()
        self._new_suffix = new_suffix or _random_suffixes
        self.leader = leader
        self.synced = False
        self.load = LoadView()
        self._apps: dict[str, _App] = {}
        self._pods: dict[str, dict[str, PodFacts]] = {}
        """App -> pod name -> the autoscaled pod as the informer has it (parsed once)."""

    @property
    def apps(self) -> list[str]:
        """The apps the autoscaler looks after (served, draining, or removed with pods left)."""
        return list(self._apps)

    def pods(self, app: str) -> Mapping[str, PodFacts]:
        """The app's autoscaled pods as the pod stream shows them, by name."""
        return self._pods.get(app, {})

    def _fresh_state(self) -> ReconcileState:
        settings = self.settings
        return ReconcileState(
            create_timeout=settings.create_timeout,
            delete_retry=settings.delete_retry,
            backoff_first=settings.backoff_first,
            backoff_max=settings.backoff_max,
        )

    # -- inputs ---------------------------------------------------------------------------------

    def apply(self, item: AutoscalerInput, now: float) -> Iterable[str]:
        """Fold one input in; return the apps whose step may now differ. (`now` is read
        only for a `PodCommandFailed`, whose back-off starts then.)"""
        if isinstance(item, WatchEvent):
            return self._pod_event(item)
        if isinstance(item, _CHANGES):
            # W6: how much the demand grows (+) or shrinks (-); None: not a demand change.
            more: int | None = None
            if isinstance(item, TicketIssued | TicketRestored):
                more = 0 if self.load.is_waiting(item.app, item.ticket) else 1
            elif isinstance(item, WaiterQueued):
                more = 1
            elif isinstance(item, TicketReleased):
                more = -1
            elif isinstance(item, WaiterLeft):
                more = -1 if self.load.is_waiting(item.app, item.client) else 0
            name = self.load.apply(item)
            if name is None:
                return ()
            app = self._apps.get(name)
            if app is None:
                return ()
            if more is not None and app.slack is not None and self._light_enough(app, item, more):
                app.slack -= more  # a light step will do, unless something else comes
            else:
                app.slack = None
                app.full = True
            return (name,)
        if isinstance(item, ProxyApp):
            return self._plan(item)
        if isinstance(item, PodCommandFailed):
            app = self._apps.get(item.command.app)
            if app is None:
                return ()
            self.touch(item.command.app)
            app.state = command_failed(app.state, item.command, now=now)
            return (item.command.app,)
        if isinstance(item, PodCommandApplied):
            return ()
        if isinstance(item, LeaderChanged):
            if item.leads == self.leader:
                return ()
            self.leader = item.leads
            if not item.leads:
                return ()
            for name, app in self._apps.items():
                app.state = self._fresh_state()
                app.last = None
                self.touch(name)
            return list(self._apps)
        if isinstance(item, AuthoritySnapshot):
            self.load.reset(item.changes)
            for name in self._apps:
                self.touch(name)
            return list(self._apps)
        raise TypeError(f"not an autoscaler input: {item!r}")

    def _pod_event(self, event: WatchEvent) -> Iterable[str]:
        if event.type == "SYNCED":
            first = not self.synced
            self.synced = True
            for name in self._apps:
                self.touch(name)
            return list(self._apps) if first else ()
        app = _autoscaled(event)
        if app is None:
            # A pod that is no longer ours (its label was taken off) leaves every view.
            name = event.meta.name
            for pods in self._pods.values():
                if pods.pop(name, None) is not None:
                    break
            return ()
        self.touch(app)
        pods = self._pods.setdefault(app, {})
        if event.type == "DELETED":
            pods.pop(event.meta.name, None)
            if not pods:
                del self._pods[app]
        else:
            pods[event.meta.name] = pod_facts(event.object)
        return (app,) if app in self._apps else ()

    def _light_enough(self, app: _App, change: object, more: int) -> bool:
        """W6: can this demand change leave the last full decision standing?"""
        assert app.slack is not None
        if more > 0:
            return app.slack >= more
        if more == 0:
            return True
        if not app.releasable or app.spec.pods_cooldown <= 0:
            return False
        if isinstance(change, TicketReleased):
            # An autoscaled pod that becomes idle starts its cooldown: the next check moves
            # (R8), and R9 may take it. Any other server (the Deployment's own pods) is only
            # free tickets to the decision.
            server = change.server.name
            if self.load.server_users(change.app, server) > 0:
                return True
            return server not in self._pods.get(change.app, {})
        return True

    def touch(self, app: str) -> None:
        """The next step of `app` must be a full one (a timer came due)."""
        state = self._apps.get(app)
        if state is not None:
            state.full = True
            state.slack = None

    def _plan(self, desired: ProxyApp) -> Iterable[str]:
        name = desired.app
        current = self._apps.get(name)
        if current is not None:
            self.touch(name)
        if desired.config is None:
            if current is not None:
                current.mode = "removed"
            return (name,) if current is not None else ()
        spec = desired.spec
        if spec is None:
            return ()
        mode = "draining" if desired.draining else "served"
        servers = {s.ref.name: s.ready for s in desired.servers}
        if current is None:
            self._apps[name] = _App(
                spec, mode, servers, self._fresh_state(), self._new_suffix(name)
            )
        else:
            current.spec, current.mode, current.servers = spec, mode, servers
        return (name,)

    # -- steps ----------------------------------------------------------------------------------

    def step(self, name: str, now: float) -> _StepResult:
        """Run one app's step at `now` (W3: nothing happens before the views are in sync)."""
        app = self._apps.get(name)
        if app is None or not self.leader or not self.synced:
            return _StepResult(None, None)
        pods = self._pods.get(name, {})
        if app.mode == "removed":
            return self._remove(name, app, pods, now)
        load = self.load
        if not load.known(name):
            return _StepResult(None, None)
        if not load.has_servers(name, app.servers):
            return _StepResult(None, None)
        spec = app.spec
        if not app.full and app.slack is not None and app.last_step is not None:
            return self._light(name, app, now)
        summary = load.summary(name, capacity=spec.tickets_max)
        if app.mode == "draining":
            # The drain marks every server not ready (no new users); to the autoscaler they
            # are what they were: an idle one goes now, a busy one when its users leave.
            spec = replace(spec, tickets_spare=0, pods_cooldown=0.0)
            servers = tuple(replace(s, ready=True) for s in summary.servers)
            summary = replace(summary, servers=servers, waiting=0)
        result = autoscale(app.state, spec, summary, pods.values(), now=now, new_suffix=app.suffix)
        app.state = result.state
        decision = result.decision
        ready_servers = {s.name for s in summary.servers if s.ready}
        starting = ready = terminating = 0
        for facts in pods.values():
            if facts.deleting:
                terminating += 1
            elif facts.name in ready_servers:
                ready += 1
            else:
                starting += 1
        # Creates sent but not yet seen, and deletes just sent, count in their new state.
        observed = set(pods)
        starting += sum(1 for pod in app.state.creating if pod not in observed)
        for command in result.commands:
            if isinstance(command, DeletePod) and command.name in observed:
                if command.name in ready_servers:
                    ready -= 1
                else:
                    starting -= 1
                terminating += 1
        step = ScaleStep(
            app=name,
            time=now,
            commands=result.commands,
            decision=decision,
            users=load.users(name),
            free_tickets=summary.free_tickets,
            waiting=load.waiting(name),
            servers=len(ready_servers),
            starting=max(0, starting),
            ready=max(0, ready),
            terminating=terminating,
            next_check=result.next_check,
        )
        app.full = False
        app.last_step = step
        usable = self.settings.shortcut and app.mode == "served" and not step.commands
        app.slack = decision.slack if usable else None
        app.releasable = not any(keep.reason == "needed" for keep in decision.keep)
        return self._emit(app, step)

    def _light(self, name: str, app: _App, now: float) -> _StepResult:
        """W6: the last full step's decision stands; only the numbers are refreshed."""
        last = app.last_step
        assert last is not None
        numbers = self.load.numbers(name, capacity=app.spec.tickets_max)
        step = ScaleStep(
            name,
            now,
            (),
            last.decision,
            numbers[3],
            numbers[4],
            numbers[5],
            last.servers,
            last.starting,
            last.ready,
            last.terminating,
            last.next_check,
        )
        return self._emit(app, step)

    def _emit(self, app: _App, step: ScaleStep) -> _StepResult:
        numbers = step._numbers()
        if not step.commands and numbers == app.last:
            return _StepResult(None, step.next_check)
        app.last = numbers
        return _StepResult(step, step.next_check)

    def _remove(
        self, name: str, app: _App, pods: Mapping[str, PodFacts], now: float
    ) -> _StepResult:
        state = app.state
        present = {facts.uid for facts in pods.values()}
        deleting = {uid: sent for uid, sent in state.deleting.items() if uid in present}
        commands: list[PodCommand] = []
        terminating = 0
        alive = 0
        for pod_name, facts in sorted(pods.items()):
            if not facts.is_ours(app.spec):
                continue
            alive += 1
            uid = facts.uid
            if facts.deleting:
                terminating += 1
                continue
            sent = deleting.get(uid)
            if sent is not None and now - sent < state.delete_retry:
                terminating += 1
                continue
            deleting[uid] = now
            terminating += 1
            commands.append(DeletePod(app.spec.namespace, pod_name, uid, name, "app removed"))
        retries = [sent + state.delete_retry for sent in deleting.values()]
        retries = [t for t in retries if t > now]
        app.state = replace(state, deleting=deleting, creating={})
        step = ScaleStep(
            app=name,
            time=now,
            commands=tuple(commands),
            decision=None,
            users=0,
            free_tickets=0,
            waiting=0,
            servers=0,
            starting=0,
            ready=0,
            terminating=terminating,
            next_check=min(retries) if retries and alive else None,
        )
        result = self._emit(app, step)
        if not alive:
            del self._apps[name]  # W5: nothing of it is left
        return result


def autoscaler(
    scheduler: abc.SchedulerBase,
    *,
    settings: AutoscalerSettings | None = None,
    new_suffix: SuffixFactory | None = None,
    leader: bool = True,
) -> Callable[[Observable[AutoscalerInput]], Observable[ScaleStep]]:
    """Run an `Autoscaler` over its inputs on `scheduler` (see the module docstring).

    ::

        a = ProxyApp lab (spare 1, 1 user per pod, no server)   s = pods SYNCED
        A = ServerChanged app-added lab                        (steps run one turn later, W1)

        inputs:  -a--s--A-----------------------------------|
              [ autoscaler(scheduler) ]
        steps:   -------C-----------------------------------|
                 C: ScaleStep lab, commands (CreatePod lab-rxkube-xxxxx), starting 1

    `new_suffix(app)` gives each app's source of pod name suffixes (default: random; a replay
    passes seeded or recorded ones). `leader`: whether to act before a `LeaderChanged` says.
    Each subscription starts a fresh autoscaler. Time is `scheduler.now` (seconds).
    """

    def operator(source: Observable[AutoscalerInput]) -> Observable[ScaleStep]:
        def subscribe(
            observer: abc.ObserverBase[ScaleStep],
            subscribe_scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            machine = Autoscaler(settings=settings, new_suffix=new_suffix, leader=leader)
            dirty: dict[str, None] = {}
            timers: dict[str, tuple[float, SerialDisposable]] = {}
            flush = SerialDisposable()
            pending = [False]
            stopped = [False]

            def now() -> float:
                return scheduler.now.timestamp()

            def feed(item: AutoscalerInput) -> None:
                try:
                    # Only a failure's back-off reads the time: spare the others the clock.
                    at = now() if isinstance(item, PodCommandFailed) else 0.0
                    apps = machine.apply(item, at)
                except Exception as error:  # a bug here ends the stream visibly
                    observer.on_error(error)
                    return
                for app in apps:
                    dirty[app] = None
                if dirty and not pending[0] and not stopped[0]:
                    pending[0] = True
                    flush.disposable = scheduler.schedule(run)

            def run(_: abc.SchedulerBase, __: object = None) -> None:
                pending[0] = False
                apps = list(dirty)
                dirty.clear()
                at = now()
                for app in apps:
                    try:
                        result = machine.step(app, at)
                    except Exception as error:
                        observer.on_error(error)
                        return
                    arm(app, result.next_check, at)
                    if result.step is not None:
                        observer.on_next(result.step)

            def arm(app: str, when: float | None, at: float) -> None:
                current = timers.get(app)
                if when is not None and when <= at:
                    when = None  # a step's next check is always in the future; never spin
                if current is not None and current[0] == when:
                    return
                if when is None:
                    if current is not None:
                        current[1].dispose()
                        del timers[app]
                    return
                slot = current[1] if current is not None else SerialDisposable()
                timers[app] = (when, slot)

                def fire(_: abc.SchedulerBase, __: object = None) -> None:
                    timers.pop(app, None)
                    machine.touch(app)
                    dirty[app] = None
                    if not pending[0]:
                        pending[0] = True
                        run(scheduler)

                slot.disposable = scheduler.schedule_relative(when - at, fire)

            def stop() -> None:
                stopped[0] = True
                flush.dispose()
                for _, slot in timers.values():
                    slot.dispose()
                timers.clear()

            subscription = source.subscribe(
                feed, observer.on_error, observer.on_completed, scheduler=subscribe_scheduler
            )
            return CompositeDisposable(subscription, Disposable(stop))

        return Observable(subscribe)

    return operator
