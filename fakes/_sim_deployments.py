"""The simulated deployment and replica set controllers (kube-controller-manager's, in small).

What this module is for: turning Deployments into ReplicaSets and ReplicaSets into Pods the way
`pkg/controller/deployment` and `pkg/controller/replicaset` do, so that clients see what a real
cluster writes (reference `kubernetes-api-wire.md` section 11):

- a ReplicaSet per pod template, named `<deployment>-<pod-template-hash>` (FNV-32a of the
  template and `collisionCount`, digits encoded like `rand.SafeEncodeString`), the
  `pod-template-hash` label on the RS, its selector and template, the revision annotations
  (`deployment.kubernetes.io/revision`, `desired-replicas`, `max-replicas`), and controller
  ownerReferences (Deployment -> RS -> Pod), so that deletion cascades through the store's GC;
- rolling updates as `rolloutRolling` does them: the new RS grows within `maxSurge`, old RSes
  shrink (unhealthy replicas first) while `maxUnavailable` allows; `Recreate` scales the old
  RSes to zero and waits for their pods to go before scaling up; proportional scaling of all
  active RSes when `spec.replicas` changes mid-rollout; `paused`; `revisionHistoryLimit`;
- Deployment status exactly as `calculateStatus` and `syncRolloutStatus` set it (omitempty
  counts; `Available` and `Progressing` with their reasons, messages, timestamps and order;
  `ProgressDeadlineExceeded` after `progressDeadlineSeconds` without progress), so that
  `kubectl rollout status` converges or fails as on a real cluster;
- ReplicaSet status (`replicas` counts active pods, `readyReplicas`, `availableReplicas` after
  `minReadySeconds`), pods created from the template with `generateName`, and surplus pods
  deleted in the order of `getPodsToDelete` (unscheduled, pending, not ready, most restarts,
  newest first).

Not done: adopting orphaned pods/RSes that match a selector, releasing pods whose labels stop
matching, `ReplicaFailure` conditions. Both controllers are `sync(key)` functions driven by a
`WorkQueue` (level-triggered, like client-go controllers); they read and write the store
directly, with no I/O and no clock but trio's (for deadlines) and the store's `now`.
"""

from __future__ import annotations

import calendar
import copy
import logging
import math
import time as _time
from collections.abc import Mapping
from typing import Any, Final

import orjson
import trio

from rxkube.fakes._errors import StatusError
from rxkube.fakes._sim_events import EventRecorder
from rxkube.fakes._sim_queue import WorkQueue
from rxkube.fakes._store import Change, DeleteOptions, Store, rfc3339

__all__: list[str] = []

logger = logging.getLogger("rxkube.fakes")

HASH_LABEL: Final = "pod-template-hash"
REVISION: Final = "deployment.kubernetes.io/revision"
DESIRED: Final = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS: Final = "deployment.kubernetes.io/max-replicas"
DEPLOYMENT_CONTROLLER: Final = "system:serviceaccount:kube-system:deployment-controller"
REPLICASET_CONTROLLER: Final = "system:serviceaccount:kube-system:replicaset-controller"
_SAFE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_BURST: Final = 500  # pods created per sync at most (the real controller's burstReplicas)

Obj = dict[str, Any]
Key = tuple[str, str]


# -- small helpers on Kubernetes JSON -----------------------------------------------------


def controller_ref(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def owner_ref(owner: Mapping[str, Any]) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_from_template(owner: Mapping[str, Any]) -> Obj:
    """A new pod of `owner`'s `spec.template` (a ReplicaSet's or a Job's), named after it."""
    template = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    meta = owner["metadata"]
    template_meta = template.get("metadata") or {}
    pod_meta: Obj = {"generateName": f"{meta['name']}-", "namespace": meta["namespace"]}
    for field in ("labels", "annotations"):
        if template_meta.get(field):
            pod_meta[field] = template_meta[field]
    pod_meta["ownerReferences"] = [owner_ref(owner)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": pod_meta,
        "spec": template.get("spec") or {},
    }


def safe_encode(text: str) -> str:
    """apimachinery `rand.SafeEncodeString`: no vowels, no confusable characters."""
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def pod_template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """FNV-32a of the template (canonical JSON; Go hashes its struct dump, so the values
    differ from a real cluster's but have the same form) and the collision count."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += str(collision_count).encode()
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return safe_encode(str(value))


def _without_hash(template: Mapping[str, Any]) -> Obj:
    out: Obj = copy.deepcopy(dict(template))
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
        if not labels:
            out["metadata"].pop("labels")
    return out


def _epoch(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    try:
        return float(calendar.timegm(_time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return 0.0


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def pod_ready(pod: Mapping[str, Any]) -> bool:
    cond = _condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def pod_active(pod: Mapping[str, Any]) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    deleting = (pod.get("metadata") or {}).get("deletionTimestamp")
    return phase not in ("Succeeded", "Failed") and not deleting


def _replicas(obj: Mapping[str, Any]) -> int:
    value = (obj.get("spec") or {}).get("replicas")
    return int(value) if isinstance(value, int) else 1


def _status_int(obj: Mapping[str, Any], name: str) -> int:
    value = (obj.get("status") or {}).get(name)
    return int(value) if isinstance(value, int) else 0


def _annotation_int(obj: Mapping[str, Any], name: str) -> int | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _revision(rs: Mapping[str, Any]) -> int:
    return _annotation_int(rs, REVISION) or 0


def _created(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))


def _int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            return 0
        scaled = total * percent / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def fenceposts(deployment: Mapping[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) resolved against spec.replicas (`ResolveFenceposts`)."""
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    replicas = _replicas(deployment)
    surge = _int_or_percent(rolling.get("maxSurge", "25%"), replicas, True)
    unavailable = _int_or_percent(rolling.get("maxUnavailable", "25%"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(deployment: Mapping[str, Any]) -> int:
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    replicas = _replicas(deployment)
    if strategy.get("type", "RollingUpdate") != "RollingUpdate" or replicas == 0:
        return 0
    return min(fenceposts(deployment)[1], replicas)


def set_condition(conditions: list[Obj], new: Obj) -> None:
    """`SetDeploymentCondition`: same type, status and reason is a no-op; else the old one
    is removed and the new appended (keeping lastTransitionTime when the status holds)."""
    current = next((c for c in conditions if c.get("type") == new["type"]), None)
    if (
        current is not None
        and current.get("status") == new["status"]
        and current.get("reason") == new["reason"]
    ):
        return
    if current is not None and current.get("status") == new["status"]:
        new["lastTransitionTime"] = current.get("lastTransitionTime", new["lastTransitionTime"])
    conditions[:] = [c for c in conditions if c.get("type") != new["type"]]
    conditions.append(new)


def _new_condition(kind: str, status: str, reason: str, message: str, now: str) -> Obj:
    return {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


# -- the deployment controller ------------------------------------------------------------


class DeploymentController:
    def __init__(self, store: Store, events: EventRecorder) -> None:
        self.store = store
        self.events = events
        self.queue: WorkQueue[Key] = WorkQueue("deployment-controller")
        self._last_progress: dict[str, float] = {}

    def observe(self, change: Change) -> None:
        res = change.resource
        if res.group == "apps" and res.plural == "deployments":
            self.queue.add((change.new.namespace, change.new.name))
            return
        if res.group == "apps" and res.plural == "replicasets":
            for entry in (change.new, change.old):
                if entry is None:
                    continue
                ref = controller_ref(entry.object())
                if ref is not None and ref.get("kind") == "Deployment":
                    self.queue.add((entry.namespace, str(ref.get("name"))))
            return
        if not res.group and res.plural == "pods" and change.type == "DELETED":
            # Recreate waits for the old pods to be gone.
            ref = controller_ref(change.new.object())
            if ref is not None and ref.get("kind") == "ReplicaSet":
                try:
                    rs = self.store.get("replicasets", change.new.namespace, str(ref["name"]))
                except StatusError:
                    return
                owner = controller_ref(rs)
                if owner is not None and owner.get("kind") == "Deployment":
                    self.queue.add((change.new.namespace, str(owner.get("name"))))

    def resync_all(self) -> None:
        for entry in self.store.entries("deployments"):
            self.queue.add((entry.namespace, entry.name))

    # -- sync ------------------------------------------------------------------------------

    def sync(self, key: Key) -> float | None:
        namespace, name = key
        try:
            d = self.store.get("deployments", namespace, name)
        except StatusError:
            return None
        if d["metadata"].get("deletionTimestamp"):
            return None
        uid = d["metadata"]["uid"]
        rs_list = [
            e.object()
            for e in self.store.entries("replicasets")
            if e.namespace == namespace and uid in e.owner_uids
        ]
        rs_list = [rs for rs in rs_list if (controller_ref(rs) or {}).get("uid") == uid]
        rs_list.sort(key=_created)
        template = (d.get("spec") or {}).get("template") or {}
        new_rs = next(
            (rs for rs in rs_list if _without_hash(rs["spec"]["template"]) == template), None
        )
        old = [rs for rs in rs_list if rs is not new_rs]
        status = copy.deepcopy(d.get("status") or {})
        conditions: list[Obj] = list(status.get("conditions") or [])
        now = rfc3339(self.store.now())
        spec = d.get("spec") or {}
        paused = bool(spec.get("paused"))

        if paused or self._is_scaling_event(d, new_rs, old):
            self._scale(d, new_rs, old)
            if paused:
                set_condition(
                    conditions,
                    _new_condition(
                        "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now
                    ),
                )
            return self._write_status(d, new_rs, old, conditions, now, progress=False)
        if _condition(d, "Progressing") is not None and (
            (_condition(d, "Progressing") or {}).get("reason") == "DeploymentPaused"
        ):
            set_condition(
                conditions,
                _new_condition(
                    "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", now
                ),
            )

        new_rs = self._new_replica_set(d, new_rs, old, conditions, now)
        if new_rs is None:
            return self._write_status(d, None, old, conditions, now, progress=False)
        all_rs = [new_rs, *old]
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        if strategy == "Recreate":
            active_old = [rs for rs in old if _replicas(rs) > 0]
            for rs in active_old:
                self._scale_rs(d, rs, 0)
            if (
                not active_old
                and not self._old_pods_running(old)
                and _replicas(new_rs) != _replicas(d)
            ):
                self._scale_rs(d, new_rs, _replicas(d))
        elif not self._reconcile_new(d, new_rs, all_rs):
            self._reconcile_old(d, new_rs, old, all_rs)
        if self._complete(d, new_rs, all_rs):
            self._cleanup(d, old)
        return self._write_status(d, new_rs, old, conditions, now, progress=True)

    # -- replica sets ----------------------------------------------------------------------

    def _new_replica_set(
        self, d: Obj, existing: Obj | None, old: list[Obj], conditions: list[Obj], now: str
    ) -> Obj | None:
        max_old = max((_revision(rs) for rs in old), default=0)
        new_revision = str(max_old + 1)
        surge, _ = fenceposts(d)
        if existing is not None:
            rs = existing
            annotations = rs["metadata"].setdefault("annotations", {})
            wanted = dict(annotations)
            if _revision(rs) <= max_old:
                wanted[REVISION] = new_revision
            wanted.setdefault(DESIRED, str(_replicas(d)))
            wanted.setdefault(MAX_REPLICAS, str(_replicas(d) + surge))
            min_ready = (d.get("spec") or {}).get("minReadySeconds")
            changed = wanted != annotations or rs["spec"].get("minReadySeconds") != min_ready
            if changed:
                rs["metadata"]["annotations"] = wanted
                if min_ready is None:
                    rs["spec"].pop("minReadySeconds", None)
                else:
                    rs["spec"]["minReadySeconds"] = min_ready
                rs = self.store.update(
                    "replicasets",
                    rs,
                    namespace=rs["metadata"]["namespace"],
                    user=DEPLOYMENT_CONTROLLER,
                ).object()
            self._set_deployment_revision(d, str(_revision(rs)))
            if _condition(d, "Progressing") is None:
                set_condition(
                    conditions,
                    _new_condition(
                        "Progressing",
                        "True",
                        "FoundNewReplicaSet",
                        f'Found new replica set "{rs["metadata"]["name"]}"',
                        now,
                    ),
                )
            return rs
        # Create the new replica set with the replicas a rollout step allows.
        status = d.get("status") or {}
        collision = status.get("collisionCount")
        template = copy.deepcopy((d.get("spec") or {}).get("template") or {})
        hash_value = pod_template_hash(template, collision)
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hash_value
        labels = dict(template["metadata"]["labels"])
        selector = copy.deepcopy((d.get("spec") or {}).get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = hash_value
        strategy = ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate")
        replicas = 0 if strategy == "Recreate" else self._new_rs_replicas(d, 0, old)
        meta = d["metadata"]
        rs_name = f"{meta['name']}-{hash_value}"
        body: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": {
                    DESIRED: str(_replicas(d)),
                    MAX_REPLICAS: str(_replicas(d) + surge),
                    REVISION: new_revision,
                },
                "ownerReferences": [owner_ref(d)],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
        }
        min_ready = (d.get("spec") or {}).get("minReadySeconds")
        if min_ready:
            body["spec"]["minReadySeconds"] = min_ready
        try:
            created = self.store.create(
                "replicasets", body, namespace=meta["namespace"], user=DEPLOYMENT_CONTROLLER
            ).object()
        except StatusError as error:
            if error.reason != "AlreadyExists":
                raise
            # A hash collision with an RS that is not ours: count it and try the next name.
            status_now = copy.deepcopy(d.get("status") or {})
            status_now["collisionCount"] = int(collision or 0) + 1
            d["status"] = status_now
            self.store.update(
                "deployments",
                d,
                namespace=meta["namespace"],
                subresource="status",
                user=DEPLOYMENT_CONTROLLER,
            )
            return None
        if replicas > 0:
            self.events.record(
                d,
                "ScalingReplicaSet",
                f"Scaled up replica set {rs_name} from 0 to {replicas}",
                component="deployment-controller",
            )
        self._set_deployment_revision(d, new_revision)
        set_condition(
            conditions,
            _new_condition(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                f'Created new replica set "{rs_name}"',
                now,
            ),
        )
        return created

    def _set_deployment_revision(self, d: Obj, revision: str) -> None:
        annotations = d["metadata"].get("annotations") or {}
        if annotations.get(REVISION) == revision:
            return
        d["metadata"]["annotations"] = {**annotations, REVISION: revision}
        fresh = self.store.update(
            "deployments", d, namespace=d["metadata"]["namespace"], user=DEPLOYMENT_CONTROLLER
        ).object()
        d["metadata"] = fresh["metadata"]

    def _scale_rs(self, d: Obj, rs: Obj, replicas: int) -> bool:
        """Scale `rs` (and stamp the desired/max annotations); returns whether it changed."""
        surge, _ = fenceposts(d)
        before = _replicas(rs)
        annotations = dict(rs["metadata"].get("annotations") or {})
        wanted = {
            **annotations,
            DESIRED: str(_replicas(d)),
            MAX_REPLICAS: str(_replicas(d) + surge),
        }
        if before == replicas and wanted == annotations:
            return False
        rs["metadata"]["annotations"] = wanted
        rs["spec"]["replicas"] = replicas
        updated = self.store.update(
            "replicasets", rs, namespace=rs["metadata"]["namespace"], user=DEPLOYMENT_CONTROLLER
        ).object()
        rs.clear()
        rs.update(updated)
        if before != replicas:
            direction = "up" if replicas > before else "down"
            self.events.record(
                d,
                "ScalingReplicaSet",
                f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to "
                f"{replicas}",
                component="deployment-controller",
            )
        return before != replicas

    def _new_rs_replicas(self, d: Obj, new_replicas: int, others: list[Obj]) -> int:
        """`NewRSNewReplicas` for a rolling update."""
        surge, _ = fenceposts(d)
        current = new_replicas + sum(_replicas(rs) for rs in others)
        max_total = _replicas(d) + surge
        if current >= max_total:
            return new_replicas
        scale_up = min(max_total - current, _replicas(d) - new_replicas)
        return new_replicas + max(scale_up, 0)

    def _reconcile_new(self, d: Obj, new_rs: Obj, all_rs: list[Obj]) -> bool:
        wanted, current = _replicas(d), _replicas(new_rs)
        if current == wanted:
            return False
        if current > wanted:
            return self._scale_rs(d, new_rs, wanted)
        others = [rs for rs in all_rs if rs is not new_rs]
        return self._scale_rs(d, new_rs, self._new_rs_replicas(d, current, others))

    def _reconcile_old(self, d: Obj, new_rs: Obj, old: list[Obj], all_rs: list[Obj]) -> bool:
        if sum(_replicas(rs) for rs in old) == 0:
            return False
        all_pods = sum(_replicas(rs) for rs in all_rs)
        min_available = _replicas(d) - max_unavailable(d)
        new_unavailable = _replicas(new_rs) - _status_int(new_rs, "availableReplicas")
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        scaled = False
        total = 0
        for rs in sorted(old, key=_created):
            if total >= max_scaled_down:
                break
            available = _status_int(rs, "availableReplicas")
            if _replicas(rs) == 0 or _replicas(rs) == available:
                continue
            count = min(max_scaled_down - total, _replicas(rs) - available)
            if count <= 0:
                continue
            scaled = self._scale_rs(d, rs, _replicas(rs) - count) or scaled
            total += count
        available_pods = sum(_status_int(rs, "availableReplicas") for rs in all_rs)
        if available_pods <= min_available:
            return scaled
        target = available_pods - min_available
        done = 0
        for rs in sorted(old, key=_created):
            if done >= target:
                break
            if _replicas(rs) == 0:
                continue
            count = min(_replicas(rs), target - done)
            scaled = self._scale_rs(d, rs, _replicas(rs) - count) or scaled
            done += count
        return scaled

    def _old_pods_running(self, old: list[Obj]) -> bool:
        uids = {rs["metadata"]["uid"] for rs in old}
        for entry in self.store.entries("pods"):
            if uids.intersection(entry.owner_uids):
                phase = (entry.object().get("status") or {}).get("phase")
                if phase not in ("Succeeded", "Failed"):
                    return True
        return False

    def _is_scaling_event(self, d: Obj, new_rs: Obj | None, old: list[Obj]) -> bool:
        active = [rs for rs in old if _replicas(rs) > 0]
        if new_rs is not None:
            active.append(new_rs)
        for rs in active:
            desired = _annotation_int(rs, DESIRED)
            if desired is not None and desired != _replicas(d):
                return True
        return False

    def _scale(self, d: Obj, new_rs: Obj | None, old: list[Obj]) -> None:
        """`scale()`: resize the active replica sets to the new `spec.replicas`."""
        all_rs = ([new_rs] if new_rs is not None else []) + old
        active = [rs for rs in all_rs if _replicas(rs) > 0]
        single: Obj | None = None
        if not active:
            single = new_rs if new_rs is not None else (old[-1] if old else None)
        elif len(active) == 1:
            single = active[0]
        if single is not None or not active:
            if single is not None:
                self._scale_rs(d, single, _replicas(d))
            return
        if (
            new_rs is not None
            and _replicas(new_rs) == _replicas(d)
            and _annotation_int(new_rs, DESIRED) == _replicas(d)
            and _status_int(new_rs, "availableReplicas") == _replicas(d)
        ):
            for rs in old:
                self._scale_rs(d, rs, 0)
            return
        surge, _ = fenceposts(d)
        allowed = _replicas(d) + surge if _replicas(d) > 0 else 0
        to_add = allowed - sum(_replicas(rs) for rs in all_rs)
        order = sorted(active, key=lambda rs: (-_replicas(rs), _created(rs)), reverse=False)
        sizes: dict[int, int] = {}
        added = 0
        for rs in order:
            size = _replicas(rs)
            proportion = 0
            if to_add != 0:
                if _replicas(d) == 0:
                    fraction = -size
                else:
                    annotated = _annotation_int(rs, MAX_REPLICAS) or _status_int(d, "replicas")
                    annotated = annotated or 1
                    fraction = round(size * (_replicas(d) + surge) / annotated) - size
                allowed_left = to_add - added
                proportion = (
                    min(fraction, allowed_left) if to_add > 0 else max(fraction, allowed_left)
                )
            sizes[id(rs)] = size + proportion
            added += proportion
        if order and added != to_add:
            sizes[id(order[0])] += to_add - added
        for rs in order:
            self._scale_rs(d, rs, max(sizes[id(rs)], 0))

    def _complete(self, d: Obj, new_rs: Obj, all_rs: list[Obj]) -> bool:
        replicas = _replicas(d)
        return (
            _status_int(new_rs, "replicas") == replicas
            and sum(_status_int(rs, "replicas") for rs in all_rs) == replicas
            and sum(_status_int(rs, "availableReplicas") for rs in all_rs) == replicas
        )

    def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        limit = (d.get("spec") or {}).get("revisionHistoryLimit", 10)
        if not isinstance(limit, int):
            return
        idle = [
            rs
            for rs in old
            if _replicas(rs) == 0
            and _status_int(rs, "replicas") == 0
            and not rs["metadata"].get("deletionTimestamp")
        ]
        surplus = len(idle) - limit
        if surplus <= 0:
            return
        idle.sort(key=lambda rs: (_revision(rs), _created(rs)))
        for rs in idle[:surplus]:
            meta = rs["metadata"]
            try:
                self.store.delete(
                    "replicasets",
                    meta["namespace"],
                    meta["name"],
                    DeleteOptions("Background"),
                    user=DEPLOYMENT_CONTROLLER,
                )
            except StatusError:
                continue

    # -- status ----------------------------------------------------------------------------

    def _write_status(
        self,
        d: Obj,
        new_rs: Obj | None,
        old: list[Obj],
        conditions: list[Obj],
        now: str,
        *,
        progress: bool,
    ) -> float | None:
        all_rs = ([new_rs] if new_rs is not None else []) + old
        replicas = _replicas(d)
        available = sum(_status_int(rs, "availableReplicas") for rs in all_rs)
        counts = {
            "observedGeneration": int(d["metadata"].get("generation") or 0),
            "replicas": sum(_status_int(rs, "replicas") for rs in all_rs),
            "updatedReplicas": _status_int(new_rs, "replicas") if new_rs is not None else 0,
            "readyReplicas": sum(_status_int(rs, "readyReplicas") for rs in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(replicas - available, 0),
        }
        if available >= replicas - max_unavailable(d):
            set_condition(
                conditions,
                _new_condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                    now,
                ),
            )
        else:
            set_condition(
                conditions,
                _new_condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                    now,
                ),
            )
        uid = d["metadata"]["uid"]
        requeue: float | None = None
        deadline = (d.get("spec") or {}).get("progressDeadlineSeconds")
        old_status = d.get("status") or {}
        if progress and isinstance(deadline, int) and new_rs is not None:
            current = next((c for c in conditions if c.get("type") == "Progressing"), None)
            rs_name = new_rs["metadata"]["name"]
            complete = (
                counts["updatedReplicas"] == replicas
                and counts["replicas"] == replicas
                and available == replicas
            )
            already_complete = (
                counts["replicas"] == counts["updatedReplicas"]
                and current is not None
                and current.get("reason") == "NewReplicaSetAvailable"
            )
            old_old = int(old_status.get("replicas") or 0) - int(
                old_status.get("updatedReplicas") or 0
            )
            new_old = counts["replicas"] - counts["updatedReplicas"]
            progressing = (
                counts["updatedReplicas"] > int(old_status.get("updatedReplicas") or 0)
                or new_old < old_old
                or counts["readyReplicas"] > int(old_status.get("readyReplicas") or 0)
                or available > int(old_status.get("availableReplicas") or 0)
            )
            clock = trio.current_time()
            since = self._last_progress.setdefault(uid, clock)
            if not already_complete:
                if complete:
                    set_condition(
                        conditions,
                        _new_condition(
                            "Progressing",
                            "True",
                            "NewReplicaSetAvailable",
                            f'ReplicaSet "{rs_name}" has successfully progressed.',
                            now,
                        ),
                    )
                elif progressing:
                    cond = _new_condition(
                        "Progressing",
                        "True",
                        "ReplicaSetUpdated",
                        f'ReplicaSet "{rs_name}" is progressing.',
                        now,
                    )
                    if current is not None and current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime", now)
                    conditions[:] = [c for c in conditions if c.get("type") != "Progressing"]
                    conditions.append(cond)
                elif current is not None and (
                    current.get("reason") == "ProgressDeadlineExceeded" or clock > since + deadline
                ):
                    set_condition(
                        conditions,
                        _new_condition(
                            "Progressing",
                            "False",
                            "ProgressDeadlineExceeded",
                            f'ReplicaSet "{rs_name}" has timed out progressing.',
                            now,
                        ),
                    )
            # The deadline counts from the last time Progressing was (re)stamped.
            cond_now = next((c for c in conditions if c.get("type") == "Progressing"), None)
            cond_before = _condition(d, "Progressing")
            if (
                cond_now is not None
                and cond_now != cond_before
                and cond_now.get("reason")
                in (
                    "NewReplicaSetCreated",
                    "FoundNewReplicaSet",
                    "ReplicaSetUpdated",
                    "DeploymentResumed",
                )
            ):
                self._last_progress[uid] = since = clock
            if (
                cond_now is not None
                and not complete
                and cond_now.get("reason")
                not in ("NewReplicaSetAvailable", "ProgressDeadlineExceeded")
            ):
                requeue = max(since + deadline - clock, 0.0) + 0.001
        status: Obj = {k: v for k, v in counts.items() if v}
        if conditions:
            status["conditions"] = conditions
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        if status != old_status:
            d["status"] = status
            self.store.update(
                "deployments",
                d,
                namespace=d["metadata"]["namespace"],
                subresource="status",
                user=DEPLOYMENT_CONTROLLER,
            )
        return requeue


# -- the replica set controller -----------------------------------------------------------


class ReplicaSetController:
    def __init__(self, store: Store, events: EventRecorder) -> None:
        self.store = store
        self.events = events
        self.queue: WorkQueue[Key] = WorkQueue("replicaset-controller")
        self._ready_since: dict[str, float] = {}

    def observe(self, change: Change) -> None:
        res = change.resource
        if res.group == "apps" and res.plural == "replicasets":
            self.queue.add((change.new.namespace, change.new.name))
            return
        if not res.group and res.plural == "pods":
            ref = controller_ref(change.new.object())
            if ref is not None and ref.get("kind") == "ReplicaSet":
                self.queue.add((change.new.namespace, str(ref.get("name"))))
            if change.type == "DELETED":
                self._ready_since.pop(change.new.uid, None)

    def resync_all(self) -> None:
        for entry in self.store.entries("replicasets"):
            self.queue.add((entry.namespace, entry.name))

    def _pods(self, rs: Obj) -> list[Obj]:
        uid = rs["metadata"]["uid"]
        namespace = rs["metadata"]["namespace"]
        out = []
        for entry in self.store.entries("pods"):
            if entry.namespace != namespace or uid not in entry.owner_uids:
                continue
            pod = entry.object()
            if (controller_ref(pod) or {}).get("uid") == uid:
                out.append(pod)
        return out

    def sync(self, key: Key) -> float | None:
        namespace, name = key
        try:
            rs = self.store.get("replicasets", namespace, name)
        except StatusError:
            return None
        active = [p for p in self._pods(rs) if pod_active(p)]
        if not rs["metadata"].get("deletionTimestamp"):
            diff = len(active) - _replicas(rs)
            if diff < 0:
                for _ in range(min(-diff, _BURST)):
                    active.append(self._create_pod(rs))
            elif diff > 0:
                for pod in self._pods_to_delete(active, diff):
                    self._delete_pod(rs, pod)
                active = [p for p in self._pods(rs) if pod_active(p)]
        return self._write_status(rs, active)

    def _create_pod(self, rs: Obj) -> Obj:
        pod = self.store.create(
            "pods",
            pod_from_template(rs),
            namespace=rs["metadata"]["namespace"],
            user=REPLICASET_CONTROLLER,
        ).object()
        self.events.record(
            rs,
            "SuccessfulCreate",
            f"Created pod: {pod['metadata']['name']}",
            component="replicaset-controller",
        )
        return pod

    def _delete_pod(self, rs: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            self.store.delete(
                "pods",
                meta["namespace"],
                meta["name"],
                DeleteOptions(),
                user=REPLICASET_CONTROLLER,
            )
        except StatusError:
            return
        self.events.record(
            rs,
            "SuccessfulDelete",
            f"Deleted pod: {meta['name']}",
            component="replicaset-controller",
        )

    @staticmethod
    def _pods_to_delete(active: list[Obj], count: int) -> list[Obj]:
        def rank(pod: Obj) -> tuple[int, int, int, float, int, float]:
            status = pod.get("status") or {}
            assigned = 1 if (pod.get("spec") or {}).get("nodeName") else 0
            phase = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", ""), 0)
            ready = 1 if pod_ready(pod) else 0
            ready_at = _epoch((_condition(pod, "Ready") or {}).get("lastTransitionTime"))
            restarts = max(
                (int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or ()),
                default=0,
            )
            created = _epoch(pod["metadata"].get("creationTimestamp"))
            return (assigned, phase, ready, -ready_at, -restarts, -created)

        return sorted(active, key=rank)[:count]

    def _available(self, pod: Obj, min_ready: int, clock: float) -> tuple[bool, float | None]:
        uid = pod["metadata"]["uid"]
        if not pod_ready(pod):
            self._ready_since.pop(uid, None)
            return False, None
        since = self._ready_since.setdefault(uid, clock)
        if min_ready <= 0:
            return True, None
        left = since + min_ready - clock
        if left <= 0:
            return True, None
        return False, left

    def _write_status(self, rs: Obj, active: list[Obj]) -> float | None:
        clock = trio.current_time()
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        template_labels = ((rs["spec"].get("template") or {}).get("metadata") or {}).get(
            "labels"
        ) or {}
        ready = 0
        available = 0
        labeled = 0
        requeue: float | None = None
        for pod in active:
            labels = pod["metadata"].get("labels") or {}
            if all(labels.get(k) == v for k, v in template_labels.items()):
                labeled += 1
            if pod_ready(pod):
                ready += 1
            ok, left = self._available(pod, min_ready, clock)
            if ok:
                available += 1
            elif left is not None:
                requeue = left if requeue is None else min(requeue, left)
        status: Obj = {"replicas": len(active)}
        if labeled:
            status["fullyLabeledReplicas"] = labeled
        if ready:
            status["readyReplicas"] = ready
        if available:
            status["availableReplicas"] = available
        generation = int(rs["metadata"].get("generation") or 0)
        if generation:
            status["observedGeneration"] = generation
        if status != (rs.get("status") or {}):
            rs["status"] = status
            self.store.update(
                "replicasets",
                rs,
                namespace=rs["metadata"]["namespace"],
                subresource="status",
                user=REPLICASET_CONTROLLER,
            )
        return requeue
