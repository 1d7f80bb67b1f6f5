"""The pod pipeline: one pod stream for the namespace, grouped by app, into server lists.

What this module is for: issue 7 item 3. Pods become the proxy's servers (`ServerSpec`s):

- A pod JOINS its app's server list when it is Running and Ready, has an IP and is not being
  deleted. Its port and path come from its annotations `ipb-halle.de/k8sticket.pod.port` and
  `...pod.path` (k8sTicket's defaults 80 and "/"; `parse_pod_target`).
- A joined pod that stops being ready, or starts terminating (deletionTimestamp), stays in the
  list with `ready=False`: it takes no new tickets, and its users keep theirs (drain).
- A pod is REMOVED from the list when it is deleted, fails or succeeds (its containers ended),
  loses its IP, or is re-created under the same name (a new uid is a new server).
- A pod with a bad port or path annotation is not served; a `PodProblem` says why, once per
  pod and set of errors (the runner posts it as an Event on the pod and counts it).

Pods are grouped by their app label (`ipb-halle.de/k8sticket.deployment.app.name`) with
`group_by_key`: one informer feeds every app, none watches per app. The app's server list is
emitted whole (sorted by pod name) whenever it changes, and is empty when its last pod goes.
No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from reactivex import GroupedObservable, Observable, abc
from reactivex.disposable import CompositeDisposable, SingleAssignmentDisposable

from rxkube.controllers._appspec import APP_LABEL, ConfigError, PodTarget, parse_pod_target
from rxkube.proxy import ServerRef, ServerSpec
from rxkube.streams import ObjectReference, WatchEvent
from rxkube.streams.operators import group_by_key

__all__ = [
    "PodProblem",
    "PodUpdate",
    "ServerList",
    "pod_servers",
    "servers_by_app",
]


@dataclass(frozen=True, slots=True)
class ServerList:
    """The app's whole server list now (sorted by pod name; empty when it has no pod)."""

    app: str
    servers: tuple[ServerSpec, ...]


@dataclass(frozen=True, slots=True)
class PodProblem:
    """A pod of `application` that cannot be served: its annotations are not valid."""

    pod: ObjectReference
    application: str
    errors: tuple[ConfigError, ...]

    @property
    def message(self) -> str:
        problems = "; ".join(error.message for error in self.errors)
        return f"{problems}; the pod is not served until this is fixed"


PodUpdate: TypeAlias = ServerList | PodProblem


def _mapping(value: object) -> Mapping[str, Any]:
    # `type(...) is dict` first: an ABC isinstance check costs ten times as much.
    return value if type(value) is dict or isinstance(value, Mapping) else {}


def _address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _ready(status: Mapping[str, Any]) -> bool:
    conditions = status.get("conditions")
    if not isinstance(conditions, list):
        return False
    return any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions
    )


class _Pods:
    """The joined servers of one app, and the problems already reported (one per pod)."""

    def __init__(self, app: str) -> None:
        self.app = app
        self.servers: dict[str, ServerSpec] = {}
        self.reported: dict[str, tuple[str, tuple[ConfigError, ...]]] = {}

    def snapshot(self) -> tuple[ServerSpec, ...]:
        return tuple(self.servers[name] for name in sorted(self.servers))

    def apply(self, event: WatchEvent) -> list[PodUpdate]:
        before = self.snapshot()
        out: list[PodUpdate] = []
        name = event.meta.name
        if event.type == "DELETED":
            self.servers.pop(name, None)
            self.reported.pop(name, None)
        elif event.type != "SYNCED":
            problem = self._update(name, event.object)
            if problem is not None:
                out.append(problem)
        after = self.snapshot()
        if after != before:
            out.append(ServerList(self.app, after))
        return out

    def _update(self, name: str, pod: Mapping[str, Any]) -> PodProblem | None:
        meta = _mapping(pod.get("metadata"))
        status = _mapping(pod.get("status"))
        uid = str(meta.get("uid") or "")
        phase = status.get("phase")
        ip = status.get("podIP")
        current = self.servers.get(name)
        if current is not None and current.ref.uid != uid:
            del self.servers[name]
            current = None
        if phase in ("Failed", "Succeeded") or not isinstance(ip, str) or not ip:
            self.servers.pop(name, None)
            return None
        target = parse_pod_target(_mapping(meta.get("annotations")))
        if not isinstance(target, PodTarget):
            self.servers.pop(name, None)
            errors = tuple(target)
            if self.reported.get(name) == (uid, errors):
                return None
            self.reported[name] = (uid, errors)
            ref = ObjectReference("Pod", name, str(meta.get("namespace") or ""), uid, "v1")
            return PodProblem(ref, self.app, errors)
        self.reported.pop(name, None)
        ready = phase == "Running" and _ready(status) and meta.get("deletionTimestamp") is None
        if current is None and not ready:
            return None  # a pod joins only once it is ready
        self.servers[name] = ServerSpec(
            ServerRef(name, uid), _address(ip, target.port), target.path, ready=ready
        )
        return None


def pod_servers(app: str) -> Callable[[Observable[WatchEvent]], Observable[PodUpdate]]:
    """Fold the pod events of one app into its server list (and problems).

    ::

        a = ADDED pod-1 Pending         b = MODIFIED pod-1 Running, Ready, IP 10.0.0.7
        c = MODIFIED pod-1 not Ready    d = DELETED pod-1

        pods:     -a-b-c-d-|
              [ pod_servers("lab") ]
        result:   ---B-C-D-|      B: [pod-1 ready]  C: [pod-1 not ready]  D: []

    Each subscription starts empty; SYNCED is ignored.
    """

    def operator(source: Observable[WatchEvent]) -> Observable[PodUpdate]:
        def subscribe(
            observer: abc.ObserverBase[PodUpdate],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            pods = _Pods(app)

            def on_next(event: WatchEvent) -> None:
                try:
                    updates = pods.apply(event)
                except Exception as error:  # a bug here ends the stream visibly
                    observer.on_error(error)
                    return
                for update in updates:
                    observer.on_next(update)

            return source.subscribe(
                on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return operator


def _app_of(event: WatchEvent) -> str | None:
    return event.meta.labels.get(APP_LABEL)


def servers_by_app() -> Callable[[Observable[WatchEvent]], Observable[PodUpdate]]:
    """All pods of the namespace in, every app's server list (and pod problems) out.

    ::

        a = ADDED pod-1 app=x ready     b = ADDED pod-2 app=y ready     c = DELETED pod-1

        pods:     -a-b-c-|
              [ servers_by_app() ]
        result:   -X-Y-E-|      X: x [pod-1]   Y: y [pod-2]   E: x []

    `group_by_key` on the app label, then `pod_servers` per group; a pod whose label changes
    leaves its old app's list and joins the new one's.
    """

    def operator(source: Observable[WatchEvent]) -> Observable[PodUpdate]:
        def subscribe(
            observer: abc.ObserverBase[PodUpdate],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            # `ops.flat_map` would do, but takes a lock per item for threads we do not have
            # (everything runs on the trio thread): this flattening costs a third as much.
            inner = CompositeDisposable()

            def on_group(group: GroupedObservable[str, WatchEvent]) -> None:
                holder = SingleAssignmentDisposable()
                inner.add(holder)

                def done() -> None:
                    inner.remove(holder)  # the group ended: forget its subscription

                holder.disposable = group.pipe(pod_servers(group.key)).subscribe(
                    observer.on_next, observer.on_error, done
                )

            outer = source.pipe(group_by_key(_app_of)).subscribe(
                on_group, observer.on_error, observer.on_completed, scheduler=scheduler
            )
            return CompositeDisposable(outer, inner)

        return Observable(subscribe)

    return operator
