"""Reconcile: commands against the informer's view, idempotent, adoptive, replayable, convergent."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rxkube.controllers import (
    APP_LABEL,
    AUTOSCALED_LABEL,
    K8STICKET_SCALED_LABEL,
    TEMPLATE_HASH_LABEL,
    AppSpec,
    CreatePod,
    DeletePod,
    LoadSummary,
    PodCommand,
    ReconcileState,
    ServerLoad,
    autoscale,
    autoscaled_pods,
    command_failed,
    decide,
    parse_app_spec,
    reconcile,
    seeded_suffixes,
)

P = "ipb-halle.de/k8sticket."


def make_spec(**changes: Any) -> AppSpec:
    parsed = parse_app_spec(
        {
            "metadata": {
                "name": "notebook-deployment",
                "namespace": "lab",
                "uid": "dep-uid",
                "annotations": {
                    P + "deployment.app.name": "nb",
                    P + "deployment.tickets.spare": "2",
                    P + "deployment.pods.max": "3",
                    "rxkube.io/pods.start-grace": "60",
                },
            },
            "spec": {
                "template": {
                    "metadata": {
                        "labels": {APP_LABEL: "nb", "pod-template-hash": "abc", "team": "x"},
                        "annotations": {P + "pod.port": "8888"},
                    },
                    "spec": {"containers": [{"name": "lab", "image": "jupyter", "env": []}]},
                }
            },
        }
    )
    assert isinstance(parsed, AppSpec)
    return dataclasses.replace(parsed, **changes)


SPEC = make_spec()


def pod_json(
    name: str,
    *,
    uid: str | None = None,
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    ready: bool = True,
    owners: list[dict[str, Any]] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "lab",
        "uid": uid or f"uid-{name}",
        "labels": labels
        if labels is not None
        else {
            APP_LABEL: "nb",
            AUTOSCALED_LABEL: "true",
            K8STICKET_SCALED_LABEL: "true",
            TEMPLATE_HASH_LABEL: SPEC.template_hash or "",
        },
    }
    if owners is not None:
        metadata["ownerReferences"] = owners
    if deleting:
        metadata["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_created_pods_are_a_labelled_owned_deep_copy_of_the_template() -> None:
    step = autoscale(
        ReconcileState(), SPEC, LoadSummary(), [], now=0.0, new_suffix=seeded_suffixes("lab/nb")
    )
    creates = [c for c in step.commands if isinstance(c, CreatePod)]
    assert len(creates) == 2
    body = creates[0].body
    meta = body["metadata"]
    assert meta["name"] == creates[0].name
    assert meta["name"].startswith("nb-rxkube-")
    assert len(meta["name"]) == len("nb-rxkube-") + 5
    assert meta["namespace"] == "lab"
    assert meta["labels"] == {
        APP_LABEL: "nb",
        "team": "x",
        AUTOSCALED_LABEL: "true",
        K8STICKET_SCALED_LABEL: "true",
        TEMPLATE_HASH_LABEL: SPEC.template_hash,
    }  # and no pod-template-hash: no ReplicaSet may adopt it
    assert meta["annotations"] == {P + "pod.port": "8888"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "notebook-deployment",
            "uid": "dep-uid",
            "controller": True,
        }
    ]
    assert body["spec"] == {"containers": [{"name": "lab", "image": "jupyter", "env": []}]}
    # A deep copy: changing the body never reaches the spec's template.
    body["spec"]["containers"][0]["env"].append({"name": "X"})
    assert SPEC.pod_template is not None
    assert SPEC.pod_template["spec"]["containers"][0]["env"] == []
    assert creates[0].name != creates[1].name


def test_the_same_seed_gives_the_same_names_on_replay() -> None:
    def names() -> list[str]:
        step = autoscale(
            ReconcileState(), SPEC, LoadSummary(), [], now=0.0, new_suffix=seeded_suffixes("lab/nb")
        )
        return [c.name for c in step.commands]

    assert names() == names()
    other = autoscale(
        ReconcileState(), SPEC, LoadSummary(), [], now=0.0, new_suffix=seeded_suffixes("other")
    )
    assert [c.name for c in other.commands] != names()


def test_a_burst_of_steps_creates_once() -> None:
    suffixes = seeded_suffixes(1)
    state = ReconcileState()
    all_commands: list[PodCommand] = []
    for t in (0.0, 0.001, 0.002, 0.5):
        step = autoscale(state, SPEC, LoadSummary(), [], now=t, new_suffix=suffixes)
        state = step.state
        all_commands.extend(step.commands)
    assert len(all_commands) == 2
    assert step.decision.create == 0
    assert {v.reason for v in step.decision.keep} == {"creating"}
    assert step.next_check == 60.0  # the creates' expectations time out then


def test_reconcile_is_idempotent_for_one_decision() -> None:
    state, view = autoscaled_pods(ReconcileState(), SPEC, [], now=0.0)
    decision = decide(SPEC, LoadSummary(), view, now=0.0)
    suffixes = seeded_suffixes(2)
    state, first = reconcile(state, SPEC, decision, view, now=0.0, new_suffix=suffixes)
    state, second = reconcile(state, SPEC, decision, view, now=0.0, new_suffix=suffixes)
    assert len(first) == 2
    assert second == ()


def test_a_create_seen_in_the_view_is_no_longer_in_flight_and_keeps_its_creation_time() -> None:
    suffixes = seeded_suffixes(3)
    step = autoscale(ReconcileState(), SPEC, LoadSummary(), [], now=10.0, new_suffix=suffixes)
    names = [c.name for c in step.commands]
    seen = [pod_json(n, phase="Pending", ready=False) for n in names]
    state, view = autoscaled_pods(step.state, SPEC, seen, now=12.0)
    assert state.creating == {}
    assert [(p.name, p.observed, p.created_at) for p in view] == [(n, True, 10.0) for n in names]


def test_a_lost_create_is_retried_after_its_timeout() -> None:
    suffixes = seeded_suffixes(4)
    step = autoscale(ReconcileState(), SPEC, LoadSummary(), [], now=0.0, new_suffix=suffixes)
    assert len(step.commands) == 2
    late = autoscale(step.state, SPEC, LoadSummary(), [], now=59.9, new_suffix=suffixes)
    assert late.commands == ()
    retry = autoscale(late.state, SPEC, LoadSummary(), [], now=60.0, new_suffix=suffixes)
    assert len(retry.commands) == 2


def test_failed_creates_back_off_doubling() -> None:
    suffixes = seeded_suffixes(5)
    state = ReconcileState()
    times = []
    now = 0.0
    for _ in range(5):
        step = autoscale(state, SPEC, LoadSummary(), [], now=now, new_suffix=suffixes)
        assert len(step.commands) == 2
        times.append(now)
        state = step.state
        for command in step.commands:
            state = command_failed(state, command, now=now)
        # The pipeline runs a step on each outcome: it sends nothing and says when to retry.
        step = autoscale(state, SPEC, LoadSummary(), [], now=now, new_suffix=suffixes)
        assert step.commands == ()
        assert step.next_check is not None
        state, now = step.state, step.next_check
    # Each failure doubles the back-off (two creates fail per round), capped at 60 s.
    assert times == [0.0, 2.0, 10.0, 42.0, 102.0]


def test_deletes_carry_the_uid_and_are_not_repeated_until_retry() -> None:
    idle = pod_json("nb-rxkube-aaaaa")
    load = LoadSummary(
        (ServerLoad("nb-rxkube-aaaaa", 1, 0, True, 0.0), ServerLoad("own", 3, 0, True, 0.0))
    )
    suffixes = seeded_suffixes(6)
    step = autoscale(ReconcileState(), SPEC, load, [idle], now=100.0, new_suffix=suffixes)
    assert step.commands == (
        DeletePod("lab", "nb-rxkube-aaaaa", "uid-nb-rxkube-aaaaa", "nb", "idle"),
    )
    again = autoscale(step.state, SPEC, load, [idle], now=101.0, new_suffix=suffixes)
    assert again.commands == ()
    assert again.next_check == 130.0
    retry = autoscale(again.state, SPEC, load, [idle], now=130.0, new_suffix=suffixes)
    assert [c.kind for c in retry.commands] == ["delete"]
    # Once the pod shows its deletionTimestamp, nothing more is sent.
    going = pod_json("nb-rxkube-aaaaa", deleting=True)
    done = autoscale(retry.state, SPEC, load, [going], now=131.0, new_suffix=suffixes)
    assert done.commands == ()
    assert done.state.deleting == {}


def test_k8stickets_autoscaled_pods_are_adopted() -> None:
    k8sticket_pod = pod_json(
        "nb-k8sticket-autoscaled-x7k2p", labels={APP_LABEL: "nb", K8STICKET_SCALED_LABEL: "true"}
    )
    state, view = autoscaled_pods(ReconcileState(), SPEC, [k8sticket_pod], now=5.0)
    (adopted,) = view
    assert adopted.name == "nb-k8sticket-autoscaled-x7k2p"
    assert adopted.template_hash is None  # unknown template: replaced once idle
    assert adopted.created_at == 5.0  # first seen: its grace period starts now
    assert state.first_seen == {"uid-nb-k8sticket-autoscaled-x7k2p": 5.0}


def test_pods_that_are_not_ours_are_never_touched() -> None:
    others = [
        pod_json("own-1", labels={APP_LABEL: "nb"}),  # the Deployment's own pod
        pod_json(
            "rs-pod",
            owners=[{"kind": "ReplicaSet", "name": "rs", "uid": "r", "controller": True}],
        ),  # a template that copied the scaled label: still the ReplicaSet's
        pod_json("other-app", labels={APP_LABEL: "other", AUTOSCALED_LABEL: "true"}),
        pod_json(
            "old-owner",
            owners=[{"kind": "Deployment", "name": "x", "uid": "gone", "controller": True}],
        ),
    ]
    _, view = autoscaled_pods(ReconcileState(), SPEC, others, now=0.0)
    assert view == ()
    # And our own, owned by the Deployment, is ours.
    ours = pod_json(
        "nb-rxkube-b",
        owners=[{"kind": "Deployment", "name": "d", "uid": "dep-uid", "controller": True}],
    )
    _, view = autoscaled_pods(ReconcileState(), SPEC, [ours], now=0.0)
    assert [p.name for p in view] == ["nb-rxkube-b"]


def test_no_template_no_creates() -> None:
    spec = make_spec(pod_template=None, template_hash=None)
    step = autoscale(
        ReconcileState(), spec, LoadSummary(), [], now=0.0, new_suffix=seeded_suffixes(7)
    )
    assert step.commands == ()


# --- convergence on a simulated cluster ---------------------------------------------------------


@dataclasses.dataclass
class SimPod:
    body: dict[str, Any]
    ready_at: float
    gone_at: float | None = None


def simulate(
    spec: AppSpec,
    users: int,
    adopted: int,
    own_capacity: int,
    start_delay: float,
    stop_delay: float = 0.0,
) -> tuple[bool, list[float], dict[str, SimPod], LoadSummary]:
    """Run autoscale steps against a tiny cluster until it is quiet; return what it did."""
    pods: dict[str, SimPod] = {}
    for i in range(adopted):
        name = f"nb-k8sticket-autoscaled-{i}"
        body = pod_json(name, labels={APP_LABEL: "nb", K8STICKET_SCALED_LABEL: "true"})
        pods[name] = SimPod(body, ready_at=0.0)
    state = ReconcileState()
    suffixes = seeded_suffixes("sim")
    now = 0.0
    command_times: list[float] = []
    load = LoadSummary()
    idle_since: dict[str, float] = {}
    quiet = False
    for _ in range(60):
        # The world at `now`: pods become ready after start_delay and vanish stop_delay after
        # their delete; users fill ready servers by name.
        for name in [n for n, p in pods.items() if p.gone_at is not None and now >= p.gone_at]:
            del pods[name]
            idle_since.pop(name, None)
        servers = []
        left = users
        if own_capacity:
            taken = min(left, own_capacity)
            left -= taken
            servers.append(ServerLoad("own", own_capacity, taken, True, None if taken else 0.0))
        for name in sorted(pods):
            sim = pods[name]
            if sim.gone_at is not None:
                continue  # terminating: out of rotation
            ready = now >= sim.ready_at
            sim.body["status"]["phase"] = "Running" if ready else "Pending"
            sim.body["status"]["conditions"][0]["status"] = "True" if ready else "False"
            if not ready:
                continue
            taken = min(left, spec.tickets_max)
            left -= taken
            if taken:
                idle_since.pop(name, None)
            else:
                idle_since.setdefault(name, now)
            servers.append(
                ServerLoad(name, spec.tickets_max, taken, True, None if taken else idle_since[name])
            )
        load = LoadSummary(tuple(servers), left)
        step = autoscale(
            state, spec, load, [p.body for p in pods.values()], now=now, new_suffix=suffixes
        )
        state = step.state
        for command in step.commands:
            command_times.append(now)
            if isinstance(command, CreatePod):
                body = dict(command.body)
                body["metadata"] = dict(body["metadata"], uid=f"uid-{command.name}")
                body["status"] = {
                    "phase": "Pending",
                    "conditions": [{"type": "Ready", "status": "False"}],
                }
                pods[command.name] = SimPod(body, ready_at=now + start_delay)
            else:
                sim = pods[command.name]
                assert sim.body["metadata"]["uid"] == command.uid
                assert sim.gone_at is None, "deleted twice"
                sim.body["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
                sim.gone_at = now + stop_delay
        # Advance to the next thing that happens: a pod starting or vanishing, or the
        # autoscaler's own next check; after commands, step again at once (the informer's
        # events about them would trigger that step).
        world = [p.ready_at for p in pods.values()]
        world += [p.gone_at for p in pods.values() if p.gone_at is not None]
        upcoming = [t for t in world if t > now]
        if step.next_check is not None:
            upcoming.append(step.next_check)
        if not step.commands:
            if not upcoming:
                quiet = True
                break
            now = min(upcoming)
    return quiet, command_times, pods, load


@settings(max_examples=60, deadline=None)
@given(
    tickets_max=st.integers(1, 3),
    spare=st.integers(0, 3),
    pods_max=st.integers(0, 4),
    users=st.integers(0, 8),
    adopted=st.integers(0, 2),
    own_capacity=st.integers(0, 2),
    start_delay=st.sampled_from([0.0, 5.0, 30.0]),
    stop_delay=st.sampled_from([0.0, 3.0]),
)
def test_the_autoscaler_converges_within_its_bounds(
    tickets_max: int,
    spare: int,
    pods_max: int,
    users: int,
    adopted: int,
    own_capacity: int,
    start_delay: float,
    stop_delay: float,
) -> None:
    spec = make_spec(tickets_max=tickets_max, tickets_spare=spare, pods_max=pods_max)
    quiet, command_times, pods, load = simulate(
        spec, users, adopted, own_capacity, start_delay, stop_delay
    )
    assert quiet, "still acting after 60 steps"
    assert len(command_times) <= 2 * pods_max + adopted  # no flapping
    ours = [n for n in pods if n.startswith("nb-rxkube-")]
    assert len(ours) <= pods_max
    free = load.free_tickets
    target = spare + load.waiting
    if len(pods) < pods_max:
        assert free >= target  # enough spare tickets, or ...
    else:
        assert len(pods) == pods_max or len(pods) <= adopted  # ... as many pods as allowed
    # Adopted pods on an unknown template are gone unless someone uses them.
    for name in pods:
        if name.startswith("nb-k8sticket-"):
            busy = any(s.name == name and s.users for s in load.servers)
            assert busy or len(pods) > pods_max
