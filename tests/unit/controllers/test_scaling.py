"""The autoscaler operator in virtual time: coalescing, exact timers, synced views, leadership,
back-off, draining and removal (rules W1-W5 of `_scaling.py`)."""

from __future__ import annotations

from typing import Any

import pytest
from reactivex.subject import Subject
from reactivex.testing import TestScheduler

from rxkube.controllers import (
    APP_LABEL,
    AUTOSCALED_LABEL,
    TEMPLATE_HASH_LABEL,
    AppSpec,
    AutoscalerInput,
    AutoscalerSettings,
    CreatePod,
    DeletePod,
    LeaderChanged,
    PodCommandFailed,
    ProxyApp,
    ScaleStep,
    autoscaler,
    parse_app_spec,
)
from rxkube.proxy import (
    AppConfig,
    ServerChanged,
    ServerRef,
    ServerSpec,
    TicketIssued,
    TicketReleased,
)
from rxkube.streams import EventType, WatchEvent

P = "ipb-halle.de/k8sticket.deployment."


def make_spec(**annotations: str) -> AppSpec:
    parsed = parse_app_spec(
        {
            "metadata": {
                "name": "nb",
                "namespace": "lab",
                "uid": "dep-uid",
                "annotations": {P + k.replace("_", "."): v for k, v in annotations.items()},
            },
            "spec": {
                "template": {
                    "metadata": {"labels": {APP_LABEL: "nb"}},
                    "spec": {"containers": [{"name": "nb", "image": "jupyter"}]},
                }
            },
        }
    )
    assert isinstance(parsed, AppSpec)
    return parsed


def proxy_app(spec: AppSpec, *servers: tuple[str, bool], draining: bool = False) -> ProxyApp:
    specs = tuple(ServerSpec(ServerRef(n, f"uid-{n}"), "10.0.0.1:80", ready=r) for n, r in servers)
    config = AppConfig(spec.app, tickets_max=spec.tickets_max)
    return ProxyApp(spec.app, config, specs, spec, draining=draining)


def pod(kind: EventType, name: str, spec: AppSpec, *, ready: bool = True) -> WatchEvent:
    return WatchEvent(
        kind,
        {
            "metadata": {
                "name": name,
                "namespace": "lab",
                "uid": f"uid-{name}",
                "labels": {
                    APP_LABEL: spec.app,
                    AUTOSCALED_LABEL: "true",
                    TEMPLATE_HASH_LABEL: spec.template_hash or "",
                },
            },
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.2",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        },
        resource_version="1",
        stream="pods",
    )


SYNCED = WatchEvent("SYNCED", resource_version="1", stream="pods")


def server(kind: str, name: str, t: float, *, ready: bool = True) -> ServerChanged:
    ref = None if kind.startswith("app-") else ServerRef(name, f"uid-{name}")
    return ServerChanged("nb", ref, kind, ready, 1, t)  # type: ignore[arg-type]


class Harness:
    """Inputs at exact virtual times; the steps with their times."""

    def __init__(self, *, leader: bool = True, settings: AutoscalerSettings | None = None) -> None:
        self.scheduler = TestScheduler()
        self.inputs: Subject[AutoscalerInput] = Subject()
        self.steps: list[ScaleStep] = []
        self.inputs.pipe(
            autoscaler(
                self.scheduler,
                settings=settings,
                new_suffix=lambda app: iter(f"p{i}" for i in range(100)).__next__,
                leader=leader,
            )
        ).subscribe(self.steps.append)

    def at(self, t: float, *items: AutoscalerInput) -> None:
        def feed(*_: Any) -> None:
            for item in items:
                self.inputs.on_next(item)

        self.scheduler.schedule_absolute(t, feed)

    def run(self, until: float = 50.0) -> list[tuple[float, list[str]]]:
        """Steps until `until` (creates unseen are re-sent after 60 s, deletes after 30 s:
        nothing here answers them, so tests look at a window)."""
        self.scheduler.advance_to(until)
        return [(s.time - self.t0, [describe(c) for c in s.commands]) for s in self.steps]

    @property
    def t0(self) -> float:
        return self.scheduler.to_datetime(0).timestamp()


def describe(command: CreatePod | DeletePod) -> str:
    if isinstance(command, CreatePod):
        return f"create {command.name}"
    return f"delete {command.name} ({command.reason})"


SPEC = make_spec(tickets_spare="2", pods_max="3", pods_cooldown="60")


def test_nothing_is_decided_before_the_pods_have_listed_and_the_table_has_the_app() -> None:
    h = Harness()
    h.at(10, proxy_app(SPEC))
    h.at(11, SYNCED)
    h.at(12, server("app-added", "", 12))
    assert h.run() == [(12.0, ["create nb-rxkube-p0", "create nb-rxkube-p1"])]


def test_a_step_waits_until_the_table_has_the_plans_servers() -> None:
    h = Harness()
    h.at(10, proxy_app(SPEC, ("own", True)), SYNCED, server("app-added", "", 10))
    # The table has the app but not yet its server: creating now would be for nothing.
    h.at(15, server("added", "own", 15))
    assert h.run() == [(15.0, ["create nb-rxkube-p0"])]


def test_a_burst_of_ticket_events_coalesces_into_one_step() -> None:
    spec = make_spec(tickets_max="5", tickets_spare="1", pods_max="3")
    h = Harness()
    h.at(10, proxy_app(spec, ("own", True)), SYNCED, server("app-added", "", 10))
    h.at(10, ServerChanged("nb", ServerRef("own", "uid-own"), "added", True, 5, 10))
    own = ServerRef("own", "uid-own")
    h.at(20, *(TicketIssued("nb", f"u{i}", own, 20, 0.0) for i in range(5)))
    steps = h.run()
    assert steps == [(10.0, []), (20.0, ["create nb-rxkube-p0"])]
    assert h.steps[-1].users == 5


def test_an_idle_pod_goes_exactly_when_its_cooldown_ends() -> None:
    spec = make_spec(tickets_spare="0", pods_max="3", pods_cooldown="60")
    h = Harness()
    h.at(10, proxy_app(spec), SYNCED, server("app-added", "", 10))
    h.at(30, pod("ADDED", "nb-rxkube-a", spec), proxy_app(spec, ("nb-rxkube-a", True)))
    h.at(30, server("added", "nb-rxkube-a", 30))
    steps = h.run(until=100)
    assert steps[-1] == (90.0, ["delete nb-rxkube-a (idle)"])


def test_users_postpone_the_cooldown_from_their_last_release() -> None:
    spec = make_spec(tickets_spare="0", pods_max="3", pods_cooldown="60")
    h = Harness()
    a = ServerRef("nb-rxkube-a", "uid-nb-rxkube-a")
    h.at(10, proxy_app(spec), SYNCED, server("app-added", "", 10))
    h.at(30, pod("ADDED", "nb-rxkube-a", spec), proxy_app(spec, ("nb-rxkube-a", True)))
    h.at(30, server("added", "nb-rxkube-a", 30))
    h.at(50, TicketIssued("nb", "u1", a, 50, 0.0))
    h.at(100, TicketReleased("nb", "u1", a, 100, "released"))
    assert h.run(until=170)[-1] == (160.0, ["delete nb-rxkube-a (idle)"])


def test_a_failed_create_backs_off_then_is_sent_again() -> None:
    settings = AutoscalerSettings(backoff_first=2.0)
    spec = make_spec(tickets_spare="1", pods_max="3")
    h = Harness(settings=settings)
    h.at(10, proxy_app(spec), SYNCED, server("app-added", "", 10))
    failed = CreatePod("lab", "nb-rxkube-p0", "nb", {})
    h.at(11, PodCommandFailed(failed, "Forbidden"))
    steps = h.run()
    commands = [(t, c) for t, c in steps if c]
    assert commands == [(10.0, ["create nb-rxkube-p0"]), (13.0, ["create nb-rxkube-p1"])]


def test_only_the_leader_steps_and_a_new_leader_forgets_old_expectations() -> None:
    h = Harness(leader=False)
    h.at(10, proxy_app(SPEC), SYNCED, server("app-added", "", 10))
    h.at(50, LeaderChanged(True))
    h.at(60, LeaderChanged(False))
    h.at(70, LeaderChanged(True))
    steps = h.run(until=100)
    # At 50 it creates two; at 70 it leads again and no longer counts the creates of its
    # earlier term (another leader may have acted): they are created afresh.
    assert steps == [
        (50.0, ["create nb-rxkube-p0", "create nb-rxkube-p1"]),
        (70.0, ["create nb-rxkube-p2", "create nb-rxkube-p3"]),
    ]


def test_a_draining_app_creates_nothing_and_lets_idle_pods_go_at_once() -> None:
    spec = make_spec(tickets_spare="2", pods_max="3", pods_cooldown="1h")
    h = Harness()
    a = ServerRef("nb-rxkube-a", "uid-nb-rxkube-a")
    events: list[AutoscalerInput] = [
        pod("ADDED", "nb-rxkube-a", spec),
        pod("ADDED", "nb-rxkube-b", spec),
        SYNCED,
        proxy_app(spec, ("nb-rxkube-a", True), ("nb-rxkube-b", True)),
        server("app-added", "", 10),
        server("added", "nb-rxkube-a", 10),
        server("added", "nb-rxkube-b", 10),
        TicketIssued("nb", "u1", a, 10, 0.0),
    ]
    h.at(10, *events)
    h.at(
        20,
        proxy_app(spec, ("nb-rxkube-a", False), ("nb-rxkube-b", False), draining=True),
        server("updated", "nb-rxkube-a", 20, ready=False),
        server("updated", "nb-rxkube-b", 20, ready=False),
    )
    h.at(30, TicketReleased("nb", "u1", a, 30, "released"))
    steps = h.run(until=45)
    assert [(t, c) for t, c in steps if c] == [
        (10.0, ["create nb-rxkube-p0"]),  # 1 free + 0 starting < spare 2
        (20.0, ["delete nb-rxkube-b (idle)"]),
        (30.0, ["delete nb-rxkube-a (idle)"]),
    ]


def test_a_removed_app_has_every_autoscaled_pod_deleted_then_is_forgotten() -> None:
    spec = make_spec(tickets_spare="1", pods_max="3")
    settings = AutoscalerSettings(delete_retry=5.0)
    h = Harness(settings=settings)
    h.at(
        10,
        pod("ADDED", "nb-rxkube-a", spec),
        pod("ADDED", "nb-rxkube-b", spec, ready=False),
        SYNCED,
        proxy_app(spec, ("nb-rxkube-a", True)),
        server("app-added", "", 10),
        server("added", "nb-rxkube-a", 10),
    )
    h.at(20, ProxyApp("nb", None), server("app-removed", "", 20))
    h.at(22, pod("DELETED", "nb-rxkube-a", spec))  # b's delete was lost: sent again at 25
    h.at(26, pod("DELETED", "nb-rxkube-b", spec))
    h.at(30, pod("ADDED", "nb-rxkube-c", spec))  # nothing of the app is looked after now
    steps = h.run()
    assert [(t, c) for t, c in steps if c] == [
        (20.0, ["delete nb-rxkube-a (app removed)", "delete nb-rxkube-b (app removed)"]),
        (25.0, ["delete nb-rxkube-b (app removed)"]),
    ]
    assert h.steps[-1].time - h.t0 == 26.0
    assert h.steps[-1].decision is None


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="delete_retry must be > 0"):
        AutoscalerSettings(delete_retry=0)
