"""The chaos harness for the watch layer (issue 10, item 1): seeded schedules of writes and faults.

What this module is for: proving that informers never go blind and never lie. A *schedule*
(`generate_schedule(seed)`) is a plan, fully determined by its seed: a history of object writes
(create, update, status update, delete of pods, Deployments and ConfigMaps in two namespaces,
objects entering and leaving label and field selectors, names deleted and re-created)
interleaved with faults of every kind the fake API server can inject (see `FAULT_KINDS`) and
short pauses. `run_schedule(schedule)` carries it out:

- two fake API servers on loopback, *twins*: their stores start identical (same seeded
  randomness, same injected clock) and receive every write in the same synchronous step, so
  they hold the same history, byte for byte; only the first one gets the faults;
- the informers of `VIEWS` (full and metadata-only, all namespaces or one, with and without
  label and field selectors) against each server, through the real client (`open_client`,
  `open_informer`), with timings shortened through `WatchPolicy`;
- a recorder on every informer's event stream (and, from a random point of the schedule on, a
  late subscriber, which starts from the informer's replay of its store), and the *consumers
  under test* (`Consumer`: a function from event streams to a comparable final state) on both
  twins: `store_consumer`, `trace_consumer` here, the ticket controller's pipeline in
  `_consumers.py`.

After the last step, faults still pending get a bounded time to meet their request (a LIST
fault gets its view's watches expired, so that a relist comes); then the rules are cleared and
it checks, reporting every violation as a failure:

1. each informer's Store equals the server's state (a fresh list through the client), objects
   compared in full (metadata for metadata-only views);
2. the events each recorder saw fold to that same state, and fold strictly: no ADDED for a
   key already present, no MODIFIED or DELETED (so no duplicated deletion) for a key absent,
   resourceVersions never go backwards;
3. every event is grounded in the server's real history (a reference watcher inside the fake
   store): an ADDED/MODIFIED carries a state the object really had in the view at that
   resourceVersion; a DELETED without `final_state_unknown` is a real deletion (or selector
   exit) at its resourceVersion; `final_state_unknown=True` only on synthesized deletions,
   which carry the last state the consumer saw, of an object really deleted after it;
4. the fault-free twin delivered exactly the server's change sequence (same types, keys and
   resourceVersions, in order), and both servers ended in the same state;
5. every consumer's final state on the faulted twin equals its state on the fault-free twin.

Every fault that took effect is counted by kind (the fake's counters, the watches an immediate
fault hit, plus the genuine 410s a compaction causes), and the informers' error counters are
summed, so a report says what was exercised, not only what was planned. A crash (an exception
out of an informer, a consumer or the harness) is a failure too, with its traceback.

Use::

    report = await run_schedule(generate_schedule(seed), consumers=[store_consumer("pods")])
    assert report.passed, report.describe()
    print(format_campaign([report]))

Wall time: one schedule runs in about 1-3 s (backoffs of tens of milliseconds, a 0.6 s
inactivity timeout, the 1 s Retry-After of a 429). Real clock: the sockets are real. Waits are
for conditions (`Informer.wait_until`), bounded by `settle_timeout`.

It may import `rxkube.streams`, `rxkube.fakes`, trio, reactivex and the standard library;
consumers that need `rxkube.controllers` live in `tests/chaos/_consumers.py`.
"""

from __future__ import annotations

import copy
import random
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeAlias

import orjson
import trio
from reactivex import Observable
from reactivex.abc import SchedulerBase

from rxkube.fakes import (
    FakeApiServer,
    Fault,
    FaultRule,
    FieldSelector,
    LabelSelector,
    ListResult,
    ResourceType,
    StatusError,
    Watcher,
    open_fake_apiserver,
)
from rxkube.fakes import Store as FakeStore
from rxkube.streams import (
    CONFIGMAPS,
    DEPLOYMENTS,
    PODS,
    SECRETS,
    Informer,
    KubeClient,
    Resource,
    Store,
    TrioScheduler,
    WatchEvent,
    WatchPolicy,
    load_kubeconfig,
    open_client,
    open_informer,
    open_trace,
    open_trace_writer,
    stream_id,
    stream_spec,
)

__all__ = [
    "APPS",
    "APP_LABEL",
    "CHAOS_POLICY",
    "FAULT_KINDS",
    "OPT_IN_LABEL",
    "RAN",
    "VIEWS",
    "Consumer",
    "ExpiredContinue",
    "Immediate",
    "Inject",
    "Pause",
    "Schedule",
    "ScheduleReport",
    "Step",
    "View",
    "Write",
    "format_campaign",
    "generate_schedule",
    "run_schedule",
    "store_consumer",
    "trace_consumer",
]

# -- the world ---------------------------------------------------------------------------------

NAMESPACES: Final = ("alpha", "beta")
SCRATCH: Final = "scratch"
"""A namespace no view watches: the harness's own writes (see `ExpiredContinue`) go there."""
APPS: Final = ("lab", "desk", "dash")
OPT_IN_LABEL: Final = "ipb-halle.de/k8sticket"
APP_LABEL: Final = "ipb-halle.de/k8sticket.deployment.app.name"
_PREFIX: Final = "ipb-halle.de/k8sticket.deployment."
POD_PORT: Final = "ipb-halle.de/k8sticket.pod.port"

BOOKMARK_INTERVAL: Final = 0.1
DRAIN_TIMEOUT: Final = 2.0
"""After the last step, how long faults still pending may wait for their request."""
FAULTED_WATCH_BUFFER: Final = 16
"""Events the faulted server buffers per watch before ending it (the twin: 10,000)."""
BURST_VIEW: Final = "configmaps-beta-meta"
"""The view that sees every write of a burst (ConfigMaps of namespace beta)."""
BURST_WAIT: Final = 5.0
"""How long a burst waits for its view's watch to be open on the faulted server."""
REQUEST_TIMEOUT: Final = 1.0
"""The client's read timeout for lists (a stalled LIST is caught by it)."""
CHAOS_POLICY: Final = WatchPolicy(
    page_size=2,
    server_timeout=1,
    inactivity_timeout=0.6,
    backoff_initial=0.02,
    backoff_max=0.2,
    backoff_reset=1.0,
)
"""client-go's semantics at a hundredth of its timings: pages of 2 (so relists paginate),
watches that end after 1-2 s (so normal re-watches happen), an inactivity timeout six
bookmark intervals long."""


@dataclass(frozen=True, slots=True)
class View:
    """One informer's watch: what `open_informer` is given."""

    name: str
    resource: Resource
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None
    metadata_only: bool = False

    @property
    def rule_namespace(self) -> str:
        """The namespace a fault rule or an immediate fault names to hit this view's requests
        ("" is an all-namespaces request)."""
        return self.namespace or ""


VIEWS: Final = (
    View("pods", PODS, "alpha", label_selector=APP_LABEL),
    View("pods-tiered-meta", PODS, label_selector="tier in (web,db)", metadata_only=True),
    View("pods-running", PODS, "beta", field_selector="status.phase=Running"),
    View("deployments-meta", DEPLOYMENTS, "alpha", metadata_only=True),
    View("deployments-apps", DEPLOYMENTS, "alpha", label_selector=f"{OPT_IN_LABEL}=true"),
    View("configmaps-web", CONFIGMAPS, label_selector="tier=web"),
    View("configmaps-beta-meta", CONFIGMAPS, "beta", metadata_only=True),
)
_VIEW: Final = {view.name: view for view in VIEWS}
# Views whose (resource, namespace) no other view shares: a fault rule aimed at one of them
# hits only its requests (the fake matches rules on verb, resource and namespace).
_UNIQUE: Final = tuple(
    v.name
    for v in VIEWS
    if sum((w.resource, w.namespace) == (v.resource, v.namespace) for w in VIEWS) == 1
)

# -- a schedule: the plan ------------------------------------------------------------------

WriteOp: TypeAlias = Literal["create", "update", "status", "delete"]


@dataclass(frozen=True, slots=True)
class Write:
    """One write to both twins. `body`: the object to create, or a JSON merge patch applied to
    the current object (`update`: the object; `status`: the status subresource)."""

    op: WriteOp
    resource: Resource
    namespace: str
    name: str
    body: Mapping[str, Any] | None = None

    def __str__(self) -> str:
        shown = "" if self.body is None or self.op == "create" else f" {_short(self.body)}"
        return f"{self.op} {self.resource.plural}/{self.namespace}/{self.name}{shown}"


@dataclass(frozen=True, slots=True)
class Inject:
    """A fault rule for the next `times` matching requests (`target`: a view name, or None
    for any request of that verb)."""

    kind: str
    fault: Fault
    verb: Literal["list", "watch"]
    target: str | None
    times: int = 1

    def __str__(self) -> str:
        where = self.target or "any"
        return f"inject {_fault_text(self.fault)} x{self.times} on {self.verb} of {where}"


def _fault_text(fault: Fault) -> str:
    defaults = Fault(fault.kind)
    changed = [
        f"{name}={getattr(fault, name)!r}"
        for name in ("code", "retry_after", "seconds", "after_events", "plain_text")
        if getattr(fault, name) != getattr(defaults, name)
    ]
    return f"{fault.kind}({', '.join(changed)})"


@dataclass(frozen=True, slots=True)
class Immediate:
    """A fault that acts now: drop or expire open watches (of `target`, or all), compact."""

    kind: Literal["drop_watches", "expire_watches", "compact"]
    target: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.target or 'all'}"


@dataclass(frozen=True, slots=True)
class ExpiredContinue:
    """A genuine expired continue token during a paginated relist of `target`: its next LIST
    gets HTTP 410 (so the relist reads the latest state page by page), its watch is expired
    (so it relists now), and between its first and second page the history is written to and
    compacted, so page 2's token is really too old (410 Expired from the fake's store)."""

    target: str
    kind: str = "expired_continue"

    def __str__(self) -> str:
        return f"expired continue on {self.target}"


@dataclass(frozen=True, slots=True)
class Burst:
    """Writes applied in one synchronous step (no watch can drain in between)."""

    writes: tuple[Write, ...]
    kind: str = "burst"

    def __str__(self) -> str:
        return f"burst of {len(self.writes)}: " + "; ".join(str(w) for w in self.writes[:3]) + "..."


@dataclass(frozen=True, slots=True)
class JoinLate:
    """A consumer subscribes to every faulted informer now, mid-chaos: it gets the store's
    contents (ADDED..., SYNCED), then the live events, and is checked like the first ones."""

    def __str__(self) -> str:
        return "late subscribers join"


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float

    def __str__(self) -> str:
        return f"pause {self.seconds:.3f}s"


Step: TypeAlias = Write | Inject | Immediate | ExpiredContinue | Burst | JoinLate | Pause

FAULT_KINDS: Final = (
    "drop",
    "drop_list",
    "drop_watches",
    "truncate",
    "malformed",
    "expire",
    "expire_watches",
    "gone_http_watch",
    "gone_http_list",
    "too_many_requests",
    "server_errors",
    "stall",
    "stall_list",
    "compact",
    "expired_continue",
    "delay",
    "burst",
    "too_large_rv",
    "forbidden",
    "unauthorized",
)
"""What a schedule can inject. drop: a watch connection closed after some events, no
terminating chunk; drop_list: a LIST's connection closed before the answer; drop_watches /
expire_watches: every open watch (of a view, or all) dropped / sent an in-band ERROR 410 now;
truncate: half a line then a drop; malformed: a line that is not JSON; expire: an in-band ERROR
410 after some events; gone_http_watch / gone_http_list: HTTP 410; too_many_requests: 429 with
Retry-After, as API priority and fairness sends it; server_errors: a burst of 500/503/504;
stall / stall_list: a request never answered (the inactivity timeout / the read timeout);
compact: the history compacted (resumes get 410); expired_continue: see `ExpiredContinue`;
delay: a slow answer; burst: more writes at once than the faulted server buffers per watcher
(`FAULTED_WATCH_BUFFER`), so it ends the watches that fell behind, as the watch cache does;
too_large_rv: 504 "Too large resource version" (a server behind the client's resourceVersion,
e.g. another API server after a fail-over); forbidden / unauthorized: 403 / 401 (an RBAC
install race, a token being rotated)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A seeded plan: `initial` faults are in force before the informers start (they hit the
    first lists); `steps` run in order once the fault-free twin has synced."""

    seed: int
    initial: tuple[Inject, ...]
    steps: tuple[Step, ...]

    def planned(self) -> Counter[str]:
        """Faults planned, by kind: the requests each rule is for, each immediate step."""
        counts: Counter[str] = Counter()
        for step in (*self.initial, *self.steps):
            if isinstance(step, Inject):
                counts[step.kind] += step.times
            elif isinstance(step, Immediate | ExpiredContinue | Burst):
                counts[step.kind] += 1
            if isinstance(step, ExpiredContinue):
                counts.update(("gone_http_list", "expire_watches"))
        return counts

    @property
    def writes(self) -> int:
        return sum(
            1 if isinstance(step, Write) else len(step.writes) if isinstance(step, Burst) else 0
            for step in self.steps
        )

    def describe(self) -> str:
        faults = sum(self.planned().values())
        lines = [f"schedule seed={self.seed}: {self.writes} writes, {faults} faults"]
        lines += [f"  (before start) {step}" for step in self.initial]
        lines += [f"  {step}" for step in self.steps if not isinstance(step, Pause)]
        return "\n".join(lines)


@dataclass
class _Obj:
    """What the generator knows of one object (it alone writes, so it knows exactly)."""

    labels: dict[str, str]
    phase: str = "Pending"
    ready: bool = False
    ever_ready: bool = False
    bad: set[str] = field(default_factory=set)
    """Deployments: annotation keys whose values are invalid now."""
    version: int = 0


_Key: TypeAlias = tuple[str, str, str]  # resource plural, namespace, name


class _Generator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.model: dict[_Key, _Obj] = {}
        self.ips = 10

    # -- writes ----------------------------------------------------------------------------

    def write(self) -> Write:
        rng = self.rng
        plural = rng.choices(("pods", "deployments", "configmaps"), weights=(5, 3, 2))[0]
        if plural == "pods":
            namespace = rng.choices(NAMESPACES, weights=(3, 2))[0]
            name = f"p{rng.randrange(8)}"
        elif plural == "deployments":
            namespace, name = "alpha", f"d{rng.randrange(5)}"
        else:
            namespace, name = rng.choice(NAMESPACES), f"c{rng.randrange(6)}"
        key = (plural, namespace, name)
        obj = self.model.get(key)
        if obj is None:
            return self._create(key)
        if rng.random() < 0.18:
            del self.model[key]
            return Write("delete", _RESOURCES[plural], namespace, name)
        obj.version += 1
        if plural == "pods":
            return self._pod_update(key, obj)
        if plural == "deployments":
            return self._deployment_update(key, obj)
        return self._configmap_update(key, obj)

    def _tier(self) -> str | None:
        return self.rng.choice(("web", "db", None))

    def _create(self, key: _Key) -> Write:
        rng = self.rng
        plural, namespace, name = key
        labels: dict[str, str] = {}
        if plural == "pods":
            tier = self._tier()
            if tier:
                labels["tier"] = tier
            if namespace == "alpha":
                labels[APP_LABEL] = rng.choice(APPS)
            port = "8080" if rng.random() < 0.9 else "eighty"
            body: dict[str, Any] = {
                "metadata": {"name": name, "labels": labels, "annotations": {POD_PORT: port}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            }
            self.model[key] = _Obj(dict(labels))
        elif plural == "deployments":
            labels[OPT_IN_LABEL] = "true" if rng.random() < 0.75 else "false"
            obj = _Obj(dict(labels))
            body = {
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {
                        k: v for k, v in self._annotations(obj, full=True).items() if v is not None
                    },
                },
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name, APP_LABEL: rng.choice(APPS)}},
                        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
                    },
                },
            }
            self.model[key] = obj
        else:
            tier = self._tier()
            if tier:
                labels["tier"] = tier
            body = {"metadata": {"name": name, "labels": labels}, "data": {"v": "0"}}
            self.model[key] = _Obj(dict(labels))
        return Write("create", _RESOURCES[plural], namespace, name, body)

    def _annotations(self, obj: _Obj, *, full: bool) -> dict[str, str | None]:
        """Some k8sTicket annotations; sometimes an invalid value (tracked in `obj.bad`)."""
        rng = self.rng
        out: dict[str, str | None] = {}
        if full or rng.random() < 0.5:
            out[_PREFIX + "app.name"] = rng.choice(APPS) if rng.random() < 0.8 else None
        if full or rng.random() < 0.5:
            out[_PREFIX + "port"] = rng.choice(("9001", "9002", "none"))
        choices: list[tuple[str, str, str]] = [
            ("tickets.max", rng.choice(("1", "2", "3")), rng.choice(("lots", "0"))),
            ("pods.max", rng.choice(("0", "1", "4")), "-1"),
            ("pods.cooldown", rng.choice(("10", "30s", "1m")), "soon"),
        ]
        for suffix, good, bad in choices:
            if not full and rng.random() < 0.5:
                continue
            key = _PREFIX + suffix
            if rng.random() < 0.2:
                out[key] = bad
                obj.bad.add(key)
            else:
                out[key] = good
                obj.bad.discard(key)
        return out

    def _pod_update(self, key: _Key, obj: _Obj) -> Write:
        rng = self.rng
        _, namespace, name = key
        options = ["tier"]
        if namespace == "alpha":
            options.append("app")
        if obj.phase == "Pending":
            options += ["start"] * 3
        elif obj.phase == "Running":
            options += ["flip"] * 3 + ["fail"]
        choice = rng.choice(options)
        patch: dict[str, Any]
        if choice == "tier":
            tier = self._tier()
            obj.labels.pop("tier", None)
            if tier:
                obj.labels["tier"] = tier
            return Write("update", PODS, namespace, name, {"metadata": {"labels": {"tier": tier}}})
        if choice == "app":
            # Another app, or none (the pod leaves the pod view's selector), or back.
            app = rng.choice((*APPS, None)) if APP_LABEL in obj.labels else rng.choice(APPS)
            obj.labels.pop(APP_LABEL, None)
            if app is not None:
                obj.labels[APP_LABEL] = app
            labels = {"metadata": {"labels": {APP_LABEL: app}}}
            return Write("update", PODS, namespace, name, labels)
        if choice == "start":
            self.ips += 1
            obj.phase, obj.ready, obj.ever_ready = "Running", True, True
            patch = {"phase": "Running", "podIP": f"10.0.0.{self.ips}", "conditions": _ready(True)}
        elif choice == "flip":
            obj.ready = not obj.ready
            obj.ever_ready = obj.ever_ready or obj.ready
            patch = {"conditions": _ready(obj.ready)}
        else:
            obj.phase, obj.ready = "Failed", False
            patch = {"phase": "Failed", "conditions": _ready(False)}
        return Write("status", PODS, namespace, name, {"status": patch})

    def _deployment_update(self, key: _Key, obj: _Obj) -> Write:
        rng = self.rng
        _, namespace, name = key
        choice = rng.choice(("opt", "annotations", "annotations", "template"))
        if choice == "opt":
            value = "false" if obj.labels.get(OPT_IN_LABEL) == "true" else "true"
            obj.labels[OPT_IN_LABEL] = value
            patch: dict[str, Any] = {"metadata": {"labels": {OPT_IN_LABEL: value}}}
        elif choice == "annotations":
            patch = {"metadata": {"annotations": self._annotations(obj, full=False)}}
        else:
            template = {
                "metadata": {"labels": {APP_LABEL: rng.choice(APPS)}},
                "spec": {"containers": [{"name": "app", "image": f"nginx:1.{obj.version}"}]},
            }
            patch = {"spec": {"template": template}}
        return Write("update", DEPLOYMENTS, namespace, name, patch)

    def _configmap_update(self, key: _Key, obj: _Obj) -> Write:
        _, namespace, name = key
        if self.rng.random() < 0.5:
            tier = self._tier()
            return Write(
                "update", CONFIGMAPS, namespace, name, {"metadata": {"labels": {"tier": tier}}}
            )
        return Write("update", CONFIGMAPS, namespace, name, {"data": {"v": str(obj.version)}})

    def burst(self, n: int) -> tuple[Write, ...]:
        """`n` writes to the ConfigMaps of namespace beta (one view sees them all)."""
        out: list[Write] = []
        for i in range(n):
            name = f"c{i % 6}"
            key = ("configmaps", "beta", name)
            obj = self.model.get(key)
            if obj is None:
                out.append(self._create(key))
            else:
                obj.version += 1
                patch = {"data": {"v": str(obj.version)}}
                out.append(Write("update", CONFIGMAPS, "beta", name, patch))
        return tuple(out)

    def settle(self) -> list[Write]:
        """Writes that leave every object in a state whose meaning does not depend on history.

        Two controller rules remember the past on purpose: an invalid annotation keeps the
        app's last good spec, and a pod that was ready and is no longer stays in its server
        list, not ready (drain). A faulted run that never saw the good spec or the ready state
        (a relist coalesced them away, as client-go's would) legitimately ends elsewhere, so
        the histories compared with a fault-free run end with valid annotations and ready
        pods (intermediate states are as wild as ever)."""
        out: list[Write] = []
        for (plural, namespace, name), obj in sorted(self.model.items()):
            if plural == "deployments" and obj.bad:
                fixed = {key: "1" if "max" in key else "10" for key in sorted(obj.bad)}
                obj.bad.clear()
                patch = {"metadata": {"annotations": fixed}}
                out.append(Write("update", DEPLOYMENTS, namespace, name, patch))
            elif plural == "pods" and obj.ever_ready and obj.phase == "Running" and not obj.ready:
                obj.ready = True
                status = {"status": {"conditions": _ready(True)}}
                out.append(Write("status", PODS, namespace, name, status))
        return out

    # -- faults ----------------------------------------------------------------------------

    def target(self) -> str | None:
        return self.rng.choice(_VIEW_NAMES) if self.rng.random() < 0.85 else None

    def fault(self, kind: str) -> list[Step]:
        """The steps of one fault of `kind`. A fault on LIST is followed by expiring the
        target's watches, so that a relist comes to meet it."""
        rng = self.rng
        target = self.target()
        # A stream fault acts after some events: on a quiet view the watch would mostly end
        # (server timeout) before them, so only busy views get faults deeper in a stream.
        after = rng.choice((0, 0, 1, 2)) if target in _BUSY else 0
        trigger: list[Step] = [Immediate("expire_watches", target)]
        if kind == "drop":
            return [Inject(kind, Fault.drop(after_events=after), "watch", target)]
        if kind == "drop_list":
            return [Inject(kind, Fault.drop(), "list", target), *trigger]
        if kind in ("drop_watches", "expire_watches"):
            return [Immediate(kind, target)]  # type: ignore[arg-type]
        if kind == "truncate":
            # It cuts an event in half: it needs one to come, so it goes to a busy view.
            busy = rng.choice(_BUSY)
            after = rng.choice((0, 0, 1))
            return [Inject(kind, Fault.truncate(after_events=after), "watch", busy)]
        if kind == "malformed":
            return [Inject(kind, Fault.malformed(after_events=after), "watch", target)]
        if kind == "expire":
            return [Inject(kind, Fault.expire(after_events=after), "watch", target)]
        if kind == "gone_http_watch":
            return [Inject(kind, Fault.status(410), "watch", target)]
        if kind == "gone_http_list":
            return [Inject(kind, Fault.status(410), "list", target), *trigger]
        if kind == "too_many_requests":
            verb: Literal["list", "watch"] = rng.choice(("list", "watch"))
            steps: list[Step] = [Inject(kind, Fault.too_many_requests(retry_after=1), verb, target)]
            return steps + trigger if verb == "list" else steps
        if kind == "server_errors":
            verb = rng.choice(("list", "watch"))
            code = rng.choice((500, 503, 504))
            burst = Inject(kind, Fault.status(code), verb, target, times=rng.randint(2, 4))
            return [burst, *trigger] if verb == "list" else [burst]
        if kind == "stall":
            return [Inject(kind, Fault.stall(), "watch", target)]
        if kind == "stall_list":
            return [Inject(kind, Fault.stall(), "list", target), *trigger]
        if kind == "compact":
            return [Immediate("compact")]
        if kind == "expired_continue":
            return [ExpiredContinue(rng.choice(_EPISODE_TARGETS))]
        if kind == "burst":
            return [
                Burst(self.burst(rng.randint(FAULTED_WATCH_BUFFER + 4, 2 * FAULTED_WATCH_BUFFER)))
            ]
        if kind == "too_large_rv":
            verb = rng.choice(("list", "watch"))
            message = "Timeout: Too large resource version: 999999, current: 10"
            fault = Fault.status(504, reason="Timeout", message=message, retry_after=1)
            step = Inject(kind, fault, verb, target)
            return [step, *trigger] if verb == "list" else [step]
        if kind in ("forbidden", "unauthorized"):
            verb = rng.choice(("list", "watch"))
            code = 403 if kind == "forbidden" else 401
            reason = "Forbidden" if kind == "forbidden" else "Unauthorized"
            step = Inject(kind, Fault.status(code, reason=reason), verb, target)
            return [step, *trigger] if verb == "list" else [step]
        if kind == "delay":
            verb = rng.choice(("list", "watch"))
            return [Inject(kind, Fault.delay(rng.uniform(0.05, 0.3)), verb, target)]
        raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")

    def initial(self) -> list[Inject]:
        """Faults in force when the informers start: their first LIST meets them."""
        rng = self.rng
        options = [
            Inject("server_errors", Fault.status(500), "list", None, times=rng.randint(1, 3)),
            Inject("too_many_requests", Fault.too_many_requests(retry_after=1), "list", None),
            Inject("stall_list", Fault.stall(), "list", self.target()),
            Inject("drop_list", Fault.drop(), "list", self.target()),
            Inject("gone_http_list", Fault.status(410), "list", self.target()),
        ]
        return rng.sample(options, rng.randint(0, 2))


_RESOURCES: Final[Mapping[str, Resource]] = {
    "pods": PODS,
    "deployments": DEPLOYMENTS,
    "configmaps": CONFIGMAPS,
}
_VIEW_NAMES: Final = tuple(view.name for view in VIEWS)
_BUSY: Final = ("pods", "pods-tiered-meta", "deployments-meta", None)
# Views big enough to paginate (more than `page_size` objects) most of the time, and alone on
# their (resource, namespace), so the episode's rules hit only them.
_EPISODE_TARGETS: Final = tuple(
    n for n in ("pods", "configmaps-beta-meta", "pods-tiered-meta") if n in _UNIQUE
)


def _ready(ready: bool) -> list[dict[str, str]]:
    return [{"type": "Ready", "status": "True" if ready else "False"}]


def generate_schedule(
    seed: int,
    *,
    writes: int = 70,
    faults: int = 14,
    duration: float = 1.0,
    kinds: Sequence[str] = FAULT_KINDS,
    settle: bool = True,
) -> Schedule:
    """The schedule of `seed`: `writes` writes (plus the settling writes, see
    `_Generator.settle`) with `faults` faults among them (distinct kinds drawn from `kinds`
    first, then repeats), paced to take about `duration` seconds."""
    rng = random.Random(seed)
    gen = _Generator(rng)
    initial = gen.initial()
    chosen = rng.sample(list(kinds), min(faults, len(kinds)))
    chosen += rng.choices(list(kinds), k=max(0, faults - len(kinds)))
    slots: dict[int, list[str]] = {}
    for kind in chosen:
        slots.setdefault(rng.randrange(writes + 1), []).append(kind)
    later: dict[int, list[Step]] = {}
    history: list[Step] = []
    # In history order, so that faults made of writes (a burst) see the objects as they are.
    for index in range(writes + 1):
        history += later.pop(index, [])
        for kind in slots.get(index, ()):
            if kind == "compact" and rng.random() < 0.6:
                # A compaction that bites: one view is held off (its watch dropped, the
                # reconnect stalled until the inactivity timeout) while writes go on, then the
                # history is compacted, so it resumes from a resourceVersion that is gone.
                target = rng.choice(_VIEW_NAMES)
                history += [
                    Inject("stall", Fault.stall(), "watch", target),
                    Immediate("drop_watches", target),
                ]
                later.setdefault(index + rng.randint(3, 10), []).append(Immediate("compact"))
            else:
                history += gen.fault(kind)
        if index < writes:
            history.append(gen.write())
    for index in sorted(later):
        history += later[index]
    history.insert(rng.randrange(len(history) + 1), JoinLate())
    if settle:
        history += gen.settle()
    # Pacing: a third of the gaps are zero (bursts that arrive in one chunk), the others
    # exponential, so the whole takes about `duration`.
    mean = duration / max(1, len(history)) * 1.5
    steps: list[Step] = []
    for step in history:
        steps.append(step)
        if rng.random() > 1 / 3:
            steps.append(Pause(round(rng.expovariate(1 / mean), 4)))
    return Schedule(seed, tuple(initial), tuple(steps))


# -- consumers under test ----------------------------------------------------------------------

Snapshot: TypeAlias = Callable[[], object]
Attach: TypeAlias = Callable[[Mapping[str, Observable[WatchEvent]], SchedulerBase], Snapshot]


@dataclass(frozen=True, slots=True)
class Consumer:
    """A consumer under test: `attach(streams, scheduler)` subscribes to the event streams of
    `views` (hot, by view name; nothing has flowed yet) and returns a function giving its
    final state, compared with `==` between the faulted and the fault-free twin. `scheduler`
    is a `TrioScheduler` living as long as the run (for operators that keep time). It must
    not raise from `on_next` (that crashes the informer, and the run)."""

    name: str
    views: tuple[str, ...]
    attach: Attach


def store_consumer(view: str) -> Consumer:
    """A `Store` folded from one view's events; its state is key -> (resourceVersion, object)."""

    def attach(streams: Mapping[str, Observable[WatchEvent]], _: SchedulerBase) -> Snapshot:
        store = Store(transform=None)
        streams[view].subscribe(store)

        def snapshot() -> dict[str, tuple[str, object]]:
            return {key: (obj.meta.resource_version, obj.object) for key, obj in store.items()}

        return snapshot

    return Consumer(f"store({view})", (view,), attach)


def trace_consumer() -> Consumer:
    """Every view's events teed to one trace file while the run goes on (as `open_informer(
    record=...)` does); its state is each stream's Store, rebuilt by reading the trace back."""

    def attach(streams: Mapping[str, Observable[WatchEvent]], scheduler: SchedulerBase) -> Snapshot:
        directory = tempfile.TemporaryDirectory(prefix="rxkube-chaos-")
        path = Path(directory.name) / "trace.jsonl.gz"
        declared = {
            stream_id(v.resource, **_selection(v)): stream_spec(v.resource, **_selection(v))
            for v in VIEWS
        }
        writer = open_trace_writer(path, streams=declared, scheduler=scheduler, compresslevel=1)
        live = {sid: Store(transform=None) for sid in declared}

        def fold(event: WatchEvent) -> None:
            live[event.stream].apply(event)

        subscriptions = []
        for view in VIEWS:
            # The writer refuses an event of a stream its header does not declare: each
            # event must carry its view's stream id.
            subscriptions.append(streams[view.name].subscribe(writer))
            subscriptions.append(streams[view.name].subscribe(fold))

        def snapshot() -> dict[str, dict[str, str]]:
            # The informers run on (a fault still in flight may make one relist): stop both
            # the recording and the live fold at the same event.
            for subscription in subscriptions:
                subscription.dispose()
            writer.close()
            replayed = {sid: Store(transform=None) for sid in declared}
            with open_trace(path) as trace:
                for record in trace:
                    if isinstance(record.event, WatchEvent):
                        replayed[record.event.stream].apply(record.event)
            directory.cleanup()
            state = {sid: _rvs(store) for sid, store in replayed.items()}
            seen = {sid: _rvs(store) for sid, store in live.items()}
            if state != seen:
                difference = _describe_difference(state, seen)
                raise RuntimeError(f"the trace does not rebuild what was recorded: {difference}")
            return state

        return snapshot

    return Consumer("trace", tuple(v.name for v in VIEWS), attach)


def _selection(view: View) -> dict[str, Any]:
    return {
        "namespace": view.namespace,
        "label_selector": view.label_selector,
        "field_selector": view.field_selector,
        "metadata_only": view.metadata_only,
    }


# -- the fake's store, instrumented --------------------------------------------------------


class _Clock:
    """The fake stores' wall clock (timestamps): moved by the schedule, never by real time, so
    both twins stamp the same writes alike."""

    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now


class _ChaosStore(FakeStore):
    """The fake's store, counting the 410s it answers on its own (compacted history, expired
    continue tokens), and able to run a hook between two pages of one view's list."""

    def __init__(self, clock: _Clock, seed: int) -> None:
        super().__init__(now=clock, random=random.Random(seed))
        self.genuine: Counter[str] = Counter()
        self.armed: set[tuple[str, str]] = set()
        self.between_pages: Callable[[], None] = lambda: None

    def list(
        self,
        resource: str | ResourceType,
        namespace: str = "",
        *,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> ListResult:
        if continue_token and self.armed:
            where = (self.resource(resource).qualified, namespace)
            if where in self.armed:
                self.armed.discard(where)
                self.between_pages()
        try:
            return super().list(
                resource,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=limit,
                continue_token=continue_token,
                resource_version=resource_version,
                resource_version_match=resource_version_match,
            )
        except StatusError as error:
            if error.code == 410:
                self.genuine["expired_continue" if continue_token else "too_old_list"] += 1
            raise

    def watch(
        self,
        resource: str | ResourceType,
        namespace: str = "",
        *,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        resource_version: str | None = None,
        send_initial_events: bool = False,
        max_buffer: int = 10_000,
    ) -> Watcher:
        try:
            return super().watch(
                resource,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                resource_version=resource_version,
                send_initial_events=send_initial_events,
                max_buffer=max_buffer,
            )
        except StatusError as error:
            if error.code == 410:
                self.genuine["too_old_watch"] += 1
            raise


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, Mapping):
            current = target.get(key)
            if not isinstance(current, dict):
                current = target[key] = {}
            _merge(current, value)
        else:
            target[key] = copy.deepcopy(value)


def _apply(store: FakeStore, write: Write) -> None:
    resource = write.resource.qualified_name
    if write.op == "create":
        assert write.body is not None
        store.create(resource, copy.deepcopy(dict(write.body)), namespace=write.namespace)
    elif write.op == "delete":
        store.delete(resource, write.namespace, write.name)
    else:
        assert write.body is not None
        current = store.get(resource, write.namespace, write.name)
        _merge(current, write.body)
        subresource = "status" if write.op == "status" else ""
        store.update(
            resource, current, namespace=write.namespace, name=write.name, subresource=subresource
        )


def _setup(store: FakeStore) -> None:
    for namespace in (*NAMESPACES, SCRATCH):
        store.create("namespaces", {"metadata": {"name": namespace}})
    store.create("secrets", {"metadata": {"name": "touch"}, "data": {}}, namespace=SCRATCH)


# -- recording and checking ----------------------------------------------------------------

_Ref: TypeAlias = tuple[str, str, int]  # type, key, rv


class _Reference:
    """Every event a perfect watch of the view would deliver: a watcher inside the fake's
    store, opened before the first write (no faults reach it), plus the initial contents."""

    def __init__(self, store: FakeStore, view: View) -> None:
        self.view = view
        namespace = view.rule_namespace
        listed = store.list(
            view.resource.qualified_name,
            namespace,
            label_selector=view.label_selector,
            field_selector=view.field_selector,
        )
        self.initial = [("ADDED", entry) for entry in listed.items]
        self.watcher = store.watch(
            view.resource.qualified_name,
            namespace,
            label_selector=view.label_selector,
            field_selector=view.field_selector,
            resource_version=str(store.resource_version),
            max_buffer=10**9,
        )
        self.items: list[tuple[str, Any]] = []

    def finish(self) -> None:
        self.items = [item for item in self.watcher.take() if not isinstance(item[1], int)]
        self.watcher.close()

    def sequence(self) -> list[_Ref]:
        return [(kind, entry.key, entry.rv) for kind, entry in self.items]

    def index(self) -> tuple[dict[tuple[str, int], tuple[str, Any]], dict[str, list[int]]]:
        """(key, rv) -> (type, entry); key -> resourceVersions of its deletions."""
        states: dict[tuple[str, int], tuple[str, Any]] = {}
        deletions: dict[str, list[int]] = {}
        for kind, entry in (*self.initial, *self.items):
            states[(entry.key, entry.rv)] = (kind, entry)
            if kind == "DELETED":
                deletions.setdefault(entry.key, []).append(entry.rv)
        return states, deletions


def _normal(obj: Mapping[str, Any], metadata_only: bool) -> dict[str, Any]:
    """What must match between the client's view and the server's: managedFields dropped
    (the informer drops them); metadata only for metadata-only views."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    if metadata_only:
        return {"metadata": meta}
    out = dict(obj)
    out["metadata"] = meta
    return out


class _Recorder:
    """Records one view's events on one twin and folds them strictly."""

    def __init__(self, view: View, side: str) -> None:
        self.view = view
        self.side = side
        self.events: list[WatchEvent] = []
        self.state: dict[str, str] = {}  # key -> rv
        self.last_rv: dict[str, int] = {}
        self.violations: list[str] = []

    def _violation(self, text: str, event: WatchEvent) -> None:
        if len(self.violations) < 10:
            self.violations.append(f"{self.side} {self.view.name}: {text}: {event!r}")

    def on_next(self, event: WatchEvent) -> None:
        self.events.append(event)
        if event.type == "SYNCED":
            return
        key = event.meta.key
        rv = event.resource_version
        present = key in self.state
        if event.type == "ADDED" and present:
            self._violation("ADDED for a key already present", event)
        if event.type != "ADDED" and not present:
            what = "duplicated deletion" if event.type == "DELETED" else "MODIFIED"
            self._violation(f"{what} of a key absent", event)
        if event.final_state_unknown:
            if event.type != "DELETED":
                self._violation("final_state_unknown on a non-deletion", event)
            elif present and rv != self.state[key]:
                self._violation(
                    f"synthesized deletion does not carry the last state seen "
                    f"(rv {self.state[key]})",
                    event,
                )
        else:
            previous = self.last_rv.get(key)
            if previous is not None and int(rv) <= previous:
                self._violation(f"resourceVersion went backwards (last {previous})", event)
            self.last_rv[key] = int(rv)
        if event.type == "DELETED":
            self.state.pop(key, None)
        else:
            self.state[key] = rv

    def ground(self, reference: _Reference) -> list[str]:
        """Every event is a real state, deletion or synthesized deletion of the history."""
        states, deletions = reference.index()
        meta_only = self.view.metadata_only
        out: list[str] = []

        def fail(text: str, event: WatchEvent) -> None:
            if len(out) < 10:
                out.append(f"{self.side} {self.view.name}: {text}: {event!r}")

        for event in self.events:
            if event.type == "SYNCED":
                continue
            key, rv = event.meta.key, int(event.resource_version)
            found = states.get((key, rv))
            if event.final_state_unknown:
                if found is None or found[0] == "DELETED":
                    fail("synthesized deletion of a state the object never had", event)
                elif not any(d > rv for d in deletions.get(key, ())):
                    fail("synthesized deletion of an object never deleted after that state", event)
                continue
            if found is None:
                fail("no such state in the server's history", event)
                continue
            kind, entry = found
            if (event.type == "DELETED") != (kind == "DELETED"):
                fail(f"the server's history has {kind} at this resourceVersion", event)
                continue
            expected = orjson.loads(entry.partial_raw() if meta_only else entry.raw)
            if _normal(event.object, meta_only) != _normal(expected, meta_only):
                fail("object differs from the server's state at this resourceVersion", event)
        return out

    def sequence(self) -> list[_Ref]:
        return [
            (e.type, e.meta.key, int(e.resource_version)) for e in self.events if e.type != "SYNCED"
        ]


def _store_objects(store: Store, metadata_only: bool) -> dict[str, dict[str, Any]]:
    return {key: _normal(obj.object, metadata_only) for key, obj in store.items()}


def _rvs(store: Store) -> dict[str, str]:
    return {key: obj.meta.resource_version for key, obj in store.items()}


async def _fresh_list(client: KubeClient, view: View) -> dict[str, dict[str, Any]]:
    listed = await client.list(
        view.resource,
        namespace=view.namespace,
        label_selector=view.label_selector,
        field_selector=view.field_selector,
        metadata_only=view.metadata_only,
    )
    out: dict[str, dict[str, Any]] = {}
    for listed_item in listed.items:
        # List items of built-in kinds carry no kind/apiVersion (wire reference 3.2); the
        # informer adds them, so that every object it holds looks like a watch event's.
        item: dict[str, Any] = {
            "kind": view.resource.kind,
            "apiVersion": view.resource.api_version,
        }
        item.update(listed_item)
        meta = item["metadata"]
        out[f"{meta.get('namespace', '')}/{meta['name']}"] = _normal(item, view.metadata_only)
    return out


def _diff(got: Mapping[str, Any], want: Mapping[str, Any]) -> str:
    missing = sorted(want.keys() - got.keys())
    extra = sorted(got.keys() - want.keys())
    stale = sorted(k for k in got.keys() & want.keys() if got[k] != want[k])
    return f"missing {missing}, extra {extra}, different {stale}"


# -- the report ----------------------------------------------------------------------------


@dataclass
class ScheduleReport:
    """What one schedule did and whether every check held."""

    seed: int
    planned: Counter[str]
    fired: Counter[str] = field(default_factory=Counter)
    """Faults that took effect, by kind (immediate ones count the watches they hit), plus the
    genuine 410s of the fake's store: too_old_watch, too_old_list (after compactions)."""
    client_errors: Counter[str] = field(default_factory=Counter)
    """The faulted informers' `statistics().errors`, summed."""
    totals: Counter[str] = field(default_factory=Counter)
    """events, lists, relists, watches, reconnects, synthesized_deletions (faulted side)."""
    unmatched: Counter[str] = field(default_factory=Counter)
    """Fault rules no request met before the drain timeout (cleared unfired), by kind."""
    failures: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    schedule: Schedule | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        state = "passed" if self.passed else f"FAILED ({len(self.failures)})"
        fired = sum(v for k, v in self.fired.items() if k not in _CONSEQUENCES)
        return (
            f"seed {self.seed}: {state} in {self.elapsed:.2f}s; {fired} faults fired "
            f"({sum(self.planned.values())} planned); relists {self.totals['relists']}, "
            f"reconnects {self.totals['reconnects']}, synthesized deletions "
            f"{self.totals['synthesized_deletions']}"
        )

    def describe(self) -> str:
        lines = [self.summary(), *(f"  - {f}" for f in self.failures)]
        lines.append(f"  fired: {dict(sorted(self.fired.items()))}")
        lines.append(f"  client errors: {dict(sorted(self.client_errors.items()))}")
        if self.unmatched:
            lines.append(f"  unmatched rules: {dict(sorted(self.unmatched.items()))}")
        if self.schedule is not None:
            lines.append(self.schedule.describe())
        return "\n".join(lines)


_CONSEQUENCES: Final = frozenset({"too_old_watch", "too_old_list"})


def format_campaign(reports: Sequence[ScheduleReport]) -> str:
    """Schedules run and passed, faults planned and fired by kind, client errors by kind."""
    passed = sum(r.passed for r in reports)
    planned: Counter[str] = Counter()
    fired: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for r in reports:
        planned.update(r.planned)
        fired.update(r.fired)
        errors.update(r.client_errors)
        totals.update(r.totals)
    lines = [f"schedules run {len(reports)}, passed {passed}, failed {len(reports) - passed}"]
    lines.append(
        "(planned: requests a rule was for, or steps; fired: faults that took effect, and for "
        "drop_watches/expire_watches, the watches hit, drain triggers included)"
    )
    lines.append(f"{'fault kind':<20}{'planned':>9}{'fired':>9}")
    for kind in FAULT_KINDS:
        lines.append(f"{kind:<20}{planned[kind]:>9}{fired[kind]:>9}")
    lines.append(
        f"{'total':<20}{sum(planned.values()):>9}"
        f"{sum(v for k, v in fired.items() if k not in _CONSEQUENCES):>9}"
    )
    lines.append(
        "genuine 410s after compactions: "
        + ", ".join(f"{k} {fired[k]}" for k in sorted(_CONSEQUENCES))
    )
    lines.append("client errors: " + ", ".join(f"{k} {v}" for k, v in sorted(errors.items())))
    lines.append("informers: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())))
    return "\n".join(lines)


RAN: Final[list[ScheduleReport]] = []
"""Every report `run_schedule` made in this process (the test session prints their figures)."""


# -- running a schedule --------------------------------------------------------------------


async def run_schedule(
    schedule: Schedule,
    *,
    consumers: Sequence[Consumer] = (),
    policy: WatchPolicy = CHAOS_POLICY,
    settle_timeout: float = 10.0,
) -> ScheduleReport:
    """Carry out `schedule` against twin fake API servers and check the outcome (see the
    module docstring). Never raises for a failed check or a crash: both are failures in the
    report (`report.passed`, `report.describe()`)."""
    report = ScheduleReport(schedule.seed, schedule.planned(), schedule=schedule)
    started = trio.current_time()
    try:
        await _Run(schedule, consumers, policy, settle_timeout, report).run()
    except Exception as exc:  # a crash of the harness or of a layer under test
        for leaf in _leaves(exc):
            text = "".join(traceback.format_exception(leaf, limit=-6))
            report.failures.append(f"crashed: {text}")
    report.elapsed = trio.current_time() - started
    RAN.append(report)
    return report


async def _next_change(informers: Iterable[Informer]) -> None:
    """Wait until any informer's counters change (at the latest its next bookmark)."""

    def first_call_false() -> Callable[[object], bool]:
        calls = 0

        def predicate(_: object) -> bool:
            nonlocal calls
            calls += 1
            return calls > 1

        return predicate

    async with trio.open_nursery() as nursery:

        async def wait_one(informer: Informer) -> None:
            await informer.wait_until(first_call_false())
            nursery.cancel_scope.cancel()

        for informer in informers:
            nursery.start_soon(wait_one, informer)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups: what really went wrong."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


class _Side:
    """One twin: its server, client, informers, recorders and consumers' snapshots."""

    def __init__(self, name: str, store: _ChaosStore) -> None:
        self.name = name
        self.store = store
        self.server: FakeApiServer
        self.client: KubeClient
        self.informers: dict[str, Informer] = {}
        self.recorders: dict[str, _Recorder] = {}
        self.late: dict[str, _Recorder] = {}
        self.references: dict[str, _Reference] = {}
        self.snapshots: dict[str, Snapshot] = {}


class _Run:
    def __init__(
        self,
        schedule: Schedule,
        consumers: Sequence[Consumer],
        policy: WatchPolicy,
        settle_timeout: float,
        report: ScheduleReport,
    ) -> None:
        self.schedule = schedule
        self.consumers = consumers
        self.policy = policy
        self.settle_timeout = settle_timeout
        self.report = report
        self.clock = _Clock()
        seed = schedule.seed
        self.faulted = _Side("faulted", _ChaosStore(self.clock, seed))
        self.twin = _Side("fault-free", _ChaosStore(self.clock, seed))
        self.rules: list[tuple[str, FaultRule]] = []
        self.steps: list[tuple[Inject, FaultRule]] = []
        self.touches = 0

    @property
    def sides(self) -> tuple[_Side, _Side]:
        return (self.faulted, self.twin)

    def write(self, write: Write) -> None:
        self.clock.now += 1.0
        for side in self.sides:
            _apply(side.store, write)

    def touch(self) -> None:
        """A write no view sees, to both twins: moves the resourceVersion past a page's."""
        self.touches += 1
        patch = {"metadata": {"annotations": {"n": str(self.touches)}}}
        self.write(Write("update", SECRETS, SCRATCH, "touch", patch))

    async def run(self) -> None:
        for side in self.sides:
            _setup(side.store)
        async with AsyncExitStack() as stack:
            for side in self.sides:
                buffer = FAULTED_WATCH_BUFFER if side is self.faulted else 10_000
                side.server = await stack.enter_async_context(
                    open_fake_apiserver(
                        store=side.store,
                        bookmark_interval=BOOKMARK_INTERVAL,
                        max_watch_buffer=buffer,
                    )
                )
                config = load_kubeconfig(side.server.kubeconfig_path)
                side.client = await stack.enter_async_context(
                    open_client(config, request_timeout=REQUEST_TIMEOUT)  # default rate limit
                )
                side.references = {v.name: _Reference(side.store, v) for v in VIEWS}
            for step in self.schedule.initial:
                self.inject(step)
            # Operators that keep time (the plan's drain deadlines) get a scheduler whose
            # nursery is cancelled first on the way out (a 1 h timer must not hold the exit).
            nursery = await stack.enter_async_context(trio.open_nursery())
            stack.callback(nursery.cancel_scope.cancel)
            scheduler = TrioScheduler(nursery)
            for side in self.sides:
                await self.open_informers(stack, side, scheduler)
            with trio.fail_after(self.settle_timeout):
                for informer in self.twin.informers.values():
                    await informer.wait_synced()
            for planned in self.schedule.steps:
                await self.step(planned)
            await self.drain()
            self.faulted.server.faults.clear()
            self.faulted.store.armed.clear()
            await self.check()

    async def open_informers(
        self, stack: AsyncExitStack, side: _Side, scheduler: SchedulerBase
    ) -> None:
        for index, view in enumerate(VIEWS):
            informer = await stack.enter_async_context(
                open_informer(
                    side.client,
                    view.resource,
                    namespace=view.namespace,
                    label_selector=view.label_selector,
                    field_selector=view.field_selector,
                    metadata_only=view.metadata_only,
                    policy=self.policy,
                    rng=random.Random(self.schedule.seed * 100 + index),
                )
            )
            recorder = _Recorder(view, side.name)
            informer.events.subscribe(recorder.on_next)
            side.informers[view.name] = informer
            side.recorders[view.name] = recorder
        for consumer in self.consumers:
            streams = {name: side.informers[name].events for name in consumer.views}
            side.snapshots[consumer.name] = consumer.attach(streams, scheduler)

    # -- steps -------------------------------------------------------------------------------

    def inject(self, step: Inject) -> None:
        view = _VIEW[step.target] if step.target else None
        rule = self.faulted.server.faults.inject(
            step.fault,
            verb=step.verb,
            resource=view.resource.qualified_name if view else None,
            namespace=view.rule_namespace if view else None,
            times=step.times,
        )
        self.rules.append((step.kind, rule))
        self.steps.append((step, rule))

    def immediate(self, step: Immediate) -> int:
        """Carry out an immediate fault; returns how many watches (or compactions) it hit."""
        faults = self.faulted.server.faults
        if step.kind == "compact":
            faults.compact()
            self.report.fired["compact"] += 1
            return 1
        view = _VIEW[step.target] if step.target else None
        resource = view.resource.qualified_name if view else None
        namespace = view.rule_namespace if view else None
        if step.kind == "drop_watches":
            hit = faults.drop_watches(resource=resource, namespace=namespace)
        else:
            hit = faults.expire_watches(resource=resource, namespace=namespace)
        self.report.fired[step.kind] += hit
        return hit

    async def burst(self, step: Burst) -> None:
        store = self.faulted.store

        def served() -> bool:  # the view's watch is open on the faulted server
            return any(
                w.namespace == "beta" and w.max_buffer == FAULTED_WATCH_BUFFER and not w.closed
                for w in store.watchers(CONFIGMAPS.qualified_name)
            )

        # A burst ends the watches open when it comes; while the view's watch is down (another
        # fault, a backoff, a busy machine) it would end none. Its informer's counters move
        # when it watches again (the request, then a bookmark every BOOKMARK_INTERVAL).
        with trio.move_on_after(BURST_WAIT):
            while not served():
                await _next_change([self.faulted.informers[BURST_VIEW]])
        watchers = store.watchers(CONFIGMAPS.qualified_name)
        for write in step.writes:
            self.write(write)
        behind = [w for w in watchers if w.closed and "behind" in w.close_reason]
        self.report.fired["burst"] += len(behind)

    def expired_continue(self, step: ExpiredContinue) -> None:
        view = _VIEW[step.target]
        resource = view.resource.qualified_name
        self.inject(Inject("gone_http_list", Fault.status(410), "list", step.target))
        store = self.faulted.store
        store.armed.add((store.resource(resource).qualified, view.rule_namespace))

        def between_pages() -> None:
            self.touch()
            store.compact()

        store.between_pages = between_pages
        hit = self.faulted.server.faults.expire_watches(
            resource=resource, namespace=view.rule_namespace
        )
        self.report.fired["expire_watches"] += hit

    async def step(self, step: Step) -> None:
        if isinstance(step, Write):
            self.write(step)
        elif isinstance(step, Inject):
            self.inject(step)
        elif isinstance(step, Immediate):
            self.immediate(step)
        elif isinstance(step, ExpiredContinue):
            self.expired_continue(step)
        elif isinstance(step, Burst):
            await self.burst(step)
        elif isinstance(step, JoinLate):
            for view in VIEWS:
                recorder = _Recorder(view, "faulted (late subscriber)")
                self.faulted.informers[view.name].events.subscribe(recorder.on_next)
                self.faulted.late[view.name] = recorder
        else:
            await trio.sleep(step.seconds)

    async def drain(self) -> None:
        """Give the faults still pending (injected late, or waiting for a relist) the time of
        a watch or two to meet their request, so that a schedule's faults mostly fire. A LIST
        fault needs a relist to come: its view's watches are expired until one is hit."""
        triggered: set[int] = set()
        informers = list(self.faulted.informers.values())
        with trio.move_on_after(DRAIN_TIMEOUT):
            # An armed expired continue is not waited for: its view may be too small to page.
            while not all(rule.exhausted for _, rule in self.rules):
                for step, rule in self.steps:
                    waiting = step.verb == "list" and not rule.exhausted
                    if waiting and id(rule) not in triggered:
                        hit = self.immediate(Immediate("expire_watches", step.target))
                        if hit:
                            triggered.add(id(rule))
                await _next_change(informers)
        for step, rule in self.steps:
            if not rule.exhausted:
                self.report.unmatched[step.kind] += 1

    # -- checks ------------------------------------------------------------------------------

    def fail(self, text: str) -> None:
        self.report.failures.append(text)

    async def converge(self, side: _Side, view: View, expected: Mapping[str, Any]) -> bool:
        informer = side.informers[view.name]
        want = {key: obj["metadata"]["resourceVersion"] for key, obj in expected.items()}
        with trio.move_on_after(self.settle_timeout):
            await informer.wait_until(lambda _: _rvs(informer.store) == want)
            return True
        got = _store_objects(informer.store, view.metadata_only)
        self.fail(
            f"{side.name} {view.name}: the store did not converge to the server's state within "
            f"{self.settle_timeout:g}s: {_diff(got, expected)}; {informer.statistics()}"
        )
        return False

    async def check(self) -> None:
        report = self.report
        converged = True
        for view in VIEWS:
            expected = await _fresh_list(self.faulted.client, view)
            twin_expected = await _fresh_list(self.twin.client, view)
            if expected != twin_expected:
                self.fail(
                    f"{view.name}: the twins' servers differ: {_diff(twin_expected, expected)}"
                )
            for side, want in ((self.faulted, expected), (self.twin, twin_expected)):
                if not await self.converge(side, view, want):
                    converged = False
                    continue
                store = side.informers[view.name].store
                got = _store_objects(store, view.metadata_only)
                if got != want:
                    key = next(k for k in sorted(got.keys() & want.keys()) if got[k] != want[k])
                    self.fail(
                        f"{side.name} {view.name}: store objects differ: {_diff(got, want)}; "
                        f"{key}: {_short(got[key], 2000)} != {_short(want[key], 2000)}"
                    )
        for side in self.sides:
            for reference in side.references.values():
                reference.finish()

        for view in VIEWS:
            pairs = [(side, side.recorders[view.name]) for side in self.sides]
            if view.name in self.faulted.late:
                pairs.append((self.faulted, self.faulted.late[view.name]))
            for side, recorder in pairs:
                informer = side.informers[view.name]
                for violation in recorder.violations:
                    self.fail(violation)
                for problem in recorder.ground(side.references[view.name]):
                    self.fail(problem)
                if recorder.state != _rvs(informer.store):
                    self.fail(
                        f"{side.name} {view.name}: the events fold to another state than the "
                        f"store: {_diff(recorder.state, _rvs(informer.store))}"
                    )
                synthesized = sum(e.final_state_unknown for e in recorder.events)
                late = recorder.side.endswith("(late subscriber)")
                if not late and synthesized != informer.statistics().synthesized_deletions:
                    self.fail(
                        f"{side.name} {view.name}: {synthesized} synthesized deletions seen, "
                        f"statistics say {informer.statistics().synthesized_deletions}"
                    )
            want_sequence = self.twin.references[view.name].sequence()
            got_sequence = self.twin.recorders[view.name].sequence()
            if got_sequence != want_sequence:
                first = next(
                    (
                        i
                        for i, (a, b) in enumerate(zip(got_sequence, want_sequence, strict=False))
                        if a != b
                    ),
                    min(len(got_sequence), len(want_sequence)),
                )
                self.fail(
                    f"fault-free {view.name}: the events are not the server's change sequence "
                    f"(first difference at #{first}: got {got_sequence[first : first + 3]}, "
                    f"want {want_sequence[first : first + 3]})"
                )

        # Counted after convergence: a stream fault whose watch was already open may act
        # after the rules were cleared, and the informer's errors count it too.
        for kind, rule in self.rules:
            report.fired[kind] += rule.fired
        report.fired["expired_continue"] += self.faulted.store.genuine["expired_continue"]
        for kind in _CONSEQUENCES:
            report.fired[kind] += self.faulted.store.genuine[kind]
        for informer in self.faulted.informers.values():
            stats = informer.statistics()
            report.client_errors.update(stats.errors)
            report.totals.update(
                events=stats.events,
                lists=stats.lists,
                relists=stats.relists,
                watches=stats.watches,
                reconnects=stats.reconnects,
                synthesized_deletions=stats.synthesized_deletions,
            )

        if not converged:
            return  # consumers' states would differ for the same reason
        for consumer in self.consumers:
            faulted = self.faulted.snapshots[consumer.name]()
            fault_free = self.twin.snapshots[consumer.name]()
            if faulted != fault_free:
                self.fail(
                    f"consumer {consumer.name}: final state differs from the fault-free run's: "
                    f"{_describe_difference(faulted, fault_free)}"
                )


def _describe_difference(got: object, want: object) -> str:
    if is_dataclass(got) and type(got) is type(want):
        return "; ".join(
            f"{f.name}: {_describe_difference(getattr(got, f.name), getattr(want, f.name))}"
            for f in fields(got)
            if getattr(got, f.name) != getattr(want, f.name)
        )
    if isinstance(got, Mapping) and isinstance(want, Mapping):
        keys = sorted(set(got) | set(want), key=str)
        parts = [
            f"{key!r}: {_short(got.get(key))} != {_short(want.get(key))}"
            for key in keys
            if got.get(key) != want.get(key)
        ]
        return "; ".join(parts[:5])
    return f"{_short(got)} != {_short(want)}"


def _short(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
