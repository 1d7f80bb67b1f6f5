"""The simulated Job controller (kube-controller-manager's `pkg/controller/job`, in small).

What this module is for: a Job created with `kubectl create job` (or `--from=cronjob/NAME`,
or a manifest) gets its pods, and its status follows them, so `kubectl get jobs`, `kubectl
get pods -l job-name=NAME` and `kubectl wait --for=condition=complete` behave as on a cluster.

What it does: pods from the template (`generateName: <job>-`, the template's labels, which
the API server gave the `batch.kubernetes.io/controller-uid` and `job-name` labels and their
legacy twins, the `batch.kubernetes.io/job-tracking` finalizer left out), a controller
ownerReference to the Job (deleting the Job deletes them through the store's GC), at most
`parallelism` active at once and no more than the completions still missing; status
`startTime`, `active`, `ready`, `succeeded`, `failed`, `terminating`; the `Complete` condition
(with `SuccessCriteriaMet` before it, as 1.31+ writes) and `completionTime` once
`completions` pods succeeded; `Failed` with `BackoffLimitExceeded` once more than
`backoffLimit` pods failed. Suspended Jobs create nothing.

What it does not do: `Indexed` completion mode (pods are not indexed), pod failure and
success policies, `activeDeadlineSeconds`, `ttlSecondsAfterFinished`, back-off delays between
retries, and the CronJob controller (a CronJob is stored, never scheduled: `kubectl create job
--from=cronjob/NAME` runs it by hand). The simulated kubelet runs every container as a web
server that never exits, so a Job's pods succeed only when asked: the pod annotation
`sim.rxkube.io/exit-code: "0"` (in the Job's template) makes each container exit 0 once
running, `sim.rxkube.io/crash-after` delays it (see `SimAnnotations`).

A `sync(key)` function driven by a `WorkQueue`, like the other simulated controllers; it
reads and writes the store directly, with no I/O and no clock but the store's `now`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from rxkube.fakes._errors import StatusError
from rxkube.fakes._sim_deployments import controller_ref, pod_from_template, pod_ready
from rxkube.fakes._sim_events import EventRecorder
from rxkube.fakes._sim_queue import WorkQueue
from rxkube.fakes._store import Change, Store, rfc3339

__all__: list[str] = []

JOB_CONTROLLER: Final = "system:serviceaccount:kube-system:job-controller"

Obj = dict[str, Any]
Key = tuple[str, str]


def _condition(job: Mapping[str, Any], kind: str) -> bool:
    return any(
        c.get("type") == kind and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or ()
    )


def _new_condition(kind: str, reason: str, message: str, now: str) -> Obj:
    return {
        "type": kind,
        "status": "True",
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


class JobController:
    def __init__(self, store: Store, events: EventRecorder) -> None:
        self.store = store
        self.events = events
        self.queue: WorkQueue[Key] = WorkQueue("job-controller")

    def observe(self, change: Change) -> None:
        res = change.resource
        if res.group == "batch" and res.plural == "jobs":
            self.queue.add((change.new.namespace, change.new.name))
        elif not res.group and res.plural == "pods":
            ref = controller_ref(change.new.object())
            if ref is not None and ref.get("kind") == "Job":
                self.queue.add((change.new.namespace, str(ref.get("name"))))

    def resync_all(self) -> None:
        for entry in self.store.entries("jobs"):
            self.queue.add((entry.namespace, entry.name))

    def _pods(self, job: Obj) -> list[Obj]:
        uid = job["metadata"]["uid"]
        namespace = job["metadata"]["namespace"]
        return [
            entry.object()
            for entry in self.store.entries("pods")
            if entry.namespace == namespace
            and uid in entry.owner_uids
            and (controller_ref(entry.object()) or {}).get("uid") == uid
        ]

    def sync(self, key: Key) -> float | None:
        namespace, name = key
        try:
            job = self.store.get("jobs", namespace, name)
        except StatusError:
            return None
        if job["metadata"].get("deletionTimestamp"):
            return None
        spec = job.get("spec") or {}
        pods = self._pods(job)
        phases = [(p.get("status") or {}).get("phase") for p in pods]
        deleting = [bool(p["metadata"].get("deletionTimestamp")) for p in pods]
        succeeded = phases.count("Succeeded")
        failed = phases.count("Failed")
        active = [
            p
            for p, phase, gone in zip(pods, phases, deleting, strict=True)
            if phase not in ("Succeeded", "Failed") and not gone
        ]
        terminating = sum(
            1
            for phase, gone in zip(phases, deleting, strict=True)
            if gone and phase not in ("Succeeded", "Failed")
        )
        finished = _condition(job, "Complete") or _condition(job, "Failed")
        completions = spec.get("completions")
        wanted_successes = int(completions) if completions is not None else 1
        parallelism = int(spec.get("parallelism") or 0)
        now = rfc3339(self.store.now())
        status: Obj = copy.deepcopy(job.get("status") or {})
        conditions: list[Obj] = list(status.get("conditions") or [])
        if not finished and not spec.get("suspend"):
            status.setdefault("startTime", now)
            if succeeded >= wanted_successes and not active:
                conditions.append(
                    _new_condition(
                        "SuccessCriteriaMet",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        now,
                    )
                )
                conditions.append(
                    _new_condition(
                        "Complete",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                        now,
                    )
                )
                status["completionTime"] = now
                self.events.record(job, "Completed", "Job completed", component="job-controller")
            elif failed > int(spec.get("backoffLimit") or 0):
                for kind in ("FailureTarget", "Failed"):
                    conditions.append(
                        _new_condition(
                            kind,
                            "BackoffLimitExceeded",
                            "Job has reached the specified backoff limit",
                            now,
                        )
                    )
                self.events.record(
                    job,
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                    type="Warning",
                    component="job-controller",
                )
            else:
                missing = min(parallelism, wanted_successes - succeeded) - len(active)
                for _ in range(max(missing, 0)):
                    active.append(self._create_pod(job))
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if pod_ready(p))
        status["succeeded"] = succeeded
        status["failed"] = failed
        status["terminating"] = terminating
        status["uncountedTerminatedPods"] = {}
        if conditions:
            status["conditions"] = conditions
        # omitempty counts, as the real status
        for name_ in ("active", "succeeded", "failed"):
            if not status[name_]:
                del status[name_]
        if status != (job.get("status") or {}):
            job["status"] = status
            self.store.update(
                "jobs", job, namespace=namespace, subresource="status", user=JOB_CONTROLLER
            )
        return None

    def _create_pod(self, job: Obj) -> Obj:
        pod = self.store.create(
            "pods",
            pod_from_template(job),
            namespace=job["metadata"]["namespace"],
            user=JOB_CONTROLLER,
        ).object()
        self.events.record(
            job,
            "SuccessfulCreate",
            f"Created pod: {pod['metadata']['name']}",
            component="job-controller",
        )
        return pod
