"""serve_plan in virtual time: live changes, moves, drains with deadlines, routing fallback."""

from __future__ import annotations

from typing import Any

from reactivex import Observable
from reactivex.notification import OnNext
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.recorded import Recorded

from rxkube.controllers import (
    AppChanged,
    AppNotice,
    AppServed,
    AppSpec,
    AppWithdrawn,
    PlanInput,
    PlanOutput,
    ProxyApp,
    ServePlan,
    ServerList,
    app_config,
    parse_app_spec,
    serve_plan,
)
from rxkube.proxy import AppLoad, LoadChanged, ServerRef, ServerSpec

on_next, on_completed = ReactiveTest.on_next, ReactiveTest.on_completed
P = "ipb-halle.de/k8sticket.deployment."


def spec(name: str = "lab", **annotations: str) -> AppSpec:
    parsed = parse_app_spec(
        {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": f"uid-{name}",
                "labels": {"ipb-halle.de/k8sticket": "true"},
                "annotations": {
                    (k if "/" in k else P + k.replace("_", ".")): v
                    for k, v in {"port": "none", **annotations}.items()
                },
            }
        }
    )
    assert isinstance(parsed, AppSpec), parsed
    return parsed


def servers(*names: str, ready: bool = True) -> tuple[ServerSpec, ...]:
    return tuple(ServerSpec(ServerRef(n, f"uid-{n}"), "10.0.0.7:80", ready=ready) for n in names)


def load(app: str, tickets: int) -> LoadChanged:
    return LoadChanged(AppLoad(app, 1, 1, 1, tickets, 1 - tickets, 0, 0, 0.0))


def describe(output: PlanOutput) -> str:
    if isinstance(output, AppNotice):
        return f"{output.reason}:{output.application}"
    if output.config is None:
        return f"absent:{output.app}"
    ready = "".join("r" if s.ready else "d" for s in output.servers)
    state = "draining" if output.draining else "served"
    return f"{state}:{output.app}[{ready}]"


def run(messages: list[Recorded[PlanInput]], **options: Any) -> list[tuple[float, str]]:
    scheduler = TestScheduler()
    source: Observable[PlanInput] = scheduler.create_hot_observable(messages)
    results = scheduler.start(
        lambda: source.pipe(serve_plan(scheduler, **options)), disposed=10_000
    )
    return [
        (m.time, describe(m.value.value)) for m in results.messages if isinstance(m.value, OnNext)
    ]


def test_the_docstring_diagram_drain_until_the_deadline() -> None:
    lab = spec(**{"rxkube.io/drain-deadline": "30"})
    assert run(
        [
            on_next(210, AppServed(lab)),
            on_next(220, ServerList("lab", servers("pod-1"))),
            on_next(225, load("lab", 1)),
            on_next(230, AppWithdrawn(lab, "opted-out")),
        ]
    ) == [
        (210, "AppServed:lab"),
        (210, "served:lab[]"),
        (220, "served:lab[r]"),
        (230, "AppWithdrawn:lab"),
        (230, "draining:lab[d]"),
        (260, "AppRemoved:lab"),
        (260, "absent:lab"),
    ]


def test_the_drain_ends_when_the_last_user_leaves() -> None:
    lab = spec()
    assert run(
        [
            on_next(210, AppServed(lab)),
            on_next(220, ServerList("lab", servers("pod-1", "pod-2"))),
            on_next(225, load("lab", 2)),
            on_next(230, AppWithdrawn(lab, "deleted")),
            on_next(240, load("lab", 1)),
            on_next(250, load("lab", 0)),
        ]
    ) == [
        (210, "AppServed:lab"),
        (210, "served:lab[]"),
        (220, "served:lab[rr]"),
        (230, "AppWithdrawn:lab"),
        (230, "draining:lab[dd]"),
        (250, "AppRemoved:lab"),
        (250, "absent:lab"),
    ]


def test_withdrawn_without_users_is_removed_at_once() -> None:
    lab = spec()
    assert run(
        [
            on_next(210, AppServed(lab)),
            on_next(220, AppWithdrawn(lab, "deleted")),
        ]
    ) == [
        (210, "AppServed:lab"),
        (210, "served:lab[]"),
        (220, "AppWithdrawn:lab"),
        (220, "AppRemoved:lab"),
        (220, "absent:lab"),
    ]


def test_served_again_while_draining_cancels_the_drain() -> None:
    lab = spec(**{"rxkube.io/drain-deadline": "30"})
    outputs = run(
        [
            on_next(210, AppServed(lab)),
            on_next(215, ServerList("lab", servers("pod-1"))),
            on_next(216, load("lab", 1)),
            on_next(220, AppWithdrawn(lab, "opted-out")),
            on_next(230, AppServed(lab)),
        ]
    )
    assert outputs[-4:] == [
        (220, "AppWithdrawn:lab"),
        (220, "draining:lab[d]"),
        (230, "AppServed:lab"),
        (230, "served:lab[r]"),
    ]  # and the timer armed at 220 for 250 does nothing


def test_live_changes_apply_and_moves_are_announced() -> None:
    scheduler = TestScheduler()
    one = spec()
    two = spec(tickets_max="3", **{"rxkube.io/tickets.idle-timeout": "5m"})
    three = spec(tickets_max="3", port="9002", **{"rxkube.io/tickets.idle-timeout": "5m"})
    source: Observable[PlanInput] = scheduler.create_hot_observable(
        on_next(210, AppServed(one)),
        on_next(220, AppChanged(one, two)),
        on_next(230, AppChanged(two, three)),
    )
    results = scheduler.start(lambda: source.pipe(serve_plan(scheduler, listen_host="10.1.1.1")))
    outputs = [m.value.value for m in results.messages if isinstance(m.value, OnNext)]
    assert [describe(o) for o in outputs] == [
        "AppServed:lab",
        "served:lab[]",
        "served:lab[]",
        "AppMoved:lab",
        "served:lab[]",
    ]
    changed = outputs[2]
    assert isinstance(changed, ProxyApp)
    assert changed.config is not None
    assert (changed.config.tickets_max, changed.config.idle_timeout) == (3, 300.0)
    moved = outputs[4]
    assert isinstance(moved, ProxyApp)
    assert moved.config is not None
    assert moved.config.listen == ("10.1.1.1", 9002)
    notice = outputs[3]
    assert isinstance(notice, AppNotice)
    assert notice.type == "Normal"
    assert "own port none -> 9002" in notice.message
    assert notice.deployment.name == "lab"


def test_servers_listed_before_their_app_are_applied_when_it_is_served() -> None:
    assert run(
        [
            on_next(210, ServerList("lab", servers("pod-1"))),
            on_next(220, ServerList("lab", servers("pod-1"))),  # same: nothing
            on_next(230, AppServed(spec())),
            on_next(240, ServerList("lab", servers("pod-1"))),
        ]
    ) == [(230, "AppServed:lab"), (230, "served:lab[r]")]


def test_host_routing_needs_the_proxys_domain() -> None:
    hosted = spec(**{"rxkube.io/routing": "host", "rxkube.io/domain": "apps.example.org"})
    assert app_config(hosted, listen_host="h", domain="apps.example.org")[0].routing == "host"
    config, notice = app_config(hosted, listen_host="h", domain="other.org")
    assert config.routing == "path"
    assert notice is not None
    assert notice.reason == "RoutingFallback"
    assert notice.type == "Warning"
    assert "lab.apps.example.org" in notice.message
    assert "/lab/" in notice.message
    # Reported once, not again on every change that keeps the fallback.
    changed = spec(
        tickets_max="2", **{"rxkube.io/routing": "host", "rxkube.io/domain": "apps.example.org"}
    )
    assert run(
        [on_next(210, AppServed(hosted)), on_next(220, AppChanged(hosted, changed))],
        domain="other.org",
    ) == [
        (210, "RoutingFallback:lab"),
        (210, "AppServed:lab"),
        (210, "served:lab[]"),
        (220, "served:lab[]"),
    ]


def test_the_plan_state_is_readable_and_fresh_per_subscription() -> None:
    plan = ServePlan()
    lab = spec(**{"rxkube.io/drain-deadline": "60"})
    plan.apply(AppServed(lab), 0.0)
    plan.apply(load("lab", 1), 1.0)
    assert set(plan.desired) == {"lab"}
    plan.apply(AppWithdrawn(lab, "deleted"), 10.0)
    assert plan.draining() == {"lab": 70.0}

    scheduler = TestScheduler()
    source: Observable[PlanInput] = scheduler.create_cold_observable(
        on_next(10, AppServed(spec())), on_completed(20)
    )
    pipeline = source.pipe(serve_plan(scheduler))
    first: list[PlanOutput] = []
    second: list[PlanOutput] = []
    pipeline.subscribe(first.append)
    pipeline.subscribe(second.append)
    scheduler.start()
    assert (
        [describe(o) for o in first]
        == [describe(o) for o in second]
        == [
            "AppServed:lab",
            "served:lab[]",
        ]
    )


def test_the_routing_fallback_holds_while_the_app_is_served_so() -> None:
    plan = ServePlan(domain="other.org")
    hosted = spec(**{"rxkube.io/routing": "host", "rxkube.io/domain": "apps.example.org"})
    assert plan.outstanding() == ()
    [notice] = [o for o in plan.apply(AppServed(hosted), 0.0) if isinstance(o, AppNotice)][:1]
    assert plan.outstanding() == (notice,)
    plan.apply(AppChanged(hosted, spec()), 1.0)  # path routing now: nothing to fall back from
    assert plan.outstanding() == ()
    plan.apply(AppChanged(spec(), hosted), 2.0)
    assert [n.reason for n in plan.outstanding()] == ["RoutingFallback"]
    plan.apply(AppWithdrawn(hosted, "deleted"), 3.0)  # no users: removed at once
    assert plan.outstanding() == ()
