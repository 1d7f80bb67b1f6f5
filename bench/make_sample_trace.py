"""Generate the sample trace shipped in the package: `streams/data/sample-trace.jsonl.gz`.

    python bench/make_sample_trace.py [OUTPUT]

Fifteen minutes of a namespace `example` served by rxkube, simulated deterministically (same bytes
on every run): two k8sTicket apps (Deployments labelled `ipb-halle.de/k8sticket: "true"` with
k8sTicket's annotations, as in k8sTicket's `simple_example/4_gmweb.yaml`), their pods going
Pending -> scheduled -> Running -> Ready, users asking for tickets (issued, queued, left,
released), spare-ticket autoscaling of `notebook` with cooldown, a drained `gmweb` pod replaced
by its ReplicaSet, and an annotation change. Four streams: the Deployment watch, the pod watch,
and one ticket stream per app.
"""

from __future__ import annotations

import heapq
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kube_objects import APP_LABEL, deployment, pod
from reactivex.scheduler import ImmediateScheduler

from rxkube.streams import StreamEvent, TraceEvent, WatchEvent, open_trace_writer

NAMESPACE = "example"
DEPLOYMENTS = "deployments.apps/example?labelSelector=ipb-halle.de%2Fk8sticket%3Dtrue"
PODS = "pods/example?labelSelector=ipb-halle.de%2Fk8sticket.deployment.app.name"
END = 900.0
LAST_ARRIVAL = 620.0  # users stop coming: sessions end, autoscaled pods cool down and go
DEFAULT_OUTPUT = (
    Path(__file__).resolve().parent.parent / "streams" / "data" / "sample-trace.jsonl.gz"
)


@dataclass
class App:
    name: str
    image: str
    port: int
    replicas: int
    annotations: dict[str, str]
    tickets_max: int
    tickets_spare: int
    pods_max: int
    cooldown: float
    mean_arrival: float
    mean_session: float
    generation: int = 1


@dataclass
class PodState:
    app: str
    name: str
    created: float
    stage: str
    ip: str
    autoscaled: bool
    users: set[str] = field(default_factory=set)
    deleting_at: float | None = None
    idle_since: float | None = None


APPS = [
    App(
        "gmweb",
        "sneumann/goldenmutagenesisweb:latest",
        3838,
        replicas=2,
        annotations={"app.name": "gmweb", "pods.max": "2", "tickets.max": "1", "port": "9001"},
        tickets_max=1,
        tickets_spare=0,
        pods_max=0,
        cooldown=0,
        mean_arrival=55,
        mean_session=140,
    ),
    App(
        "notebook",
        "jupyter/base-notebook:2024-04-29",
        8888,
        replicas=1,
        annotations={
            "app.name": "notebook",
            "port": "9002",
            "tickets.max": "3",
            "tickets.spare": "2",
            "pods.max": "3",
            "pods.cooldown": "90",
        },
        tickets_max=3,
        tickets_spare=2,
        pods_max=3,
        cooldown=90,
        mean_arrival=25,
        mean_session=180,
    ),
]


class Simulation:
    """A tiny, deterministic cluster + proxy: enough to make a plausible, consistent trace."""

    def __init__(self, seed: int = 7) -> None:
        self.random = random.Random(seed)
        self.rv = 1000
        self.records: list[tuple[float, int, TraceEvent]] = []
        self.order = 0
        self.queue: list[tuple[float, int, Callable[[], None]]] = []
        self.now = 0.0
        self.apps = {app.name: app for app in APPS}
        self.pods: dict[str, PodState] = {}
        self.waiting: dict[str, list[str]] = {app.name: [] for app in APPS}
        self.users = 0
        self.names = 0

    # -- plumbing --------------------------------------------------------------------------

    def at(self, t: float, action: Callable[[], None]) -> None:
        self.order += 1
        heapq.heappush(self.queue, (round(t, 3), self.order, action))

    def emit(self, event: TraceEvent) -> None:
        self.order += 1
        self.records.append((self.now, self.order, event))

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def run(self) -> list[tuple[float, TraceEvent]]:
        while self.queue:
            t, _, action = heapq.heappop(self.queue)
            if t > END:
                break
            self.now = t
            action()
        return [(t, event) for t, _, event in sorted(self.records, key=lambda r: (r[0], r[1]))]

    # -- objects -----------------------------------------------------------------------------

    def deployment_event(self, kind: str, app: App) -> None:
        ready = sum(
            1
            for p in self.pods.values()
            if p.app == app.name and p.stage == "ready" and not p.autoscaled
        )
        obj = deployment(
            app.name,
            namespace=NAMESPACE,
            rv=self.next_rv(),
            t=self.now,
            replicas=app.replicas,
            annotations=app.annotations,
            image=app.image,
            container_port=app.port,
            ready_replicas=ready,
            generation=app.generation,
        )
        self.emit(WatchEvent(kind, obj, resource_version=str(self.rv), stream=DEPLOYMENTS))  # type: ignore[arg-type]

    def pod_event(self, kind: str, state: PodState) -> None:
        app = self.apps[state.app]
        obj = pod(
            state.app,
            state.name,
            namespace=NAMESPACE,
            rv=self.next_rv(),
            t=self.now,
            created=state.created,
            stage=state.stage,
            image=app.image,
            container_port=app.port,
            node=f"kind-worker{1 + self.names % 2}",
            ip=state.ip,
            autoscaled=state.autoscaled,
            deleting_at=state.deleting_at,
        )
        self.emit(WatchEvent(kind, obj, resource_version=str(self.rv), stream=PODS))  # type: ignore[arg-type]

    def new_pod(self, app: App, *, autoscaled: bool) -> PodState:
        self.names += 1
        suffix = "".join(self.random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        name = (
            f"{app.name}-autoscaled-{suffix}"
            if autoscaled
            else f"{app.name}-deployment-7d9f8c6b5-{suffix}"
        )
        return PodState(
            app.name,
            name,
            self.now,
            "pending",
            f"10.244.{1 + self.names % 2}.{10 + self.names}",
            autoscaled,
        )

    def start_pod(self, state: PodState, *, delay: float = 0.0) -> None:
        """ADDED (Pending), then scheduled, Running, Ready, as a kubelet reports them."""
        self.pods[state.name] = state

        def step(stage: str) -> Callable[[], None]:
            def action() -> None:
                if state.deleting_at is not None or state.name not in self.pods:
                    return
                state.stage = stage
                self.pod_event("MODIFIED", state)
                if stage == "ready":
                    state.idle_since = self.now
                    self.serve_waiting(state.app)
                    if not state.autoscaled:
                        self.deployment_event("MODIFIED", self.apps[state.app])

            return action

        self.at(self.now + delay, lambda: self.pod_event("ADDED", state))
        self.at(self.now + delay + 1.0, step("scheduled"))
        self.at(self.now + delay + 4.5, step("starting"))
        self.at(self.now + delay + 11.0, step("ready"))

    def delete_pod(self, state: PodState) -> None:
        """deletionTimestamp set (not ready), tickets released, then DELETED after the grace."""
        state.deleting_at = self.now
        self.pod_event("MODIFIED", state)
        for user in sorted(state.users):
            self.ticket(
                state.app,
                "released",
                user=user,
                server=f"{NAMESPACE}/{state.name}",
                reason="server removed",
            )
        state.users.clear()

        def gone() -> None:
            self.pod_event("DELETED", state)
            del self.pods[state.name]

        self.at(self.now + 2.5, gone)

    # -- tickets -----------------------------------------------------------------------------

    def ticket(self, app: str, kind: str, **data: Any) -> None:
        self.emit(StreamEvent(f"tickets/{app}", kind, data))

    def free_slots(self, app: App) -> list[PodState]:
        return [
            p
            for p in self.pods.values()
            if p.app == app.name
            and p.stage == "ready"
            and p.deleting_at is None
            and len(p.users) < app.tickets_max
        ]

    def arrive(self, app: App) -> None:
        self.users += 1
        user = f"user-{self.users:03d}"
        self.ticket(app.name, "requested", user=user)
        servers = self.free_slots(app)
        if servers:
            self.issue(app, user, min(servers, key=lambda p: (len(p.users), p.name)))
        else:
            self.waiting[app.name].append(user)
            self.ticket(app.name, "queued", user=user, position=len(self.waiting[app.name]))
            patience = self.random.uniform(20, 120)
            self.at(self.now + patience, lambda: self.give_up(app, user))
        self.autoscale(app)
        following = self.now + self.random.expovariate(1 / app.mean_arrival)
        if following < LAST_ARRIVAL:
            self.at(following, lambda: self.arrive(app))

    def issue(self, app: App, user: str, server: PodState) -> None:
        server.users.add(user)
        server.idle_since = None
        self.ticket(app.name, "issued", user=user, server=f"{NAMESPACE}/{server.name}")
        session = self.random.expovariate(1 / app.mean_session)
        for touch in range(1, int(session // 60) + 1):
            self.at(self.now + touch * 60, lambda: self.touch(app, user, server))
        self.at(self.now + session, lambda: self.release(app, user, server))

    def touch(self, app: App, user: str, server: PodState) -> None:
        if user in server.users:
            self.ticket(app.name, "touched", user=user, server=f"{NAMESPACE}/{server.name}")

    def release(self, app: App, user: str, server: PodState) -> None:
        if user not in server.users:
            return
        server.users.discard(user)
        self.ticket(app.name, "released", user=user, server=f"{NAMESPACE}/{server.name}")
        if not server.users:
            server.idle_since = self.now
        self.serve_waiting(app.name)
        self.autoscale(app)

    def give_up(self, app: App, user: str) -> None:
        if user in self.waiting[app.name]:
            self.waiting[app.name].remove(user)
            self.ticket(app.name, "left", user=user)

    def serve_waiting(self, name: str) -> None:
        app = self.apps[name]
        while self.waiting[name] and (servers := self.free_slots(app)):
            self.issue(
                app, self.waiting[name].pop(0), min(servers, key=lambda p: (len(p.users), p.name))
            )

    # -- the autoscaler (spare tickets, pods.max, cooldown) ------------------------------------

    def autoscale(self, app: App) -> None:
        if not app.tickets_spare:
            return
        mine = [p for p in self.pods.values() if p.app == app.name and p.deleting_at is None]
        free = sum(app.tickets_max - len(p.users) for p in mine)  # pending pods count as coming
        scaled = [p for p in mine if p.autoscaled]
        if free < app.tickets_spare and len(scaled) < app.pods_max:
            self.start_pod(self.new_pod(app, autoscaled=True))

    def cooldown(self) -> None:
        for app in self.apps.values():
            if not app.tickets_spare:
                continue
            mine = [p for p in self.pods.values() if p.app == app.name and p.deleting_at is None]
            free = sum(app.tickets_max - len(p.users) for p in mine)
            for state in sorted(mine, key=lambda p: p.name):
                idle_since = state.idle_since
                if (
                    state.autoscaled
                    and not state.users
                    and idle_since is not None
                    and self.now - idle_since >= app.cooldown
                    and free - app.tickets_max >= app.tickets_spare
                ):
                    free -= app.tickets_max
                    self.delete_pod(state)
        self.at(self.now + 10, self.cooldown)

    # -- the story -----------------------------------------------------------------------------

    def script(self) -> None:
        # The initial lists: Deployments, then their pods, all ready; each list ends in SYNCED.
        for app in APPS:
            for _ in range(app.replicas):
                state = self.new_pod(app, autoscaled=False)
                state.stage = "ready"
                state.idle_since = 0.0
                self.pods[state.name] = state
        for app in APPS:
            self.deployment_event("ADDED", app)
        self.emit(WatchEvent("SYNCED", resource_version=str(self.rv), stream=DEPLOYMENTS))
        for state in list(self.pods.values()):
            self.pod_event("ADDED", state)
        self.emit(WatchEvent("SYNCED", resource_version=str(self.rv), stream=PODS))

        for app in APPS:
            self.at(self.random.uniform(5, 20), lambda app=app: self.arrive(app))  # type: ignore[misc]
        self.at(10, self.cooldown)
        self.at(300, self.drain_a_gmweb_pod)
        self.at(420, self.raise_notebook_capacity)

    def drain_a_gmweb_pod(self) -> None:
        victim = sorted(p for p in self.pods if self.pods[p].app == "gmweb")[0]
        self.delete_pod(self.pods[victim])
        self.at(
            self.now + 0.5,
            lambda: self.start_pod(self.new_pod(self.apps["gmweb"], autoscaled=False)),
        )

    def raise_notebook_capacity(self) -> None:
        app = self.apps["notebook"]
        app.tickets_max = 4
        app.annotations = {**app.annotations, "tickets.max": "4"}
        self.deployment_event("MODIFIED", app)
        self.serve_waiting("notebook")


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT
    simulation = Simulation()
    simulation.script()
    records = simulation.run()
    streams: dict[str, dict[str, Any]] = {
        DEPLOYMENTS: {
            "resource": "deployments",
            "group": "apps",
            "version": "v1",
            "namespace": NAMESPACE,
            "labelSelector": "ipb-halle.de/k8sticket=true",
        },
        PODS: {
            "resource": "pods",
            "version": "v1",
            "namespace": NAMESPACE,
            "labelSelector": APP_LABEL,
        },
    }
    for app in APPS:
        streams[f"tickets/{app.name}"] = {"kind": "tickets", "app": app.name}
    output.parent.mkdir(parents=True, exist_ok=True)
    with open_trace_writer(
        output,
        streams=streams,
        scheduler=ImmediateScheduler(),
        source="simulated: bench/make_sample_trace.py (seed 7)",
        started=datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        compresslevel=9,
    ) as writer:
        for t, event in records:
            writer.write(event, t=t)
    kinds: dict[str, int] = {}
    for _, event in records:
        kinds[event.stream] = kinds.get(event.stream, 0) + 1
    print(f"wrote {output} ({output.stat().st_size / 1024:.1f} KiB, {len(records)} records)")
    for stream, count in sorted(kinds.items()):
        print(f"  {count:5d}  {stream}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
