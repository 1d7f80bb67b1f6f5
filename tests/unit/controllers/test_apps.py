"""The apps fold: last good config, claims, own ports, and stability across relists and replays."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rxkube.controllers import (
    APP_LABEL,
    AppChanged,
    AppEffect,
    AppServed,
    AppSpec,
    AppsState,
    AppWithdrawn,
    ConfigProblem,
    ConfigResolved,
    DeploymentRef,
    apply_deployment_event,
)
from rxkube.streams import EventType, WatchEvent

P = "ipb-halle.de/k8sticket."
TICKETS_MAX = P + "deployment.tickets.max"


def dep(
    name: str,
    *,
    app: str | None = None,
    created: str = "2024-05-01T10:00:00Z",
    uid: str | None = None,
    opted_in: bool = True,
    **annotations: str,
) -> dict[str, Any]:
    notes = {key.replace("__", "."): value for key, value in annotations.items()}
    full = {P + "deployment." + k if not k.startswith("rxkube") else k: v for k, v in notes.items()}
    if app is not None:
        full[P + "deployment.app.name"] = app
    return {
        "metadata": {
            "name": name,
            "namespace": "lab",
            "uid": uid or f"uid-{name}",
            "creationTimestamp": created,
            "labels": {"ipb-halle.de/k8sticket": "true" if opted_in else "false"},
            "annotations": full,
        },
        "spec": {
            "template": {
                "metadata": {"labels": {APP_LABEL: app or name}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            }
        },
    }


def event(kind: EventType, obj: dict[str, Any] | None = None) -> WatchEvent:
    return WatchEvent(kind, obj, resource_version="1", stream="deployments.apps/lab")


def run(
    events: Iterable[WatchEvent], state: AppsState | None = None
) -> tuple[AppsState, list[AppEffect]]:
    state = state or AppsState()
    out: list[AppEffect] = []
    for e in events:
        state, effects = apply_deployment_event(state, e)
        out.extend(effects)
    return state, out


def synced(*objs: dict[str, Any]) -> tuple[AppsState, list[AppEffect]]:
    return run([*(event("ADDED", o) for o in objs), event("SYNCED")])


def problems(effects: Sequence[AppEffect]) -> list[ConfigProblem]:
    return [e for e in effects if isinstance(e, ConfigProblem)]


def test_nothing_comes_out_before_the_initial_list_is_complete() -> None:
    state, effects = run([event("ADDED", dep("a")), event("ADDED", dep("b", port="none"))])
    assert effects == []
    assert state.served == {}
    state, out = apply_deployment_event(state, event("SYNCED"))
    assert [type(e).__name__ for e in out] == ["AppServed", "AppServed"]
    assert set(state.served) == {"a", "b"}
    _, again = apply_deployment_event(state, event("SYNCED"))  # a relist's SYNCED
    assert again == ()


def test_a_new_app_with_a_bad_annotation_is_not_served_and_reported() -> None:
    state, effects = synced(dep("a", tickets__max="0"))
    assert state.served == {}
    (problem,) = problems(effects)
    assert problem.severity == "error"
    assert problem.reason == "InvalidConfiguration"
    assert problem.kept is None
    assert problem.deployment.name == "a"
    assert problem.application == "a"
    assert problem.error.key == TICKETS_MAX
    assert "not served until this is fixed" in problem.message
    assert problem.event_type == "Warning"


def test_a_bad_change_keeps_the_last_good_spec_and_other_apps_untouched() -> None:
    state, _ = synced(dep("a", tickets__max="3"), dep("b", port="9002"))
    good = state.served["a"]
    state, effects = apply_deployment_event(state, event("MODIFIED", dep("a", tickets__max="-1")))
    (problem,) = effects
    assert isinstance(problem, ConfigProblem)
    assert problem.kept == good
    assert "kept the last good configuration of app 'a'" in problem.message
    assert state.served["a"] == good
    assert state.served["a"].tickets_max == 3
    assert "b" in state.served
    # Fixing it applies the new value as an update.
    state, effects = apply_deployment_event(state, event("MODIFIED", dep("a", tickets__max="5")))
    resolved, update = effects
    assert isinstance(resolved, ConfigResolved)
    assert isinstance(update, AppChanged)
    assert (update.old.tickets_max, update.new.tickets_max) == (3, 5)
    assert not update.moved


def test_an_error_is_reported_once_not_on_every_status_update() -> None:
    state, first = synced(dep("a", tickets__max="x"))
    assert len(problems(first)) == 1
    state, again = run([event("MODIFIED", dep("a", tickets__max="x"))] * 3, state)
    assert again == []
    # A different bad value is a new problem.
    state, other = run([event("MODIFIED", dep("a", tickets__max="y"))], state)
    assert [p.error.value for p in problems(other)] == ["y"]
    # Fixed, then broken again: reported again.
    state, _ = run([event("MODIFIED", dep("a", tickets__max="2"))], state)
    _, back = run([event("MODIFIED", dep("a", tickets__max="y"))], state)
    assert [p.error.value for p in problems(back)] == ["y"]


def test_the_older_deployment_wins_a_claimed_app_name() -> None:
    old = dep("zeta", app="shared", created="2024-01-01T00:00:00Z")
    young = dep("alpha", app="shared", created="2024-02-01T00:00:00Z")
    state, effects = synced(young, old)
    assert state.served["shared"].deployment == "zeta"
    (problem,) = problems(effects)
    assert problem.deployment.name == "alpha"
    assert problem.reason == "AppNameClaimed"
    assert problem.error.key == P + "deployment.app.name"
    assert problem.error.value == "shared"
    assert "older Deployment 'zeta'" in problem.message
    assert "not served" in problem.message


def test_same_creation_time_falls_back_to_the_name() -> None:
    state, _ = synced(dep("b", app="x"), dep("a", app="x"))
    assert state.served["x"].deployment == "a"


def test_when_the_winner_goes_the_other_claimant_takes_over() -> None:
    old = dep("old", app="shared", created="2024-01-01T00:00:00Z")
    young = dep("young", app="shared", created="2024-02-01T00:00:00Z")
    state, _ = synced(old, young)
    state, effects = apply_deployment_event(state, event("DELETED", old))
    resolved, update = effects  # "young" no longer has a claim problem
    assert resolved == ConfigResolved(
        DeploymentRef("lab", "young", "uid-young"), ("shared",), False
    )
    assert isinstance(update, AppChanged)
    assert (update.old.deployment, update.new.deployment) == ("old", "young")


def test_losing_the_label_removes_the_app_to_drain() -> None:
    state, _ = synced(dep("a"), dep("b", port="9002"))
    state, effects = apply_deployment_event(state, event("MODIFIED", dep("a", opted_in=False)))
    assert effects == (AppWithdrawn(state_spec_of("a"), "opted-out"),)
    assert set(state.served) == {"b"}
    state, effects = apply_deployment_event(state, event("DELETED", dep("b", port="9002")))
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in effects] == [
        ("AppWithdrawn", "deleted")
    ]
    # Unknown Deployments come and go silently.
    _, quiet = apply_deployment_event(state, event("DELETED", dep("never-seen")))
    assert quiet == ()


def state_spec_of(name: str) -> AppSpec:
    state, _ = synced(dep(name))
    return state.served[name]


def test_renaming_an_app_removes_the_old_name_and_adds_the_new() -> None:
    state, _ = synced(dep("a", app="one"))
    state, effects = apply_deployment_event(state, event("MODIFIED", dep("a", app="two")))
    assert [(type(e).__name__, getattr(e, "reason", "")) for e in effects] == [
        ("AppWithdrawn", "renamed"),
        ("AppServed", ""),
    ]
    added = effects[1]
    assert isinstance(added, AppServed)
    assert added.spec.app == "two"


def test_a_port_change_is_an_update_that_moves_the_app() -> None:
    state, _ = synced(dep("a", port="9001"))
    _, effects = apply_deployment_event(state, event("MODIFIED", dep("a", port="9005")))
    (update,) = effects
    assert isinstance(update, AppChanged)
    assert update.moved


def test_two_apps_on_one_own_port_the_younger_gets_the_shared_listener_only() -> None:
    a = dep("a", created="2024-01-01T00:00:00Z")  # both default to port 9001
    b = dep("b", created="2024-03-01T00:00:00Z")
    state, effects = synced(a, b)
    assert state.served["a"].port == 9001
    assert state.served["b"].port is None
    (problem,) = problems(effects)
    assert problem.reason == "PortInUse"
    assert problem.severity == "warning"
    assert problem.deployment.name == "b"
    # Once "a" goes, "b" gets its port back.
    state, after = apply_deployment_event(state, event("DELETED", a))
    update = [e for e in after if isinstance(e, AppChanged)]
    assert update
    assert update[0].new.port == 9001
    assert update[0].moved


def test_recreated_deployment_does_not_inherit_the_old_last_good_spec() -> None:
    state, _ = synced(dep("a", tickets__max="3"))
    state, _ = run([event("DELETED", dep("a"))], state)
    state, effects = run([event("ADDED", dep("a", uid="uid-2", tickets__max="0"))], state)
    assert state.served == {}
    assert problems(effects)[0].kept is None


def test_a_relist_of_the_same_objects_changes_nothing() -> None:
    objs = [dep("a"), dep("b", port="9100"), dep("c", tickets__max="0")]
    state, _ = synced(*objs)
    _, effects = run([*(event("ADDED", copy.deepcopy(o)) for o in objs), event("SYNCED")], state)
    assert effects == []


names = st.sampled_from(["a", "b", "c", "d"])
apps = st.sampled_from(["x", "y"])
days = st.integers(1, 9)


@settings(max_examples=80)
@given(
    claims=st.lists(st.tuples(names, apps, days), min_size=1, max_size=4, unique_by=lambda t: t[0]),
    order=st.randoms(use_true_random=False),
)
def test_claims_resolve_the_same_in_any_event_order(
    claims: list[tuple[str, str, int]], order: Any
) -> None:
    objs = [dep(n, app=a, created=f"2024-01-0{d}T00:00:00Z", port="none") for n, a, d in claims]
    reference, _ = synced(*objs)
    shuffled = list(objs)
    order.shuffle(shuffled)
    # After the initial sync too: the same set of objects added one by one.
    state, _ = run([event("SYNCED"), *(event("ADDED", o) for o in shuffled)])
    expected = {
        app: min((d, n) for n, a, d in claims if a == app)[1] for app in {a for _, a, _ in claims}
    }
    assert {app: spec.deployment for app, spec in reference.served.items()} == expected
    assert {app: spec.deployment for app, spec in state.served.items()} == expected


def test_fixing_all_problems_says_so_once() -> None:
    state, _ = synced(dep("a", tickets__max="0", port="x"))
    state, effects = apply_deployment_event(state, event("MODIFIED", dep("a", port="x")))
    assert not [e for e in effects if isinstance(e, ConfigResolved)]  # the port is still bad
    state, effects = apply_deployment_event(state, event("MODIFIED", dep("a")))
    assert effects == (
        ConfigResolved(DeploymentRef("lab", "a", "uid-a"), ("a",), withdrawn=False),
        AppServed(state.served["a"]),
    )
    _, again = apply_deployment_event(state, event("MODIFIED", dep("a")))
    assert again == ()


def test_withdrawing_a_deployment_with_problems_names_its_metric_labels() -> None:
    loser = dep("young", app="x", created="2024-02-01T00:00:00Z", port="none")
    state, _ = synced(dep("old", app="x", created="2024-01-01T00:00:00Z"), loser)
    state, effects = apply_deployment_event(state, event("DELETED", loser))
    assert effects == (ConfigResolved(DeploymentRef("lab", "young", "uid-young"), ("x",), True),)
    # A never-served Deployment's problems were counted under its own name.
    state, _ = run([event("ADDED", dep("broken", tickets__max="0"))], state)
    _, effects = apply_deployment_event(state, event("MODIFIED", dep("broken", opted_in=False)))
    assert effects == (
        ConfigResolved(DeploymentRef("lab", "broken", "uid-broken"), ("broken",), True),
    )


def test_the_problems_that_hold_now_are_state_not_only_effects() -> None:
    """What a replica that starts leading posts: every problem that holds, none that was fixed
    (a problem is emitted once, so the effects alone cannot say which ones still hold)."""
    state, _ = run([event("ADDED", dep("a", tickets__max="0", port="x"))])
    assert state.problems == ()  # nothing before the complete list
    state, effects = apply_deployment_event(state, event("SYNCED"))
    assert state.problems == tuple(problems(effects))
    assert sorted(p.error.key for p in state.problems) == [
        P + "deployment.port",
        TICKETS_MAX,
    ]
    # One fixed, one left: no effect says so, the state does.
    state, effects = apply_deployment_event(state, event("MODIFIED", dep("a", port="x")))
    assert effects == ()
    assert [p.error.key for p in state.problems] == [P + "deployment.port"]
    # A claim conflict is a problem of the younger Deployment while the older one holds it.
    young = dep("b", app="a", created="2024-06-01T00:00:00Z", port="none")
    state, _ = run([event("MODIFIED", dep("a")), event("ADDED", young)], state)
    assert [(p.deployment.name, p.reason) for p in state.problems] == [("b", "AppNameClaimed")]
    state, _ = apply_deployment_event(state, event("DELETED", young))
    assert state.problems == ()
