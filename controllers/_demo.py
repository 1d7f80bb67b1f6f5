"""`rxkube demo`: the whole system on one machine, in one process, within seconds.

What this module is for: issue 12 item 2, how people meet rxkube (`make demo`). `open_demo`
starts a simulated cluster (the opener is passed in: library code never imports
`rxkube.fakes`; the CLI passes `rxkube.fakes.open_fake_apiserver`), applies example apps as
annotated Deployments through the real client, and runs `open_ticket_controller` against it
over loopback, with the metrics and admin (status page) listeners on. `run_demo` adds what a
person watches: the URLs, optional simulated users (`_users.py`), the live terminal view
(`_demo_view.py`), an optional trace (`record`: the runner's own `record=`, so a demo trace
holds exactly what `rxkube run --record` writes), and a clean stop after `duration`, on
Ctrl-C (exit 130) or SIGTERM (exit 0).

The example apps (`example_apps()`), both k8sTicket-annotated as a platform team would:

- `notebook`: plain HTTP; its pods answer a browser with a page naming the pod;
- `chat`: its page opens a WebSocket to the pod (a stand-in for interactive apps that keep
  one open; the proxy keeps the ticket while it is open).

Each asks for spare tickets and autoscaled pods, with short idle timeouts and cooldowns, so
that users arriving and leaving make pods come and go within a minute (the simulated kubelet
takes `pod_start_delay` seconds to start a pod, so the change can be watched).

It may import `rxkube.streams`, `rxkube.proxy` and this package; never `rxkube.fakes`.
"""

from __future__ import annotations

import logging
import math
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO

import trio
from prometheus_client import CollectorRegistry

from rxkube.controllers._appspec import APP_LABEL, OPT_IN_LABEL
from rxkube.controllers._demo_view import TerminalView
from rxkube.controllers._runner import TicketController, open_ticket_controller
from rxkube.controllers._users import UserApp, UserStatistics, plan_visits, run_users
from rxkube.proxy import ProxyConfig
from rxkube.streams import (
    DEPLOYMENTS,
    NAMESPACES,
    KubeClient,
    NotFound,
    TraceWriter,
    load_kubeconfig,
    open_client,
)

# The demo's own machinery: not public API of rxkube.controllers.
__all__: list[str] = []

log = logging.getLogger("rxkube.controllers.demo")

K8STICKET = "ipb-halle.de/k8sticket."
SIM_PAGE = "sim.rxkube.io/page"
"""The simulated kubelet's pod annotation for what a browser gets (see rxkube.fakes)."""


class DemoCluster(Protocol):
    """What the demo needs of a running cluster (`rxkube.fakes.FakeApiServer` is one)."""

    @property
    def url(self) -> str: ...
    @property
    def kubeconfig_path(self) -> Path: ...


@dataclass(frozen=True, slots=True)
class ClusterRequest:
    """What the demo asks of the cluster opener."""

    pod_start_delay: float
    kubeconfig_path: Path | None
    seed: int


OpenCluster = Callable[[ClusterRequest], AbstractAsyncContextManager[DemoCluster]]


@dataclass(frozen=True, slots=True)
class DemoApp:
    """One example app: an annotated Deployment and how users use it."""

    name: str
    page: Literal["html", "websocket"]
    container_port: int
    replicas: int = 1
    tickets_max: int = 2
    tickets_spare: int = 1
    pods_max: int = 3
    cooldown: str = "5s"
    idle_timeout: str = "5s"
    weight: float = 1.0
    """Share of the simulated users who open this app."""

    def deployment(self, namespace: str) -> dict[str, Any]:
        """The annotated Deployment (k8sTicket's label and annotations, rxkube.io/ extras)."""
        annotations = {
            K8STICKET + "deployment.app.name": self.name,
            K8STICKET + "deployment.port": "none",
            K8STICKET + "deployment.tickets.max": str(self.tickets_max),
            K8STICKET + "deployment.tickets.spare": str(self.tickets_spare),
            K8STICKET + "deployment.pods.max": str(self.pods_max),
            K8STICKET + "deployment.pods.cooldown": self.cooldown,
            "rxkube.io/tickets.idle-timeout": self.idle_timeout,
        }
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": self.name,
                "namespace": namespace,
                "labels": {OPT_IN_LABEL: "true", "app.kubernetes.io/part-of": "rxkube-demo"},
                "annotations": annotations,
            },
            "spec": {
                "replicas": self.replicas,
                "selector": {"matchLabels": {APP_LABEL: self.name}},
                "template": {
                    "metadata": {
                        "labels": {APP_LABEL: self.name},
                        "annotations": {
                            K8STICKET + "pod.port": str(self.container_port),
                            SIM_PAGE: self.page,
                        },
                    },
                    "spec": {
                        "containers": [
                            {
                                "name": self.name,
                                "image": f"example.org/rxkube-demo/{self.name}:1",
                                "ports": [{"containerPort": self.container_port}],
                            }
                        ]
                    },
                },
            },
        }


def example_apps(*, cooldown: str = "5s", idle_timeout: str = "5s") -> tuple[DemoApp, ...]:
    """The two example apps (module docstring)."""
    return (
        DemoApp(
            "notebook",
            "html",
            8888,
            tickets_max=2,
            tickets_spare=2,
            pods_max=4,
            cooldown=cooldown,
            idle_timeout=idle_timeout,
            weight=1.0,
        ),
        DemoApp(
            "chat",
            "websocket",
            8080,
            tickets_max=3,
            tickets_spare=1,
            pods_max=3,
            cooldown=cooldown,
            idle_timeout=idle_timeout,
            weight=1.0,
        ),
    )


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """`rxkube demo`'s options (see `rxkube demo --help`)."""

    listen: tuple[str, int] = ("127.0.0.1", 0)
    metrics: tuple[str, int] = ("127.0.0.1", 0)
    admin: tuple[str, int] = ("127.0.0.1", 0)
    namespace: str = "default"
    apps: tuple[DemoApp, ...] = field(default_factory=example_apps)
    users: int = 0
    duration: float | None = None
    seed: int = 1
    record: Path | None = None
    kubeconfig_out: Path | None = None
    pod_start_delay: float = 3.0
    refresh: float = 0.5
    """Seconds between redraws of the terminal view."""

    def __post_init__(self) -> None:
        if self.users < 0:
            raise ValueError(f"users must be >= 0, got {self.users}")
        if self.duration is not None and not (self.duration > 0 and math.isfinite(self.duration)):
            raise ValueError(f"duration must be > 0 seconds, got {self.duration}")
        if not self.pod_start_delay >= 0:
            raise ValueError(f"pod start delay must be >= 0 seconds, got {self.pod_start_delay}")


@dataclass
class Demo:
    """A running demo (made by `open_demo`)."""

    cluster: DemoCluster
    client: KubeClient
    controller: TicketController
    settings: DemoSettings

    @property
    def record(self) -> TraceWriter | None:
        """The trace being written (`settings.record`), None when not recording."""
        return self.controller.recorder

    @property
    def proxy_url(self) -> str:
        host, port = self.controller.addresses[0]
        return f"http://{_host(host)}:{port}"

    @property
    def metrics_url(self) -> str:
        assert self.controller.metrics_address is not None
        host, port = self.controller.metrics_address
        return f"http://{_host(host)}:{port}/metrics"

    @property
    def status_url(self) -> str:
        assert self.controller.admin_address is not None
        host, port = self.controller.admin_address
        return f"http://{_host(host)}:{port}/"

    def app_url(self, app: str) -> str:
        return f"{self.proxy_url}/{app}/"


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _apply(client: KubeClient, namespace: str, apps: Sequence[DemoApp]) -> None:
    try:
        await client.get(NAMESPACES, namespace)
    except NotFound:
        await client.create(NAMESPACES, {"metadata": {"name": namespace}})
    for app in apps:
        await client.create(DEPLOYMENTS, app.deployment(namespace), namespace=namespace)


@asynccontextmanager
async def open_demo(settings: DemoSettings, open_cluster: OpenCluster) -> AsyncIterator[Demo]:
    """Start the cluster, apply the apps, run the controller; ready when the block starts
    (the apps are served and their first pods are Ready)."""
    async with AsyncExitStack() as stack:
        cluster = await stack.enter_async_context(
            open_cluster(
                ClusterRequest(settings.pod_start_delay, settings.kubeconfig_out, settings.seed)
            )
        )
        client = await stack.enter_async_context(
            open_client(load_kubeconfig(cluster.kubeconfig_path))
        )
        await _apply(client, settings.namespace, settings.apps)
        controller = await stack.enter_async_context(
            open_ticket_controller(
                client,
                namespace=settings.namespace,
                listen=[settings.listen],
                proxy_config=ProxyConfig(shutdown_grace=1.0),
                registry=CollectorRegistry(),
                instance="rxkube-demo",
                metrics_listen=settings.metrics,
                admin_listen=settings.admin,
                # The runner's own recording: a demo trace holds exactly what
                # `rxkube run --record` writes (watches, demand, the autoscaler's commands).
                record=settings.record,
                record_source=(
                    f"rxkube demo (seed {settings.seed}, {settings.users} users, "
                    f"namespace {settings.namespace})"
                ),
            )
        )
        await controller.wait_ready()
        names = {app.name for app in settings.apps}
        await controller.wait_until(
            lambda stats: (
                names <= set(stats.apps) and all(stats.apps[n].ready_servers >= 1 for n in names)
            )
        )
        yield Demo(cluster, client, controller, settings)


async def _stop_on_signal(
    stopped: list[int], cancel: trio.CancelScope, *, task_status: trio.TaskStatus[None]
) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for received in signals:
            stopped.append(received)
            cancel.cancel()
            return


async def _show(
    demo: Demo, view: TerminalView, users: UserStatistics | None, started: float
) -> None:
    while True:
        view.update(
            demo.controller.status(),
            users,
            elapsed=trio.current_time() - started,
            duration=demo.settings.duration,
            records=None if demo.record is None else demo.record.records,
        )
        await trio.sleep(demo.settings.refresh)


def _summary(demo: Demo, users: UserStatistics | None, elapsed: float) -> str:
    """One closing line: how long, what the users got, what the autoscaler did."""
    status = demo.controller.status()
    text = f"summary: ran {elapsed:.0f} s; "
    if users is not None:
        text += (
            f"{users.arrived} users, {users.admitted} got a ticket "
            f"({users.admitted_after_waiting} after waiting), {users.gave_up} gave up waiting, "
            f"{users.errors} errors; "
        )
    text += f"autoscaled pods: {status.scale_ups} created, {status.scale_downs} removed"
    if demo.record is not None:
        text += f"; trace: {demo.record.records} records in {demo.settings.record}"
    return text


def _urls(demo: Demo, out: TextIO) -> None:
    settings = demo.settings
    kubeconfig = demo.cluster.kubeconfig_path
    lines = [
        "rxkube demo: a simulated cluster with two apps served through the ticket proxy",
        "",
        f"  proxy:        {demo.proxy_url}/",
        *(f"    {app.name + ':':<11} {demo.app_url(app.name)}" for app in settings.apps),
        f"  status page:  {demo.status_url}",
        f"  metrics:      {demo.metrics_url}",
        f"  kubeconfig:   {kubeconfig}",
        f"  api server:   {demo.cluster.url}",
        "",
        "  try:  curl -i -c /tmp/rxkube-cookies -b /tmp/rxkube-cookies "
        f"{demo.app_url(settings.apps[0].name)}",
        f"        kubectl --kubeconfig {kubeconfig} get pods -w",
    ]
    if settings.record is not None:
        lines.append(f"  recording to: {settings.record}")
    out.write("\n".join(lines) + "\n\n")
    out.flush()


async def run_demo(
    settings: DemoSettings,
    open_cluster: OpenCluster,
    *,
    out: TextIO | None = None,
    tty: bool | None = None,
) -> int:
    """Run the demo until `duration`, Ctrl-C or SIGTERM; the exit code (0, or 130 after
    Ctrl-C). Everything started is stopped before it returns."""
    out = out if out is not None else sys.stdout
    tty = out.isatty() if tty is None else tty
    stopped: list[int] = []
    users: UserStatistics | None = UserStatistics() if settings.users else None
    summary: list[str] = []
    async with trio.open_nursery() as outer:
        await outer.start(_stop_on_signal, stopped, outer.cancel_scope)
        async with open_demo(settings, open_cluster) as demo:
            _urls(demo, out)
            view = TerminalView(out, tty=tty)
            started = trio.current_time()
            try:
                async with trio.open_nursery() as nursery:
                    if users is not None:
                        visits = plan_visits(
                            settings.users,
                            [
                                UserApp(app.name, app.weight, websocket=app.page == "websocket")
                                for app in settings.apps
                            ],
                            seed=settings.seed,
                            duration=settings.duration,
                        )
                        nursery.start_soon(
                            partial(run_users, start=started), visits, demo.proxy_url, users
                        )
                    if settings.duration is not None:
                        nursery.cancel_scope.deadline = started + settings.duration
                    nursery.start_soon(_show, demo, view, users, started)
            finally:
                view.update(
                    demo.controller.status(),
                    users,
                    elapsed=trio.current_time() - started,
                    duration=settings.duration,
                    records=None if demo.record is None else demo.record.records,
                    final=True,
                )
                view.close()
                summary.append(_summary(demo, users, trio.current_time() - started))
        outer.cancel_scope.cancel()
    out.writelines(line + "\n" for line in summary)
    if stopped:
        out.write(f"rxkube demo: stopped ({signal.Signals(stopped[0]).name})\n")
    else:
        out.write("rxkube demo: done\n")
    out.flush()
    return 130 if stopped and stopped[0] == signal.SIGINT else 0
