"""End-to-end harness: the fake API server, real local pod backends, the ticket controller.

Two kinds of pods. `open_cluster(simulate=SimSettings(...))` runs the fake's simulated cluster:
Deployments roll out to pods, and a kubelet runs every pod (the Deployment's and the
autoscaler's) as a real HTTP/WebSocket backend on its own loopback address, Ready after the
configured delays. Without `simulate`, tests make pods by hand (`add_pod`): created through the
fake's store with the status a kubelet would write (Running, Ready, a pod IP), each with a real
backend on its own loopback address (127.x.y.z). Everything else goes through the real code:
the client over loopback, the informers, the pipelines, the autoscaler, the pod sink, the proxy,
the Events sink.

Waiting is on conditions (`controller.wait_until`), never on sleeps; every wait has a deadline.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from prometheus_client import CollectorRegistry

from rxkube.controllers import (
    APP_LABEL,
    OPT_IN_LABEL,
    ControllerStatistics,
    TicketController,
    open_ticket_controller,
)
from rxkube.fakes import FakeApiServer, SimSettings, open_fake_apiserver
from rxkube.proxy import ProxyConfig
from rxkube.streams import KubeClient, WatchPolicy, load_kubeconfig, open_client
from tests.integration.proxy.backend import Backend

NAMESPACE = "lab"
KEY = b"0123456789abcdef0123456789abcdef"
P = "ipb-halle.de/k8sticket.deployment."
FAST = WatchPolicy(
    server_timeout=30.0, inactivity_timeout=10.0, backoff_initial=0.05, backoff_max=0.2
)
LIMIT = 10.0
"""Seconds any one wait may take before the test fails."""

# Loopback addresses for this test process: pods and the proxy get addresses of their own
# (127.0.0.0/8 is all loopback on Linux), so fixed ports like k8sTicket's 9001 do not collide.
_rng = random.Random()
_addresses = (
    f"127.{a}.{b}.{c}"
    for a, b, c in _rng.sample(
        list(itertools.product(range(100, 250), range(1, 250), range(2, 250))), 2000
    )
)


def loopback() -> str:
    return next(_addresses)


def deployment(
    name: str,
    *,
    app: str | None = None,
    port: str | None = "none",
    pod_port: str = "8080",
    **annotations: str,
) -> dict[str, Any]:
    """An annotated Deployment (`annotations` keys are k8sTicket's `deployment.` suffixes,
    `_` for `.`, or full keys when they contain a `/`)."""
    app_name = app or name
    full = {(k if "/" in k else P + k.replace("_", ".")): v for k, v in annotations.items()}
    if app is not None:
        full[P + "app.name"] = app
    if port is not None:
        full.setdefault(P + "port", port)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {OPT_IN_LABEL: "true"},
            "annotations": full,
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {APP_LABEL: app_name}},
            "template": {
                "metadata": {
                    "labels": {APP_LABEL: app_name},
                    "annotations": {"ipb-halle.de/k8sticket.pod.port": pod_port},
                },
                "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
            },
        },
    }


SIM = SimSettings(
    schedule_delay=0.005, start_delay=0.02, ready_delay=0.005, terminate_delay=0.005, events=False
)
"""A fast simulated cluster for `open_cluster(simulate=SIM)`."""


def with_pods(manifest: dict[str, Any], *, replicas: int, port: int = 8080) -> dict[str, Any]:
    """The Deployment with `replicas` pods whose containers serve `port` (the simulated
    kubelet runs a backend on each declared container port)."""
    manifest["spec"]["replicas"] = replicas
    for container in manifest["spec"]["template"]["spec"]["containers"]:
        container["ports"] = [{"containerPort": port}]
    return manifest


@dataclass
class Reply:
    status: int
    backend: str | None
    """The pod's name when a backend answered (its /echo JSON), else None."""
    text: str


class User:
    """A browser-like user: keeps its cookies, opens a fresh connection per request (so the
    proxy sees no open connection between requests, as with a closed tab)."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    async def get(self, url: str, *, host: str | None = None) -> Reply:
        headers = {"Connection": "close"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if host is not None:
            headers["Host"] = host
        async with httpx.AsyncClient(timeout=LIMIT) as http:
            response = await http.get(url, headers=headers)
        for header in response.headers.get_list("set-cookie"):
            pair = header.split(";", 1)[0]
            name, _, value = pair.partition("=")
            if "Max-Age=0" in header:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        backend = None
        if response.status_code == 200 and response.headers.get("content-type") == (
            "application/json"
        ):
            data = response.json()
            backend = data.get("backend") or data.get("pod")  # our backends, the simulation's
        return Reply(response.status_code, backend, response.text)


@dataclass
class Cluster:
    """The fake cluster with its pod backends and the controller under test."""

    server: FakeApiServer
    client: KubeClient
    nursery: trio.Nursery
    controller: TicketController
    registry: CollectorRegistry
    proxy_host: str
    namespace: str = NAMESPACE
    backends: dict[str, Backend] = field(default_factory=dict)
    _scopes: dict[str, trio.CancelScope] = field(default_factory=dict)

    @property
    def url(self) -> str:
        host, port = self.controller.addresses[0]
        return f"http://{host}:{port}"

    def own_url(self, app: str) -> str:
        address = self.controller.app_address(app)
        assert address is not None, f"app {app!r} has no own listener"
        return f"http://{address[0]}:{address[1]}"

    def http(self, base: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base or self.url, timeout=LIMIT)

    # -- objects in the fake ---------------------------------------------------------------

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        store = self.server.store
        try:
            current = store.get("deployments", self.namespace, name)
        except Exception:
            return store.create("deployments", manifest).object()
        manifest = {**manifest, "metadata": {**manifest["metadata"]}}
        manifest["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return store.update("deployments", manifest).object()

    def annotate(self, name: str, **values: str | None) -> None:
        keys = {(k if "/" in k else P + k.replace("_", ".")): v for k, v in values.items()}
        self.server.store.patch(
            "deployments", self.namespace, name, {"metadata": {"annotations": keys}}
        )

    def label(self, name: str, value: str | None) -> None:
        self.server.store.patch(
            "deployments", self.namespace, name, {"metadata": {"labels": {OPT_IN_LABEL: value}}}
        )

    def delete(self, name: str) -> None:
        self.server.store.delete("deployments", self.namespace, name)

    async def add_pod(
        self,
        app: str,
        name: str,
        *,
        port: int = 8080,
        annotations: dict[str, str] | None = None,
        ready: bool = True,
        backend: bool = True,
        labels: dict[str, str] | None = None,
    ) -> str:
        """A pod of `app` on its own loopback IP, Running (Ready or not), with a backend."""
        ip = loopback()
        if backend:
            await self._start_backend(name, ip, port)
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {APP_LABEL: app} if labels is None else labels,
                "annotations": annotations
                if annotations is not None
                else {"ipb-halle.de/k8sticket.pod.port": str(port)},
            },
            "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
        }
        self.server.store.create("pods", pod)
        self.set_pod(name, ip=ip, ready=ready)
        return ip

    def set_pod(self, name: str, *, ip: str | None = None, ready: bool = True) -> None:
        current = self.server.store.get("pods", self.namespace, name)
        ip = ip or current.get("status", {}).get("podIP")
        status = {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        }
        self.server.store.patch(
            "pods", self.namespace, name, {"status": status}, subresource="status"
        )

    def delete_pod(self, name: str) -> None:
        self.server.store.delete("pods", self.namespace, name)
        scope = self._scopes.pop(name, None)
        if scope is not None:
            scope.cancel()

    def pod_names(self, app: str) -> list[str]:
        """The app's pods in the fake's store (the Deployment's and any other), by name."""
        pods = self.server.store.list(
            "pods", self.namespace, label_selector=f"{APP_LABEL}={app}"
        ).objects()
        return sorted(str(p["metadata"]["name"]) for p in pods)

    def events(self, kind: str, name: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.server.store.list("events", self.namespace).objects()
            if e["involvedObject"].get("kind") == kind and e["involvedObject"]["name"] == name
        ]

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    # -- waiting ---------------------------------------------------------------------------

    async def wait(self, predicate: Callable[[ControllerStatistics], bool]) -> ControllerStatistics:
        with trio.fail_after(LIMIT):
            return await self.controller.wait_until(predicate)

    async def poll(self, condition: Callable[[], bool]) -> None:
        """Wait for a condition nothing announces (a backend's request counter)."""
        with trio.fail_after(LIMIT):
            while not condition():  # noqa: ASYNC110 - no event announces a backend's counters
                await trio.sleep(0.005)

    async def wait_event(self, kind: str, name: str, reason: str) -> dict[str, Any]:
        """Wait until an Event with `reason` is stored on the object; return it."""

        def found() -> list[dict[str, Any]]:
            return [e for e in self.events(kind, name) if e["reason"] == reason]

        await self.wait(lambda _: bool(found()))
        return found()[0]

    async def _start_backend(self, pod: str, ip: str, port: int) -> None:
        backend = Backend(pod)
        backend.port = port
        scope = trio.CancelScope()
        self._scopes[pod] = scope
        self.backends[pod] = backend

        async def serve(task_status: trio.TaskStatus[None]) -> None:
            with scope:
                listeners = await trio.open_tcp_listeners(port, host=ip)
                task_status.started()
                await trio.serve_listeners(backend._serve, listeners)

        await self.nursery.start(serve)


@asynccontextmanager
async def open_cluster(
    *,
    namespace: str = NAMESPACE,
    before: Callable[[FakeApiServer], object] | None = None,
    simulate: SimSettings | None = None,
    **controller_options: Any,
) -> AsyncIterator[Cluster]:
    """The fake API server, a namespace, and a ticket controller watching it (`before` runs
    on the fake before the controller starts, e.g. to inject faults; `simulate` runs the
    simulated cluster)."""
    sim: bool | SimSettings = simulate if simulate is not None else False
    async with open_fake_apiserver(bookmark_interval=1.0, simulate=sim) as server:
        server.store.create("namespaces", {"metadata": {"name": namespace}})
        if before is not None:
            before(server)
        config = load_kubeconfig(server.kubeconfig_path)
        async with open_client(config, rate_limit=None) as client, trio.open_nursery() as nursery:
            registry = CollectorRegistry()
            proxy_host = loopback()
            options: dict[str, Any] = {
                "namespace": namespace,
                "listen": [(proxy_host, 0)],
                "proxy_config": ProxyConfig(
                    ticket_keys=(KEY,), shutdown_grace=1.0, tick_interval=0.05
                ),
                "registry": registry,
                "watch_policy": FAST,
                "rng": random.Random(7),
                "port_retry": 0.5,
            }
            options.update(controller_options)
            async with open_ticket_controller(client, **options) as controller:
                cluster = Cluster(
                    server, client, nursery, controller, registry, proxy_host, namespace
                )
                yield cluster
            nursery.cancel_scope.cancel()
