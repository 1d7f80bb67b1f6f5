"""`rxkube demo` (interim): replays a trace through the stream core and reports what it saw."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from reactivex.scheduler import ImmediateScheduler

from rxkube.controllers import main
from rxkube.controllers._demo import run_demo
from rxkube.streams import StreamEvent, WatchEvent, open_trace_writer

APP_LABEL = "ipb-halle.de/k8sticket.deployment.app.name"


def test_the_demo_tells_the_sample_traces_story(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "242 records over 14:30, replayed in virtual time" in out
    assert "gmweb      app served: pods.max 2, port 9001, tickets.max 1" in out
    assert "notebook   app reconfigured: tickets.max 3 -> 4" in out
    assert "pod notebook-autoscaled-rgwfx              Pending (autoscaled)" in out
    assert "pod gmweb-deployment-7d9f8c6b5-d9wfp       deleted" in out
    assert "final state (Store): 2 deployments, 4 pods" in out


def deployment(rv: int, tickets_max: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "lab-deployment",
            "namespace": "lab",
            "resourceVersion": str(rv),
            "labels": {"ipb-halle.de/k8sticket": "true"},
            "annotations": {
                "ipb-halle.de/k8sticket.deployment.app.name": "lab",
                "ipb-halle.de/k8sticket.deployment.tickets.max": tickets_max,
            },
        },
    }


def pod(rv: int, *, phase: str, ready: bool) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "lab-1",
            "namespace": "lab",
            "resourceVersion": str(rv),
            "labels": {APP_LABEL: "lab"},
        },
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_the_report_follows_the_trace_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "small.jsonl"
    deployments, pods, tickets = "deployments.apps/lab", "pods/lab", "tickets/lab"
    records: list[tuple[float, WatchEvent | StreamEvent]] = [
        (0, WatchEvent("ADDED", deployment(1, "2"), resource_version="1", stream=deployments)),
        (0, WatchEvent("SYNCED", resource_version="1", stream=deployments)),
        (0, WatchEvent("SYNCED", resource_version="1", stream=pods)),
        (
            10,
            WatchEvent(
                "ADDED", pod(2, phase="Pending", ready=False), resource_version="2", stream=pods
            ),
        ),
        (
            20,
            WatchEvent(
                "MODIFIED", pod(3, phase="Running", ready=True), resource_version="3", stream=pods
            ),
        ),
        (25, StreamEvent(tickets, "requested", {"user": "u1"})),
        (25, StreamEvent(tickets, "issued", {"user": "u1", "server": "lab/lab-1"})),
        (30, WatchEvent("MODIFIED", deployment(4, "5"), resource_version="4", stream=deployments)),
        (70, StreamEvent(tickets, "released", {"user": "u1", "server": "lab/lab-1"})),
        (
            80,
            WatchEvent(
                "DELETED", pod(5, phase="Running", ready=True), resource_version="5", stream=pods
            ),
        ),
    ]
    with open_trace_writer(
        path,
        streams={
            deployments: {"resource": "deployments", "namespace": "lab"},
            pods: {"resource": "pods", "namespace": "lab"},
            tickets: {"kind": "tickets", "app": "lab"},
        },
        scheduler=ImmediateScheduler(),
        source="test",
        started=datetime(2024, 1, 1, tzinfo=UTC),
    ) as writer:
        for t, event in records:
            writer.write(event, t=t)

    out = io.StringIO()
    report = run_demo(path, out=out)
    assert report.apps == {"lab": {"app.name": "lab", "tickets.max": "5"}}
    assert report.pod_changes == [
        (10.0, "lab", "lab-1", "Pending"),
        (20.0, "lab", "lab-1", "Ready"),
        (80.0, "lab", "lab-1", "deleted"),
    ]
    assert report.ready_over_time == [(45.0, {"lab": (1, 1)})]
    tally = report.tickets["lab"]
    assert (tally.requested, tally.issued, tally.peak, tally.current) == (1, 1, 1, 0)
    assert report.final_pods == {}
    assert "00:00:30  lab        app reconfigured: tickets.max 2 -> 5" in out.getvalue()


def test_a_bad_trace_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"format": "rxkube-trace", "version": 9}\n', encoding="utf-8")
    assert main(["demo", "--trace", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rxkube demo: error: ")
    assert "line 1: unsupported trace version 9" in err
