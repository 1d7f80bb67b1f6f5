"""The autoscaler's pod sink: `CreatePod`/`DeletePod` commands in, outcomes out (the I/O edge).

What this module is for: the edge where the autoscaler's commands meet the API (DESIGN section
4, "Orchestrator sinks"; issue 8 allows a minimal sink until the orchestrator's `cluster.pods`
lands). `PodSink` is the seam: an Observer of `PodCommand`s with an `outcomes` Observable of
`PodCommandApplied`/`PodCommandFailed`, the shape of the orchestrator's sinks, so swapping in
`cluster.pods` (whose `CreatePodFromManifest` and `DeletePod(uid=...)` carry the same requests)
is an adapter, not a rewrite. `open_pod_sink(client)` is the implementation over the client.

Behaviour:
- Commands are applied one at a time, in order, by a task in the nursery the `async with`
  block owns. `on_next` never waits. The queue is bounded by what produces it: the reconciling
  step sends a command only for a pod not already under way (at most `pods.max` creates per
  app, one delete per pod per retry period), so it holds at most a few per app.
- A create is a POST of the command's complete Pod; a delete carries the uid as a
  precondition, so a pod re-created under the same name is never deleted by mistake. A delete
  answered 404 (already gone) or 409 (the name is another incarnation now) is applied: the pod
  the command meant is gone.
- Failures are never fatal: every other error (403, 422, 5xx, a lost connection) is published
  as `PodCommandFailed` with the API's reason, logged, and counted; the autoscaler backs off
  and retries (`command_failed` in `_reconcile.py`).

It may import `rxkube.streams` (client, resources, errors), trio, reactivex and this package's
command types; it is the only module of the autoscaler that does I/O.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

import orjson
import trio
from reactivex import Observable, abc
from reactivex.subject import Subject

from rxkube.controllers._logs import fields
from rxkube.controllers._reconcile import CreatePod, DeletePod, PodCommand
from rxkube.controllers._scaling import PodCommandApplied, PodCommandFailed, PodOutcome
from rxkube.streams import PODS, ApiError, Conflict, KubeClient, KubeError, NotFound

__all__ = ["ClientPodSink", "PodSink", "PodSinkStatistics", "open_pod_sink"]

log: Final = logging.getLogger("rxkube.controllers.autoscaler")


@dataclass(frozen=True, slots=True)
class PodSinkStatistics:
    queued: int
    applied: int
    failed: int
    failures: dict[str, int]
    """Failed commands by reason (`Forbidden`, `InternalError`, `KubeConnectionError`, ...)."""


@runtime_checkable
class PodSink(Protocol):
    """Where the autoscaler's pod commands go (the seam a `cluster.pods` adapter fills)."""

    def on_next(self, command: PodCommand) -> None: ...

    @property
    def outcomes(self) -> Observable[PodOutcome]:
        """Every command's outcome, in the order applied (hot)."""
        ...

    def statistics(self) -> PodSinkStatistics: ...


class ClientPodSink(abc.ObserverBase[PodCommand]):
    """The pod sink over the client; made by `open_pod_sink`."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client
        self._queue: deque[PodCommand] = deque()
        self._wake = trio.Event()
        self._outcomes: Subject[PodOutcome] = Subject()
        self._applied = 0
        self._failures: dict[str, int] = {}
        self._idle = trio.lowlevel.ParkingLot()
        self._busy = False

    @property
    def outcomes(self) -> Observable[PodOutcome]:
        return self._outcomes

    def on_next(self, command: PodCommand) -> None:
        self._queue.append(command)
        self._wake.set()

    def on_error(self, error: Exception) -> None:
        log.error("the autoscaler's command stream failed", exc_info=error)

    def on_completed(self) -> None:
        pass

    def statistics(self) -> PodSinkStatistics:
        return PodSinkStatistics(
            queued=len(self._queue),
            applied=self._applied,
            failed=sum(self._failures.values()),
            failures=dict(self._failures),
        )

    async def wait_idle(self) -> None:
        """Wait until every command sent so far has its outcome."""
        while self._queue or self._busy:
            await self._idle.park()

    async def _run(self) -> None:
        while True:
            while self._queue:
                command = self._queue.popleft()
                self._busy = True
                try:
                    outcome = await self._apply(command)
                finally:
                    self._busy = False
                if isinstance(outcome, PodCommandApplied):
                    self._applied += 1
                else:
                    self._failures[outcome.reason] = self._failures.get(outcome.reason, 0) + 1
                self._outcomes.on_next(outcome)
            self._idle.unpark_all()
            self._wake = trio.Event()
            if not self._queue:
                await self._wake.wait()

    async def _apply(self, command: PodCommand) -> PodOutcome:
        try:
            # Shielded: a request the server may have carried out always gets its outcome.
            with trio.CancelScope(shield=True):
                if isinstance(command, CreatePod):
                    await self._client.create(PODS, command.body, namespace=command.namespace)
                else:
                    await self._delete(command)
        except (NotFound, Conflict) as error:
            if isinstance(command, DeletePod):
                return PodCommandApplied(command)  # that incarnation is gone already
            return self._failed(command, error)
        except KubeError as error:
            return self._failed(command, error)
        log.info(
            "pod %s",
            "created" if isinstance(command, CreatePod) else "deleted",
            extra=fields(
                app=command.app,
                pod=command.name,
                reason=command.reason if isinstance(command, DeletePod) else "scale up",
            ),
        )
        return PodCommandApplied(command)

    async def _delete(self, command: DeletePod) -> None:
        options = {"kind": "DeleteOptions", "apiVersion": "v1"}
        body: dict[str, object] = dict(options)
        if command.uid:
            body["preconditions"] = {"uid": command.uid}
        await self._client.request(
            "DELETE",
            PODS.object_path(command.name, command.namespace),
            verb="delete",
            resource="pods",
            namespace=command.namespace,
            content=orjson.dumps(body),
            headers={"Content-Type": "application/json"},
        )

    def _failed(self, command: PodCommand, error: KubeError) -> PodCommandFailed:
        reason = error.reason if isinstance(error, ApiError) and error.reason else ""
        reason = reason or type(error).__name__
        log.warning(
            "could not %s pod: %s",
            command.kind,
            error,
            extra=fields(app=command.app, pod=command.name, reason=reason),
        )
        return PodCommandFailed(command, reason, str(error))


@asynccontextmanager
async def open_pod_sink(client: KubeClient) -> AsyncIterator[ClientPodSink]:
    """Apply pod commands with `client` for the duration of the block::

        async with open_pod_sink(client) as sink:
            sink.outcomes.subscribe(on_outcome)
            steps.pipe(ops.flat_map(lambda s: s.commands)).subscribe(sink)

    Leaving the block cancels what has not started; a command under way finishes first.
    """
    sink = ClientPodSink(client)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink._run, name="rxkube pod sink")
        try:
            yield sink
        finally:
            nursery.cancel_scope.cancel()
