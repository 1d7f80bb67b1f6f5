"""The demo trace shipped in the package (`demo_trace_path()`, bench/make_demo_trace.py)."""

from __future__ import annotations

from rxkube.controllers import replay_trace
from rxkube.streams import StreamEvent, WatchEvent, demo_trace_path, load_trace


def test_it_is_the_runners_recording_of_the_demo() -> None:
    path = demo_trace_path()
    assert path.stat().st_size < 300 * 1024
    trace = load_trace(path)
    assert trace.header.source.startswith("rxkube demo (seed 1, 40 users")
    assert list(trace.header.streams) == [
        "deployments.apps/default?meta",
        "deployments.apps/default?labelSelector=ipb-halle.de%2Fk8sticket%3Dtrue",
        "pods/default?labelSelector=ipb-halle.de%2Fk8sticket.deployment.app.name",
        "tickets/default",
        "autoscaler/default",
    ]
    kinds = {r.event.type for r in trace.records if isinstance(r.event, StreamEvent)}
    assert {"issued", "queued", "released", "create", "delete"} <= kinds
    deployments = {
        r.event.meta.name
        for r in trace.records
        if isinstance(r.event, WatchEvent) and r.event.type == "ADDED"
        if r.event.stream.startswith("deployments")
    }
    assert deployments == {"notebook", "chat"}


def test_a_plain_replay_makes_the_recorded_decisions_every_run() -> None:
    first = replay_trace(demo_trace_path())
    assert first.mode == "recorded"
    assert first.matches_recording is True
    kinds = [kind for _, _, kind, _ in first.commands]
    assert kinds.count("create") == kinds.count("delete") > 0  # up, then all the way down
    total = first.summary().total
    assert total.waited > 0  # the waiting room was used
    assert replay_trace(demo_trace_path()) == first


def test_what_ifs_change_the_outcome() -> None:
    recorded = replay_trace(demo_trace_path(), mode="simulated").summary().total
    more = replay_trace(demo_trace_path(), overrides=["*.pods.max=8", "*.tickets.spare=4"])
    fewer = replay_trace(demo_trace_path(), overrides=["*.pods.max=1"])
    assert more.summary().total.wait_p95 < recorded.wait_p95 < fewer.summary().total.wait_p95
    assert more.summary().total.pod_hours > recorded.pod_hours > fewer.summary().total.pod_hours
