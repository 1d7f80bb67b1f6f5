"""`open_fake_cluster`: an orchestrator `Cluster` on an in-process fake cluster, for tests.

What this module is for: users' own tests of code that drives a `rxkube.streams.orchestrator`
`Cluster` (issue 9's `FakeCluster` helper). It starts the fake API server on loopback with its
simulated cluster (nodes that become Ready, a kubelet that runs pods as local backends, logs and
exec over a simulated container filesystem), opens the real client on it, and yields a
`FakeCluster`: a `Cluster` (whose sinks drain in a nursery this block owns, as with
`open_cluster`) that also holds the `server`, so a test can look at the stored objects, inject
faults, write to a container's log (`server.simulation`), or play a kubelet itself
(`simulate=False`).

It lives in `rxkube.fakes` because `rxkube.streams` may not import the fakes (DESIGN section 2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import trio

from rxkube.fakes._server import FakeApiServer, open_fake_apiserver
from rxkube.fakes._sim import SimSettings
from rxkube.streams import KubeClient, TrioScheduler, WatchPolicy, load_kubeconfig, open_client
from rxkube.streams.orchestrator import Cluster

__all__ = ["FakeCluster", "open_fake_cluster"]


class FakeCluster(Cluster):
    """A `Cluster` on a fake API server; `server` is the running `FakeApiServer`."""

    def __init__(self, client: KubeClient, server: FakeApiServer, **options: Any) -> None:
        super().__init__(client, **options)
        self.server = server


@asynccontextmanager
async def open_fake_cluster(
    *,
    namespace: str = "default",
    ingress: Literal["kubernetes", "gloo"] = "kubernetes",
    watch_policy: WatchPolicy | None = None,
    simulate: bool | SimSettings = True,
    **server_options: Any,
) -> AsyncIterator[FakeCluster]:
    """Serve a fake cluster and yield a `FakeCluster` on it, through the real client.

    ::

        async with open_fake_cluster() as cluster:
            await cluster.pods.create(CreatePod("web", [ContainerSpec("app", "nginx")]))
            await cluster.pods.wait("app=web", Condition.READY, timeout=10)
            cluster.server.simulation.log("default", "web").write("a line\n")

    `simulate` is the simulated cluster's settings (`SimSettings`: nodes, delays, pod backends
    on sockets or not), or False for a bare API server. `server_options` go to
    `open_fake_apiserver` (e.g. `bookmark_interval=0.2`, `rbac=True`). Leaving the block
    normally waits for queued commands; then everything is closed.
    """
    async with open_fake_apiserver(simulate=simulate, **server_options) as server:
        config = load_kubeconfig(server.kubeconfig_path)
        async with open_client(config) as client, trio.open_nursery() as nursery:
            cluster = FakeCluster(
                client,
                server,
                namespace=namespace,
                scheduler=TrioScheduler(nursery),
                watch_policy=watch_policy,
                ingress=ingress,
            )
            try:
                yield cluster
                await cluster.wait_idle()
            finally:
                nursery.cancel_scope.cancel()
