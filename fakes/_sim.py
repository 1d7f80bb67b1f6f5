"""The simulated cluster: controllers, scheduler, kubelet, pod backends, logs and exec.

What this module is for: one owner (`open_simulation`, an async context manager) for everything
that makes the fake API server behave like a cluster rather than a database: it subscribes to
the store, runs the deployment, replica set and job controllers, the scheduler, the nodes and the
kubelet in its nursery, and (given the `ApiServer`) serves the `pods/log`, `pods/exec`,
`pods/attach` and `pods/portforward` subresources and `metrics.k8s.io` (`kubectl top`).
`open_fake_apiserver(simulate=True)` uses it; tests that need no sockets use it directly on
a `Store` under trio's `MockClock` (with `SimSettings(backends=False)`).

    from rxkube.fakes import SimSettings, Store, open_simulation

    async with open_simulation(store, SimSettings(start_delay=2, backends=False)) as sim:
        store.create("deployments", deployment, namespace="default")
        await sim.wait_until(lambda s: ...)          # re-checked after every store change
        await sim.exec("default", pod_name, ["sh", "-c", "echo hi"])
        sim.container("default", pod_name).log.write("a line kubectl logs will show\\n")
        sim.address("default", pod_name, 8080)       # (ip, port) where the backend listens

It may import the other modules of `rxkube.fakes` and trio.
"""

from __future__ import annotations

import contextlib
import logging
import random as _random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import trio

from rxkube.fakes._api import ApiServer, RequestContext
from rxkube.fakes._backends import NetworkMode, PodNetwork, pod_address
from rxkube.fakes._errors import StatusError
from rxkube.fakes._exec import ExecTarget, serve_attach, serve_exec
from rxkube.fakes._http import AnyResponse
from rxkube.fakes._kubelet import (
    Kubelet,
    KubeletSettings,
    Scheduler,
    SimContainer,
    run_nodes,
)
from rxkube.fakes._logs import ContainerLog, serve_pod_log
from rxkube.fakes._portforward import serve_portforward
from rxkube.fakes._resources import Subresource
from rxkube.fakes._sim_deployments import DeploymentController, ReplicaSetController
from rxkube.fakes._sim_events import EventRecorder
from rxkube.fakes._sim_jobs import JobController
from rxkube.fakes._sim_metrics import install_metrics_api
from rxkube.fakes._sim_shell import ExecResult
from rxkube.fakes._store import Change, Store

__all__ = ["SimSettings", "Simulation", "open_simulation"]

logger = logging.getLogger("rxkube.fakes")


@dataclass(frozen=True, slots=True)
class SimSettings:
    """How the simulated cluster behaves. Delays are seconds on trio's clock.

    - `schedule_delay`: pod created -> bound to a node;
    - `start_delay`: kubelet takes the pod -> containers running (image pull, start);
    - `ready_delay`: running -> Ready (as a readiness probe would; 0 = ready at start);
    - `terminate_delay`: SIGTERM -> the container exits (on pod deletion);
    - `node_ready_delay`: nodes are created NotReady and become Ready after it (0: at once);
    - `crash_backoff`, `crash_backoff_max`: the kubelet's restart back-off (10 s doubling to
      300 s on a real node; the first restart is immediate);
    - `image_pull_backoff`: ErrImagePull -> ImagePullBackOff;
    - `nodes`: node names; `backends`: run the pods' HTTP/WebSocket backends on sockets
      (False for virtual-time tests); `network`: `auto` (a loopback address per pod where
      the OS allows it, else `shared`), `loopback` or `shared` (127.0.0.1, remapped ports in
      the annotation `sim.rxkube.io/ports`); `events`: write core/v1 Events; `seed`: for
      container IDs and addresses (None = random).
    """

    schedule_delay: float = 0.01
    start_delay: float = 0.05
    ready_delay: float = 0.02
    terminate_delay: float = 0.01
    node_ready_delay: float = 0.0
    crash_backoff: float = 10.0
    crash_backoff_max: float = 300.0
    image_pull_backoff: float = 10.0
    nodes: tuple[str, ...] = ("node-1",)
    backends: bool = True
    network: NetworkMode = "auto"
    events: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "schedule_delay",
            "start_delay",
            "ready_delay",
            "terminate_delay",
            "node_ready_delay",
            "crash_backoff",
            "crash_backoff_max",
            "image_pull_backoff",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"SimSettings.{name} must be a number >= 0, got {value!r}")
        if not self.nodes:
            raise ValueError("SimSettings.nodes must name at least one node")
        if self.network not in ("auto", "loopback", "shared"):
            raise ValueError(
                f"SimSettings.network must be 'auto', 'loopback' or 'shared', got {self.network!r}"
            )

    def kubelet(self) -> KubeletSettings:
        return KubeletSettings(
            schedule_delay=self.schedule_delay,
            start_delay=self.start_delay,
            ready_delay=self.ready_delay,
            terminate_delay=self.terminate_delay,
            node_ready_delay=self.node_ready_delay,
            crash_backoff=self.crash_backoff,
            crash_backoff_max=self.crash_backoff_max,
            image_pull_backoff=self.image_pull_backoff,
            backends=self.backends,
            nodes=self.nodes,
        )


class Simulation:
    """A running simulated cluster (made by `open_simulation`)."""

    def __init__(self, store: Store, settings: SimSettings, network: PodNetwork) -> None:
        self.store = store
        self.settings = settings
        self.network = network
        rng = _random.Random(settings.seed)
        self.events = EventRecorder(store, enabled=settings.events)
        self.deployments = DeploymentController(store, self.events)
        self.replicasets = ReplicaSetController(store, self.events)
        self.jobs = JobController(store, self.events)
        self.scheduler = Scheduler(store, self.events, settings.schedule_delay)
        self.kubelet = Kubelet(store, settings.kubelet(), network, self.events, random=rng)

    @property
    def network_mode(self) -> str:
        """`loopback` (an address per pod) or `shared` (127.0.0.1, remapped ports)."""
        return self.network.mode

    def _observe(self, change: Change) -> None:
        for observer in (
            self.deployments.observe,
            self.replicasets.observe,
            self.jobs.observe,
            self.scheduler.observe,
            self.kubelet.observe,
        ):
            try:
                observer(change)
            except Exception:
                # A bug in the simulation must not fail the client's write that triggered it.
                logger.exception("simulation: observing %r failed", change)

    # -- reaching pods ---------------------------------------------------------------------

    def container(self, namespace: str, pod: str, container: str | None = None) -> SimContainer:
        """The running simulation of a container (the pod's only one by default)."""
        worker = self.kubelet.find(namespace, pod)
        if worker is None:
            raise LookupError(f"pod {namespace}/{pod} is not running on a simulated node")
        if container is None:
            if len(worker.containers) != 1:
                raise LookupError(
                    f"pod {namespace}/{pod} has containers {sorted(worker.containers)}; name one"
                )
            return next(iter(worker.containers.values()))
        found = worker.containers.get(container)
        if found is None:
            raise LookupError(
                f"pod {namespace}/{pod} has no container {container!r} "
                f"(it has {sorted(worker.containers)})"
            )
        return found

    def log(self, namespace: str, pod: str, container: str | None = None) -> ContainerLog:
        """The current run's log of a container (write to it to feed `kubectl logs`)."""
        return self.container(namespace, pod, container).log

    async def exec(
        self,
        namespace: str,
        pod: str,
        command: list[str],
        *,
        container: str | None = None,
        stdin: bytes = b"",
    ) -> ExecResult:
        """Run `command` in a container, in-process (no sockets), as `kubectl exec` would."""
        return await self.container(namespace, pod, container).exec(command, stdin=stdin)

    def address(self, namespace: str, pod: str, port: int) -> tuple[str, int]:
        """(host, port) where a client reaches container port `port` of a pod."""
        return pod_address(self.store.get("pods", namespace, pod), port)

    async def wait_until(self, predicate: Callable[[Store], bool]) -> None:
        """Wait until `predicate(store)` holds; it is re-checked after every store change."""
        if predicate(self.store):
            return
        reached = trio.Event()

        def check(_change: Change) -> None:
            if not reached.is_set() and predicate(self.store):
                reached.set()

        unsubscribe = self.store.subscribe(check)
        try:
            await reached.wait()
        finally:
            unsubscribe()

    def statistics(self) -> dict[str, Any]:
        return {
            "network": self.network.mode,
            "pods_running": len(self.kubelet.workers),
            "deployment_syncs": self.deployments.queue.syncs,
            "replicaset_syncs": self.replicasets.queue.syncs,
        }

    # -- subresources ----------------------------------------------------------------------

    def serve_subresources(self, api: ApiServer) -> None:
        """Serve `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward` on `api` (and list
        them in discovery), and `metrics.k8s.io` (`kubectl top`, `_sim_metrics`)."""
        install_metrics_api(api, self.store, self.kubelet)
        api.add_subresource("pods", Subresource("log", verbs=("get",), kind="Pod"), self._log)
        api.add_subresource(
            "pods",
            Subresource("exec", verbs=("create", "get"), kind="PodExecOptions"),
            self._exec,
        )
        api.add_subresource(
            "pods",
            Subresource("portforward", verbs=("create", "get"), kind="PodPortForwardOptions"),
            self._portforward,
        )
        api.add_subresource(
            "pods",
            Subresource("attach", verbs=("create", "get"), kind="PodAttachOptions"),
            self._attach,
        )

    async def _log(self, ctx: RequestContext) -> AnyResponse:
        if ctx.request.method != "GET":
            raise StatusError.method_not_allowed(ctx.request.method, "pods/log")
        pod = self.store.get("pods", ctx.namespace, ctx.name)
        return await serve_pod_log(pod, ctx.request.query, self.kubelet, now=self.store.now())

    async def _exec(self, ctx: RequestContext) -> AnyResponse:
        if ctx.request.method not in ("GET", "POST"):
            raise StatusError.method_not_allowed(ctx.request.method, "pods/exec")
        pod = self.store.get("pods", ctx.namespace, ctx.name)
        return serve_exec(ctx.request, pod, self._exec_target)

    async def _portforward(self, ctx: RequestContext) -> AnyResponse:
        if ctx.request.method not in ("GET", "POST"):
            raise StatusError.method_not_allowed(ctx.request.method, "pods/portforward")
        pod = self.store.get("pods", ctx.namespace, ctx.name)
        declared = {
            int(port.get("containerPort") or 0)
            for container in (pod.get("spec") or {}).get("containers") or ()
            for port in container.get("ports") or ()
        }

        def dial(port: int) -> tuple[str, int] | None:
            # Backends listen only on declared ports: any other is refused without trying
            # (a host process on 0.0.0.0:port must not answer for the pod).
            if port not in declared:
                return None
            return pod_address(pod, port)

        return serve_portforward(ctx.request, pod, dial)

    async def _attach(self, ctx: RequestContext) -> AnyResponse:
        if ctx.request.method not in ("GET", "POST"):
            raise StatusError.method_not_allowed(ctx.request.method, "pods/attach")
        pod = self.store.get("pods", ctx.namespace, ctx.name)
        return serve_attach(ctx.request, pod, self._attached)

    def _attached(self, namespace: str, pod: str, uid: str, container: str) -> SimContainer | None:
        worker = self.kubelet.workers.get(uid)
        return None if worker is None else worker.containers.get(container)

    def _exec_target(self, namespace: str, pod: str, uid: str, container: str) -> ExecTarget | None:
        worker = self.kubelet.workers.get(uid)
        if worker is None:
            return None
        return worker.containers.get(container)


@contextlib.asynccontextmanager
async def open_simulation(
    store: Store,
    settings: SimSettings | None = None,
    *,
    api: ApiServer | None = None,
) -> AsyncIterator[Simulation]:
    """Simulate a cluster on `store` for the `async with` (see the module docstring).

    Pods are deleted gracefully while it runs (`store.graceful_pod_deletion`); with `api`,
    `pods/log` and `pods/exec` are served over HTTP.
    """
    settings = settings or SimSettings()
    mode: NetworkMode = settings.network
    if not settings.backends and mode == "auto":
        mode = "loopback"  # no sockets: no need to probe the host
    network = PodNetwork(mode, random=_random.Random(settings.seed))
    sim = Simulation(store, settings, network)
    graceful_before = store.graceful_pod_deletion
    store.graceful_pod_deletion = True
    unsubscribe = store.subscribe(sim._observe)
    if api is not None:
        sim.serve_subresources(api)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(_run_nodes, store, settings, network.cidr, sim.kubelet.host_ip)
            nursery.start_soon(sim.deployments.queue.run, sim.deployments.sync)
            nursery.start_soon(sim.replicasets.queue.run, sim.replicasets.sync)
            nursery.start_soon(sim.jobs.queue.run, sim.jobs.sync)
            sim.scheduler.start(nursery)
            sim.kubelet.start(nursery)
            sim.deployments.resync_all()
            sim.replicasets.resync_all()
            sim.jobs.resync_all()
            try:
                yield sim
            finally:
                nursery.cancel_scope.cancel()
    finally:
        unsubscribe()
        store.graceful_pod_deletion = graceful_before


async def _run_nodes(
    store: Store,
    settings: SimSettings,
    cidr: str,
    host_ip: str,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    await run_nodes(
        store,
        settings.nodes,
        ready_delay=settings.node_ready_delay,
        cidr=cidr,
        host_ip=host_ip,
        task_status=task_status,
    )
