"""The status board: what the admin page and the demo's terminal view show, in one snapshot.

What this module is for: issue 12 item 6, a status page in the spirit of HAProxy's stats page.
`StatusBoard` is an observer at the controller's edge (like the metrics): it folds what the
controller already publishes, and `snapshot()` joins that with the controller's statistics:

- the proxy's changes (`TicketIssued`, `TicketReleased`, `ServerChanged`): users per server,
  each server's readiness and capacity in the ticket table;
- the pod informer's events: each pod's phase, readiness, address, whether it was autoscaled,
  and scale actions as the cluster shows them (an autoscaled pod created: up; one deleted or
  terminating: down), so they show whoever made them;
- the apps fold's effects: configuration problems in force (until resolved), apps served and
  withdrawn;
- the Events sink's outcomes: every Event posted, and those that failed or were dropped.

Recent activity is kept in a bounded ring (`history`), so memory stays bounded however long
it runs. Time comes from the `clock` given (the runner passes its scheduler's), never read
here otherwise. No I/O: `_admin.py` serves snapshots over HTTP, `_demo_view.py` prints them.
It may import `rxkube.streams`, `rxkube.proxy` and this package's records.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from reactivex import Observable
from reactivex.abc import DisposableBase
from reactivex.disposable import CompositeDisposable

from rxkube.controllers._apps import (
    AppEffect,
    AppServed,
    AppWithdrawn,
    ConfigProblem,
    ConfigResolved,
)
from rxkube.controllers._appspec import APP_LABEL, AppSpec
from rxkube.controllers._reconcile import AUTOSCALED_LABEL, K8STICKET_SCALED_LABEL
from rxkube.proxy import (
    AppStatistics,
    Change,
    ServerChanged,
    TicketIssued,
    TicketReleased,
    WaiterQueued,
)
from rxkube.streams import EventDropped, EventFailed, EventOutcome, EventPosted, WatchEvent

__all__ = [
    "Activity",
    "AppBoard",
    "ServerBoard",
    "StatusBoard",
    "StatusSnapshot",
]

Level = Literal["info", "warning", "error"]


class _AppStatus(Protocol):
    """What the board reads of the runner's `AppStatus` (a Protocol: no import cycle)."""

    @property
    def deployment(self) -> str: ...
    @property
    def routing(self) -> str: ...
    @property
    def own_port(self) -> int | None: ...
    @property
    def draining(self) -> bool: ...


ActivityKind = Literal["scale-up", "scale-down", "event", "problem", "app", "queue"]


@dataclass(frozen=True, slots=True)
class Activity:
    """Something that happened, for the "recent" list (newest first in a snapshot)."""

    at: float
    """Seconds on the board's clock."""
    kind: ActivityKind
    app: str
    message: str
    level: Level = "info"


@dataclass(frozen=True, slots=True)
class ServerBoard:
    """One pod of an app: as the cluster shows it, joined with its tickets in the proxy."""

    pod: str
    address: str
    """The pod's IP ("" before it has one)."""
    phase: str
    """Pending, Running, Succeeded, Failed, Unknown, or Terminating (deletion requested)."""
    ready: bool
    autoscaled: bool
    users: int
    """Tickets held on it now."""
    capacity: int | None
    """Its capacity in the ticket table (None: not in the proxy's server list)."""
    serving: bool
    """The proxy gives it new tickets (in the server list and ready there)."""


@dataclass(frozen=True, slots=True)
class AppBoard:
    app: str
    deployment: str
    routing: str
    own_port: int | None
    draining: bool
    users: int
    free: int
    queued: int
    requests: int
    waiting_pages: int
    upstream_errors: int
    tickets_max: int | None
    tickets_spare: int | None
    pods_max: int | None
    servers: tuple[ServerBoard, ...]


@dataclass(frozen=True, slots=True)
class StatusSnapshot:
    """Everything on the status page at one instant (`to_json()` is what `/status.json` is)."""

    at: float
    namespace: str
    ready: bool
    draining: bool
    leader: bool
    apps: tuple[AppBoard, ...]
    problems: tuple[Activity, ...]
    """Configuration problems in force now (oldest first)."""
    activity: tuple[Activity, ...]
    """Recent scale actions, Events, problems and app changes (newest first)."""
    connections: int
    config_errors: int
    events_posted: int
    events_failed: int
    scale_ups: int
    scale_downs: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class _Pod:
    app: str
    address: str = ""
    phase: str = "Pending"
    ready: bool = False
    autoscaled: bool = False
    terminating: bool = False


@dataclass(slots=True)
class _Server:
    ready: bool = False
    capacity: int = 0
    users: set[str] = field(default_factory=set)


def _pod_row(event: WatchEvent, app: str) -> _Pod:
    status: Mapping[str, Any] = event.object.get("status") or {}
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    labels = event.meta.labels
    return _Pod(
        app=app,
        address=str(status.get("podIP") or ""),
        phase=str(status.get("phase") or "Pending"),
        ready=ready,
        autoscaled=labels.get(AUTOSCALED_LABEL) == "true"
        or labels.get(K8STICKET_SCALED_LABEL) == "true",
        terminating=event.meta.deletion_timestamp is not None,
    )


class StatusBoard:
    """Folds the controller's streams into what the status page shows (module docstring).

    Observer methods (`on_change`, `on_pod_event`, `on_effect`, `on_event_outcome`) are
    what `attach` subscribes; `snapshot` is read on demand. `version` grows on every change;
    `subscribe_changed` tells a waiter (the admin page's live feed) that it did.
    """

    def __init__(self, clock: Callable[[], float], *, history: int = 200) -> None:
        self._clock = clock
        self._servers: dict[str, dict[str, _Server]] = {}
        self._pods: dict[str, _Pod] = {}
        self._listed = False
        self._problems: dict[tuple[str, str], Activity] = {}
        self._activity: deque[Activity] = deque(maxlen=history)
        self._listeners: list[Callable[[], None]] = []
        self.version = 0
        self.scale_ups = 0
        self.scale_downs = 0
        self.events_posted = 0
        self.events_failed = 0

    # -- wiring ------------------------------------------------------------------------------

    def attach(
        self,
        *,
        changes: Observable[Change],
        pods: Observable[WatchEvent],
        effects: Observable[AppEffect],
        event_outcomes: Observable[EventOutcome],
    ) -> DisposableBase:
        """Subscribe to the four streams; dispose the result to stop."""
        return CompositeDisposable(
            changes.subscribe(self.on_change),
            pods.subscribe(self.on_pod_event),
            effects.subscribe(self.on_effect),
            event_outcomes.subscribe(self.on_event_outcome),
        )

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener()` after every change; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _changed(self) -> None:
        self.version += 1
        for listener in list(self._listeners):
            listener()

    def _note(self, kind: ActivityKind, app: str, message: str, level: Level = "info") -> None:
        self._activity.append(Activity(self._clock(), kind, app, message, level))

    # -- observers ---------------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        if isinstance(change, TicketIssued):
            self._server(change.app, change.server.name).users.add(change.ticket)
        elif isinstance(change, TicketReleased):
            server = self._servers.get(change.app, {}).get(change.server.name)
            if server is not None:
                server.users.discard(change.ticket)
        elif isinstance(change, ServerChanged):
            if change.kind == "app-removed":
                self._servers.pop(change.app, None)
            elif change.server is not None:
                if change.kind == "removed":
                    self._servers.get(change.app, {}).pop(change.server.name, None)
                else:
                    server = self._server(change.app, change.server.name)
                    server.ready, server.capacity = change.ready, change.capacity
        elif isinstance(change, WaiterQueued) and change.position == 0:
            self._note("queue", change.app, "all tickets taken: users wait in the queue")
        else:
            return
        self._changed()

    def _server(self, app: str, pod: str) -> _Server:
        return self._servers.setdefault(app, {}).setdefault(pod, _Server())

    def on_pod_event(self, event: WatchEvent) -> None:
        if event.type == "SYNCED":
            self._listed = True
            return
        name = event.meta.name
        app = event.meta.labels.get(APP_LABEL, "")
        before = self._pods.get(name)
        if event.type == "DELETED":
            self._pods.pop(name, None)
            if before is not None and before.autoscaled and not before.terminating:
                self._scaled_down(app, name, "deleted")
            self._changed()
            return
        row = _pod_row(event, app)
        self._pods[name] = row
        # Pods that were there before the first list completed are the starting state, not
        # actions; a pod created later with the autoscaled label was a scale-up.
        if self._listed and before is None and row.autoscaled and not row.terminating:
            self.scale_ups += 1
            self._note("scale-up", app, f"autoscaled pod {name} created")
        elif row.autoscaled and row.terminating and before is not None and not before.terminating:
            self._scaled_down(app, name, "terminating")
        self._changed()

    def _scaled_down(self, app: str, pod: str, how: str) -> None:
        self.scale_downs += 1
        self._note("scale-down", app, f"autoscaled pod {pod} {how}")

    def on_effect(self, effect: AppEffect) -> None:
        if isinstance(effect, ConfigProblem):
            key = (effect.deployment.name, effect.error.key)
            problem = Activity(
                self._clock(),
                "problem",
                effect.application,
                f"Deployment {effect.deployment.name}: {effect.message}",
                "error" if effect.severity == "error" else "warning",
            )
            self._problems[key] = problem
            self._activity.append(problem)
        elif isinstance(effect, ConfigResolved):
            for key in [k for k in self._problems if k[0] == effect.deployment.name]:
                del self._problems[key]
            self._note(
                "problem", "", f"Deployment {effect.deployment.name}: configuration problems fixed"
            )
        elif isinstance(effect, AppServed):
            self._note("app", effect.spec.app, f"served from Deployment {effect.spec.deployment}")
        elif isinstance(effect, AppWithdrawn):
            self._note("app", effect.spec.app, f"withdrawn ({effect.reason})", "warning")
        else:
            return
        self._changed()

    def on_event_outcome(self, outcome: EventOutcome) -> None:
        command = outcome.command
        about = f"{command.regarding.kind} {command.regarding.name}"
        text = f"Event {command.reason} on {about}: {command.message}"
        level: Level = "warning" if command.type == "Warning" else "info"
        if isinstance(outcome, EventPosted):
            self.events_posted += 1
            if outcome.count > 1:
                text += f" (x{outcome.count})"
        elif isinstance(outcome, EventFailed):
            self.events_failed += 1
            text = f"could not post {text} ({outcome.error})"
            level = "error"
        elif isinstance(outcome, EventDropped):
            text = f"dropped ({outcome.reason}): {text}"
        self._note("event", "", text, level)
        self._changed()

    # -- reading -----------------------------------------------------------------------------

    def snapshot(
        self,
        *,
        namespace: str,
        ready: bool,
        draining: bool,
        leader: bool,
        apps: Mapping[str, _AppStatus],
        specs: Mapping[str, AppSpec],
        proxy_apps: Mapping[str, AppStatistics],
        connections: int,
        config_errors: int,
    ) -> StatusSnapshot:
        """Join the fold with the controller's statistics (`TicketController.status()` calls
        it): `apps` are the runner's `AppStatus`es, `proxy_apps` the proxy's statistics."""
        boards = []
        for name in sorted(apps):
            status = apps[name]
            spec = specs.get(name)
            load = proxy_apps.get(name)
            servers = self._servers.get(name, {})
            pods = sorted(
                ((pod, row) for pod, row in self._pods.items() if row.app == name),
                key=lambda item: (item[1].autoscaled, item[0]),
            )
            rows = []
            for pod, row in pods:
                server = servers.get(pod)
                rows.append(
                    ServerBoard(
                        pod=pod,
                        address=row.address,
                        phase="Terminating" if row.terminating else row.phase,
                        ready=row.ready,
                        autoscaled=row.autoscaled,
                        users=0 if server is None else len(server.users),
                        capacity=None if server is None else server.capacity,
                        serving=server is not None and server.ready,
                    )
                )
            boards.append(
                AppBoard(
                    app=name,
                    deployment=status.deployment,
                    routing=status.routing,
                    own_port=status.own_port,
                    draining=status.draining,
                    users=0 if load is None else load.tickets,
                    free=0 if load is None else load.free,
                    queued=0 if load is None else load.queued,
                    requests=0 if load is None else load.requests,
                    waiting_pages=0 if load is None else load.waiting_pages,
                    upstream_errors=0 if load is None else load.upstream_errors,
                    tickets_max=None if spec is None else spec.tickets_max,
                    tickets_spare=None if spec is None else spec.tickets_spare,
                    pods_max=None if spec is None else spec.pods_max,
                    servers=tuple(rows),
                )
            )
        return StatusSnapshot(
            at=self._clock(),
            namespace=namespace,
            ready=ready,
            draining=draining,
            leader=leader,
            apps=tuple(boards),
            problems=tuple(self._problems.values()),
            activity=tuple(reversed(self._activity)),
            connections=connections,
            config_errors=config_errors,
            events_posted=self.events_posted,
            events_failed=self.events_failed,
            scale_ups=self.scale_ups,
            scale_downs=self.scale_downs,
        )
