"""The autoscaler's pod sink: `CreatePod`/`DeletePod` commands in, outcomes out (the I/O edge).

What this module is for: the edge where the autoscaler's commands meet the API (DESIGN section
4, "Orchestrator sinks"). `PodSink` is the seam the runner depends on: an Observer of the
autoscaler's `PodCommand`s with an `outcomes` Observable of `PodCommandApplied` /
`PodCommandFailed`. `ClusterPodSink` fills it with the orchestrator's `cluster.pods` sink
(`rxkube.streams.orchestrator`): a create becomes `CreatePodFromManifest` (the complete Pod the
reconciling step built), a delete becomes `DeletePod(uid=...)`, so a pod re-created under the
same name is never deleted by mistake. `open_pod_sink(client)` runs one on its own `Pods` sink.

Behaviour:
- Commands are applied one at a time, in order, by the orchestrator's sink. `on_next` never
  waits. Its queue is bounded by what produces it: the reconciling step sends a command only
  for a pod not already under way (at most `pods.max` creates per app, one delete per pod per
  retry period), far below the sink's `max_pending`; a refusal (`SinkOverflow`) is a failure
  like any other.
- A delete answered 404 (already gone) or 409 (the name is another incarnation now) is
  applied: the pod the command meant is gone.
- Failures are never fatal: every other error (403, 422, 5xx, a lost connection) comes out as
  `PodCommandFailed` with the API's reason, is logged and counted; the autoscaler backs off
  and retries (`command_failed` in `_reconcile.py`).

It may import `rxkube.streams` (the orchestrator, the client), trio, reactivex and this
package's command types; it is the only module of the autoscaler that does I/O.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

import trio
from reactivex import Observable, abc
from reactivex.subject import Subject

from rxkube.controllers._logs import fields
from rxkube.controllers._reconcile import CreatePod, DeletePod, PodCommand
from rxkube.controllers._scaling import PodCommandApplied, PodCommandFailed, PodOutcome
from rxkube.streams import KubeClient, TrioScheduler
from rxkube.streams import orchestrator as orch

__all__ = ["ClusterPodSink", "PodSink", "PodSinkStatistics", "open_pod_sink"]

log: Final = logging.getLogger("rxkube.controllers.autoscaler")

_GONE: Final = frozenset({"NotFound", "Conflict"})


@dataclass(frozen=True, slots=True)
class PodSinkStatistics:
    queued: int
    """Commands sent and not yet answered."""
    applied: int
    failed: int
    failures: dict[str, int]
    """Failed commands by reason (`Forbidden`, `InternalError`, `KubeConnectionError`, ...)."""


@runtime_checkable
class PodSink(Protocol):
    """Where the autoscaler's pod commands go."""

    def on_next(self, command: PodCommand) -> None: ...

    @property
    def outcomes(self) -> Observable[PodOutcome]:
        """Every command's outcome, in the order applied (hot)."""
        ...

    def statistics(self) -> PodSinkStatistics: ...


class ClusterPodSink(abc.ObserverBase[PodCommand]):
    """The autoscaler's commands on an orchestrator `Pods` sink (`cluster.pods`)."""

    def __init__(self, pods: orch.Pods) -> None:
        self.pods = pods
        self._sent: dict[int, tuple[orch.Command, PodCommand]] = {}
        self._outcomes: Subject[PodOutcome] = Subject()
        self._applied = 0
        self._failures: dict[str, int] = {}
        self._subscription = pods.outcomes.subscribe(self._on_outcome)

    @property
    def outcomes(self) -> Observable[PodOutcome]:
        return self._outcomes

    def on_next(self, command: PodCommand) -> None:
        translated: orch.Command
        if isinstance(command, CreatePod):
            translated = orch.CreatePodFromManifest(command.body, namespace=command.namespace)
        else:
            translated = orch.DeletePod(
                command.name, uid=command.uid or None, namespace=command.namespace
            )
        # The orchestrator's outcome carries the very command object it was given.
        self._sent[id(translated)] = (translated, command)
        # A full queue raises SinkOverflow after publishing its Failed outcome (mapped above).
        with contextlib.suppress(orch.SinkOverflow):
            self.pods.on_next(translated)

    def on_error(self, error: Exception) -> None:
        log.error("the autoscaler's command stream failed", exc_info=error)

    def on_completed(self) -> None:
        pass

    def statistics(self) -> PodSinkStatistics:
        return PodSinkStatistics(
            queued=len(self._sent),
            applied=self._applied,
            failed=sum(self._failures.values()),
            failures=dict(self._failures),
        )

    def close(self) -> None:
        self._subscription.dispose()

    def _on_outcome(self, outcome: orch.Outcome) -> None:
        entry = self._sent.pop(id(outcome.command), None)
        if entry is None or entry[0] is not outcome.command:
            return  # another producer's command on the same sink
        command = entry[1]
        if isinstance(outcome, orch.Failed) and not (
            isinstance(command, DeletePod) and outcome.reason in _GONE
        ):
            reason = outcome.reason
            self._failures[reason] = self._failures.get(reason, 0) + 1
            log.warning(
                "could not %s pod: %s",
                command.kind,
                outcome.error,
                extra=fields(app=command.app, pod=command.name, reason=reason),
            )
            self._outcomes.on_next(PodCommandFailed(command, reason, str(outcome.error)))
            return
        self._applied += 1
        log.info(
            "pod %s",
            "created" if isinstance(command, CreatePod) else "deleted",
            extra=fields(
                app=command.app,
                pod=command.name,
                reason=command.reason if isinstance(command, DeletePod) else "scale up",
            ),
        )
        self._outcomes.on_next(PodCommandApplied(command))


@asynccontextmanager
async def open_pod_sink(client: KubeClient) -> AsyncIterator[ClusterPodSink]:
    """Apply the autoscaler's pod commands with `client` (an orchestrator `Pods` sink whose
    queue drains in a nursery this block owns)::

        async with open_pod_sink(client) as sink:
            sink.outcomes.subscribe(on_outcome)
            sink.on_next(command)

    Leaving the block cancels what has not started; a command under way finishes first.
    With a `Cluster` of your own, wrap its part instead: `ClusterPodSink(cluster.pods)`.
    """
    async with trio.open_nursery() as nursery:
        sink = ClusterPodSink(orch.Pods(client, scheduler=TrioScheduler(nursery)))
        try:
            yield sink
        finally:
            sink.close()
            nursery.cancel_scope.cancel()
