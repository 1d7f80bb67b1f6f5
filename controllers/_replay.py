"""Replay and what-if: the controllers' pipelines run on a trace, in virtual time.

What this module is for: issue 8 item 3. `replay_timeline(trace, ...)` is a cold Observable of
the decision timeline (`TimelineRow`s: users, free tickets, waiting users, pods and the scale
commands of each step, and `UserServed`: each ticket with its waiting time); `replay_trace` runs
it to the end on a virtual-time scheduler and returns a `Timeline` (rows, CSV, JSON Lines, a
`ReplaySummary`). Same trace, same settings: the same timeline on every run.

Two modes, one set of pipelines (`ticket_pipeline` and the `autoscaler` operator, as live):

- recorded (plain replay, the default without overrides): the trace's watch streams feed the
  pipelines as they were recorded; the ticket authority is the recorded one (its ticket
  changes, from the trace's ticket stream, folded with the plan's servers). Pod names come from
  the recorded commands, so the replay's commands can be compared with the recorded ones
  (`Timeline.matches_recording`). The commands are not applied: the recorded pods show what
  became of the live ones.
- simulated (what-if, the default with overrides): the recorded demand (`Visit`s: users
  arriving, holding their ticket as long as they did, giving up when they did) meets a real
  `TicketTable` in virtual time, fed by the plan as the proxy would be. The Deployments are the
  recorded ones with the overrides applied to their annotations (so the real parser checks
  them), the Deployment's own pods are the recorded ones, and the autoscaled pods are
  simulated: created by the replay's commands, ready after the start delays measured in the
  trace (pod created -> Ready, cycled in order), gone after the measured deletion delays.
  Simulated users claim a slot held for them at once and never idle out.

Overrides: `{"nb": {"tickets.spare": "4"}, "*": {"pods.cooldown": "5m"}}` or the CLI's
`["nb.tickets.spare=4", "*.pods.cooldown=5m"]` (`parse_overrides`); settings are those of the
autoscaler and the table (`OVERRIDABLE`), values as in the annotations.

It reads the trace it is given (a `Trace`, or a path) and does no other I/O; time is the
virtual scheduler's, started at the trace's start.
"""

from __future__ import annotations

import csv
import itertools
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Literal, TypeAlias, cast

import orjson
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable
from reactivex.subject import Subject

from rxkube.controllers._appspec import (
    KEY_APP_NAME,
    KEY_HOLD_TIME,
    KEY_IDLE_TIMEOUT,
    KEY_PODS_COOLDOWN,
    KEY_PODS_MAX,
    KEY_START_GRACE,
    KEY_TICKETS_MAX,
    KEY_TICKETS_SPARE,
    AppSpec,
    ParserDefaults,
    parse_app_spec,
)
from rxkube.controllers._demand import (
    DemandDecoder,
    RecordedCommand,
    Visit,
    autoscaler_stream,
    command_record,
    recorded_commands,
    ticket_record,
    tickets_stream,
    visits,
)
from rxkube.controllers._load import LoadView
from rxkube.controllers._pipeline import ticket_pipeline
from rxkube.controllers._plan import ProxyApp
from rxkube.controllers._reconcile import CreatePod, DeletePod, PodCommand, seeded_suffixes
from rxkube.controllers._scaling import (
    AutoscalerInput,
    AutoscalerSettings,
    PodCommandFailed,
    ScaleStep,
    autoscaler,
)
from rxkube.proxy import (
    AppAdded,
    AppLoad,
    AppRemoved,
    AppSettings,
    AppUpdated,
    Change,
    Granted,
    LoadChanged,
    ServerAdded,
    ServerRef,
    ServerRemoved,
    ServerUpdated,
    TableEvent,
    TicketIssued,
    TicketReturned,
    TicketTable,
    WaiterGaveUp,
    WaiterLeft,
    WaiterQueued,
)
from rxkube.streams import (
    LocalSubject,
    ReplayScheduler,
    StreamEvent,
    Trace,
    TraceEvent,
    TraceRecord,
    TraceWriter,
    WatchEvent,
    load_trace,
    open_trace_writer,
)

__all__ = [
    "OVERRIDABLE",
    "AppSummary",
    "ReplayMode",
    "ReplaySummary",
    "Timeline",
    "TimelineEvent",
    "TimelineRow",
    "UserLeft",
    "UserServed",
    "parse_overrides",
    "record_streams",
    "replay_timeline",
    "replay_trace",
]

ReplayMode: TypeAlias = Literal["recorded", "simulated"]

OVERRIDABLE: Final[Mapping[str, str]] = {
    "tickets.max": KEY_TICKETS_MAX,
    "tickets.spare": KEY_TICKETS_SPARE,
    "pods.max": KEY_PODS_MAX,
    "pods.cooldown": KEY_PODS_COOLDOWN,
    "pods.start-grace": KEY_START_GRACE,
    "tickets.idle-timeout": KEY_IDLE_TIMEOUT,
    "tickets.hold-time": KEY_HOLD_TIME,
}
"""Settings a replay may override -> the annotation each one stands for."""

API_LATENCY: Final = 0.001
"""Seconds from a simulated pod command to its effect in the pod stream (the API's round
trip): a recorded what-if then shows, as a live recording does, each command before its pod."""
DEFAULT_START_DELAY: Final = 10.0
"""Start delay of simulated pods when the trace shows no pod going from created to Ready."""


# -- the timeline -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One app at one step of the autoscaler: its numbers, and the commands of that step."""

    t: float
    """Seconds since the trace started."""
    app: str
    users: int
    free_tickets: int
    waiting: int
    servers: int
    """Ready servers (the Deployment's own pods and autoscaled ones)."""
    pods_starting: int
    pods_ready: int
    pods_terminating: int
    created: int
    deleted: int
    commands: str
    """The step's commands, e.g. `create nb-rxkube-x2bq9; delete nb-rxkube-7hkqz (idle)`."""

    @property
    def autoscaled(self) -> int:
        return self.pods_starting + self.pods_ready + self.pods_terminating


@dataclass(frozen=True, slots=True)
class UserServed:
    """A ticket issued during the replay, and how long its user waited for it."""

    t: float
    app: str
    user: str
    waited: float


@dataclass(frozen=True, slots=True)
class UserLeft:
    """A user who was not served: gave up waiting, was still waiting when the trace ended,
    or (a what-if) came while the app was not served at all (`waited` 0)."""

    t: float
    app: str
    user: str
    waited: float
    reason: Literal["gave up", "still waiting", "not served"] = "gave up"


TimelineEvent: TypeAlias = TimelineRow | UserServed | UserLeft


def _row(step: ScaleStep, t: float) -> TimelineRow:
    parts = []
    created = deleted = 0
    for command in step.commands:
        if isinstance(command, CreatePod):
            created += 1
            parts.append(f"create {command.name}")
        else:
            deleted += 1
            parts.append(f"delete {command.name} ({command.reason})")
    return TimelineRow(
        t=round(t, 6),
        app=step.app,
        users=step.users,
        free_tickets=step.free_tickets,
        waiting=step.waiting,
        servers=step.servers,
        pods_starting=step.starting,
        pods_ready=step.ready,
        pods_terminating=step.terminating,
        created=created,
        deleted=deleted,
        commands="; ".join(parts),
    )


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class AppSummary:
    """What a replay says about one app (or all of them: app "*")."""

    app: str
    peak_users: int
    tickets: int
    """Tickets issued."""
    wait_p50: float
    """Waiting time percentiles over every user who asked: served users until their ticket,
    the others until they left or the trace ended."""
    wait_p95: float
    wait_max: float
    waited: int
    """Users who waited at all (more than 0 s) before their ticket."""
    gave_up: int
    """Users who left the waiting room unserved."""
    unserved: int
    """Users not served at all: gave up, still waiting at the end, or the app was not served."""
    mean_pods: float
    """Autoscaled pods on average over the trace (time-weighted)."""
    peak_pods: int
    pod_hours: float
    """Autoscaled pod-hours (starting, ready and terminating pods all cost)."""
    scale_ups: int
    scale_downs: int


@dataclass(frozen=True, slots=True)
class ReplaySummary:
    """The summary of a replay: per app and in total (`total.app == "*"`)."""

    mode: ReplayMode
    duration: float
    apps: tuple[AppSummary, ...]
    total: AppSummary
    matches_recording: bool | None

    def table(self) -> str:
        """A plain-text table (what `rxkube replay` prints)."""
        head = (
            "app",
            "peak users",
            "tickets",
            "wait p50",
            "wait p95",
            "wait max",
            "unserved",
            "mean pods",
            "peak pods",
            "pod-hours",
            "ups",
            "downs",
        )
        lines = [head]
        for s in (*self.apps, self.total):
            lines.append(
                (
                    "all" if s.app == "*" else s.app,
                    str(s.peak_users),
                    str(s.tickets),
                    f"{s.wait_p50:.1f}s",
                    f"{s.wait_p95:.1f}s",
                    f"{s.wait_max:.1f}s",
                    str(s.unserved),
                    f"{s.mean_pods:.2f}",
                    str(s.peak_pods),
                    f"{s.pod_hours:.2f}",
                    str(s.scale_ups),
                    str(s.scale_downs),
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        out = [
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
            for line in lines
        ]
        return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Timeline:
    """The decision timeline of a replay (see `replay_trace`)."""

    mode: ReplayMode
    duration: float
    """Seconds the trace covers."""
    rows: tuple[TimelineRow, ...]
    served: tuple[UserServed, ...]
    events: int
    """Trace records replayed."""
    left: tuple[UserLeft, ...] = ()
    """Users who gave up waiting."""
    recorded: tuple[RecordedCommand, ...] = ()
    """The commands the live autoscaler sent (and failures), as recorded in the trace."""
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def commands(self) -> list[tuple[float, str, str, str]]:
        """(t, app, "create"|"delete", pod) of every command of the replay, in order."""
        out = []
        for row in self.rows:
            for part in row.commands.split("; ") if row.commands else ():
                kind, _, rest = part.partition(" ")
                out.append((row.t, row.app, kind, rest.split(" ", 1)[0]))
        return out

    @property
    def matches_recording(self) -> bool | None:
        """Plain replays: whether the replay sent the recorded commands, in the recorded order
        per app (None: nothing was recorded, or this is a what-if)."""
        if self.mode != "recorded" or not self.recorded:
            return None
        sent = [(app, kind, pod) for _, app, kind, pod in self.commands]
        wanted = [(c.app, c.kind, c.pod) for c in self.recorded if c.kind != "failed"]
        by_app: dict[str, list[tuple[str, str]]] = {}
        for app, kind, pod in wanted:
            by_app.setdefault(app, []).append((kind, pod))
        mine: dict[str, list[tuple[str, str]]] = {}
        for app, kind, pod in sent:
            mine.setdefault(app, []).append((kind, pod))
        return by_app == mine

    def summary(self) -> ReplaySummary:
        apps = sorted({row.app for row in self.rows} | {s.app for s in self.served})
        per_app = tuple(self._summary(app) for app in apps)
        return ReplaySummary(
            self.mode, self.duration, per_app, self._summary(None), self.matches_recording
        )

    def _summary(self, app: str | None) -> AppSummary:
        rows = [r for r in self.rows if app is None or r.app == app]
        served = [s for s in self.served if app is None or s.app == app]
        left = [x for x in self.left if app is None or x.app == app]
        # Every user's wait counts: until the ticket, or until they left (or the trace ended).
        waits = [s.waited for s in served] + [x.waited for x in left]
        # Integrate the autoscaled pods (and users) of each app over time, then add up.
        pod_seconds = 0.0
        peak_pods = peak_users = 0
        current_pods: dict[str, int] = {}
        current_users: dict[str, int] = {}
        last_t = 0.0
        for row in rows:
            total_pods = sum(current_pods.values())
            pod_seconds += total_pods * (row.t - last_t)
            last_t = row.t
            current_pods[row.app] = row.autoscaled
            current_users[row.app] = row.users
            peak_pods = max(peak_pods, sum(current_pods.values()))
            peak_users = max(peak_users, sum(current_users.values()))
        pod_seconds += sum(current_pods.values()) * max(0.0, self.duration - last_t)
        duration = max(self.duration, last_t)
        return AppSummary(
            app="*" if app is None else app,
            peak_users=peak_users,
            tickets=len(served),
            wait_p50=_percentile(waits, 50),
            wait_p95=_percentile(waits, 95),
            wait_max=max(waits, default=0.0),
            waited=sum(1 for w in waits if w > 0),
            gave_up=sum(1 for x in left if x.reason == "gave up"),
            unserved=len(left),
            mean_pods=pod_seconds / duration if duration > 0 else 0.0,
            peak_pods=peak_pods,
            pod_hours=pod_seconds / 3600.0,
            scale_ups=sum(r.created for r in rows),
            scale_downs=sum(r.deleted for r in rows),
        )

    def to_csv(self, out: str | Path | IO[str]) -> None:
        """Write the rows as CSV (a header line, then one line per row)."""
        names = [f.name for f in fields(TimelineRow)]
        with _text_out(out) as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(names)
            for row in self.rows:
                writer.writerow([getattr(row, name) for name in names])

    def to_jsonl(self, out: str | Path | IO[str]) -> None:
        """Write the rows and the users as JSON Lines (`"kind": "step"|"served"|"left"`)."""
        with _text_out(out) as file:
            merged = sorted(
                itertools.chain(
                    (("step", row.t, i, asdict(row)) for i, row in enumerate(self.rows)),
                    (("served", s.t, i, asdict(s)) for i, s in enumerate(self.served)),
                    (("left", x.t, i, asdict(x)) for i, x in enumerate(self.left)),
                ),
                key=lambda item: (item[1], item[0] == "step", item[0], item[2]),
            )
            for kind, _, _, data in merged:
                file.write(orjson.dumps({"kind": kind, **data}).decode() + "\n")


class _text_out:
    """A text file to write to: a path (opened and closed here) or an open file (kept open)."""

    def __init__(self, out: str | Path | IO[str]) -> None:
        self._out = out
        self._opened: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        if isinstance(self._out, str | Path):
            self._opened = open(self._out, "w", encoding="utf-8", newline="")
            return self._opened
        return self._out

    def __exit__(self, *_: object) -> None:
        if self._opened is not None:
            self._opened.close()


# -- overrides ----------------------------------------------------------------------------------


def parse_overrides(
    items: Iterable[str] | Mapping[str, Mapping[str, str]],
) -> dict[str, dict[str, str]]:
    """`["nb.tickets.spare=4", "*.pods.max=5"]` (or a mapping) -> `{app: {setting: value}}`,
    checked: an unknown setting or a value the annotation would refuse raises ValueError."""
    parsed: dict[str, dict[str, str]] = {}
    if isinstance(items, Mapping):
        entries = [(app, k, v) for app, values in items.items() for k, v in values.items()]
    else:
        entries = []
        for item in items:
            target, eq, value = item.partition("=")
            app, dot, setting = target.partition(".")
            if not eq or not dot or not app or not setting:
                raise ValueError(
                    f"expected APP.SETTING=VALUE (APP an app name or *), e.g. "
                    f"nb.tickets.spare=4, got {item!r}"
                )
            entries.append((app, setting, value))
    for app, setting, value in entries:
        key = OVERRIDABLE.get(setting)
        if key is None:
            raise ValueError(
                f"{app}.{setting}: unknown setting {setting!r}; one of {', '.join(OVERRIDABLE)}"
            )
        probe = parse_app_spec(
            {"metadata": {"name": "probe", "namespace": "x", "annotations": {key: value}}}
        )
        if not isinstance(probe, AppSpec):
            problems = "; ".join(error.message for error in probe)
            raise ValueError(f"{app}.{setting}={value}: {problems}")
        parsed.setdefault(app, {})[setting] = value
    return parsed


def _app_name(deployment: Mapping[str, Any]) -> str:
    metadata = deployment.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    name = annotations.get(KEY_APP_NAME) if isinstance(annotations, Mapping) else None
    return name if isinstance(name, str) and name else str(metadata.get("name") or "")


def _override(event: WatchEvent, overrides: Mapping[str, Mapping[str, str]]) -> WatchEvent:
    if event.type == "SYNCED" or not overrides:
        return event
    obj = event.object
    app = _app_name(obj)
    values = {**overrides.get("*", {}), **overrides.get(app, {})}
    if not values:
        return event
    metadata = dict(obj.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    for setting, value in values.items():
        annotations[OVERRIDABLE[setting]] = value
    metadata["annotations"] = annotations
    return WatchEvent(
        event.type,
        {**obj, "metadata": metadata},
        resource_version=event.resource_version,
        stream=event.stream,
        final_state_unknown=event.final_state_unknown,
    )


# -- reading the trace --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Streams:
    metadata: str | None
    deployments: str
    pods: str
    tickets: Mapping[str, str]
    """Ticket stream id -> its app ("" when each record names its app)."""
    autoscaler: tuple[str, ...]
    namespace: str


def _classify(trace: Trace) -> _Streams:
    metadata = deployments = pods = None
    namespace = ""
    tickets: dict[str, str] = {}
    autoscaler_streams = []
    for sid, spec in trace.header.streams.items():
        resource = str(spec.get("resource", ""))
        if spec.get("kind") == "tickets" or sid.startswith("tickets/"):
            app = spec.get("app")
            tickets[sid] = app if isinstance(app, str) else ""
        elif sid.startswith("autoscaler/"):
            autoscaler_streams.append(sid)
        elif resource.startswith("deployments"):
            namespace = str(spec.get("namespace") or namespace)
            if spec.get("metadataOnly") or sid.endswith("meta"):
                metadata = sid
            else:
                deployments = sid
        elif resource == "pods":
            pods = sid
    if deployments is None or pods is None:
        raise ValueError(
            "the trace has no Deployment or no pod watch stream: it was not recorded from the "
            f"ticket controller (streams: {sorted(trace.header.streams)})"
        )
    return _Streams(
        metadata, deployments, pods, tickets, tuple(autoscaler_streams), namespace or "default"
    )


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    for condition in status.get("conditions") or ():
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def _measured_delays(records: Sequence[TraceRecord], pods: str) -> tuple[list[float], list[float]]:
    """Pod created -> Ready, and deletion asked -> gone, for pods created during the trace
    (autoscaled ones if there are any), in the order they happened."""
    synced = False
    created: dict[str, tuple[float, bool]] = {}
    starts: list[tuple[bool, float]] = []
    deleting: dict[str, float] = {}
    stops: list[tuple[bool, float]] = []
    for record in records:
        event = record.event
        if not isinstance(event, WatchEvent) or event.stream != pods:
            continue
        if event.type == "SYNCED":
            synced = True
            continue
        name = event.meta.name
        labels = event.meta.labels
        scaled = labels.get("rxkube.io/autoscaled") == "true" or (
            labels.get("ipb-halle.de/k8sTicket.scaled") == "true"
        )
        if event.type == "ADDED" and synced and name not in created:
            created[name] = (record.t, scaled)
        if event.type == "DELETED":
            start = deleting.pop(name, None)
            if start is not None:
                stops.append((scaled, record.t - start))
            created.pop(name, None)
            continue
        if name in created and _ready(event.object):
            at, was_scaled = created.pop(name)
            starts.append((was_scaled, record.t - at))
        if event.meta.deletion_timestamp is not None and name not in deleting:
            deleting[name] = record.t

    def pick(values: list[tuple[bool, float]]) -> list[float]:
        scaled = [v for s, v in values if s]
        return scaled or [v for _, v in values]

    return pick(starts), pick(stops)


# -- the replay ---------------------------------------------------------------------------------


class _Authority:
    """The ticket authority of a replay: a table kept in step with the plan, as the proxy
    keeps its own (apps and servers), whose changes feed the pipelines."""

    def __init__(self, changes: Subject[Change], loads: Subject[Change], *, simulate: bool) -> None:
        self.table = TicketTable()
        self.changes = changes
        self.loads = loads
        self.simulate = simulate
        self.servers: dict[str, dict[ServerRef, bool]] = {}
        self.settings: dict[str, AppSettings] = {}

    def publish(self, effects: Iterable[Change]) -> None:
        for change in effects:
            if isinstance(change, LoadChanged):
                # Only the plan reads loads. A recorded replay's come from the recorded tickets.
                if self.simulate:
                    self.loads.on_next(change)
            else:
                self.changes.on_next(change)

    def apply(self, events: Iterable[TableEvent], now: float) -> None:
        for event in events:
            self.publish(self.table.apply(event, now))

    def plan(self, desired: ProxyApp, now: float) -> None:
        name = desired.app
        config = desired.config
        if config is None:
            if name in self.servers:
                del self.servers[name]
                self.settings.pop(name, None)
                self.apply([AppRemoved(name)], now)
            return
        settings = AppSettings(
            tickets_max=config.tickets_max,
            # Simulated users never idle out, and claim a held slot at once (see the module
            # docstring); a recorded replay's table holds no tickets at all.
            idle_timeout=math.inf,
            hold_time=config.hold_time,
            leave_after=math.inf,
        )
        events: list[TableEvent] = []
        if name not in self.servers:
            self.servers[name] = {}
            events.append(AppAdded(name, settings))
        elif self.settings.get(name) != settings:
            events.append(AppUpdated(name, settings))
        self.settings[name] = settings
        current = self.servers[name]
        wanted = {spec.ref: spec.ready for spec in desired.servers}
        for ref in [ref for ref in current if ref not in wanted]:
            del current[ref]
            events.append(ServerRemoved(name, ref))
        for ref, ready in wanted.items():
            if ref not in current:
                events.append(ServerAdded(name, ref, ready))
            elif current[ref] != ready:
                events.append(ServerUpdated(name, ref, ready))
            current[ref] = ready
        self.apply(events, now)


class _RecordedLoads:
    """A recorded replay's `LoadChanged`s, from the same fold as the autoscaler's view. The
    plan reads a load's tickets only, and only for a draining app (which goes with its last
    user), so loads are made for draining apps only, when their tickets change."""

    def __init__(self, loads: Subject[Change]) -> None:
        self.view = LoadView()
        self.loads = loads
        self.last: dict[str, int] = {}
        self.draining: set[str] = set()

    def plan(self, desired: ProxyApp, capacity: Callable[[str], int], now: float) -> None:
        app = desired.app
        if desired.draining and desired.config is not None:
            if app not in self.draining:
                self.draining.add(app)
                self.last.pop(app, None)
                self._emit(app, capacity, now)
        else:
            self.draining.discard(app)

    def after(self, change: Change, capacity: Callable[[str], int]) -> None:
        if isinstance(change, LoadChanged):
            return
        app = self.view.apply(change)
        if app is not None and app in self.draining:
            self._emit(app, capacity, change.time)

    def _emit(self, app: str, capacity: Callable[[str], int], now: float) -> None:
        view = self.view
        if not view.known(app) or self.last.get(app) == view.users(app):
            return
        numbers = view.numbers(app, capacity=capacity(app))
        servers, ready, total, users, free, waiting = numbers
        self.last[app] = users
        load = AppLoad(app, servers, ready, total, users, free, waiting, 0, now)
        self.loads.on_next(LoadChanged(load))


class _SimPods:
    """Simulated autoscaled pods: created and deleted by the replay's commands."""

    def __init__(
        self,
        scheduler: abc.SchedulerBase,
        events: Subject[WatchEvent],
        stream: str,
        started: datetime,
        starts: list[float],
        stops: list[float],
    ) -> None:
        self.scheduler = scheduler
        self.events = events
        self.stream = stream
        self.started = started
        self.starts = itertools.cycle(starts or [DEFAULT_START_DELAY])
        self.stops = itertools.cycle(stops or [0.0])
        self.pods: dict[str, dict[str, Any]] = {}
        self.count = 0
        self.rv = 10**9

    def adopt(self, pod: Mapping[str, Any]) -> None:
        """A pod that existed when the trace started: the simulation owns it from now on."""
        name = str((pod.get("metadata") or {}).get("name"))
        self.pods[name] = dict(pod)

    def _stamp(self) -> str:
        now = self.scheduler.now
        return now.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _emit(self, kind: str, pod: dict[str, Any]) -> None:
        self.rv += 1
        pod = {**pod, "metadata": {**pod["metadata"], "resourceVersion": str(self.rv)}}
        self.events.on_next(
            WatchEvent(kind, pod, resource_version=str(self.rv), stream=self.stream)  # type: ignore[arg-type]
        )

    def _later(self, seconds: float, action: Callable[[], None]) -> None:
        self.scheduler.schedule_relative(seconds, lambda *_: action())

    def apply(self, command: PodCommand) -> None:
        if isinstance(command, CreatePod):
            self._create(command)
        else:
            self._delete(command)

    def _create(self, command: CreatePod) -> None:
        if command.name in self.pods:
            return
        self.count += 1
        body = dict(command.body)
        metadata = {
            **body.get("metadata", {}),
            "uid": f"sim-{self.count:06d}",
            "creationTimestamp": self._stamp(),
        }
        pod: dict[str, Any] = {**body, "metadata": metadata, "status": {"phase": "Pending"}}
        self.pods[command.name] = pod
        uid = metadata["uid"]
        delay = next(self.starts)
        ip = f"10.{(self.count >> 16) & 255}.{(self.count >> 8) & 255}.{self.count & 255}"

        def added() -> None:
            if self.pods.get(command.name) is pod:
                self._emit("ADDED", pod)

        def ready() -> None:
            current = self.pods.get(command.name)
            if current is None or current["metadata"]["uid"] != uid:
                return
            if current["metadata"].get("deletionTimestamp") is not None:
                return
            current["status"] = {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": "True"}],
            }
            self._emit("MODIFIED", current)

        self._later(API_LATENCY, added)
        self._later(API_LATENCY + delay, ready)

    def _delete(self, command: DeletePod) -> None:
        pod = self.pods.get(command.name)
        if pod is None or (command.uid and pod["metadata"].get("uid") != command.uid):
            return
        if pod["metadata"].get("deletionTimestamp") is not None:
            return
        pod["metadata"] = {**pod["metadata"], "deletionTimestamp": self._stamp()}
        status = dict(pod.get("status") or {})
        status["conditions"] = [{"type": "Ready", "status": "False"}]
        pod["status"] = status
        uid = pod["metadata"].get("uid")

        def modified() -> None:
            if self.pods.get(command.name) is pod:
                self._emit("MODIFIED", pod)

        def gone() -> None:
            current = self.pods.get(command.name)
            if current is not None and current["metadata"].get("uid") == uid:
                del self.pods[command.name]
                self._emit("DELETED", current)

        self._later(API_LATENCY, modified)
        self._later(API_LATENCY + next(self.stops), gone)


class _SimUsers:
    """The recorded demand as simulated users of a real ticket table."""

    def __init__(
        self,
        scheduler: abc.SchedulerBase,
        authority: _Authority,
        start: datetime,
        on_lost: Callable[[str, str], None],
    ) -> None:
        self.scheduler = scheduler
        self.authority = authority
        self.start = start
        self.sessions: dict[tuple[str, str], float | None] = {}
        self.on_lost = on_lost

    def now(self) -> float:
        return self.scheduler.now.timestamp()

    def schedule(self, visits: Sequence[Visit]) -> None:
        # A user who gave up waiting in the recording but is served here stays as long as
        # the app's users did (the median recorded session): the recording cannot say more.
        sessions: dict[str, list[float]] = {}
        for visit in visits:
            if visit.session is not None:
                sessions.setdefault(visit.app, []).append(visit.session)
        median = {app: statistics.median_low(values) for app, values in sessions.items()}
        counts: dict[tuple[str, str], int] = {}
        for visit in visits:
            if visit.session is None:
                visit = replace(visit, session=median.get(visit.app, 0.0))
            key = (visit.app, visit.user)
            counts[key] = counts.get(key, 0) + 1
            client = f"{visit.user}#{counts[key]}"
            self.scheduler.schedule_absolute(
                self.start + timedelta(seconds=visit.arrival),
                lambda _s, _x, v=visit, c=client: self.arrive(v, c),  # type: ignore[misc]
            )

    def arrive(self, visit: Visit, client: str) -> None:
        table, app, now = self.authority.table, visit.app, self.now()
        if app not in table.apps:
            self.on_lost(app, client)  # nobody served this app at that moment
            return
        self.sessions[app, client] = visit.session
        decision, effects = table.request(app, client, now)
        self.authority.publish(effects)
        if isinstance(decision, Granted):
            self.hold(app, client)
        elif visit.patience is not None:
            self.scheduler.schedule_relative(visit.patience, lambda *_: self.give_up(app, client))
        self.claim(app)

    def hold(self, app: str, client: str) -> None:
        session = self.sessions.pop((app, client), None)
        if session is not None:
            self.scheduler.schedule_relative(session, lambda *_: self.release(app, client))

    def release(self, app: str, client: str) -> None:
        table = self.authority.table
        if app in table.apps and table.ticket_server(app, client) is not None:
            self.authority.apply([TicketReturned(app, client)], self.now())
            self.claim(app)

    def give_up(self, app: str, client: str) -> None:
        table = self.authority.table
        if app in table.apps and table.position(app, client) is not None:
            self.sessions.pop((app, client), None)
            self.authority.apply([WaiterGaveUp(app, client)], self.now())
            self.claim(app)

    def claim(self, app: str) -> None:
        """Waiters claim the slots held for them at once (they poll; here, instantly)."""
        table = self.authority.table
        while app in table.apps and table.held(app) > 0:
            client = table.queue(app)[0]
            decision, effects = table.request(app, client, self.now())
            self.authority.publish(effects)
            if not isinstance(decision, Granted):  # pragma: no cover - a held slot is free
                break
            self.hold(app, client)

    def after_servers(self) -> None:
        for app in list(self.authority.table.apps):
            self.claim(app)


def _as_trace(trace: Trace | str | Path) -> Trace:
    return trace if isinstance(trace, Trace) else load_trace(trace)


def replay_timeline(
    trace: Trace | str | Path,
    *,
    overrides: Iterable[str] | Mapping[str, Mapping[str, str]] = (),
    mode: ReplayMode | None = None,
    seed: int | str = 0,
    defaults: ParserDefaults | None = None,
    settings: AutoscalerSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    record: TraceWriter | None = None,
) -> Observable[TimelineEvent]:
    """The decision timeline of a replay of `trace`, as a cold Observable (see the module
    docstring). Subscribe with a virtual-time scheduler (a `ReplayScheduler`, or any
    `HistoricalScheduler`, started at `trace.header.started`, as `replay_trace` does) to run
    it as fast as the CPU allows.

    - `overrides`: settings to change, per app or `*` (see `parse_overrides`).
    - `mode`: "recorded" (plain replay) or "simulated" (what-if); default: simulated when
      there are overrides, else recorded.
    - `seed`: names of simulated pods (a recorded replay reuses the recorded names).
    - `progress(done, total)`: called every 1,000 trace records, and at the end.
    - `record`: write what the pipelines saw to this trace writer, as `rxkube run` records
      it (open it with `record_streams(trace)` and the replay's scheduler): a what-if run
      becomes a trace of its own, whose plain replay gives the same decisions.
    """
    loaded = _as_trace(trace)
    changes_by_app = parse_overrides(overrides)
    chosen: ReplayMode = mode or ("simulated" if changes_by_app else "recorded")
    streams = _classify(loaded)
    records = loaded.records
    duration = loaded.duration
    recorded_all = recorded_commands(records, streams.autoscaler)

    def subscribe(
        observer: abc.ObserverBase[TimelineEvent], given: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        scheduler = given or ReplayScheduler(initial_clock=loaded.header.started)
        start = scheduler.now
        simulate = chosen == "simulated"

        def seconds() -> float:
            return (scheduler.now - start).total_seconds()

        def now() -> float:
            return scheduler.now.timestamp()

        metadata: Subject[WatchEvent] = LocalSubject()
        deployments: Subject[WatchEvent] = LocalSubject()
        pods: Subject[WatchEvent] = LocalSubject()
        changes: Subject[Change] = LocalSubject()
        plan_loads: Subject[Change] = LocalSubject()
        outcomes: Subject[AutoscalerInput] = LocalSubject()
        authority = _Authority(changes, plan_loads, simulate=simulate)
        pipeline = ticket_pipeline(
            deployment_metadata=metadata,
            deployments=deployments,
            pods=pods,
            loads=plan_loads,
            scheduler=scheduler,
            defaults=defaults,
        )
        specs: dict[str, AppSpec] = {}

        def capacity(app: str) -> int:
            spec = specs.get(app)
            return spec.tickets_max if spec is not None else 1

        recorded = recorded_all if not simulate else []
        names: dict[str, list[str]] = {}
        for command in recorded:
            if command.kind == "create":
                names.setdefault(command.app, []).append(command.pod)

        def suffixes(app: str) -> Callable[[], str]:
            fallback = seeded_suffixes(f"{seed}/{app}")
            queue = iter(names.get(app, ()))
            prefix = f"{app}-rxkube-"

            def suffix() -> str:
                for name in queue:
                    if name.startswith(prefix):
                        return name[len(prefix) :]
                return fallback()

            return suffix

        proxy_apps = cast(
            Observable[ProxyApp],
            pipeline.plan.pipe(ops.filter(lambda o: isinstance(o, ProxyApp))),
        )
        # The autoscaler's inputs, in the order they happen (what `merge` gives live, without
        # its locks: a replay runs on one thread).
        inputs: Subject[AutoscalerInput] = LocalSubject()
        steps = inputs.pipe(autoscaler(scheduler, settings=settings, new_suffix=suffixes))
        starts, stops = _measured_delays(records, streams.pods) if simulate else ([], [])
        sim_pods = _SimPods(scheduler, pods, streams.pods, loaded.header.started, starts, stops)
        users = _SimUsers(
            scheduler,
            authority,
            start,
            lambda app, client: observer.on_next(
                UserLeft(round(seconds(), 6), app, client, 0.0, "not served")
            ),
        )
        loads = _RecordedLoads(plan_loads)
        decoder = DemandDecoder({sid: app for sid, app in streams.tickets.items() if app})
        sent: dict[str, PodCommand] = {}

        def on_plan(output: object) -> None:
            if isinstance(output, ProxyApp):
                if output.spec is not None:
                    specs[output.app] = output.spec
                authority.plan(output, now())
                if simulate:
                    users.after_servers()
                else:
                    # On the scheduler's next turn, as the proxy's loads come live (the
                    # plan is still emitting).
                    scheduler.schedule(lambda *_: loads.plan(output, capacity, now()))

        joined: dict[tuple[str, str], float] = {}

        def on_change(change: Change) -> None:
            if isinstance(change, TicketIssued):
                joined.pop((change.app, change.ticket), None)
                at = round(seconds(), 6)
                observer.on_next(UserServed(at, change.app, change.ticket, round(change.waited, 6)))
            elif isinstance(change, WaiterQueued):
                joined[change.app, change.client] = change.time
            elif isinstance(change, WaiterLeft):
                since = joined.pop((change.app, change.client), change.time)
                if change.reason != "app-removed":
                    at = round(seconds(), 6)
                    waited = round(change.time - since, 6)
                    observer.on_next(UserLeft(at, change.app, change.client, waited))

        scale_stream = _namespaced(streams, "autoscaler")

        def on_step(step: ScaleStep) -> None:
            observer.on_next(_row(step, seconds()))
            for command in step.commands:
                if record is not None:
                    record.write(command_record(command, scale_stream))
                sent[command.name] = command
                if simulate:
                    sim_pods.apply(command)

        subscriptions = [
            proxy_apps.subscribe(inputs.on_next),
            pods.subscribe(inputs.on_next),
            changes.subscribe(inputs.on_next),
            outcomes.subscribe(inputs.on_next),
            pipeline.plan.subscribe(on_plan),
            changes.subscribe(on_change),
            steps.subscribe(on_step, observer.on_error),
        ]
        if not simulate:
            subscriptions.append(changes.subscribe(lambda c: loads.after(c, capacity)))
        if record is not None:
            subscriptions.extend(_recording(record, streams, deployments, metadata, pods, changes))
        subscriptions.append(pipeline.connect())

        pods_synced = [False]
        total = len(records)
        done = [0]

        def route(event: TraceEvent) -> None:
            done[0] += 1
            if progress is not None and done[0] % 1000 == 0:
                progress(done[0], total)
            stream = event.stream
            if isinstance(event, StreamEvent):
                if simulate:
                    return
                if stream in streams.tickets:
                    change = decoder.decode(event, now())
                    if change is not None:
                        changes.on_next(change)
                elif stream in streams.autoscaler and event.type == "failed":
                    command = sent.get(str(event.data.get("pod", "")))
                    if command is not None:
                        reason = str(event.data.get("reason", ""))
                        outcomes.on_next(PodCommandFailed(command, reason))
                return
            if stream == streams.pods:
                if simulate:
                    if event.type == "SYNCED":
                        pods_synced[0] = True
                    elif _scaled(event):
                        if not pods_synced[0] and event.type != "DELETED":
                            sim_pods.adopt(event.object)
                        elif event.meta.name not in sim_pods.pods or pods_synced[0]:
                            return  # the live autoscaler's pods: the simulation makes its own
                pods.on_next(event)
            elif stream == streams.deployments:
                changed = _override(event, changes_by_app)
                deployments.on_next(changed)
                if streams.metadata is None:
                    metadata.on_next(changed)
            elif stream == streams.metadata:
                metadata.on_next(_override(event, changes_by_app))

        def complete() -> None:
            if progress is not None:
                progress(done[0], total)
            at, end = round(seconds(), 6), now()
            for (app, client), since in joined.items():
                observer.on_next(UserLeft(at, app, client, round(end - since, 6), "still waiting"))
            observer.on_completed()

        source = loaded.replay(scheduler=scheduler)
        replaying = source.subscribe(route, observer.on_error, complete, scheduler=scheduler)
        if simulate:
            # After the trace's first records are scheduled: at equal times, the app comes
            # before the users who use it.
            users.schedule(visits(records, streams.tickets, end=duration))
        return CompositeDisposable(*subscriptions, replaying)

    return Observable(subscribe)


def _namespaced(streams: _Streams, kind: str) -> str:
    return f"{kind}/{streams.namespace}"


def record_streams(trace: Trace | str | Path) -> dict[str, Mapping[str, Any]]:
    """The streams a trace writer needs to record a replay of `trace` (`replay_timeline`'s
    `record`): its watch streams, and the namespace's ticket and autoscaler streams."""
    loaded = _as_trace(trace)
    streams = _classify(loaded)
    declared: dict[str, Mapping[str, Any]] = {
        sid: loaded.header.streams[sid]
        for sid in (streams.metadata, streams.deployments, streams.pods)
        if sid is not None
    }
    namespace = streams.namespace
    declared[tickets_stream(namespace)] = {"kind": "tickets", "namespace": namespace}
    declared[autoscaler_stream(namespace)] = {"kind": "autoscaler", "namespace": namespace}
    return declared


def _recording(
    writer: TraceWriter,
    streams: _Streams,
    deployments: Observable[WatchEvent],
    metadata: Observable[WatchEvent],
    pods: Observable[WatchEvent],
    changes: Observable[Change],
) -> list[abc.DisposableBase]:
    tickets = tickets_stream(streams.namespace)

    def on_change(change: Change) -> None:
        record = ticket_record(change, tickets)
        if record is not None:
            writer.write(record)

    out = [deployments.subscribe(writer.write), pods.subscribe(writer.write)]
    if streams.metadata is not None:
        out.append(metadata.subscribe(writer.write))
    out.append(changes.subscribe(on_change))
    return out


def _scaled(event: WatchEvent) -> bool:
    labels = event.meta.labels
    return labels.get("rxkube.io/autoscaled") == "true" or (
        labels.get("ipb-halle.de/k8sTicket.scaled") == "true"
    )


def replay_trace(
    trace: Trace | str | Path,
    *,
    overrides: Iterable[str] | Mapping[str, Mapping[str, str]] = (),
    mode: ReplayMode | None = None,
    seed: int | str = 0,
    defaults: ParserDefaults | None = None,
    settings: AutoscalerSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
    record: str | Path | None = None,
) -> Timeline:
    """Replay `trace` in virtual time and return its decision timeline (see the module
    docstring and `replay_timeline` for the arguments)::

        timeline = replay_trace("run.jsonl.gz")                           # plain replay
        print(timeline.summary().table(), timeline.matches_recording)
        what_if = replay_trace("run.jsonl.gz", overrides=["*.tickets.spare=4"])
        what_if.to_csv("spare4.csv")

    `record`: also write what the replay's pipelines saw to this trace file (see
    `replay_timeline`).
    """
    loaded = _as_trace(trace)
    parsed = parse_overrides(overrides)
    chosen: ReplayMode = mode or ("simulated" if parsed else "recorded")
    scheduler = ReplayScheduler(initial_clock=loaded.header.started)
    rows: list[TimelineRow] = []
    served: list[UserServed] = []
    left: list[UserLeft] = []
    errors: list[Exception] = []

    def on_next(item: TimelineEvent) -> None:
        if isinstance(item, TimelineRow):
            rows.append(item)
        elif isinstance(item, UserServed):
            served.append(item)
        else:
            left.append(item)

    writer = None
    if record is not None:
        writer = open_trace_writer(
            record,
            streams=record_streams(loaded),
            scheduler=scheduler,
            source=f"rxkube replay ({chosen}) of {loaded.header.source or 'a trace'}",
            started=loaded.header.started,
        )
    try:
        timeline = replay_timeline(
            loaded,
            overrides=parsed,
            mode=chosen,
            seed=seed,
            defaults=defaults,
            settings=settings,
            progress=progress,
            record=writer,
        )
        subscription = timeline.subscribe(on_next, errors.append, scheduler=scheduler)
        end = loaded.header.started + timedelta(seconds=loaded.duration)
        scheduler.advance_to(end)
        subscription.dispose()
    finally:
        if writer is not None:
            writer.close()
    if errors:
        raise errors[0]
    streams = _classify(loaded)
    recorded = tuple(recorded_commands(loaded.records, streams.autoscaler))
    return Timeline(
        mode=chosen,
        duration=loaded.duration,
        rows=tuple(rows),
        served=tuple(served),
        events=len(loaded.records),
        left=tuple(left),
        recorded=recorded,
        overrides=parsed,
    )
