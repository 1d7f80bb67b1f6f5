"""Replay and what-if: the pipelines on a trace in virtual time, identical on every run."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex.scheduler import HistoricalScheduler

from rxkube.controllers import (
    APP_LABEL,
    OPT_IN_LABEL,
    AutoscalerSettings,
    Timeline,
    TimelineRow,
    Visit,
    parse_overrides,
    replay_timeline,
    replay_trace,
    visits,
)
from rxkube.streams import (
    ReplayScheduler,
    StreamEvent,
    Trace,
    TraceEvent,
    WatchEvent,
    load_trace,
    open_trace_writer,
    sample_trace_path,
)

P = "ipb-halle.de/k8sticket."
DEPLOYMENTS = "deployments.apps/lab?labelSelector=ipb-halle.de%2Fk8sticket%3Dtrue"
PODS = "pods/lab?labelSelector=ipb-halle.de%2Fk8sticket.deployment.app.name"
TICKETS = "tickets/lab"


def deployment(**annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "lab",
            "namespace": "lab",
            "uid": "dep-uid",
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {OPT_IN_LABEL: "true"},
            "annotations": {P + "deployment." + k: v for k, v in annotations.items()},
        },
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {"labels": {APP_LABEL: "lab"}, "annotations": {P + "pod.port": "80"}},
                "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
            },
        },
    }


def own_pod() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "lab-7d9f-abcde",
            "namespace": "lab",
            "uid": "own-uid",
            "labels": {APP_LABEL: "lab"},
            "annotations": {P + "pod.port": "80"},
        },
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def demand_trace(
    path: Path, users: list[tuple[float, float]], end: float, **annotations: str
) -> Path:
    """A trace of one app with one pod of its own and the given demand (arrival, session):
    what a what-if needs (it simulates the autoscaled pods itself)."""
    records: list[tuple[float, int, TraceEvent]] = []

    def at(t: float, event: TraceEvent) -> None:
        records.append((t, len(records), event))

    at(
        0.0,
        WatchEvent("ADDED", deployment(**annotations), resource_version="1", stream=DEPLOYMENTS),
    )
    at(0.0, WatchEvent("SYNCED", resource_version="1", stream=DEPLOYMENTS))
    at(0.0, WatchEvent("ADDED", own_pod(), resource_version="2", stream=PODS))
    at(0.0, WatchEvent("SYNCED", resource_version="2", stream=PODS))
    for i, (arrival, session) in enumerate(users):
        user = {"app": "lab", "user": f"u{i}", "server": "lab-7d9f-abcde"}
        at(arrival, StreamEvent(TICKETS, "issued", {**user, "waited": 0.0}))
        if arrival + session < end:
            at(arrival + session, StreamEvent(TICKETS, "released", {**user, "reason": "idle"}))
    at(end, WatchEvent("SYNCED", resource_version="3", stream=PODS))
    streams = {
        DEPLOYMENTS: {"resource": "deployments.apps", "namespace": "lab"},
        PODS: {"resource": "pods", "namespace": "lab"},
        TICKETS: {"kind": "tickets", "namespace": "lab"},
    }
    with open_trace_writer(path, streams=streams, scheduler=HistoricalScheduler()) as writer:
        for t, _, event in sorted(records, key=lambda r: (r[0], r[1])):
            writer.write(event, t=t)
    return path


def busy_hour(tmp_path: Path) -> Path:
    # 40 users, one every 30 s, each staying 5 minutes: more than the app's own pod holds.
    users = [(30.0 * i, 300.0) for i in range(40)]
    return demand_trace(
        tmp_path / "busy.jsonl.gz",
        users,
        3600.0,
        **{"tickets.max": "2", "pods.max": "10", "pods.cooldown": "120"},
    )


def test_a_what_if_with_more_spare_tickets_gives_shorter_waits_and_more_pod_hours(
    tmp_path: Path,
) -> None:
    trace = load_trace(busy_hour(tmp_path))
    lean = replay_trace(trace, overrides=["lab.tickets.spare=0"])
    generous = replay_trace(trace, overrides=["*.tickets.spare=4"])
    assert lean.mode == generous.mode == "simulated"
    few, many = lean.summary().total, generous.summary().total
    assert few.tickets == many.tickets == 40  # the same demand, all served
    assert many.wait_p95 < few.wait_p95
    assert many.wait_max < few.wait_max
    assert many.pod_hours > few.pod_hours
    assert few.waited > 0  # with no spare, every user who found the pods full waited
    assert many.peak_pods <= 10  # pods.max holds whatever spare asks


def test_the_same_trace_gives_the_same_timeline_every_run(tmp_path: Path) -> None:
    sample = load_trace(sample_trace_path())
    assert replay_trace(sample) == replay_trace(sample)
    what_if = ["notebook.pods.max=1", "*.pods.cooldown=30s"]
    assert replay_trace(sample, overrides=what_if) == replay_trace(sample, overrides=what_if)
    busy = busy_hour(tmp_path)
    first = replay_trace(busy, overrides=["*.tickets.spare=2"])
    assert first == replay_trace(busy, overrides=["*.tickets.spare=2"])
    assert first.rows  # not vacuous: steps with numbers and commands
    assert first.summary().total.scale_ups > 0


def timeline_on(scheduler: HistoricalScheduler, trace: Trace, overrides: list[str]) -> list[object]:
    out: list[object] = []
    subscription = replay_timeline(trace, overrides=overrides).subscribe(
        out.append, scheduler=scheduler
    )
    scheduler.advance_to(trace.header.started + timedelta(seconds=trace.duration))
    subscription.dispose()
    return out


@pytest.mark.parametrize("overrides", [[], ["*.pods.cooldown=30s", "notebook.tickets.spare=2"]])
def test_the_fast_replay_scheduler_gives_the_timeline_of_a_historical_one(
    overrides: list[str],
) -> None:
    sample = load_trace(sample_trace_path())
    start = sample.header.started
    fast = timeline_on(ReplayScheduler(start), sample, overrides)
    assert fast  # not vacuous
    assert fast == timeline_on(HistoricalScheduler(start), sample, overrides)


def test_a_recorded_what_if_replays_to_the_same_decisions(tmp_path: Path) -> None:
    out = tmp_path / "what-if.jsonl.gz"
    simulated = replay_trace(busy_hour(tmp_path), overrides=["*.tickets.spare=1"], record=out)
    plain = replay_trace(out)
    assert plain.mode == "recorded"
    assert plain.matches_recording is True
    assert plain.commands == simulated.commands
    assert [(s.t, s.user, s.waited) for s in plain.served] == [
        (s.t, s.user, s.waited) for s in simulated.served
    ]


def test_a_plain_replay_of_a_foreign_trace_reports_what_it_would_do() -> None:
    timeline = replay_trace(sample_trace_path())
    assert timeline.mode == "recorded"
    assert timeline.matches_recording is None  # the trace recorded no autoscaler commands
    summary = timeline.summary()
    assert [a.app for a in summary.apps] == ["gmweb", "notebook"]
    assert summary.total.tickets == 35
    assert "peak users" in summary.table()


def test_overrides_are_checked() -> None:
    assert parse_overrides(["nb.tickets.spare=4", "*.pods.cooldown=5m"]) == {
        "nb": {"tickets.spare": "4"},
        "*": {"pods.cooldown": "5m"},
    }
    with pytest.raises(ValueError, match=re.escape("expected APP.SETTING=VALUE")):
        parse_overrides(["tickets.spare"])
    with pytest.raises(
        ValueError, match=re.escape("unknown setting 'pods.min'; one of tickets.max")
    ):
        parse_overrides(["nb.pods.min=1"])
    with pytest.raises(ValueError, match=re.escape("nb.tickets.max=0: ")):
        parse_overrides(["nb.tickets.max=0"])
    with pytest.raises(ValueError, match=re.escape("pods.cooldown=soon")):
        parse_overrides({"*": {"pods.cooldown": "soon"}})


def test_a_trace_that_is_not_the_controllers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    streams = {"configmaps/lab": {"resource": "configmaps"}}
    with open_trace_writer(path, streams=streams, scheduler=HistoricalScheduler()):
        pass
    with pytest.raises(ValueError, match="no Deployment or no pod watch stream"):
        replay_trace(path)


def test_the_timeline_as_csv_and_json_lines(tmp_path: Path) -> None:
    timeline = replay_trace(busy_hour(tmp_path), overrides=["*.tickets.spare=1"])
    out = io.StringIO()
    timeline.to_csv(out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("t,app,users,free_tickets,waiting,servers,pods_starting")
    assert len(lines) == len(timeline.rows) + 1
    jsonl = io.StringIO()
    timeline.to_jsonl(jsonl)
    records = [orjson.loads(line) for line in jsonl.getvalue().splitlines()]
    kinds = {r["kind"] for r in records}
    assert kinds == {"step", "served"}
    assert [r["t"] for r in records] == sorted(r["t"] for r in records)
    written = tmp_path / "timeline.csv"
    timeline.to_csv(written)
    assert written.read_text().splitlines() == lines


def test_progress_is_reported(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    timeline = replay_trace(
        busy_hour(tmp_path), progress=lambda done, total: seen.append((done, total))
    )
    assert seen[-1] == (timeline.events, timeline.events)


def test_the_demand_of_a_trace() -> None:
    sample = load_trace(sample_trace_path())
    streams = {"tickets/gmweb": "gmweb", "tickets/notebook": "notebook"}
    found = visits(sample.records, streams, end=sample.duration)
    first = found[0]
    assert first == Visit("gmweb", "user-001", 6.289, pytest.approx(38.543), None)  # type: ignore[arg-type]
    gave_up = [v for v in found if v.session is None]
    assert gave_up
    assert all(v.patience is not None and v.patience > 0 for v in gave_up)
    assert sum(1 for v in found if v.session is not None) >= 35


def test_rows_count_autoscaled_pods() -> None:
    row = TimelineRow(0.0, "a", 1, 1, 0, 1, 1, 2, 1, 0, 0, "")
    assert row.autoscaled == 4
    assert Timeline("recorded", 0.0, (), (), 0).summary().total.pod_hours == 0.0


@settings(max_examples=25, deadline=None)
@given(
    users=st.lists(st.tuples(st.floats(0, 1800), st.floats(1, 900)), min_size=1, max_size=40),
    spare=st.integers(0, 3),
    tickets_max=st.integers(1, 3),
    pods_max=st.integers(0, 6),
    cooldown=st.sampled_from(["1s", "30s", "5m"]),
)
def test_the_step_shortcut_never_changes_a_decision(
    tmp_path_factory: pytest.TempPathFactory,
    users: list[tuple[float, float]],
    spare: int,
    tickets_max: int,
    pods_max: int,
    cooldown: str,
) -> None:
    path = demand_trace(
        tmp_path_factory.mktemp("w6") / "demand.jsonl",
        sorted(users),
        2400.0,
        **{"tickets.max": str(tickets_max), "pods.max": str(pods_max)},
    )
    overrides = [f"*.tickets.spare={spare}", f"*.pods.cooldown={cooldown}"]
    fast = replay_trace(path, overrides=overrides)
    full = replay_trace(path, overrides=overrides, settings=AutoscalerSettings(shortcut=False))
    assert fast.commands == full.commands
    assert fast.served == full.served
    assert fast.left == full.left
    # The rows of a light step carry the same numbers a full step would have.
    assert [r for r in fast.rows if r.commands] == [r for r in full.rows if r.commands]
    numbers = [(r.t, r.users, r.free_tickets, r.waiting) for r in fast.rows]
    assert numbers == [(r.t, r.users, r.free_tickets, r.waiting) for r in full.rows]
