"""`rxkube demo` (interim): replay a recorded trace through the stream core and tell what happened.

What this module is for: until the full demo (issue "demo") lands, `rxkube demo` shows the stream
core at work on the sample trace shipped in `rxkube.streams`: the trace is replayed in virtual
time (a `HistoricalScheduler` set to the trace's start, so it runs in milliseconds and prints the
recorded wall-clock times), the pod and Deployment events are folded into `Store`s, and the
operators pick out what a k8sTicket controller cares about: the apps (Deployments labelled
`ipb-halle.de/k8sticket: "true"`) and their settings, each pod's life (Pending, Running, Ready,
terminating, deleted), ready pods per app over time, and the users each app's ticket stream
served. It may import `rxkube.streams`; it does no I/O but reading the trace and printing.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import reactivex
from reactivex import GroupedObservable
from reactivex import operators as ops
from reactivex.scheduler import HistoricalScheduler

from rxkube.streams import (
    ObjectMetaView,
    Store,
    StreamEvent,
    Trace,
    TraceEvent,
    WatchEvent,
    label_indexer,
    load_trace,
    sample_trace_path,
)
from rxkube.streams.operators import (
    distinct_until_changed_by,
    filter_labels,
    group_by_key,
    latest_state_per_key,
)

# Interim and CLI-only: nothing here is public API of rxkube.controllers.
__all__: list[str] = []

TICKET_LABEL = "ipb-halle.de/k8sticket"
APP_LABEL = "ipb-halle.de/k8sticket.deployment.app.name"
ANNOTATION_PREFIX = "ipb-halle.de/k8sticket.deployment."
AUTOSCALED_LABEL = "rxkube.io/autoscaled"
SAMPLE_EVERY = 60.0
SAMPLE_OFFSET = 45.0


@dataclass
class TicketTally:
    """What one app's ticket stream says: users served, at most at once, queueing."""

    requested: int = 0
    issued: int = 0
    queued: int = 0
    left_queue: int = 0
    current: int = 0
    peak: int = 0


@dataclass
class DemoReport:
    """What the demo saw (also printed); tests read it instead of parsing text."""

    source: str
    records: int
    duration: float
    apps: dict[str, dict[str, str]] = field(default_factory=dict)
    """App name -> its k8sTicket settings (annotation suffix -> value), last seen."""
    pod_changes: list[tuple[float, str, str, str]] = field(default_factory=list)
    """(t, app, pod, state) whenever a pod's phase, readiness or termination changed."""
    ready_over_time: list[tuple[float, dict[str, tuple[int, int]]]] = field(default_factory=list)
    """(t, {app: (ready pods, pods)}) once a minute, 45 s past."""
    tickets: dict[str, TicketTally] = field(default_factory=dict)
    final_pods: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    """App -> [(pod, state)] in the pod Store at the end."""


def _pod_state(event: WatchEvent) -> str:
    """One word for where a pod is in its life: Pending, Running, Ready, terminating, deleted."""
    if event.type == "DELETED":
        return "deleted"
    return _state(event.meta, event.object)


def _state(meta: ObjectMetaView, obj: Mapping[str, Any]) -> str:
    if meta.deletion_timestamp is not None:
        return "terminating"
    status: Mapping[str, Any] = obj.get("status", {})
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", [])
    )
    phase = str(status.get("phase", "Unknown"))
    return "Ready" if ready and phase == "Running" else phase


def _app_of(event: WatchEvent) -> str | None:
    return event.meta.labels.get(APP_LABEL)


def _settings(event: WatchEvent) -> dict[str, str]:
    return {
        key[len(ANNOTATION_PREFIX) :]: value
        for key, value in sorted(event.meta.annotations.items())
        if key.startswith(ANNOTATION_PREFIX)
    }


def _as_watch_event(event: TraceEvent) -> WatchEvent:
    assert isinstance(event, WatchEvent)
    return event


def run_demo(trace_path: Path | None = None, *, out: TextIO | None = None) -> DemoReport:
    """Replay `trace_path` (default: the shipped sample) and print what the pipelines saw."""
    out = out or sys.stdout
    trace = load_trace(trace_path or sample_trace_path())
    header = trace.header
    start = header.started
    scheduler = HistoricalScheduler(initial_clock=start)
    report = DemoReport(header.source, len(trace.records), trace.duration)

    def offset() -> float:
        return (scheduler.now - start).total_seconds()

    def clock(t: float) -> str:
        return (start + timedelta(seconds=t)).strftime("%H:%M:%S")

    lines: list[tuple[float, int, str]] = []

    def say(app: str, text: str) -> None:
        lines.append((offset(), len(lines), f"{clock(offset())}  {app:<10} {text}"))

    deployment_streams = {
        s for s, spec in header.streams.items() if spec.get("resource") == "deployments"
    }
    pod_streams = {s for s, spec in header.streams.items() if spec.get("resource") == "pods"}
    ticket_streams = {s for s, spec in header.streams.items() if spec.get("kind") == "tickets"}

    events: reactivex.Observable[TraceEvent] = trace.replay(scheduler=scheduler).pipe(ops.share())

    def watch_of(streams: set[str]) -> reactivex.Observable[WatchEvent]:
        def pick(event: TraceEvent) -> bool:
            return isinstance(event, WatchEvent) and event.stream in streams

        return events.pipe(ops.filter(pick), ops.map(_as_watch_event))

    deployment_events = watch_of(deployment_streams)
    pod_events = watch_of(pod_streams)

    # The informer caches: every pod and Deployment, indexed by app.
    deployments = Store()
    pods = Store(indexers={"app": label_indexer(APP_LABEL)})
    deployment_events.subscribe(deployments)
    pod_events.subscribe(pods)

    # Apps: labelled Deployments, reported when their k8sTicket settings change.
    def on_app(event: WatchEvent) -> None:
        if event.type == "SYNCED":
            return
        name = event.meta.annotations.get(ANNOTATION_PREFIX + "app.name", event.meta.name)
        if event.type == "DELETED":
            say(name, "app removed")
            report.apps.pop(name, None)
            return
        settings = _settings(event)
        before = report.apps.get(name)
        report.apps[name] = settings
        if before is None:
            shown = ", ".join(f"{k} {v}" for k, v in settings.items() if k != "app.name")
            say(name, f"app served: {shown}")
        else:
            changed = [
                f"{k} {before.get(k)} -> {v}" for k, v in settings.items() if before.get(k) != v
            ]
            say(name, "app reconfigured: " + ", ".join(changed))

    deployment_events.pipe(
        filter_labels({TICKET_LABEL: "true"}),
        distinct_until_changed_by(lambda e: tuple(_settings(e).items())),
    ).subscribe(on_app)

    # Pods: one stream per app; report each pod's transitions, sample ready counts per minute.
    latest: dict[str, Mapping[str, WatchEvent]] = {}

    def on_group(group: GroupedObservable[str, WatchEvent]) -> None:
        app = group.key

        def on_pod(event: WatchEvent) -> None:
            state = _pod_state(event)
            scaled = " (autoscaled)" if event.meta.labels.get(AUTOSCALED_LABEL) == "true" else ""
            report.pod_changes.append((offset(), app, event.meta.name, state))
            say(app, f"pod {event.meta.name:<38} {state}{scaled}")

        group.pipe(distinct_until_changed_by(_pod_state)).subscribe(on_pod)
        # The last pod's deletion empties the snapshot before the group completes.
        group.pipe(latest_state_per_key()).subscribe(
            lambda snapshot: latest.__setitem__(app, snapshot)
        )

    pod_events.pipe(filter_labels(APP_LABEL), group_by_key(_app_of)).subscribe(on_group)

    def sample(_: int = 0) -> None:
        counts = {
            app: (sum(1 for e in snapshot.values() if _pod_state(e) == "Ready"), len(snapshot))
            for app, snapshot in sorted(latest.items())
        }
        report.ready_over_time.append((offset(), counts))

    # 45 s past each minute: off the instants the sample trace's records fall on (whole tens of
    # seconds), where the order of a sample and a record would depend on scheduling order.
    samples = int((trace.duration - SAMPLE_OFFSET) // SAMPLE_EVERY) + 1
    reactivex.timer(SAMPLE_OFFSET, SAMPLE_EVERY, scheduler=scheduler).pipe(
        ops.take(max(samples, 1))
    ).subscribe(sample)

    # Tickets: the proxy's events per app.
    def on_ticket(event: TraceEvent) -> None:
        assert isinstance(event, StreamEvent)
        app = header.streams[event.stream].get("app", event.stream)
        tally = report.tickets.setdefault(str(app), TicketTally())
        if event.type == "requested":
            tally.requested += 1
        elif event.type == "issued":
            tally.issued += 1
            tally.current += 1
            tally.peak = max(tally.peak, tally.current)
        elif event.type == "released":
            tally.current -= 1
        elif event.type == "queued":
            tally.queued += 1
        elif event.type == "left":
            tally.left_queue += 1

    def is_ticket(event: TraceEvent) -> bool:
        return event.stream in ticket_streams

    events.pipe(ops.filter(is_ticket)).subscribe(on_ticket)

    scheduler.start()

    for key in pods.index_values("app"):
        report.final_pods[key] = sorted(
            (obj.meta.name, _state(obj.meta, obj.object)) for obj in pods.by_index("app", key)
        )
    _print(report, header.started, sorted(lines), trace, deployments, pods, out)
    return report


def _print(
    report: DemoReport,
    started: datetime,
    lines: list[tuple[float, int, str]],
    trace: Trace,
    deployments: Store,
    pods: Store,
    out: TextIO,
) -> None:
    def write(text: str = "") -> None:
        print(text, file=out)

    minutes, seconds = divmod(int(report.duration), 60)
    write(f"rxkube demo: replaying a trace recorded from {report.source or 'an unnamed source'}")
    write(
        f"  started {started.isoformat()}, {report.records} records over {minutes}:{seconds:02d},"
        " replayed in virtual time"
    )
    counts: dict[str, int] = defaultdict(int)
    for record in trace.records:
        counts[record.event.stream] += 1
    for stream, count in sorted(counts.items()):
        write(f"  {count:5d} events  {stream}")
    write()
    write("what happened (apps, and each pod's phase, readiness and termination):")
    for _, _, text in lines:
        write("  " + text)
    write()
    apps = sorted({app for _, sample in report.ready_over_time for app in sample})
    write("ready pods / pods per app, sampled once a minute:")
    write("  time       " + "".join(f"{app:>12}" for app in apps))
    for t, sample in report.ready_over_time:
        at = (started + timedelta(seconds=t)).strftime("%H:%M:%S")
        cells = "".join(f"{'{}/{}'.format(*sample.get(app, (0, 0))):>12}" for app in apps)
        write(f"  {at}  {cells}")
    write()
    write("tickets per app (from the proxy's ticket stream):")
    for app, tally in sorted(report.tickets.items()):
        write(
            f"  {app:<10} {tally.requested} requests, {tally.issued} tickets issued, at most "
            f"{tally.peak} users at once, {tally.queued} waited, {tally.left_queue} left the queue"
        )
    write()
    write(
        f"final state (Store): {len(deployments)} deployments, {len(pods)} pods, "
        f"resourceVersion {pods.resource_version}"
    )
    for app, members in sorted(report.final_pods.items()):
        settings = report.apps.get(app, {})
        shown = ", ".join(f"{k} {v}" for k, v in settings.items() if k != "app.name")
        write(f"  {app} ({shown}):")
        for name, state in members:
            write(f"    {name:<40} {state}")
