"""The autoscaler's decision: each rule at exact virtual times, and its invariants as properties."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxkube.controllers import (
    AppSpec,
    AutoscaledPod,
    LoadSummary,
    ScaleDecision,
    ServerLoad,
    decide,
    parse_app_spec,
)
from rxkube.streams import PodPhase

P = "ipb-halle.de/k8sticket.deployment."


def make_spec(**changes: Any) -> AppSpec:
    parsed = parse_app_spec(
        {
            "metadata": {
                "name": "nb",
                "namespace": "lab",
                "uid": "u",
                "annotations": {
                    P + "tickets.max": "1",
                    P + "tickets.spare": "2",
                    P + "pods.max": "3",
                    P + "pods.cooldown": "10",
                    "rxkube.io/pods.start-grace": "60",
                },
            },
            "spec": {"template": {"metadata": {"labels": {P + "app.name": "nb"}}, "spec": {}}},
        }
    )
    assert isinstance(parsed, AppSpec)
    return dataclasses.replace(parsed, **changes)


SPEC = make_spec()
NEW = SPEC.template_hash
OLD = "0ld7emp1a7e0000"


def pod(
    name: str,
    *,
    created: float = 0.0,
    phase: PodPhase = "Running",
    ready: bool = True,
    template: str | None = NEW,
    deleting: bool = False,
    observed: bool = True,
) -> AutoscaledPod:
    return AutoscaledPod(
        name=name,
        uid=f"uid-{name}" if observed else "",
        phase=phase,
        ready=ready,
        template_hash=template,
        created_at=created,
        deleting=deleting,
        observed=observed,
    )


def server(
    name: str, *, users: int = 0, capacity: int = 1, ready: bool = True, idle: float | None = 0.0
) -> ServerLoad:
    return ServerLoad(name, capacity, users, ready, None if users else idle)


def run(
    pods: list[AutoscaledPod],
    servers: list[ServerLoad] = (),  # type: ignore[assignment]
    *,
    now: float,
    waiting: int = 0,
    spec: AppSpec = SPEC,
) -> ScaleDecision:
    return decide(spec, LoadSummary(tuple(servers), waiting), pods, now=now)


def reasons(decision: ScaleDecision) -> dict[str, str]:
    kept = {v.name: str(v.reason) for v in decision.keep}
    return kept | {v.name: str(v.reason) for v in decision.delete}


def deleted(decision: ScaleDecision) -> dict[str, str]:
    return {v.name: v.reason for v in decision.delete}


# --- R6 scale up --------------------------------------------------------------------------------


def test_at_start_up_spare_tickets_are_created() -> None:
    d = run([], now=0.0)
    assert d.create == 2
    assert (d.free_tickets, d.starting_capacity, d.target) == (0, 0, 2)
    assert d.next_check is None
    assert d.summary == "nb: free 0 + starting 0 vs target 2; create 2"


def test_the_deployments_own_pods_count_as_free_tickets() -> None:
    d = run([], [server("nb-own-1"), server("nb-own-2")], now=0.0)
    assert d.create == 0


def test_waiting_users_cause_scale_up() -> None:
    spec = make_spec(tickets_spare=0, pods_max=5)
    d = run([], [server("own", users=1)], now=0.0, waiting=3, spec=spec)
    assert (d.target, d.create) == (3, 3)


def test_creations_are_rounded_up_to_whole_pods() -> None:
    spec = make_spec(tickets_max=4, tickets_spare=5, pods_max=5)
    assert run([], now=0.0, spec=spec).create == 2


def test_never_more_than_pods_max() -> None:
    busy = pod("a")
    d = run([busy], [server("a", users=1)], now=0.0, waiting=10)
    assert d.create == 2  # 1 kept + 2 new = pods.max 3
    assert d.desired_pods == 3
    assert run([busy, pod("b"), pod("c")], [server(n, users=1) for n in "abc"], now=0.0).create == 0


def test_pods_max_zero_never_scales() -> None:
    assert run([], now=0.0, waiting=4, spec=make_spec(pods_max=0)).create == 0


def test_without_a_pod_template_nothing_is_created() -> None:
    assert run([], now=0.0, spec=make_spec(template_hash=None, pod_template=None)).create == 0


def test_starting_pods_count_and_are_never_deleted() -> None:
    pods = [pod("a", created=0.0, phase="Pending", ready=False), pod("b", created=5.0)]
    d = run(pods, now=30.0)  # "b" is Running and Ready but not yet a server: still starting
    assert d.create == 0
    assert d.starting_capacity == 2
    assert reasons(d) == {"a": "starting", "b": "starting"}
    assert d.next_check == 60.0  # "a" reaches its grace period then


def test_creates_in_flight_count_as_starting_capacity() -> None:
    d = run([pod("a", observed=False, created=1.0)], now=2.0)
    assert d.create == 1
    assert reasons(d) == {"a": "creating"}
    assert d.starting_capacity == 1


# --- R3 failed, R5 never ready ------------------------------------------------------------------


def test_failed_pods_are_deleted_and_replaced() -> None:
    d = run([pod("a", phase="Failed", ready=False)], [server("own")], now=1.0)
    assert deleted(d) == {"a": "failed"}
    assert d.create == 1


@pytest.mark.parametrize(("now", "verdict"), [(59.999, "starting"), (60.0, "not ready")])
def test_a_pod_never_ready_is_replaced_exactly_at_the_grace_period(
    now: float, verdict: str
) -> None:
    d = run([pod("a", phase="Pending", ready=False)], [server("own")], now=now)
    assert reasons(d) == {"a": verdict}
    assert d.create == (1 if verdict == "not ready" else 0)


def test_a_server_gone_unready_without_users_is_replaced() -> None:
    d = run([pod("a", created=0.0)], [server("a", ready=False), server("own")], now=500.0)
    assert deleted(d) == {"a": "not ready"}


def test_a_pod_with_users_is_kept_even_if_unready_or_failed() -> None:
    d = run([pod("a", phase="Failed", ready=False)], [server("a", users=1, ready=False)], now=900)
    assert reasons(d) == {"a": "busy"}


# --- R8 cool down -------------------------------------------------------------------------------


def three_idle(since: float) -> list[ServerLoad]:
    return [server(n, idle=since) for n in "abc"]


@pytest.mark.parametrize(
    ("now", "expected", "next_check"),
    [
        (109.999, {"a": "cooling down", "b": "cooling down", "c": "cooling down"}, 110.0),
        (110.0, {"a": "idle", "b": "needed", "c": "needed"}, None),
    ],
)
def test_idle_pods_go_after_cooldown_but_never_below_spare(
    now: float, expected: dict[str, str], next_check: float | None
) -> None:
    d = run([pod("a"), pod("b"), pod("c")], three_idle(100.0), now=now)
    assert reasons(d) == expected
    assert d.next_check == next_check
    assert d.free_tickets >= d.target


def test_longest_idle_goes_first() -> None:
    servers = [server("a", idle=50.0), server("b", idle=20.0), server("c", idle=80.0)]
    d = run([pod("a"), pod("b"), pod("c")], servers, now=200.0)
    assert deleted(d) == {"b": "idle"}


def test_waiting_users_keep_idle_pods() -> None:
    d = run([pod("a"), pod("b"), pod("c")], three_idle(0.0), now=100.0, waiting=1)
    assert deleted(d) == {}


def test_nothing_is_scaled_down_while_scaling_up() -> None:
    spec = make_spec(tickets_spare=3, pods_max=5)
    d = run(
        [pod("a"), pod("b", phase="Failed", ready=False)],
        [server("a", idle=0.0)],
        now=100,
        spec=spec,
    )
    assert (d.free_tickets, d.target, d.create) == (1, 3, 2)
    assert reasons(d) == {"a": "needed", "b": "failed"}


# --- R7 template change -------------------------------------------------------------------------


def test_idle_pods_on_the_old_template_are_replaced_busy_ones_kept() -> None:
    spec = make_spec(tickets_spare=1)
    pods = [pod("old-busy", template=OLD), pod("old-idle", template=OLD)]
    servers = [server("old-busy", users=1), server("old-idle", idle=0.0)]
    d = run(pods, servers, now=1.0, spec=spec)
    # The old idle pod still serves until its replacement is ready.
    assert d.create == 1
    assert reasons(d) == {"old-busy": "busy", "old-idle": "needed"}
    # Replacement ready: the old idle pod goes at once (no cooldown for old templates).
    pods.append(pod("new", created=1.0))
    servers.append(server("new", idle=30.0))
    d = run(pods, servers, now=31.0, spec=spec)
    assert deleted(d) == {"old-idle": "old template"}
    assert d.create == 0
    assert d.free_tickets == 1


def test_adopted_k8sticket_pods_have_no_template_hash_and_are_replaced_when_idle() -> None:
    d = run(
        [pod("gm-k8sticket-autoscaled-x", template=None)],
        [server("gm-k8sticket-autoscaled-x")],
        now=0.0,
        spec=make_spec(tickets_spare=0),
    )
    assert deleted(d) == {"gm-k8sticket-autoscaled-x": "old template"}


def test_at_pods_max_a_template_rollout_replaces_one_pod_at_a_time() -> None:
    spec = make_spec(pods_max=2, tickets_spare=2)
    o1, o2 = pod("o1", template=OLD), pod("o2", template=OLD)
    # t=5: at pods.max, nothing starting: make room by deleting one old idle pod.
    d = run([o1, o2], [server("o1"), server("o2")], now=5.0, spec=spec)
    assert (deleted(d), d.create) == ({"o1": "old template"}, 0)
    # t=6: o1 is terminating: it still holds its place, so nothing else happens.
    terminating = dataclasses.replace(o1, deleting=True)
    d = run([terminating, o2], [server("o2")], now=6.0, spec=spec)
    assert (deleted(d), d.create) == ({}, 0)
    # t=8: o1 is gone: its replacement is created.
    d = run([o2], [server("o2")], now=8.0, spec=spec)
    assert (deleted(d), d.create) == ({}, 1)
    # t=20: the replacement is ready; the next old pod makes room.
    n1 = pod("n1", created=8.0)
    d = run([o2, n1], [server("o2"), server("n1", idle=20.0)], now=20.0, spec=spec)
    assert (deleted(d), d.create) == ({"o2": "old template"}, 0)


def test_failed_pods_hold_their_place_until_gone() -> None:
    spec = make_spec(pods_max=1)
    d = run([pod("a", phase="Failed", ready=False)], now=1.0, spec=spec)
    assert (deleted(d), d.create) == ({"a": "failed"}, 0)
    assert run([], now=2.0, spec=spec).create == 1


# --- R9 pods.max lowered, and what is ignored ---------------------------------------------------


def test_lowered_pods_max_removes_idle_pods_first_busy_stay() -> None:
    spec = make_spec(pods_max=1, tickets_spare=0)
    pods = [pod("a"), pod("b"), pod("c")]
    servers = [server("a", users=1), server("b", idle=99.0), server("c", idle=1.0)]
    d = run(pods, servers, now=100.0, spec=spec)
    assert reasons(d)["a"] == "busy"
    assert set(deleted(d)) == {"b", "c"}
    assert deleted(d)["b"] in ("idle", "above pods.max")


def test_terminating_pods_get_no_verdict_and_count_toward_pods_max_only() -> None:
    d = run([pod("a", deleting=True)], now=0.0)
    assert reasons(d) == {}
    assert d.create == 2  # pods.max 3 minus one terminating leaves room for the 2 spare
    assert run([pod("a", deleting=True)], now=0.0, spec=make_spec(pods_max=1)).create == 0


def test_the_decision_does_not_depend_on_input_order() -> None:
    pods = [pod("a"), pod("b", template=OLD), pod("c", phase="Pending", ready=False, created=90)]
    servers = [server("a", idle=0.0), server("b", idle=3.0), server("own", users=1)]
    one = run(pods, servers, now=100.0)
    two = run(list(reversed(pods)), list(reversed(servers)), now=100.0)
    assert one == two


# --- properties ---------------------------------------------------------------------------------


KINDS = ["creating", "pending", "failed", "idle", "idle", "idle", "busy", "unready", "terminating"]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[AppSpec, LoadSummary, list[AutoscaledPod], float]:
    spec = make_spec(
        tickets_max=draw(st.integers(1, 3)),
        tickets_spare=draw(st.integers(0, 4)),
        pods_max=draw(st.integers(0, 5)),
    )
    now = 1000.0
    pods: list[AutoscaledPod] = []
    servers: list[ServerLoad] = []
    for i in range(draw(st.integers(0, 6))):
        name = f"p{i}"
        kind = draw(st.sampled_from(KINDS))
        created = draw(st.sampled_from([0.0, now - 61, now - 60, now - 59, now - 1, now]))
        phase: PodPhase = {"pending": "Pending", "failed": "Failed"}.get(kind, "Running")  # type: ignore[assignment]
        pods.append(
            AutoscaledPod(
                name=name,
                uid="" if kind == "creating" else f"u{i}",
                phase=phase,
                ready=kind in ("idle", "busy") or draw(st.booleans()),
                template_hash=draw(st.sampled_from([NEW, NEW, OLD, None])),
                created_at=created,
                deleting=kind == "terminating",
                observed=kind != "creating",
            )
        )
        capacity = draw(st.sampled_from([spec.tickets_max, spec.tickets_max, 1, 4]))
        idle = draw(st.sampled_from([now - 100, now - 10, now - 9.5, now]))
        if kind in ("idle", "terminating"):
            servers.append(ServerLoad(name, capacity, 0, True, idle))
        elif kind == "busy":
            servers.append(ServerLoad(name, capacity, draw(st.integers(1, capacity + 1)), True))
        elif kind == "unready" and draw(st.booleans()):
            servers.append(ServerLoad(name, capacity, draw(st.integers(0, 1)), False, idle))
    for j in range(draw(st.integers(0, 2))):
        servers.append(ServerLoad(f"own{j}", 2, draw(st.integers(0, 3)), draw(st.booleans()), 0.0))
    load = LoadSummary(tuple(servers), draw(st.integers(0, 5)))
    return spec, load, pods, now


def _starting(spec: AppSpec, load: LoadSummary, p: AutoscaledPod, now: float) -> bool:
    s = {x.name: x for x in load.servers}.get(p.name)
    serving = s is not None and s.ready
    return not p.observed or (
        p.phase not in ("Failed", "Succeeded")
        and not serving
        and now < p.created_at + spec.pods_start_grace
    )


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_invariants(scenario: tuple[AppSpec, LoadSummary, list[AutoscaledPod], float]) -> None:
    spec, load, pods, now = scenario
    d = decide(spec, load, pods, now=now)
    servers = {s.name: s for s in load.servers}
    by_name = {p.name: p for p in pods}
    deletes = {v.name: v.reason for v in d.delete}
    for name in deletes:
        p = by_name[name]
        s = servers.get(name)
        assert not (s is not None and s.users > 0), "deleted a pod with tickets"
        assert not _starting(spec, load, p, now), "deleted a starting pod"
        assert not p.deleting
    # Every live pod gets exactly one verdict.
    live = {p.name for p in pods if not p.deleting}
    kept = {v.name for v in d.keep}
    assert kept | set(deletes) == live
    assert not kept & set(deletes)
    # Never above pods.max by our own doing: pods on their way out still hold their place.
    terminating = sum(1 for p in pods if p.deleting)
    if d.create:
        assert len(d.keep) + len(d.delete) + terminating + d.create <= spec.pods_max
    busy_or_starting = sum(
        1
        for p in pods
        if not p.deleting
        and (
            (servers.get(p.name) is not None and servers[p.name].users > 0)
            or _starting(spec, load, p, now)
        )
    )
    assert len(d.keep) <= max(spec.pods_max, busy_or_starting)
    # Scale-down never takes free tickets below spare + waiting; only pods.max may: R9, and
    # R6 making room for one replacement at exactly pods.max with nothing starting or going.
    making_room = (
        list(deletes.values()).count("old template") == 1
        and d.starting_capacity == 0
        and terminating == 0
        and len(d.keep) + len(deletes) == spec.pods_max
    )
    forced = making_room or d.create > 0 or "above pods.max" in deletes.values()
    if not forced and {"idle", "old template"} & set(deletes.values()):
        assert d.free_tickets >= d.target
    # Pure: the same input gives the same decision, in any order.
    assert (
        decide(
            spec,
            LoadSummary(tuple(reversed(load.servers)), load.waiting),
            list(reversed(pods)),
            now=now,
        )
        == d
    )
