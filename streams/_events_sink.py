"""The Events sink: post core/v1 Events on objects, deduplicated, counted and rate-limited.

What this module is for: issue 7's Events sink, an orchestrator sink in the sense of DESIGN
section 4 ("Orchestrator sinks"): commands (`PostEvent`) flow in as an Observer, outcomes
(`EventPosted`, `EventDropped`, `EventFailed`) flow out on an Observable. It behaves like
client-go's event recorder (`tools/record`, wire reference section 12.1):

- Correlation. The same event (source, involved object, type, reason, message) seen again
  within the cache's memory is not posted anew: the existing Event is PATCHed (strategic merge)
  with `count` + 1 and the new `lastTimestamp`. A PATCH answered 404 (the Event expired or was
  deleted) re-creates it under the same name, count kept.
- Correlation across processes (where this sink differs from client-go, whose Event names
  carry the time, so every process and restart makes Events of its own). The name is
  `<object name>.<16 hex digits of a hash of component, object, type, reason and message>`:
  the same event has the same name in every replica and after a restart, which matters when
  leadership moves (a new leader posts the problems that still hold, and `kubectl describe`
  must show each once, counted, not once per replica). A create answered 409 AlreadyExists
  (another replica, or this one before a restart, posted it) reads the stored Event and
  patches its count + 1. Every PATCH carries the resourceVersion this sink last wrote or read
  as a precondition, so when another replica counted the Event up meanwhile (409 Conflict) it
  re-reads and counts from the stored count: counts add up across replicas.
- Spam filter. A token bucket per source and involved object: `burst` events at once, then one
  per `refill_seconds` (client-go: 25, then 1 per 5 minutes). An event over the limit is dropped
  and said so (`EventDropped("rate-limited")`), so one flapping object cannot flood the API.
- Bounded queue. `on_next` never waits (Rx cannot): commands wait in a queue of `queue_size`;
  when it is full the new command is dropped and counted (client-go's broadcaster does the
  same), so memory stays bounded whatever the producer does.
- Retries. Connection failures, 429 and 5xx are retried (`retries` times, a jittered
  `retry_delay` apart); other answers (403, 422, ...) fail at once: `EventFailed` names the
  status, and a 403 the RBAC rule to add (`create`/`patch` on `events`).

Two implementations of one `EventSink` protocol:
- `open_event_sink(client, ...)`: the live sink. A worker task in a nursery the `async with`
  block owns posts the commands in order; leaving the block flushes what is queued for at most
  `flush_timeout` seconds, then cancels.
- `DryRunEventSink(scheduler)`: never posts (replays, what-if runs). It runs the same
  correlation and spam filter in the scheduler's time and records what it would have posted
  (`events`: the Event bodies; outcomes with `dry_run=True`).

The correlation core, `EventCorrelator`, is pure: time is an argument (a monotonic `now` for
the buckets, a wall-clock timestamp for the Event), no I/O. Live, `now` is trio's clock and
the timestamp comes from `wall_clock` (injectable; Events carry wall-clock times by contract).

It may import the client, errors, resources and events modules of `rxkube.streams`, trio and
reactivex.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, TypeAlias, runtime_checkable

import trio
from reactivex import Observable, abc
from reactivex.subject import Subject

from rxkube.streams._client import KubeClient
from rxkube.streams._errors import (
    AlreadyExists,
    ApiError,
    Conflict,
    Forbidden,
    KubeConnectionError,
    NotFound,
    ServerError,
    TooManyRequests,
)
from rxkube.streams._events import KubeObject
from rxkube.streams._resources import EVENTS

__all__ = [
    "ApiEventSink",
    "DryRunEventSink",
    "EventDropped",
    "EventFailed",
    "EventLimits",
    "EventOutcome",
    "EventPosted",
    "EventSink",
    "EventSinkStatistics",
    "EventTypeName",
    "ObjectReference",
    "PostEvent",
    "open_event_sink",
]

log: Final = logging.getLogger("rxkube.streams.events")

EventTypeName: TypeAlias = Literal["Normal", "Warning"]
"""core/v1 Event types (client-go drops any other)."""

# events.k8s.io/v1 validates `note` to at most 1 kB; the same objects are served under both
# schemas (wire reference 12.2), so messages are cut to fit.
_MAX_MESSAGE: Final = 1024
# An Event's name is a DNS subdomain (at most 253 characters): the object's name, a dot and 16
# hex digits of the event's hash.
_MAX_NAME_PREFIX: Final = 253 - 17
# How often a write that lost a race with another replica (409) re-reads and tries again.
_RACE_RETRIES: Final = 5


@dataclass(frozen=True, slots=True)
class ObjectReference:
    """The object an Event is about (`involvedObject`)."""

    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""
    field_path: str = ""

    @classmethod
    def of(cls, obj: KubeObject) -> ObjectReference:
        """The reference to an object as decoded (kind, apiVersion and metadata)."""
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}

        def text(source: Mapping[str, Any], key: str) -> str:
            value = source.get(key)
            return value if isinstance(value, str) else ""

        return cls(
            kind=text(obj, "kind"),
            name=text(meta, "name"),
            namespace=text(meta, "namespace"),
            uid=text(meta, "uid"),
            api_version=text(obj, "apiVersion"),
            resource_version=text(meta, "resourceVersion"),
        )

    def to_json(self) -> dict[str, str]:
        """As `involvedObject` on the wire (empty fields omitted, as client-go's omitempty)."""
        fields = {
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
            "apiVersion": self.api_version,
            "resourceVersion": self.resource_version,
            "fieldPath": self.field_path,
        }
        return {key: value for key, value in fields.items() if value}


@dataclass(frozen=True, slots=True)
class PostEvent:
    """Command: post an Event about `regarding`."""

    regarding: ObjectReference
    reason: str
    """UpperCamelCase, machine-readable (`InvalidConfiguration`, `AppMoved`)."""
    message: str
    type: EventTypeName = "Normal"


@dataclass(frozen=True, slots=True)
class EventPosted:
    """Outcome: the Event `name` now has `count` (created, or patched when seen before)."""

    command: PostEvent
    name: str
    namespace: str
    count: int
    action: Literal["created", "patched"]
    dry_run: bool = False
    """True from a `DryRunEventSink`: nothing was sent."""


@dataclass(frozen=True, slots=True)
class EventDropped:
    """Outcome: not posted, on purpose (spam filter, full queue, or not a valid Event)."""

    command: PostEvent
    reason: Literal["rate-limited", "queue-full", "invalid"]


@dataclass(frozen=True, slots=True)
class EventFailed:
    """Outcome: the API refused or could not be reached (after `attempts` tries)."""

    command: PostEvent
    error: str
    status: int | None
    """The HTTP status, or None when no answer came (connection failures)."""
    attempts: int


EventOutcome: TypeAlias = EventPosted | EventDropped | EventFailed


@dataclass(frozen=True, slots=True)
class EventLimits:
    """The sink's limits as plain data (defaults are client-go's)."""

    burst: int = 25
    """Events per involved object at once (spam filter bucket size)."""
    refill_seconds: float = 300.0
    """One more event per object every this many seconds."""
    cache_size: int = 4096
    """Events (and buckets) remembered for correlation, least recently used forgotten."""
    queue_size: int = 1000
    """Commands waiting to be posted; more are dropped and counted."""
    retries: int = 12
    """Further tries after a connection failure, 429 or 5xx."""
    retry_delay: float = 10.0
    """Seconds between tries, jittered by up to half of it either way."""

    def __post_init__(self) -> None:
        for name in ("burst", "cache_size", "queue_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"EventLimits.{name} must be >= 1, got {getattr(self, name)}")
        if self.refill_seconds <= 0:
            raise ValueError(f"EventLimits.refill_seconds must be > 0, got {self.refill_seconds}")
        if self.retries < 0 or self.retry_delay < 0:
            raise ValueError("EventLimits.retries and retry_delay must be >= 0")


@dataclass(frozen=True, slots=True)
class EventSinkStatistics:
    queued: int
    """Commands waiting now."""
    created: int
    patched: int
    dropped: Mapping[str, int]
    """By reason: rate-limited, queue-full, invalid."""
    failed: int


# --- the pure core ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateEvent:
    """Decision: POST this Event body."""

    key: tuple[str, ...]
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PatchEvent:
    """Decision: PATCH the Event `name` with `patch`; on 404 POST `body` instead."""

    key: tuple[str, ...]
    name: str
    namespace: str
    patch: dict[str, Any]
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DropEvent:
    reason: Literal["rate-limited", "invalid"]


Decision: TypeAlias = CreateEvent | PatchEvent | DropEvent


@dataclass(slots=True)
class _Seen:
    name: str
    count: int
    first: str
    resource_version: str = ""
    """Of the stored Event as this sink last wrote or read it ("" before the first write)."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


def _timestamp(seconds: float) -> str:
    """RFC 3339, whole seconds, UTC (metav1.Time on the wire)."""
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventCorrelator:
    """Dedup and spam filter of client-go's `EventCorrelator`, as a pure step.

    `decide(command, now=..., wall=...)`: `now` is monotonic seconds (the buckets), `wall` is
    wall-clock seconds since the epoch (timestamps and the Event's name). It mutates only its
    own caches; it does no I/O.
    """

    def __init__(
        self, limits: EventLimits | None = None, *, component: str = "rxkube", instance: str = ""
    ) -> None:
        self.limits = limits or EventLimits()
        self.component = component
        self.instance = instance
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._buckets: OrderedDict[tuple[str, ...], _Bucket] = OrderedDict()

    def _allow(self, command: PostEvent, now: float) -> bool:
        ref = command.regarding
        key = (self.component, self.instance, ref.kind, ref.namespace, ref.name, ref.uid)
        limits = self.limits
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(limits.burst), now)
            if len(self._buckets) > limits.cache_size:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            refill = max(0.0, now - bucket.updated) / limits.refill_seconds
            bucket.tokens = min(float(limits.burst), bucket.tokens + refill)
            bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    @staticmethod
    def _name(ref: ObjectReference, key: tuple[str, ...]) -> str:
        # client-go: <involvedObject.name>.<UnixNano in hex>. Here the same event has the same
        # name in every replica (see the module docstring), so the instance is left out.
        component, _instance, *identity = key
        digest = hashlib.sha256("\0".join((component, *identity)).encode()).hexdigest()
        return f"{ref.name[:_MAX_NAME_PREFIX]}.{digest[:16]}"

    def decide(self, command: PostEvent, *, now: float, wall: float) -> Decision:
        ref = command.regarding
        if not ref.name or not ref.kind or command.type not in ("Normal", "Warning"):
            return DropEvent("invalid")
        if not command.reason:
            return DropEvent("invalid")
        if not self._allow(command, now):
            return DropEvent("rate-limited")
        message = command.message
        if len(message.encode()) > _MAX_MESSAGE:
            message = message.encode()[: _MAX_MESSAGE - 3].decode(errors="ignore") + "..."
        key = (
            self.component,
            self.instance,
            ref.kind,
            ref.namespace,
            ref.name,
            ref.uid,
            ref.api_version,
            ref.field_path,
            command.type,
            command.reason,
            message,
        )
        stamp = _timestamp(wall)
        namespace = ref.namespace or "default"
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = _Seen(self._name(ref, key), 1, stamp)
            if len(self._seen) > self.limits.cache_size:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(key)
            seen.count += 1
        source: dict[str, str] = {"component": self.component}
        if self.instance:
            source["host"] = self.instance
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": seen.name, "namespace": namespace},
            "involvedObject": ref.to_json(),
            "reason": command.reason,
            "message": message,
            "source": source,
            "firstTimestamp": seen.first,
            "lastTimestamp": stamp,
            "count": seen.count,
            "type": command.type,
            "eventTime": None,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
        if seen.count == 1:
            return CreateEvent(key, body)
        patch: dict[str, Any] = {"count": seen.count, "lastTimestamp": stamp, "message": message}
        if seen.resource_version:
            patch["metadata"] = {"resourceVersion": seen.resource_version}
        return PatchEvent(key, seen.name, namespace, patch, body)

    def stored(self, key: tuple[str, ...], *, count: int, resource_version: str) -> None:
        """The Event is stored with `count` at `resource_version` (written or read): the next
        occurrence counts from there and patches only that version."""
        seen = self._seen.get(key)
        if seen is not None:
            seen.count = count
            seen.resource_version = resource_version

    def forget(self, key: tuple[str, ...]) -> None:
        """The Event could not be written: the next occurrence starts a new one."""
        self._seen.pop(key, None)


# --- the sinks --------------------------------------------------------------------------------


@runtime_checkable
class EventSink(Protocol):
    """Commands in (`on_next`, or `post`), outcomes out (`outcomes`)."""

    def on_next(self, value: PostEvent) -> None: ...

    def on_error(self, error: Exception) -> None: ...

    def on_completed(self) -> None: ...

    def post(
        self,
        regarding: ObjectReference,
        reason: str,
        message: str,
        type: EventTypeName = "Normal",
    ) -> None: ...

    @property
    def outcomes(self) -> Observable[EventOutcome]: ...

    def statistics(self) -> EventSinkStatistics: ...


@dataclass(slots=True)
class _Counts:
    created: int = 0
    patched: int = 0
    failed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


class _SinkBase(abc.ObserverBase[PostEvent]):
    def __init__(self) -> None:
        self._outcomes: Subject[EventOutcome] = Subject()
        self._counts = _Counts()

    @property
    def outcomes(self) -> Observable[EventOutcome]:
        """Every outcome, in the order the commands were handled (a hot Observable)."""
        return self._outcomes

    def post(
        self,
        regarding: ObjectReference,
        reason: str,
        message: str,
        type: EventTypeName = "Normal",
    ) -> None:
        """Shorthand for `on_next(PostEvent(...))`."""
        self.on_next(PostEvent(regarding, reason, message, type))

    def on_next(self, value: PostEvent) -> None:
        raise NotImplementedError

    def on_error(self, error: Exception) -> None:
        # A command stream that fails ends nothing here: other producers may still post.
        log.error("events sink: the command stream failed: %r", error)

    def on_completed(self) -> None:
        pass

    def _publish(self, outcome: EventOutcome) -> None:
        c = self._counts
        if isinstance(outcome, EventPosted):
            if outcome.action == "created":
                c.created += 1
            else:
                c.patched += 1
        elif isinstance(outcome, EventDropped):
            c.dropped[outcome.reason] = c.dropped.get(outcome.reason, 0) + 1
        else:
            c.failed += 1
        self._outcomes.on_next(outcome)

    def _statistics(self, queued: int) -> EventSinkStatistics:
        c = self._counts
        return EventSinkStatistics(queued, c.created, c.patched, dict(c.dropped), c.failed)


class DryRunEventSink(_SinkBase):
    """An Events sink that never posts: it records what it would have posted.

    Runs the same correlation and spam filter as the live sink, in the time of `scheduler`
    (virtual time in a replay), synchronously on `on_next`. `events` are the Event bodies as
    they would have been sent (a repeated event appears again with its new count).
    """

    def __init__(
        self,
        scheduler: abc.SchedulerBase,
        *,
        limits: EventLimits | None = None,
        component: str = "rxkube",
        instance: str = "",
    ) -> None:
        super().__init__()
        self._scheduler = scheduler
        self.correlator = EventCorrelator(limits, component=component, instance=instance)
        self.events: list[dict[str, Any]] = []

    def on_next(self, value: PostEvent) -> None:
        now = self._scheduler.now.timestamp()
        decision = self.correlator.decide(value, now=now, wall=now)
        if isinstance(decision, DropEvent):
            self._publish(EventDropped(value, decision.reason))
            return
        self.events.append(decision.body)
        meta = decision.body["metadata"]
        self._publish(
            EventPosted(
                value,
                meta["name"],
                meta["namespace"],
                decision.body["count"],
                "created" if isinstance(decision, CreateEvent) else "patched",
                dry_run=True,
            )
        )

    def statistics(self) -> EventSinkStatistics:
        return self._statistics(0)


class ApiEventSink(_SinkBase):
    """The live Events sink. Open with `open_event_sink(client, ...)`; see the module docstring."""

    def __init__(
        self,
        client: KubeClient,
        *,
        limits: EventLimits,
        component: str,
        instance: str,
        wall_clock: Callable[[], float],
        rng: random.Random,
    ) -> None:
        super().__init__()
        self._client = client
        self.limits = limits
        self.correlator = EventCorrelator(limits, component=component, instance=instance)
        self._wall_clock = wall_clock
        self._rng = rng
        self._queue: deque[PostEvent] = deque()
        self._wake = trio.Event()
        self._busy = False
        self._idle_lot = trio.lowlevel.ParkingLot()

    def on_next(self, value: PostEvent) -> None:
        if len(self._queue) >= self.limits.queue_size:
            log.warning(
                "events sink: queue full (%d), dropped %s on %s/%s",
                self.limits.queue_size,
                value.reason,
                value.regarding.kind,
                value.regarding.name,
            )
            self._publish(EventDropped(value, "queue-full"))
            return
        self._queue.append(value)
        self._wake.set()

    def statistics(self) -> EventSinkStatistics:
        return self._statistics(len(self._queue) + (1 if self._busy else 0))

    async def wait_idle(self) -> None:
        """Wait until every command given so far has its outcome."""
        while self._queue or self._busy:
            await self._idle_lot.park()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._idle_lot.unpark_all()
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            command = self._queue.popleft()
            self._busy = True
            try:
                await self._handle(command)
            finally:
                self._busy = False

    async def _handle(self, command: PostEvent) -> None:
        decision = self.correlator.decide(command, now=trio.current_time(), wall=self._wall_clock())
        if isinstance(decision, DropEvent):
            if decision.reason == "rate-limited":
                log.info(
                    "events sink: rate-limited %s on %s %s/%s",
                    command.reason,
                    command.regarding.kind,
                    command.regarding.namespace,
                    command.regarding.name,
                )
            self._publish(EventDropped(command, decision.reason))
            return
        attempts = 0
        while True:
            attempts += 1
            try:
                outcome = await self._write(command, decision)
            except (KubeConnectionError, TooManyRequests, ServerError) as error:
                if attempts <= self.limits.retries:
                    delay = self.limits.retry_delay * (0.5 + self._rng.random())
                    if isinstance(error, TooManyRequests) and error.retry_after is not None:
                        delay = max(delay, error.retry_after)
                    await trio.sleep(delay)
                    continue
                self._failed(command, decision, error, attempts)
                return
            except ApiError as error:
                self._failed(command, decision, error, attempts)
                return
            self._publish(outcome)
            return

    async def _write(self, command: PostEvent, decision: CreateEvent | PatchEvent) -> EventPosted:
        body = decision.body
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        patch = decision.patch if isinstance(decision, PatchEvent) else None
        raced: ApiError | None = None
        for _ in range(_RACE_RETRIES):
            if patch is not None:
                try:
                    stored = await self._client.patch(
                        EVENTS, name, patch, namespace=namespace, patch_type="strategic"
                    )
                    return self._stored(command, decision, stored, "patched")
                except NotFound as error:
                    raced, patch = error, None  # expired or deleted: re-create it, same name
                except Conflict as error:
                    # Another replica counted it up since this one last wrote it.
                    raced, patch = error, await self._count_up(name, namespace, body)
                continue
            try:
                stored = await self._client.create(EVENTS, body, namespace=namespace)
            except AlreadyExists as error:
                # Posted by another replica, or by this one before a restart: count it up.
                raced, patch = error, await self._count_up(name, namespace, body)
                continue
            action: Literal["created", "patched"] = (
                "created" if isinstance(decision, CreateEvent) else "patched"
            )
            return self._stored(command, decision, stored, action)
        assert raced is not None
        raise raced  # it kept changing under every try: said as the last answer

    async def _count_up(
        self, name: str, namespace: str, body: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The patch that counts the stored Event up by one from its stored count, on the
        condition that nobody writes it meanwhile; None when it is gone (create it)."""
        try:
            current = await self._client.get(EVENTS, name, namespace=namespace)
        except NotFound:
            return None
        count = current.get("count")
        meta = current.get("metadata")
        version = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
        return {
            "count": (count if isinstance(count, int) and count > 0 else 1) + 1,
            "lastTimestamp": body["lastTimestamp"],
            "message": body["message"],
            "metadata": {"resourceVersion": version if isinstance(version, str) else ""},
        }

    def _stored(
        self,
        command: PostEvent,
        decision: CreateEvent | PatchEvent,
        stored: Mapping[str, Any],
        action: Literal["created", "patched"],
    ) -> EventPosted:
        meta = stored.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        count = stored.get("count")
        count = count if isinstance(count, int) else decision.body["count"]
        version = meta.get("resourceVersion")
        self.correlator.stored(
            decision.key, count=count, resource_version=version if isinstance(version, str) else ""
        )
        body_meta = decision.body["metadata"]
        return EventPosted(command, body_meta["name"], body_meta["namespace"], count, action)

    def _failed(
        self,
        command: PostEvent,
        decision: CreateEvent | PatchEvent,
        error: Exception,
        attempts: int,
    ) -> None:
        self.correlator.forget(decision.key)
        status = error.code if isinstance(error, ApiError) else None
        hint = f" ({error.rbac_hint})" if isinstance(error, Forbidden) else ""
        log.error(
            "events sink: could not post %s on %s %s/%s after %d attempt(s): %s%s",
            command.reason,
            command.regarding.kind,
            command.regarding.namespace,
            command.regarding.name,
            attempts,
            error,
            hint,
        )
        self._publish(EventFailed(command, f"{error}{hint}", status, attempts))

    async def _flush(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            await self.wait_idle()


@asynccontextmanager
async def open_event_sink(
    client: KubeClient,
    *,
    component: str = "rxkube",
    instance: str = "",
    limits: EventLimits | None = None,
    flush_timeout: float = 2.0,
    wall_clock: Callable[[], float] | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[ApiEventSink]:
    """Run the live Events sink for the duration of the block.

    `component` and `instance` become the Events' `source` and `reportingComponent`/
    `reportingInstance` (e.g. "rxkube" and the pod's name). Leaving the block posts what is
    still queued for at most `flush_timeout` seconds, then cancels the rest.

        async with open_event_sink(client, instance=pod_name) as events:
            events.post(ObjectReference.of(deployment), "InvalidConfiguration", text, "Warning")
            commands.subscribe(events)          # or feed it an Observable of PostEvent
            events.outcomes.subscribe(print)
    """
    sink = ApiEventSink(
        client,
        limits=limits or EventLimits(),
        component=component,
        instance=instance,
        wall_clock=wall_clock or time.time,
        rng=rng or random.Random(),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink._run, name="events sink")
        try:
            yield sink
        finally:
            with trio.CancelScope(shield=True):
                await sink._flush(flush_timeout)
            nursery.cancel_scope.cancel()
            sink._outcomes.on_completed()
