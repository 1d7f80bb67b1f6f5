"""Fault injection, scripted from tests: what to break, for which requests, how often.

What this module is for: a test says *what* goes wrong (`Fault`: an error status, a delay, a
stall, a dropped connection, a truncated or malformed watch line, an in-band 410) and *where*
(`Faults.inject(fault, verb=..., resource=..., namespace=..., path=..., times=...)`); the HTTP
layer asks `Faults.match` on every request and carries the fault out. Immediate faults act on
what is open now (`drop_watches`, `expire_watches`, `compact`). Every fault that took effect is
counted, per rule (`FaultRule.fired`) and per kind (`Faults.fired(kind)`), so a test can assert
that it really happened. Rule bookkeeping is guarded by a lock, so rules can be added from the
test's thread while the server runs in another. No I/O here.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Fault", "FaultRule", "Faults"]

FaultKind = Literal["status", "delay", "stall", "drop", "truncate", "malformed", "expire"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One kind of failure. Build with the class methods.

    Stream faults (`drop`, `truncate`, `malformed`, `expire`) act on a watch after
    `after_events` events were sent; on a non-watch request `drop` closes the connection
    without an answer and the others answer normally.
    """

    kind: FaultKind
    code: int = 0
    reason: str = ""
    message: str = ""
    retry_after: int | None = None
    seconds: float = 0.0
    after_events: int = 0
    plain_text: bool = False

    @classmethod
    def status(
        cls,
        code: int,
        *,
        reason: str = "",
        message: str = "",
        retry_after: int | None = None,
    ) -> Fault:
        """Answer with this HTTP status and a `Status` body instead of serving the request.

        Defaults per code: 410 `Expired`, 429 `TooManyRequests`, 500 `InternalError`, 503
        `ServiceUnavailable`, 504 `Timeout`. `retry_after` sets the `Retry-After` header and
        `details.retryAfterSeconds`.
        """
        return cls("status", code=code, reason=reason, message=message, retry_after=retry_after)

    @classmethod
    def too_many_requests(cls, retry_after: int = 1) -> Fault:
        """429 exactly as API priority and fairness sends it: plain text and `Retry-After`."""
        return cls("status", code=429, retry_after=retry_after, plain_text=True)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Serve the request normally after `seconds`."""
        return cls("delay", seconds=seconds)

    @classmethod
    def stall(cls) -> Fault:
        """Read the request and never answer (until the client gives up or the server stops)."""
        return cls("stall")

    @classmethod
    def drop(cls, *, after_events: int = 0) -> Fault:
        """Close the connection abruptly: a watch after `after_events` events, with no
        terminating chunk; any other request before its response."""
        return cls("drop", after_events=after_events)

    @classmethod
    def truncate(cls, *, after_events: int = 0) -> Fault:
        """On a watch: send `after_events` events, then half of the next line, then drop."""
        return cls("truncate", after_events=after_events)

    @classmethod
    def malformed(cls, *, after_events: int = 0) -> Fault:
        """On a watch: after `after_events` events, send one line that is not JSON, then go on
        streaming normally."""
        return cls("malformed", after_events=after_events)

    @classmethod
    def expire(cls, *, after_events: int = 0) -> Fault:
        """On a watch: after `after_events` events, send an in-band ERROR with a 410 Expired
        Status and end the stream (as the watch cache does when a watcher falls behind)."""
        return cls("expire", after_events=after_events)


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a rule can match on."""

    verb: str
    resource: str  # plural, e.g. "pods"; "" for non-resource paths
    group: str
    subresource: str
    namespace: str
    path: str
    watch: bool


@dataclass(eq=False)
class FaultRule:
    """A fault and the requests it applies to. `times=None`: every matching request.

    `matched`: requests the rule was applied to; `fired`: times the fault took effect (a
    stream fault on a watch that ended before `after_events` does not fire).
    """

    fault: Fault
    verb: str | None = None
    resource: str | None = None
    namespace: str | None = None
    path: str | None = None
    times: int | None = 1
    matched: int = 0
    fired: int = 0
    _faults: Faults | None = field(default=None, repr=False)

    def applies(self, info: RequestInfo) -> bool:
        if self.times is not None and self.matched >= self.times:
            return False
        if self.verb is not None and self.verb != info.verb:
            return False
        if self.resource is not None:
            wanted, _, group = self.resource.partition(".")
            name, _, sub = wanted.partition("/")
            if name != info.resource or (group and group != info.group):
                return False
            if sub != info.subresource:
                return False
        if self.namespace is not None and self.namespace != info.namespace:
            return False
        return self.path is None or info.path.startswith(self.path)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.matched >= self.times

    def record_fired(self) -> None:
        """Count that the fault took effect (called by the HTTP layer)."""
        if self._faults is not None:
            self._faults._record(self)
        else:
            self.fired += 1


class Faults:
    """The rules in force and the counters. One per server (`server.faults`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._counts: Counter[str] = Counter()
        self._listeners: list[Callable[[], None]] = []
        self._drop_watches: Callable[[str | None, str | None], int] | None = None
        self._expire_watches: Callable[[str | None, str | None], int] | None = None
        self._compact: Callable[[], int] | None = None

    def inject(
        self,
        fault: Fault,
        *,
        verb: str | None = None,
        resource: str | None = None,
        namespace: str | None = None,
        path: str | None = None,
        times: int | None = 1,
    ) -> FaultRule:
        """Apply `fault` to the next `times` matching requests (None: all of them).

        `verb`: get, list, watch, create, update, patch, delete, deletecollection.
        `resource`: `pods`, `deployments.apps`, `pods/status`. `path`: a URL path prefix.
        Rules are tried in the order they were added; the first that applies wins.
        """
        rule = FaultRule(fault, verb, resource, namespace, path, times, _faults=self)
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule (counters are kept)."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def match(self, info: RequestInfo) -> FaultRule | None:
        """The first rule that applies to this request, counted as matched."""
        with self._lock:
            for rule in self._rules:
                if rule.applies(info):
                    rule.matched += 1
                    if rule.exhausted:
                        self._rules.remove(rule)
                    return rule
        return None

    def _record(self, rule: FaultRule) -> None:
        with self._lock:
            rule.fired += 1
            self._counts[rule.fault.kind] += 1
        self._notify()

    def record(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self._counts[kind] += count
        self._notify()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def fired(self, kind: str | None = None) -> int:
        """How many faults took effect: of one kind (`status`, `delay`, `stall`, `drop`,
        `truncate`, `malformed`, `expire`, `drop_watches`, `expire_watches`, `compact`),
        or all."""
        with self._lock:
            if kind is None:
                return sum(self._counts.values())
            return self._counts[kind]

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    # -- immediate faults (wired by the server) ----------------------------------------------

    def drop_watches(self, *, resource: str | None = None, namespace: str | None = None) -> int:
        """Drop every open watch connection (of `resource`/`namespace`) now, with no
        terminating chunk. Returns how many were dropped (each counts as `drop_watches`).
        Call it in the server's trio thread (`ThreadedFakeApiServer.call` otherwise)."""
        if self._drop_watches is None:
            raise RuntimeError("drop_watches needs a running server")
        return self._drop_watches(resource, namespace)

    def expire_watches(self, *, resource: str | None = None, namespace: str | None = None) -> int:
        """Send every open watch (of `resource`/`namespace`) an in-band 410 ERROR now."""
        if self._expire_watches is None:
            raise RuntimeError("expire_watches needs a running server")
        return self._expire_watches(resource, namespace)

    def compact(self) -> int:
        """Compact the history now: watches and lists from an older RV get 410."""
        if self._compact is None:
            raise RuntimeError("compact needs a running server")
        floor = self._compact()
        self.record("compact")
        return floor
