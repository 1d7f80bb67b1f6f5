"""The autoscaler's decision: which autoscaled pods an app keeps, deletes and needs more of.

What this module is for: one pure function, `decide(spec, load, pods, now=...)`, from what the
proxy knows (the app's servers with capacity, users, readiness and idle time; its waiting users),
the app's spec and its autoscaled pods, to a `ScaleDecision` with a reason for every pod. It does
no I/O and reads no clock: `now` is the scheduler's time, and every time in the inputs is on the
same clock. It imports only the standard library, this package's `AppSpec` and a type of
`rxkube.streams`. Turning a
decision into API commands is `_reconcile.py`'s job.

Terms. *Free tickets*: the sum over ready servers of capacity minus users (the Deployment's own
pods count too). *Target*: `tickets.spare` plus the waiting users. *Starting capacity*:
`tickets.max` for each autoscaled pod that is being created or has not become a ready server yet.
*Obsolete*: an autoscaled pod whose template hash differs from the spec's (k8sTicket's adopted
pods have none, so they are obsolete). *Idle*: a ready server with no users.

Rules, applied in this order (issue 8, item 1). Pods being deleted (deletionTimestamp set) are
left alone: they give no capacity but still count toward `pods.max` until they are gone (they
still hold their resources, and k8sTicket counted every labelled pod too).

    R1 busy      a pod whose server has users is kept, whatever else holds. Never delete a pod
                 with tickets.
    R2 creating  a create sent but not yet seen is kept and counts as starting capacity.
    R3 failed    a pod in phase Failed or Succeeded is deleted (it will never serve).
    R4 starting  a pod that is not a ready server, younger than `pods.start-grace`, is kept and
                 counts as starting capacity. Never delete a starting pod.
    R5 not ready a pod that is not a ready server at or past the grace period is deleted (and so
                 replaced by R6, since it no longer counts).
    R6 scale up  if free tickets (obsolete idle pods excluded: they are on their way out) plus
                 starting capacity are below the target, create ceil(deficit / tickets.max) pods,
                 as long as all pods stay within `pods.max`. Exactly at `pods.max`, with nothing
                 starting or terminating, one obsolete idle pod is deleted to make room for its
                 replacement (created once it is gone): a rollout one pod at a time, the one case
                 where free tickets may dip below the target, because `pods.max` wins. Without a
                 pod template (a metadata-only spec), nothing is created.
    R7 replace   an obsolete idle pod is deleted when the free tickets left without it still
                 reach the target (its replacement is ready). Busy obsolete pods stay (R1).
    R8 cool down when nothing is to be created, an idle pod idle for at least `pods.cooldown`
                 (longest idle first) is deleted when the free tickets left without it still
                 reach the target. Scale-down never goes below spare.
    R9 pods.max  if more pods exist than `pods.max` (it was lowered), idle pods are deleted
                 (obsolete first, then longest idle) until they fit; busy and starting pods stay
                 until they are idle.

`next_check` is the earliest future time at which the decision can change without any input
changing (an idle pod reaching its cooldown, a starting pod reaching its grace period): a
pipeline schedules one tick then instead of polling, which keeps replays exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from rxkube.controllers._appspec import AppSpec
from rxkube.streams import PodPhase

__all__ = [
    "AutoscaledPod",
    "DeleteReason",
    "KeepReason",
    "LoadSummary",
    "PodToDelete",
    "PodToKeep",
    "ScaleDecision",
    "ServerLoad",
    "decide",
]

KeepReason: TypeAlias = Literal["busy", "creating", "starting", "needed", "cooling down"]
DeleteReason: TypeAlias = Literal[
    "failed", "not ready", "old template", "idle", "above pods.max", "app removed"
]
"""Why a pod is deleted: rules R3, R5, R6/R7, R8, R9; "app removed" when its app is no longer
served at all (the pipeline deletes every autoscaled pod of it; see `_scaling.py`)."""


@dataclass(frozen=True, slots=True)
class ServerLoad:
    """One backend of the app as the ticket table sees it (autoscaled or not)."""

    name: str
    """The pod's name (servers are named after their pods)."""
    capacity: int
    users: int
    ready: bool
    """In new-ticket rotation (pod Running and Ready with an IP)."""
    idle_since: float | None = None
    """Scheduler time since when it has had no users; None while it has users."""


@dataclass(frozen=True, slots=True)
class LoadSummary:
    """The load summary of one app: its servers and the length of its waiting room."""

    servers: tuple[ServerLoad, ...] = ()
    waiting: int = 0

    @property
    def users(self) -> int:
        return sum(s.users for s in self.servers)

    @property
    def free_tickets(self) -> int:
        return sum(max(0, s.capacity - s.users) for s in self.servers if s.ready)


@dataclass(frozen=True, slots=True)
class AutoscaledPod:
    """One autoscaled pod of the app, as the informer shows it (or as a create in flight)."""

    name: str
    uid: str
    """"" for a create in flight."""
    phase: PodPhase
    ready: bool
    """The pod's Ready condition."""
    template_hash: str | None
    created_at: float
    """Scheduler time the create was sent, or the pod was first seen (adopted pods)."""
    deleting: bool = False
    """deletionTimestamp is set: the pod is on its way out."""
    observed: bool = True
    """False for a create sent but not yet seen in the informer's view."""


@dataclass(frozen=True, slots=True)
class PodToKeep:
    name: str
    uid: str
    reason: KeepReason


@dataclass(frozen=True, slots=True)
class PodToDelete:
    name: str
    uid: str
    reason: DeleteReason


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    """The desired set of autoscaled pods of one app at `now`, with reasons."""

    app: str
    now: float
    keep: tuple[PodToKeep, ...]
    delete: tuple[PodToDelete, ...]
    create: int
    """How many new pods to create beyond `keep` (pods in flight are in `keep`)."""
    free_tickets: int
    """Free tickets on ready servers once the deletions are done."""
    starting_capacity: int
    target: int
    next_check: float | None
    slack: int = 0
    """Free tickets (obsolete idle pods' excluded) plus starting capacity, minus the target,
    before any create: how many more tickets could be taken, or waiters come, before R6
    creates a pod. Negative when pods are (or would be, but for pods.max) created."""

    @property
    def desired_pods(self) -> int:
        return len(self.keep) + self.create

    @property
    def summary(self) -> str:
        parts = [
            f"free {self.free_tickets} + starting {self.starting_capacity} vs target {self.target}",
        ]
        if self.create:
            parts.append(f"create {self.create}")
        for verdict in self.delete:
            parts.append(f"delete {verdict.name} ({verdict.reason})")
        return f"{self.app}: " + "; ".join(parts)


_TERMINAL: Final = frozenset({"Failed", "Succeeded"})


def decide(
    spec: AppSpec, load: LoadSummary, pods: Iterable[AutoscaledPod], *, now: float
) -> ScaleDecision:
    """Apply rules R1-R9 (see the module docstring) to one app at time `now`."""
    servers = {s.name: s for s in load.servers}
    target = spec.tickets_spare + max(0, load.waiting)
    pods = tuple(pods)
    live = sorted((p for p in pods if not p.deleting), key=lambda p: (p.created_at, p.name))
    terminating = len(pods) - len(live)

    keep: dict[str, PodToKeep] = {}
    delete: dict[str, PodToDelete] = {}
    idle: list[tuple[AutoscaledPod, ServerLoad]] = []
    starting = 0
    wake: list[float] = []

    for pod in live:
        server = servers.get(pod.name)
        if server is not None and server.users > 0:  # R1
            keep[pod.name] = PodToKeep(pod.name, pod.uid, "busy")
        elif not pod.observed:  # R2
            keep[pod.name] = PodToKeep(pod.name, pod.uid, "creating")
            starting += 1
        elif pod.phase in _TERMINAL:  # R3
            delete[pod.name] = PodToDelete(pod.name, pod.uid, "failed")
        elif server is None or not server.ready:
            deadline = pod.created_at + spec.pods_start_grace
            if now < deadline:  # R4
                keep[pod.name] = PodToKeep(pod.name, pod.uid, "starting")
                starting += 1
                wake.append(deadline)
            else:  # R5
                delete[pod.name] = PodToDelete(pod.name, pod.uid, "not ready")
        else:
            idle.append((pod, server))

    def obsolete(pod: AutoscaledPod) -> bool:
        return spec.template_hash is not None and pod.template_hash != spec.template_hash

    def idle_order(item: tuple[AutoscaledPod, ServerLoad]) -> tuple[bool, float, str]:
        pod, server = item
        since = server.idle_since if server.idle_since is not None else now
        return (not obsolete(pod), since, pod.name)

    idle.sort(key=idle_order)
    obsolete_idle = [item for item in idle if obsolete(item[0])]
    current_idle = [item for item in idle if not obsolete(item[0])]

    def spare_of(server: ServerLoad) -> int:
        return max(0, server.capacity - server.users) if server.ready else 0

    free = load.free_tickets
    obsolete_free = sum(spare_of(server) for _, server in obsolete_idle)
    starting_capacity = starting * spec.tickets_max
    deficit = target - (free - obsolete_free + starting_capacity)

    # R6: scale up.
    create = 0
    remaining = list(idle)  # idle pods not (yet) deleted
    # Pods deleted by R3/R5 occupy room until they are gone, like terminating ones.
    room = spec.pods_max - (len(keep) + len(remaining) + terminating + len(delete))
    if deficit > 0 and spec.template_hash is not None:
        wanted = math.ceil(deficit / spec.tickets_max)
        create = max(0, min(wanted, room))
        if create < wanted and room == 0 and obsolete_idle and not starting and not terminating:
            pod, server = obsolete_idle[0]  # make room: roll one pod at a time
            delete[pod.name] = PodToDelete(pod.name, pod.uid, "old template")
            remaining.remove((pod, server))
            free -= spare_of(server)

    # R7: replace obsolete idle pods whose replacements are ready.
    for pod, server in obsolete_idle:
        if pod.name in delete:
            continue
        if free - spare_of(server) >= target:
            delete[pod.name] = PodToDelete(pod.name, pod.uid, "old template")
            remaining.remove((pod, server))
            free -= spare_of(server)

    # R8: cool down.
    if create == 0:
        for pod, server in current_idle:
            since = server.idle_since if server.idle_since is not None else now
            cooled = since + spec.pods_cooldown
            if now < cooled:
                wake.append(cooled)
                continue
            if free - spare_of(server) >= target:
                delete[pod.name] = PodToDelete(pod.name, pod.uid, "idle")
                remaining.remove((pod, server))
                free -= spare_of(server)
    else:
        for _pod, server in current_idle:
            since = server.idle_since if server.idle_since is not None else now
            if now < since + spec.pods_cooldown:
                wake.append(since + spec.pods_cooldown)

    # R9: pods.max was lowered below what exists.
    excess = len(keep) + len(remaining) + terminating - spec.pods_max
    for pod, server in list(remaining):  # already in R9 order: obsolete first, longest idle
        if excess <= 0:
            break
        delete[pod.name] = PodToDelete(pod.name, pod.uid, "above pods.max")
        remaining.remove((pod, server))
        free -= spare_of(server)
        excess -= 1

    for pod, server in remaining:
        since = server.idle_since if server.idle_since is not None else now
        waited = now >= since + spec.pods_cooldown
        reason: KeepReason = "needed" if waited or obsolete(pod) else "cooling down"
        keep[pod.name] = PodToKeep(pod.name, pod.uid, reason)

    future = [t for t in wake if t > now]
    return ScaleDecision(
        app=spec.app,
        now=now,
        keep=tuple(sorted(keep.values(), key=lambda v: v.name)),
        delete=tuple(sorted(delete.values(), key=lambda v: v.name)),
        create=create,
        free_tickets=free,
        starting_capacity=starting_capacity,
        target=target,
        next_check=min(future) if future else None,
        slack=-deficit,
    )
