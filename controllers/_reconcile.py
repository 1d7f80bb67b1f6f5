"""From a scale decision to pod commands, against the informer's view: idempotent and replayable.

What this module is for: the reconciling step of DESIGN section 4 ("Orchestrator sinks"). The
autoscaler emits desired state; this step compares it with the pods the informer shows and the
commands already sent, and emits only what is missing, so a burst of ticket events coalesces into
one create. Pure: no I/O, no clock (`now` is the scheduler's), no randomness except the injected
name-suffix source, so a replay produces the same names and commands. It imports the standard
library, this package and one type of `rxkube.streams`.

How it stays idempotent (the "expectations" of client-go's ReplicaSet controller):
- A create sent is remembered (`creating`, by name) until the pod shows up in the view, the sink
  reports it failed, or `create_timeout` passes. Until then the decision counts it as starting
  capacity, and a decision that did not know about it has its `create` reduced by it.
- A delete sent is remembered (`deleting`, by uid) until the pod is gone or shows its
  deletionTimestamp; it is sent again only after `delete_retry` (a lost request).
- A failed create backs off (1 s doubling to 60 s, reset when a created pod appears), so an API
  that refuses (quota, RBAC) is retried, counted and never hammered.

Which pods are an app's autoscaled pods (adoption, DESIGN section 4): pods with the app label
`ipb-halle.de/k8sticket.deployment.app.name=<app>` and either `rxkube.io/autoscaled: "true"` or
k8sTicket's `ipb-halle.de/k8sTicket.scaled: "true"` (k8sTicket named them
`<app>-k8sticket-autoscaled-*`), unless another object controls them (a ReplicaSet's pods are
the Deployment's own, never ours to delete, even if their template copied the label).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal, TypeAlias

import orjson

from rxkube.controllers._appspec import APP_LABEL, AppSpec
from rxkube.controllers._autoscaler import (
    AutoscaledPod,
    DeleteReason,
    LoadSummary,
    ScaleDecision,
    decide,
)
from rxkube.streams import PodPhase

__all__ = [
    "AUTOSCALED_LABEL",
    "AutoscaleStep",
    "CreatePod",
    "DeletePod",
    "K8STICKET_SCALED_LABEL",
    "PodCommand",
    "PodFacts",
    "ReconcileState",
    "TEMPLATE_HASH_LABEL",
    "autoscale",
    "autoscaled_pods",
    "command_failed",
    "pod_facts",
    "reconcile",
    "seeded_suffixes",
]

AUTOSCALED_LABEL: Final = "rxkube.io/autoscaled"
K8STICKET_SCALED_LABEL: Final = "ipb-halle.de/k8sTicket.scaled"
TEMPLATE_HASH_LABEL: Final = "rxkube.io/template-hash"

_PHASES: Final[Mapping[str, PodPhase]] = {
    "Pending": "Pending",
    "Running": "Running",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
}
# Kubernetes' generateName alphabet (no vowels, no confusable digits): names never spell words.
_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_BACKOFF_FIRST: Final = 1.0
_BACKOFF_MAX: Final = 60.0


@dataclass(frozen=True, slots=True)
class CreatePod:
    """Create `body` (a complete v1 Pod) in `namespace`."""

    namespace: str
    name: str
    app: str
    body: Mapping[str, Any] = field(hash=False, repr=False)

    kind: Literal["create"] = "create"


@dataclass(frozen=True, slots=True)
class DeletePod:
    """Delete pod `name` only if it is still the incarnation `uid` (a delete precondition)."""

    namespace: str
    name: str
    uid: str
    app: str
    reason: DeleteReason

    kind: Literal["delete"] = "delete"


PodCommand: TypeAlias = CreatePod | DeletePod


@dataclass(frozen=True, slots=True)
class ReconcileState:
    """What one app's reconciler remembers between steps. Start with `ReconcileState()`."""

    creating: Mapping[str, float] = field(default_factory=dict)
    """Pod name -> when its create was sent (not yet seen)."""
    deleting: Mapping[str, float] = field(default_factory=dict)
    """Pod uid -> when its delete was sent (the pod still shows, not terminating)."""
    first_seen: Mapping[str, float] = field(default_factory=dict)
    """Pod uid -> when the pod was created by us or first seen (adopted)."""
    backoff: float = 0.0
    """The current create back-off in seconds (0 when creates succeed)."""
    not_before: float = float("-inf")
    """No create is sent before this time (after a failure)."""
    create_timeout: float = 60.0
    delete_retry: float = 30.0
    backoff_first: float = _BACKOFF_FIRST
    backoff_max: float = _BACKOFF_MAX


def seeded_suffixes(seed: int | str) -> Callable[[], str]:
    """A deterministic source of 5-character name suffixes (same seed, same names)."""
    rng = random.Random(str(seed))

    def suffix() -> str:
        return "".join(rng.choice(_ALPHABET) for _ in range(5))

    return suffix


def _text(mapping: Mapping[str, Any], key: str) -> str:
    value = mapping.get(key)
    return value if isinstance(value, str) else ""


def _mapping(value: object) -> Mapping[str, Any]:
    # `type(...) is dict` first: an ABC isinstance check costs ten times as much.
    return value if type(value) is dict or isinstance(value, Mapping) else {}


@dataclass(frozen=True, slots=True)
class PodFacts:
    """What the autoscaler reads of one pod, parsed once per pod event (`pod_facts`)."""

    name: str
    uid: str
    namespace: str
    app: str | None
    """The app label's value."""
    scaled: bool
    """Labelled autoscaled (rxkube's label or k8sTicket's)."""
    phase: PodPhase
    ready: bool
    template_hash: str | None
    deleting: bool
    controller: tuple[str, str, str] | None
    """The controlling owner (kind, uid, name), if any."""

    def is_ours(self, spec: AppSpec) -> bool:
        """An autoscaled pod of the app `spec` describes (see the module docstring)."""
        if self.app != spec.app or not self.scaled:
            return False
        if spec.namespace and self.namespace and self.namespace != spec.namespace:
            return False
        if self.controller is None:
            return True
        kind, uid, name = self.controller
        if kind != "Deployment":
            return False
        if spec.deployment_uid and uid:
            return uid == spec.deployment_uid
        return name == spec.deployment


def pod_facts(pod: Mapping[str, Any]) -> PodFacts:
    """Parse what the autoscaler needs of a pod (camelCase JSON as decoded)."""
    metadata = _mapping(pod.get("metadata"))
    status = _mapping(pod.get("status"))
    labels = _mapping(metadata.get("labels"))
    app = labels.get(APP_LABEL)
    template = labels.get(TEMPLATE_HASH_LABEL)
    controller = None
    owners = metadata.get("ownerReferences")
    for owner in owners if isinstance(owners, list) else ():
        owner = _mapping(owner)
        if owner.get("controller") is True:
            controller = (_text(owner, "kind"), _text(owner, "uid"), _text(owner, "name"))
            break
    return PodFacts(
        name=_text(metadata, "name"),
        uid=_text(metadata, "uid"),
        namespace=_text(metadata, "namespace"),
        app=app if isinstance(app, str) else None,
        scaled=labels.get(AUTOSCALED_LABEL) == "true"
        or labels.get(K8STICKET_SCALED_LABEL) == "true",
        phase=_PHASES.get(_text(status, "phase"), "Unknown"),
        ready=_ready(status),
        template_hash=template if isinstance(template, str) else None,
        deleting=metadata.get("deletionTimestamp") is not None,
        controller=controller,
    )


def _is_ours(spec: AppSpec, pod: Mapping[str, Any]) -> bool:
    return pod_facts(pod).is_ours(spec)


def _ready(status: Mapping[str, Any]) -> bool:
    conditions = status.get("conditions")
    for condition in conditions if isinstance(conditions, list) else ():
        condition = _mapping(condition)
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def autoscaled_pods(
    state: ReconcileState,
    spec: AppSpec,
    pods: Iterable[Mapping[str, Any] | PodFacts],
    *,
    now: float,
) -> tuple[ReconcileState, tuple[AutoscaledPod, ...]]:
    """Select the app's autoscaled pods from the informer's view and update the expectations.

    `pods` are the informer's objects, or their `pod_facts` (parsed once per pod event, as
    the autoscaler pipeline does). Returns the pods the decision should see: those in the
    view plus creates in flight.
    """
    creating = dict(state.creating)
    deleting = dict(state.deleting)
    known = state.first_seen
    first_seen: dict[str, float] = {}
    backoff = state.backoff
    seen: list[AutoscaledPod] = []
    names: set[str] = set()
    for pod in pods:
        facts = pod if isinstance(pod, PodFacts) else pod_facts(pod)
        if not facts.is_ours(spec):
            continue
        name, uid = facts.name, facts.uid
        if not name:
            continue
        names.add(name)
        if name in creating:
            first = first_seen[uid] = creating.pop(name)
            backoff = 0.0  # a create went through: the API accepts them again
        else:
            first = first_seen[uid] = known.get(uid, now)
        if facts.deleting:
            deleting.pop(uid, None)
        seen.append(
            AutoscaledPod(
                name, uid, facts.phase, facts.ready, facts.template_hash, first, facts.deleting
            )
        )
    if deleting:
        deleting = {uid: t for uid, t in deleting.items() if uid in first_seen}
    if creating:
        creating = {n: t for n, t in creating.items() if now - t < state.create_timeout}
        for name, sent in sorted(creating.items()):
            if name not in names:
                seen.append(
                    AutoscaledPod(
                        name, "", "Pending", False, spec.template_hash, sent, observed=False
                    )
                )
    new_state = _evolve(state, creating, deleting, first_seen, backoff, state.not_before)
    return new_state, tuple(seen)


def _evolve(
    state: ReconcileState,
    creating: Mapping[str, float],
    deleting: Mapping[str, float],
    first_seen: Mapping[str, float],
    backoff: float,
    not_before: float,
) -> ReconcileState:
    # `dataclasses.replace` walks the fields by name; a step makes two of these.
    return ReconcileState(
        creating,
        deleting,
        first_seen,
        backoff,
        not_before,
        state.create_timeout,
        state.delete_retry,
        state.backoff_first,
        state.backoff_max,
    )


def _json_copy(value: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = orjson.loads(orjson.dumps(value))
    return copied


def pod_body(spec: AppSpec, name: str) -> dict[str, Any]:
    """A v1 Pod from a deep copy of the app's template, labelled and owned by the Deployment."""
    # A deep copy through JSON: the template is JSON as decoded, and this is ~10x faster than
    # copy.deepcopy (the what-if replays create thousands of pods).
    template = _json_copy(dict(spec.pod_template or {}))
    metadata = _mapping(template.get("metadata"))
    labels = {k: v for k, v in _mapping(metadata.get("labels")).items() if isinstance(v, str)}
    # A ReplicaSet selects its pods by pod-template-hash: never let one adopt ours.
    labels.pop("pod-template-hash", None)
    labels[APP_LABEL] = spec.app
    labels[AUTOSCALED_LABEL] = "true"
    labels[K8STICKET_SCALED_LABEL] = "true"
    if spec.template_hash is not None:
        labels[TEMPLATE_HASH_LABEL] = spec.template_hash
    meta: dict[str, Any] = {"name": name, "namespace": spec.namespace, "labels": labels}
    annotations = _mapping(metadata.get("annotations"))
    if annotations:
        meta["annotations"] = dict(annotations)
    if spec.deployment_uid:
        # No blockOwnerDeletion: it needs `update` on deployments/finalizers where the
        # OwnerReferencesPermissionEnforcement admission plugin runs, which k8sTicket's RBAC lacks.
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": spec.deployment,
                "uid": spec.deployment_uid,
                "controller": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": _mapping(template.get("spec")),
    }


def reconcile(
    state: ReconcileState,
    spec: AppSpec,
    decision: ScaleDecision,
    pods: Iterable[AutoscaledPod],
    *,
    now: float,
    new_suffix: Callable[[], str],
) -> tuple[ReconcileState, tuple[PodCommand, ...]]:
    """Commands that bring the cluster to `decision`, minus what is already under way."""
    pods = tuple(pods)
    by_name = {p.name: p for p in pods}
    commands: list[PodCommand] = []
    deleting = dict(state.deleting)
    for verdict in decision.delete:
        pod = by_name.get(verdict.name)
        if pod is None or not pod.observed or pod.deleting or pod.uid != verdict.uid:
            continue  # already gone, not created yet, or on its way out
        sent = deleting.get(pod.uid)
        if sent is not None and now - sent < state.delete_retry:
            continue
        deleting[pod.uid] = now
        commands.append(DeletePod(spec.namespace, pod.name, pod.uid, spec.app, verdict.reason))

    creating = dict(state.creating)
    known = {v.name for v in decision.keep} | {v.name for v in decision.delete}
    unknown_in_flight = sum(1 for name in creating if name not in known)
    wanted = decision.create - unknown_in_flight
    if wanted > 0 and spec.pod_template is not None and now >= state.not_before:
        taken = set(by_name) | set(creating)
        for _ in range(wanted):
            name = _fresh_name(spec.app, taken, new_suffix)
            taken.add(name)
            creating[name] = now
            commands.append(CreatePod(spec.namespace, name, spec.app, pod_body(spec, name)))
    new_state = _evolve(
        state, creating, deleting, state.first_seen, state.backoff, state.not_before
    )
    return new_state, tuple(commands)


def _fresh_name(app: str, taken: set[str], new_suffix: Callable[[], str]) -> str:
    for _ in range(100):
        name = f"{app}-rxkube-{new_suffix()}"
        if name not in taken:
            return name
    raise RuntimeError("the name suffix source keeps repeating names already in use")


def command_failed(state: ReconcileState, command: PodCommand, *, now: float) -> ReconcileState:
    """The sink reports that `command` failed: back off (creates double, deletes wait a retry).

    A delete of a pod that is already gone (404) is a success: report only other failures.
    """
    if isinstance(command, CreatePod):
        creating = {n: t for n, t in state.creating.items() if n != command.name}
        backoff = min(
            state.backoff_max, state.backoff * 2 if state.backoff else state.backoff_first
        )
        return replace(state, creating=creating, backoff=backoff, not_before=now + backoff)
    # Keep the expectation, restarted now: the delete is sent again after `delete_retry`,
    # so a refusing API (403) is retried at that pace rather than on every step.
    return replace(state, deleting={**state.deleting, command.uid: now})


@dataclass(frozen=True, slots=True)
class AutoscaleStep:
    """One step of one app's autoscaler: the new state, the decision and the commands."""

    state: ReconcileState
    decision: ScaleDecision
    commands: tuple[PodCommand, ...]
    next_check: float | None
    """When to run the next step if nothing else happens (None: only on new input)."""


def autoscale(
    state: ReconcileState,
    spec: AppSpec,
    load: LoadSummary,
    pods: Iterable[Mapping[str, Any] | PodFacts],
    *,
    now: float,
    new_suffix: Callable[[], str],
) -> AutoscaleStep:
    """Observe the pods, decide, reconcile: the whole pure step for one app.

    Run it only after the pod informer has synced: before that, "no pods" is not the truth and
    the step would create pods that already exist.
    """
    state, view = autoscaled_pods(state, spec, pods, now=now)
    decision = decide(spec, load, view, now=now)
    state, commands = reconcile(state, spec, decision, view, now=now, new_suffix=new_suffix)
    times = [t for t in (decision.next_check,) if t is not None]
    times += [sent + state.create_timeout for sent in state.creating.values()]
    times += [sent + state.delete_retry for sent in state.deleting.values()]
    if decision.create > 0 and now < state.not_before:
        times.append(state.not_before)
    future = [t for t in times if t > now]
    return AutoscaleStep(state, decision, commands, min(future) if future else None)
