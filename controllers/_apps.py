"""Which Deployments are served as which apps: claims and the "last good config" rule.

What this module is for: a pure fold `(AppsState, WatchEvent of a Deployment) -> (AppsState,
effects)`. It may import `rxkube.streams` (for `WatchEvent`) and this package's parser; no I/O,
no clock. The Deployment pipeline (issue 7) scans it over the Deployment stream and routes the
effects: lifecycle effects to the proxy, `ConfigProblem`s to the Events sink and the error counter.

Rules (DESIGN section 4, "Bad input gets a clear error and loses nothing"; issue 7):

1. A Deployment is a candidate while its label `ipb-halle.de/k8sticket` is "true". Losing the
   label, or being deleted, withdraws it.
2. Each candidate has an effective spec: its current parse when valid, else its last good spec,
   else none (a new app with a bad annotation stays unserved). Every problem is reported once,
   when it first appears, as a `ConfigProblem`; the same object seen again (a status update, a
   relist, a replay) reports nothing new.
3. Claims: candidates whose effective specs name the same app are ordered by
   (creationTimestamp, name); the first serves the app, every other gets a `ConfigProblem` on
   the app-name key. The order depends on the objects only, never on event order, so relists and
   replays resolve the same way.
4. Own ports: among the apps served, two asking one port are ordered by the same key; the later
   one is served on the shared listener only (port None) and gets a warning.
5. When every problem reported for a Deployment is gone (fixed, or the Deployment withdrawn),
   a `ConfigResolved` says so once, with the metric labels its problems were counted under.
6. Nothing is emitted before the first SYNCED (the complete initial list), so a start-up never
   flaps between claimants; then lifecycle effects come out in a fixed order: removals, updates,
   additions, each sorted by app name. Other apps are never touched by one app's change.
7. Problems are state as well as effects: `AppsState.problems` is every problem that holds now
   (a problem reported once and since fixed is gone from it), so a replica that starts leading
   can post what it did not post while it followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeAlias

from rxkube.controllers._appspec import (
    KEY_APP_NAME,
    KEY_PORT,
    AppSpec,
    ConfigError,
    ParserDefaults,
    creation_key,
    is_app,
    parse_app_spec,
)
from rxkube.streams import WatchEvent

__all__ = [
    "AppChanged",
    "AppEffect",
    "AppServed",
    "AppWithdrawn",
    "AppsState",
    "ConfigProblem",
    "ConfigResolved",
    "DeploymentRef",
    "apply_deployment_event",
]


@dataclass(frozen=True, slots=True)
class DeploymentRef:
    """The object a Kubernetes Event about a configuration problem is posted on."""

    namespace: str
    name: str
    uid: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass(frozen=True, slots=True)
class AppServed:
    """Start serving an app (the pipeline adds it to the proxy and its ticket table)."""

    spec: AppSpec


@dataclass(frozen=True, slots=True)
class AppChanged:
    """The app's spec changed: apply it live (it may have moved: port, routing; see `moved`).

    Its Deployment may have changed too, when an older claimant took over the name.
    """

    old: AppSpec
    new: AppSpec

    @property
    def moved(self) -> bool:
        """Its address changed: own port, routing or host (issue 7: say so in an Event)."""
        o, n = self.old, self.new
        return (o.port, o.routing, o.host) != (n.port, n.routing, n.host)


RemovalReason: TypeAlias = Literal["deleted", "opted-out", "renamed", "claim-lost"]


@dataclass(frozen=True, slots=True)
class AppWithdrawn:
    """Stop taking new users; let current ones drain (for `spec.drain_deadline`)."""

    spec: AppSpec
    reason: RemovalReason


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """A configuration problem to post as an Event on `deployment` and to count.

    `severity` "error": the value was rejected (`kept` says what is served instead: the last
    good spec, or nothing). "warning": the spec is served but something is off.
    """

    deployment: DeploymentRef
    application: str
    """Best name for the `application` metric label: the app name, else the Deployment name."""
    error: ConfigError
    severity: Literal["error", "warning"]
    reason: Literal["InvalidConfiguration", "AppNameClaimed", "PortInUse", "ConfigurationAdvice"]
    kept: AppSpec | None

    @property
    def event_type(self) -> Literal["Warning"]:
        return "Warning"

    @property
    def message(self) -> str:
        if self.severity == "warning":
            return self.error.message
        if self.reason == "AppNameClaimed":
            return f"{self.error.message}; this Deployment is not served"
        outcome = (
            f"kept the last good configuration of app {self.kept.app!r}"
            if self.kept is not None
            else "the app is not served until this is fixed"
        )
        return f"{self.error.message}; {outcome}"


@dataclass(frozen=True, slots=True)
class ConfigResolved:
    """Every problem reported for `deployment` is gone: fixed, or the Deployment withdrawn.

    `applications` are the metric labels its problems were counted under; once `withdrawn`,
    those that are not served apps can have their series removed.
    """

    deployment: DeploymentRef
    applications: tuple[str, ...]
    withdrawn: bool


AppEffect: TypeAlias = AppServed | AppChanged | AppWithdrawn | ConfigProblem | ConfigResolved


ProblemKey: TypeAlias = tuple[str, str | None, str]


def _key_of(problem: ConfigProblem) -> ProblemKey:
    return (problem.error.key, problem.error.value, problem.error.problem)


@dataclass(frozen=True, slots=True)
class _Candidate:
    ref: DeploymentRef
    order: tuple[float, str]
    effective: AppSpec | None
    parse_problems: tuple[ConfigProblem, ...]
    """The problems of the object's latest parse."""
    reported: frozenset[ProblemKey] = frozenset()
    """The problems already emitted and still present (a problem is emitted once)."""
    problems: tuple[ConfigProblem, ...] = ()
    """The problems that hold now (parse and claims), as of the last resolve after SYNCED."""
    labels: frozenset[str] = frozenset()
    """The `application` labels of the problems emitted since the last ConfigResolved."""
    inputs: tuple[object, ...] = ()
    """What the parse read (uid, creationTimestamp, annotations, template): equal inputs, equal
    outcome, so a status-only update (most Deployment events) skips parsing and resolving."""


@dataclass(frozen=True, slots=True)
class AppsState:
    """What the fold remembers. Start with `AppsState()` (or with `defaults`); never mutate it."""

    defaults: ParserDefaults = field(default_factory=ParserDefaults)
    synced: bool = False
    candidates: Mapping[tuple[str, str], _Candidate] = field(default_factory=dict)
    served: Mapping[str, AppSpec] = field(default_factory=dict)
    """The apps served now, by app name (empty until the first SYNCED)."""

    @property
    def problems(self) -> tuple[ConfigProblem, ...]:
        """Every configuration problem that holds now, by Deployment (namespace, name): what a
        replica that starts leading posts, since it posted none of them while it followed.
        Empty until the first SYNCED (nothing is reported before)."""
        candidates = self.candidates
        return tuple(p for key in sorted(candidates) for p in candidates[key].problems)


def _ref(metadata: Mapping[str, Any]) -> DeploymentRef:
    def text(key: str) -> str:
        value = metadata.get(key)
        return value if isinstance(value, str) else ""

    return DeploymentRef(text("namespace"), text("name"), text("uid"))


def apply_deployment_event(
    state: AppsState, event: WatchEvent
) -> tuple[AppsState, tuple[AppEffect, ...]]:
    """Fold one Deployment watch event into the state; return the new state and its effects."""
    if event.type == "SYNCED":
        if state.synced:
            return state, ()
        return _resolve(replace(state, synced=True), dict(state.candidates), {})

    obj = event.object
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    ref = _ref(metadata)
    candidates = dict(state.candidates)

    if event.type == "DELETED" or not is_app(obj):
        gone = candidates.pop(ref.key, None)
        if gone is None:
            return state, ()
        reason: RemovalReason = "deleted" if event.type == "DELETED" else "opted-out"
        state, effects = _resolve(state, candidates, {ref.key: reason})
        if gone.labels and state.synced:
            resolved = ConfigResolved(gone.ref, tuple(sorted(gone.labels)), withdrawn=True)
            effects = (resolved, *effects)
        return state, effects

    created = metadata.get("creationTimestamp")
    spec = obj.get("spec")
    template = spec.get("template") if isinstance(spec, Mapping) else None
    inputs = (ref.uid, created, metadata.get("annotations"), template)
    previous = candidates.get(ref.key)
    if previous is not None and previous.inputs == inputs:
        return state, ()
    if previous is not None and previous.ref.uid != ref.uid:
        previous = None  # deleted and re-created under the same name: a new object
    last_good = previous.effective if previous is not None else None
    order = creation_key(created if isinstance(created, str) else "", ref.name)

    parsed = parse_app_spec(obj, state.defaults)
    problems: list[ConfigProblem] = []
    effective: AppSpec | None
    if isinstance(parsed, AppSpec):
        effective = parsed
        for warning in parsed.warnings:
            problems.append(
                ConfigProblem(ref, parsed.app, warning, "warning", "ConfigurationAdvice", parsed)
            )
    else:
        effective = last_good
        label = last_good.app if last_good is not None else ref.name
        for error in parsed:
            problems.append(
                ConfigProblem(ref, label, error, "error", "InvalidConfiguration", last_good)
            )
    reported = previous.reported if previous is not None else frozenset()
    labels = previous.labels if previous is not None else frozenset()
    held = previous.problems if previous is not None else ()
    candidates[ref.key] = _Candidate(
        ref, order, effective, tuple(problems), reported, held, labels, inputs
    )
    return _resolve(state, candidates, {})


def _resolve(
    state: AppsState,
    candidates: dict[tuple[str, str], _Candidate],
    gone: Mapping[tuple[str, str], RemovalReason],
) -> tuple[AppsState, tuple[AppEffect, ...]]:
    conflicts: dict[tuple[str, str], list[ConfigProblem]] = {}

    # Rule 3: the oldest claimant of each app name serves it.
    by_app: dict[str, list[_Candidate]] = {}
    for candidate in candidates.values():
        if candidate.effective is not None:
            by_app.setdefault(candidate.effective.app, []).append(candidate)
    winners: dict[str, AppSpec] = {}
    for app, claimants in by_app.items():
        claimants.sort(key=lambda c: c.order)
        first = claimants[0]
        assert first.effective is not None
        winners[app] = first.effective
        for loser in claimants[1:]:
            error = ConfigError(
                KEY_APP_NAME,
                app,
                f"is already claimed by the older Deployment {first.ref.name!r}",
                "an app name no other Deployment in the namespace uses",
            )
            conflicts.setdefault(loser.ref.key, []).append(
                ConfigProblem(loser.ref, app, error, "error", "AppNameClaimed", None)
            )

    # Rule 4: one own port per app; a later app falls back to the shared listener.
    by_port: dict[int, list[tuple[tuple[float, str], AppSpec]]] = {}
    for spec in winners.values():
        if spec.port is not None:
            order = candidates[(spec.namespace, spec.deployment)].order
            by_port.setdefault(spec.port, []).append((order, spec))
    for port, users in by_port.items():
        users.sort(key=lambda item: item[0])
        owner = users[0][1]
        for _, spec in users[1:]:
            error = ConfigError(
                KEY_PORT,
                str(port),
                f"is already the own port of app {owner.app!r}; {spec.app!r} is served on the"
                " shared listener only",
                'a port no other app uses, or "none"',
            )
            shared = replace(spec, port=None)
            winners[spec.app] = shared
            key = (spec.namespace, spec.deployment)
            conflicts.setdefault(key, []).append(
                ConfigProblem(candidates[key].ref, spec.app, error, "warning", "PortInUse", shared)
            )

    if not state.synced:
        # Rule 5: resolve on the complete list; problems stay unreported until SYNCED.
        return replace(state, candidates=candidates), ()

    effects: list[AppEffect] = []
    for key in sorted(candidates):
        candidate = candidates[key]
        current = [*candidate.parse_problems, *conflicts.get(key, ())]
        new = [p for p in current if _key_of(p) not in candidate.reported]
        effects.extend(new)
        reported = frozenset(_key_of(p) for p in current)
        labels = candidate.labels | {p.application for p in new}
        if not current and candidate.reported:
            effects.append(ConfigResolved(candidate.ref, tuple(sorted(labels)), withdrawn=False))
            labels = frozenset()
        held = tuple(current)
        if (reported, labels, held) != (candidate.reported, candidate.labels, candidate.problems):
            candidates[key] = replace(candidate, reported=reported, labels=labels, problems=held)

    old = state.served
    for app in sorted(old.keys() - winners.keys()):
        spec = old[app]
        effects.append(AppWithdrawn(spec, _removal_reason(spec, candidates, winners, gone)))
    for app in sorted(old.keys() & winners.keys()):
        if old[app] != winners[app]:
            effects.append(AppChanged(old[app], winners[app]))
    for app in sorted(winners.keys() - old.keys()):
        effects.append(AppServed(winners[app]))
    return replace(state, candidates=candidates, served=winners), tuple(effects)


def _removal_reason(
    spec: AppSpec,
    candidates: Mapping[tuple[str, str], _Candidate],
    winners: Mapping[str, AppSpec],
    gone: Mapping[tuple[str, str], RemovalReason],
) -> RemovalReason:
    key = (spec.namespace, spec.deployment)
    if key in gone:
        return gone[key]
    still = candidates.get(key)
    if still is None or still.effective is None:
        return "deleted"
    now_serving = winners.get(still.effective.app)
    if now_serving is not None and (now_serving.namespace, now_serving.deployment) == key:
        return "renamed"
    return "claim-lost"
