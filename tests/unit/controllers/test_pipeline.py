"""The whole ticket pipeline in virtual time, as a replay runs it: same inputs, same outputs."""

from __future__ import annotations

from typing import Any

from reactivex import Observable
from reactivex.scheduler import HistoricalScheduler
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.recorded import Recorded

from rxkube.controllers import AppNotice, DeploymentRef, PlanOutput, ProxyApp, ticket_pipeline
from rxkube.proxy import AppLoad, Change, LoadChanged
from rxkube.streams import DryRunEventSink, EventOutcome, EventPosted, EventType, WatchEvent

on_next = ReactiveTest.on_next
OPT_IN = "ipb-halle.de/k8sticket"
APP = "ipb-halle.de/k8sticket.deployment.app.name"
P = "ipb-halle.de/k8sticket.deployment."


def meta(
    name: str, *, app: bool = True, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "lab",
            "uid": f"uid-{name}",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {OPT_IN: "true" if app else "false"},
            "annotations": {P + "port": "none", **(annotations or {})},
        }
    }


def full(name: str) -> dict[str, Any]:
    return {
        **meta(name),
        "spec": {"template": {"metadata": {"labels": {APP: name}}, "spec": {"containers": []}}},
    }


def pod(name: str, app: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "lab", "uid": f"uid-{name}", "labels": {APP: app}},
        "status": {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def ev(kind: EventType, obj: dict[str, Any] | None = None) -> WatchEvent:
    return WatchEvent(kind, obj, resource_version="1", stream="s")


def load(app: str, tickets: int) -> LoadChanged:
    return LoadChanged(AppLoad(app, 1, 1, 1, tickets, 1 - tickets, 0, 0, 0.0))


def replay() -> tuple[list[tuple[float, str]], list[tuple[str, str, int]]]:
    scheduler = TestScheduler()
    metadata: Observable[WatchEvent] = scheduler.create_hot_observable(
        on_next(210, ev("ADDED", meta("lab", annotations={"rxkube.io/drain-deadline": "100"}))),
        on_next(211, ev("ADDED", meta("bad", annotations={P + "tickets.max": "0"}))),
        on_next(212, ev("SYNCED")),
        on_next(300, ev("MODIFIED", meta("lab", app=False))),
    )
    deployments: Observable[WatchEvent] = scheduler.create_hot_observable(
        on_next(205, ev("ADDED", full("lab"))),
        on_next(206, ev("ADDED", full("bad"))),
        on_next(215, ev("SYNCED")),
    )
    pods: Observable[WatchEvent] = scheduler.create_hot_observable(
        on_next(201, ev("ADDED", pod("lab-1", "lab"))),
        on_next(202, ev("SYNCED")),
    )
    loads_messages: list[Recorded[Change]] = [on_next(250, load("lab", 1))]
    loads: Observable[Change] = scheduler.create_hot_observable(loads_messages)
    pipeline = ticket_pipeline(
        deployment_metadata=metadata,
        deployments=deployments,
        pods=pods,
        loads=loads,
        scheduler=scheduler,
    )
    outputs: list[tuple[float, str]] = []
    sink = DryRunEventSink(scheduler)

    def record(output: PlanOutput) -> None:
        if isinstance(output, ProxyApp):
            ready = "".join("r" if s.ready else "d" for s in output.servers)
            text = (
                "absent" if output.config is None else ("draining" if output.draining else "served")
            )
            outputs.append((scheduler.clock, f"{text}:{output.app}[{ready}]"))
        else:
            assert isinstance(output, AppNotice)
            outputs.append((scheduler.clock, f"{output.reason}:{output.application}"))

    pipeline.plan.subscribe(record)
    pipeline.events.subscribe(sink)
    scheduler.schedule_absolute(200, lambda *_: pipeline.connect())
    scheduler.start()
    events = [(e["involvedObject"]["name"], e["reason"], e["count"]) for e in sink.events]
    return outputs, events


def test_the_pipeline_in_virtual_time_serves_drains_and_reports() -> None:
    outputs, events = replay()
    assert outputs == [
        (215.0, "AppServed:lab"),
        (215.0, "served:lab[r]"),  # the pod listed before its Deployment
        (300.0, "AppWithdrawn:lab"),
        (300.0, "draining:lab[d]"),
        (400.0, "AppRemoved:lab"),  # the drain deadline, 100 s later, in virtual time
        (400.0, "absent:lab[]"),
    ]
    assert events == [
        ("bad", "InvalidConfiguration", 1),
        ("lab", "AppServed", 1),
        ("lab", "AppWithdrawn", 1),
        ("lab", "AppRemoved", 1),
    ]


def test_a_replay_gives_the_same_outputs_every_run() -> None:
    assert replay() == replay()


def test_connect_subscribes_synchronously_whatever_the_timers_scheduler() -> None:
    # Regression: handing the timers' scheduler down made `merge` subscribe to its inputs only
    # on that scheduler's next turn, so what hot inputs emitted meanwhile was lost.
    scheduler = HistoricalScheduler()  # never advanced here
    metadata: Subject[WatchEvent] = Subject()
    deployments: Subject[WatchEvent] = Subject()
    pods: Subject[WatchEvent] = Subject()
    loads: Subject[Change] = Subject()
    pipeline = ticket_pipeline(
        deployment_metadata=metadata,
        deployments=deployments,
        pods=pods,
        loads=loads,
        scheduler=scheduler,
    )
    outputs: list[PlanOutput] = []
    pipeline.plan.subscribe(outputs.append)
    pipeline.connect()
    pods.on_next(ev("ADDED", pod("lab-1", "lab")))
    metadata.on_next(ev("ADDED", meta("lab")))
    deployments.on_next(ev("ADDED", full("lab")))
    metadata.on_next(ev("SYNCED"))
    deployments.on_next(ev("SYNCED"))
    served = [o for o in outputs if isinstance(o, ProxyApp)]
    assert [(o.app, len(o.servers)) for o in served] == [("lab", 1)]


def test_resync_posts_what_still_holds_and_nothing_that_was_fixed() -> None:
    """A replica that starts leading resyncs: the Events of every problem and warning that
    holds then (Deployments, pods, routing fallbacks, the caller's own), none that was fixed;
    what was never posted before is created, what was is counted up (the sink's dedup)."""
    scheduler = TestScheduler()
    hosted = {"rxkube.io/routing": "host", "rxkube.io/domain": "apps.example.org"}
    two_wrongs = {P + "tickets.max": "0", P + "pods.max": "many"}
    metadata: Observable[WatchEvent] = scheduler.create_hot_observable(
        on_next(210, ev("ADDED", meta("bad", annotations=two_wrongs))),
        on_next(211, ev("ADDED", meta("lab", annotations=hosted))),
        on_next(212, ev("SYNCED")),
        on_next(300, ev("MODIFIED", meta("bad", annotations={P + "pods.max": "many"}))),
        on_next(400, ev("MODIFIED", meta("bad"))),
    )
    deployments: Observable[WatchEvent] = scheduler.create_hot_observable(
        on_next(205, ev("ADDED", full("bad"))),
        on_next(206, ev("ADDED", full("lab"))),
        on_next(215, ev("SYNCED")),
    )
    bad_pod = pod("lab-1", "lab")
    bad_pod["metadata"]["annotations"] = {"ipb-halle.de/k8sticket.pod.port": "eighty"}
    pods: Observable[WatchEvent] = scheduler.create_hot_observable(
        on_next(201, ev("ADDED", bad_pod)),
        on_next(202, ev("SYNCED")),
        on_next(350, ev("DELETED", bad_pod)),
    )
    resync: Observable[bool] = scheduler.create_hot_observable(
        on_next(200, True),  # leading from the start: nothing is known yet
        on_next(250, True),
        on_next(320, True),
        on_next(450, True),
    )
    loads: Observable[Change] = scheduler.create_hot_observable([])
    pipeline = ticket_pipeline(
        deployment_metadata=metadata,
        deployments=deployments,
        pods=pods,
        loads=loads,
        scheduler=scheduler,
        domain="other.org",
        resync=resync,
    )
    # The caller's own view (the runner's: own ports it cannot bind).
    mine = AppNotice(DeploymentRef("lab", "lab", "uid-lab"), "lab", "PortUnavailable", "taken")
    held: list[AppNotice] = [mine]
    pipeline.outstanding.add(lambda: held)
    sink = DryRunEventSink(scheduler)
    posted: list[tuple[float, str, str, str, int]] = []

    def record(outcome: EventOutcome) -> None:
        assert isinstance(outcome, EventPosted)
        command = outcome.command
        text = command.message.split(";")[0].split(":")[0][:40]
        name, count = command.regarding.name, outcome.count
        posted.append((scheduler.clock, name, command.reason, text, count))

    sink.outcomes.subscribe(record)
    pipeline.events.subscribe(sink)
    scheduler.schedule_absolute(200, lambda *_: pipeline.connect())
    scheduler.schedule_absolute(330, lambda *_: held.clear())
    scheduler.start()
    tickets = "ipb-halle.de/k8sticket.deployment.ticke"
    pods_max = "ipb-halle.de/k8sticket.deployment.pods."
    pod_port = "ipb-halle.de/k8sticket.pod.port='eighty"
    # At 215 the complete lists: each problem once, as found; then per resync what holds.
    tickets = "ipb-halle.de/k8sticket.deployment.ticket"
    pods_max = "ipb-halle.de/k8sticket.deployment.pods.m"
    pod_port = "ipb-halle.de/k8sticket.pod.port='eighty'"
    fallback = "host routing at lab.apps.example.org is "
    # Leading from the start (200): only the caller's view holds anything yet; every problem
    # is posted as found (201, 215); each later resync posts what holds, in the stages' order
    # (Deployments, pods, the plan, the caller's), counting up what was posted before.
    assert posted == [
        (200.0, "lab", "PortUnavailable", "taken", 1),
        (201.0, "lab-1", "InvalidConfiguration", pod_port, 1),
        (215.0, "bad", "InvalidConfiguration", tickets, 1),
        (215.0, "bad", "InvalidConfiguration", pods_max, 1),
        (215.0, "lab", "RoutingFallback", fallback, 1),
        (215.0, "lab", "AppServed", "serving app 'lab' at /lab/", 1),
        (250.0, "bad", "InvalidConfiguration", tickets, 2),
        (250.0, "bad", "InvalidConfiguration", pods_max, 2),
        (250.0, "lab-1", "InvalidConfiguration", pod_port, 2),
        (250.0, "lab", "RoutingFallback", fallback, 2),
        (250.0, "lab", "PortUnavailable", "taken", 2),
        (320.0, "bad", "InvalidConfiguration", pods_max, 3),  # tickets.max fixed at 300
        (320.0, "lab-1", "InvalidConfiguration", pod_port, 3),
        (320.0, "lab", "RoutingFallback", fallback, 3),
        (320.0, "lab", "PortUnavailable", "taken", 3),
        (400.0, "bad", "ConfigurationResolved", "the configuration problems reported befo", 1),
        (400.0, "bad", "AppServed", "serving app 'bad' at /bad/", 1),
        # The pod was deleted at 350, `bad` fixed at 400, the caller's view emptied at 330.
        (450.0, "lab", "RoutingFallback", fallback, 4),
    ]
