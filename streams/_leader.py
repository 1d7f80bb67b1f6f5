"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's `leaderelection` does it.

What this module is for: letting one replica of several do what only one may (the autoscaler,
posting Events), with fail-over within the lease duration (wire reference section 13):

- No Lease: create it with this candidate as holder (`acquireTime = renewTime = now`).
- A Lease held by another candidate is valid until the moment this candidate last SAW it change
  plus `leaseDurationSeconds`, measured on this candidate's own (monotonic) clock: clocks of
  different machines are never compared.
- Taking over an expired (or released) Lease sets `acquireTime` and `leaseTransitions + 1`;
  renewing keeps them and sets `renewTime`. Every write is a PUT carrying the resourceVersion
  that was read, so of two candidates racing, the API server lets one win (409 for the other).
- The leader renews every `retry_period`; if it cannot renew for `renew_deadline` it steps down
  (before the Lease can expire for the others: `renew_deadline < lease_duration`).
- Leaving the block releases the Lease (`holderIdentity: ""`, `leaseDurationSeconds: 1`) so a
  successor takes over at once instead of after the lease duration.
- `annotations` are written on the Lease's metadata with every acquire and renewal (the same PUT
  that names the holder, so they always describe the current holder when every candidate
  passes the same keys) and removed on release: how a leader tells the others something about
  itself, e.g. where its ticket authority listens. Every candidate publishes what it read
  (`holders`), so the others learn it on their next try.

Verbs used: get, create, update on leases (deploy/role.yaml grants exactly those). API errors
are logged, counted in `statistics()` and retried; they never end the election.

Time: trio's clock (MockClock in tests) for every delay and expiry; the wall clock (injectable)
only for the Lease's MicroTime fields, which other clients display. It may import the client,
errors and resources modules of `rxkube.streams`, trio and reactivex.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import trio
from reactivex import Observable
from reactivex.subject import BehaviorSubject

from rxkube.streams._client import KubeClient
from rxkube.streams._errors import AlreadyExists, Conflict, KubeError, NotFound
from rxkube.streams._resources import LEASES

__all__ = [
    "LeaderElection",
    "LeaderStatistics",
    "LeaseHolder",
    "LeasePolicy",
    "open_leader_election",
]

log: Final = logging.getLogger("rxkube.streams.leader")


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """Timings of the election, as plain data (defaults are client-go's)."""

    lease_duration: float = 15.0
    """How long a Lease stays valid for the others after they saw it renewed."""
    renew_deadline: float = 10.0
    """A leader that could not renew for this long steps down."""
    retry_period: float = 2.0
    """Between tries to acquire, and between renewals."""
    jitter: float = 1.2
    """A candidate waits `retry_period * (1 + jitter * random())` between tries."""
    release_on_exit: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "LeasePolicy needs 0 < retry_period < renew_deadline < lease_duration, got "
                f"{self.retry_period}, {self.renew_deadline}, {self.lease_duration}"
            )
        if self.lease_duration < 1:
            raise ValueError("LeasePolicy.lease_duration must be at least 1 s (whole seconds)")


@dataclass(frozen=True, slots=True)
class LeaderStatistics:
    is_leader: bool
    holder: str
    """The holder as last seen ("" when none)."""
    acquired: int
    """Times this candidate became the leader."""
    lost: int
    """Times it stepped down (could not renew)."""
    attempts: int = 0
    """Tries to acquire or renew so far."""
    errors: dict[str, int] = field(default_factory=dict)
    """API errors by class name."""


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """The Lease's holder and annotations as a candidate last read (or wrote) them."""

    identity: str
    """`spec.holderIdentity` ("" when nobody holds it, or before the first read)."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    """`metadata.annotations` of the Lease, as read."""

    def __hash__(self) -> int:
        return hash((self.identity, frozenset(self.annotations.items())))


def _micro_time(seconds: float) -> str:
    """MicroTime: always six fractional digits, UTC."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElection:
    """A running candidate. Open with `open_leader_election(...)`; see the module docstring."""

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        policy: LeasePolicy,
        wall_clock: Callable[[], float],
        rng: random.Random,
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        if not identity:
            raise ValueError("a leader election candidate needs a non-empty identity")
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.policy = policy
        self._client = client
        self._wall_clock = wall_clock
        self._rng = rng
        self.annotations: Mapping[str, str] = dict(annotations or {})
        """Written on the Lease by this candidate while it leads."""
        self._leader = BehaviorSubject(False)
        self._holders = BehaviorSubject(LeaseHolder(""))
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._holder = ""
        self._acquired = 0
        self._lost = 0
        self._errors: dict[str, int] = {}
        self._attempts = 0
        self._lot = trio.lowlevel.ParkingLot()

    @property
    def is_leader(self) -> bool:
        return self._leader.value

    @property
    def changes(self) -> Observable[bool]:
        """Whether this candidate leads: the current value on subscription, then each change."""
        return self._leader

    @property
    def holder(self) -> LeaseHolder:
        """The holder and annotations as last read or written."""
        return self._holders.value

    @property
    def holders(self) -> Observable[LeaseHolder]:
        """The Lease's holder and annotations: the current value on subscription, then each
        change this candidate reads (on its next try after another candidate wrote it)."""
        return self._holders

    async def wait_leader(self) -> None:
        """Wait until this candidate leads."""
        await self.wait_until(lambda s: s.is_leader)

    async def wait_until(self, predicate: Callable[[LeaderStatistics], bool]) -> LeaderStatistics:
        """Wait until `predicate(statistics())` holds (re-checked after every try)."""
        while True:
            stats = self.statistics()
            if predicate(stats):
                return stats
            await self._lot.park()

    def statistics(self) -> LeaderStatistics:
        return LeaderStatistics(
            self.is_leader,
            self._holder,
            self._acquired,
            self._lost,
            self._attempts,
            dict(self._errors),
        )

    def _set_leader(self, leader: bool) -> None:
        if leader != self._leader.value:
            if leader:
                self._acquired += 1
                log.info(
                    "%s became leader of lease %s/%s", self.identity, self.namespace, self.name
                )
            else:
                self._lost += 1
                log.warning(
                    "%s stopped leading lease %s/%s", self.identity, self.namespace, self.name
                )
            self._leader.on_next(leader)

    def _pause(self) -> float:
        policy = self.policy
        return policy.retry_period * (1.0 + policy.jitter * self._rng.random())

    async def _run(self) -> None:
        while True:
            if not self.is_leader:
                if await self._try():
                    self._set_leader(True)
                    await trio.sleep(self.policy.retry_period)
                else:
                    await trio.sleep(self._pause())
                continue
            with trio.move_on_after(self.policy.renew_deadline) as renewing:
                while True:
                    if await self._try():
                        break
                    await trio.sleep(self.policy.retry_period / 2)
            if renewing.cancelled_caught:
                self._set_leader(False)
            else:
                await trio.sleep(self.policy.retry_period)

    async def _try(self) -> bool:
        """Acquire or renew once; True when this candidate holds the Lease now."""
        self._attempts += 1
        try:
            return await self._acquire_or_renew()
        except KubeError as error:
            kind = type(error).__name__
            self._errors[kind] = self._errors.get(kind, 0) + 1
            log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return False
        finally:
            self._lot.unpark_all()

    async def _acquire_or_renew(self) -> bool:
        now = trio.current_time()
        stamp = _micro_time(self._wall_clock())
        duration = int(self.policy.lease_duration)
        try:
            lease = await self._client.get(LEASES, self.name, namespace=self.namespace)
        except NotFound:
            created: dict[str, Any] = {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": duration,
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            }
            metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
            if self.annotations:
                metadata["annotations"] = dict(self.annotations)
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": metadata,
                "spec": created,
            }
            try:
                await self._client.create(LEASES, body, namespace=self.namespace)
            except AlreadyExists:
                return False  # another candidate created it first
            self._observe(created, self.annotations, now)
            return True
        spec = dict(lease.get("spec") or {})
        metadata = dict(lease.get("metadata") or {})
        annotations = dict(metadata.get("annotations") or {})
        self._observe(spec, annotations, now)
        holder = spec.get("holderIdentity") or ""
        held_for = spec.get("leaseDurationSeconds") or duration
        if holder and holder != self.identity and now < self._observed_at + float(held_for):
            return False
        renewed = {**spec, "holderIdentity": self.identity, "leaseDurationSeconds": duration}
        renewed["renewTime"] = stamp
        if holder != self.identity:
            renewed["acquireTime"] = stamp
            renewed["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        updated = {**lease, "spec": renewed}
        if self.annotations and any(annotations.get(k) != v for k, v in self.annotations.items()):
            annotations.update(self.annotations)
            updated["metadata"] = {**metadata, "annotations": annotations}
        try:
            await self._client.replace(LEASES, updated, namespace=self.namespace)
        except Conflict:
            return False  # somebody wrote it since we read it
        self._observe(renewed, annotations, now)
        return True

    def _observe(self, spec: dict[str, Any], annotations: Mapping[str, str], now: float) -> None:
        record = tuple(sorted((k, str(v)) for k, v in spec.items()))
        self._holder = spec.get("holderIdentity") or ""
        if record != self._observed:
            self._observed = record
            self._observed_at = now
        seen = LeaseHolder(self._holder, dict(annotations))
        if seen != self._holders.value:
            self._holders.on_next(seen)

    async def _release(self) -> None:
        if not self.is_leader:
            return
        self._set_leader(False)
        try:
            lease = await self._client.get(LEASES, self.name, namespace=self.namespace)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec.update(holderIdentity="", leaseDurationSeconds=1)
            spec["renewTime"] = _micro_time(self._wall_clock())
            released = {**lease, "spec": spec}
            metadata = dict(lease.get("metadata") or {})
            annotations = dict(metadata.get("annotations") or {})
            if any(k in annotations for k in self.annotations):
                kept = {k: v for k, v in annotations.items() if k not in self.annotations}
                released["metadata"] = {**metadata, "annotations": kept}
            await self._client.replace(LEASES, released, namespace=self.namespace)
            log.info("%s released lease %s/%s", self.identity, self.namespace, self.name)
        except KubeError as error:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, error)


@asynccontextmanager
async def open_leader_election(
    client: KubeClient,
    *,
    namespace: str,
    name: str,
    identity: str,
    policy: LeasePolicy | None = None,
    wall_clock: Callable[[], float] | None = None,
    rng: random.Random | None = None,
    annotations: Mapping[str, str] | None = None,
) -> AsyncIterator[LeaderElection]:
    """Take part in the election for Lease `namespace/name` for the duration of the block.

        async with open_leader_election(client, namespace="apps", name="rxkube",
                                        identity=pod_name) as election:
            election.changes.subscribe(lambda leads: ...)   # True when this replica leads
            await election.wait_leader()

    Leaving the block stops renewing and (by default) releases the Lease. `annotations` are
    written on the Lease while this candidate leads (removed on release); every candidate
    publishes the holder and annotations it reads on `holders`.
    """
    election = LeaderElection(
        client,
        namespace=namespace,
        name=name,
        identity=identity,
        policy=policy or LeasePolicy(),
        wall_clock=wall_clock or time.time,
        rng=rng or random.Random(),
        annotations=annotations,
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(election._run, name=f"leader election {namespace}/{name}")
            try:
                yield election
            finally:
                nursery.cancel_scope.cancel()
    finally:
        if election.policy.release_on_exit:
            with trio.move_on_after(election.policy.retry_period) as scope:
                scope.shield = True
                await election._release()
        election._set_leader(False)
        election._leader.on_completed()
        election._holders.on_completed()
