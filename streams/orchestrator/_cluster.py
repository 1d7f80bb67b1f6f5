"""`Cluster`: the orchestrator's parts in one object, and `open_cluster` to run its sinks.

What this module is for: Cloudsim's `Cluster` interface (nodes, pods, services, ingresses,
ingress rules, network policies, configurations) with every part replaceable one by one (pass
your own), and the one place that sends any command to the part that handles it
(`cluster.apply`) and merges every part's outcomes (`cluster.outcomes`).

Structured concurrency: a `Cluster` starts no task by itself. Reads, waits, exec and logs take
their nursery from the scheduler they are subscribed with (or run in the awaiting task); the
sinks' Observer queues need a `TrioScheduler` to drain into, given as `scheduler=` or owned by
`open_cluster`, which waits for queued commands before it closes (and cancels them when the
block raises). It may import the orchestrator's private modules and `rxkube.streams`' client,
scheduler and watch modules.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import reactivex
import trio
from reactivex import Observable, abc
from reactivex.subject import Subject

from rxkube.streams._client import KubeClient
from rxkube.streams._scheduler import TrioScheduler, as_trio_scheduler
from rxkube.streams._watch import WatchPolicy
from rxkube.streams.orchestrator._commands import Command
from rxkube.streams.orchestrator._configurations import Configurations
from rxkube.streams.orchestrator._ingresses import (
    GlooIngresses,
    GlooIngressRules,
    Ingresses,
    IngressRules,
    KubernetesIngressRules,
)
from rxkube.streams.orchestrator._network_policies import NetworkPolicies
from rxkube.streams.orchestrator._nodes import Nodes
from rxkube.streams.orchestrator._pods import Pods
from rxkube.streams.orchestrator._services import Services
from rxkube.streams.orchestrator._sink import (
    DEFAULT_MAX_PENDING,
    Failed,
    Outcome,
    Sink,
    pump_commands,
)

__all__ = ["Cluster", "open_cluster"]


class Cluster:
    """A cluster to orchestrate: `nodes`, `pods`, `services`, `ingresses`, `ingress_rules`,
    `network_policies`, `configurations`.

    ::

        cluster = Cluster(client, namespace="sims")                  # Kubernetes Ingress
        cluster = Cluster(client, namespace="sims", ingress="gloo")  # Gloo VirtualServices
        cluster = Cluster(client, pods=MyPods(client))               # any part replaced

    `namespace` defaults to the client's. `scheduler` is where the sinks drain commands sent
    with `on_next` (see `open_cluster`); `max_pending` bounds each sink's queue;
    `watch_policy` is used by the waits.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str | None = None,
        scheduler: TrioScheduler | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
        watch_policy: WatchPolicy | None = None,
        ingress: Literal["kubernetes", "gloo"] = "kubernetes",
        nodes: Nodes | None = None,
        pods: Pods | None = None,
        services: Services | None = None,
        ingresses: Ingresses | None = None,
        ingress_rules: IngressRules | None = None,
        network_policies: NetworkPolicies | None = None,
        configurations: Configurations | None = None,
    ) -> None:
        if ingress not in ("kubernetes", "gloo"):
            raise ValueError(f"ingress must be 'kubernetes' or 'gloo', got {ingress!r}")
        ns = namespace or client.namespace
        self.client = client
        self.namespace = ns
        self.scheduler = scheduler
        self.nodes = nodes or Nodes(client, watch_policy=watch_policy)
        self.pods = pods or Pods(
            client,
            namespace=ns,
            scheduler=scheduler,
            max_pending=max_pending,
            watch_policy=watch_policy,
        )
        self.services = services or Services(
            client, namespace=ns, scheduler=scheduler, max_pending=max_pending
        )
        if ingresses is None:
            ingresses = (
                GlooIngresses(client, namespace=ns)
                if ingress == "gloo"
                else Ingresses(client, namespace=ns)
            )
        self.ingresses = ingresses
        if ingress_rules is None:
            rules_class = GlooIngressRules if ingress == "gloo" else KubernetesIngressRules
            ingress_rules = rules_class(
                client, namespace=ns, scheduler=scheduler, max_pending=max_pending
            )
        self.ingress_rules = ingress_rules
        self.network_policies = network_policies or NetworkPolicies(
            client, namespace=ns, scheduler=scheduler, max_pending=max_pending
        )
        self.configurations = configurations or Configurations(
            client, namespace=ns, scheduler=scheduler, max_pending=max_pending
        )
        for sink in self.sinks:
            if sink.scheduler is None:
                sink.scheduler = scheduler
        # Commands no part takes (cluster.apply) fail here, and are published all the same.
        self._refused: Subject[Outcome] = Subject()
        self._outcomes: Observable[Outcome] = reactivex.merge(
            *(sink.outcomes for sink in self.sinks), self._refused
        )

    @property
    def sinks(self) -> tuple[Sink[Command], ...]:
        """The parts that take commands, in a fixed order."""
        return (
            self.pods,  # type: ignore[return-value]
            self.services,
            self.ingress_rules,
            self.network_policies,
            self.configurations,
        )

    @property
    def outcomes(self) -> Observable[Outcome]:
        """Every outcome of every part (hot: subscribe before sending commands)."""
        return self._outcomes

    def sink_for(self, command: Command) -> Sink[Command]:
        """The part that handles `command` (`TypeError` if none does)."""
        for sink in self.sinks:
            if isinstance(command, sink.commands):
                return sink
        raise TypeError(f"no part of the Cluster handles {type(command).__name__}")

    def apply(self, commands: Observable[Command] | AsyncIterable[Command]) -> Observable[Outcome]:
        """Apply commands of any part, one after the other in order (each waits for the one
        before, whichever part it goes to); a cold Observable of their outcomes, also published
        on `outcomes`. Subscribe with a `TrioScheduler` (or rely on the cluster's)."""

        async def route(command: object) -> Outcome:
            try:
                if not isinstance(command, Command):
                    raise TypeError(f"{command!r} is not an orchestrator Command")
                sink = self.sink_for(command)
            except TypeError as error:
                refused = Failed("cluster", command, error)  # type: ignore[arg-type]
                self._refused.on_next(refused)
                return refused
            return await sink._route(command)

        def subscribe(
            observer: abc.ObserverBase[Outcome], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            trio_scheduler = as_trio_scheduler(scheduler or self.scheduler, what="cluster.apply")
            return trio_scheduler.start_task(
                pump_commands,
                commands,
                observer,
                trio_scheduler,
                DEFAULT_MAX_PENDING,
                route,
                name="cluster.apply",
            )

        return reactivex.create(subscribe)

    async def wait_idle(self) -> None:
        """Return once no part has a command queued or being applied."""
        while True:
            for sink in self.sinks:
                await sink.wait_idle()
            if all(not (s.statistics().queued or s.statistics().applying) for s in self.sinks):
                return


@asynccontextmanager
async def open_cluster(
    client: KubeClient,
    *,
    namespace: str | None = None,
    max_pending: int = DEFAULT_MAX_PENDING,
    watch_policy: WatchPolicy | None = None,
    ingress: Literal["kubernetes", "gloo"] = "kubernetes",
    nodes: Nodes | None = None,
    pods: Pods | None = None,
    services: Services | None = None,
    ingresses: Ingresses | None = None,
    ingress_rules: IngressRules | None = None,
    network_policies: NetworkPolicies | None = None,
    configurations: Configurations | None = None,
) -> AsyncIterator[Cluster]:
    """A `Cluster` whose sinks drain in a nursery this block owns (parts given without a
    scheduler get this one).

    ::

        async with open_client(load_config()) as client, open_cluster(client) as cluster:
            commands.subscribe(cluster.pods)        # Observer: queued, applied in order
            cluster.outcomes.subscribe(print)

    Leaving the block normally waits until every queued command has been applied; leaving it
    with an exception cancels what is left.
    """
    async with trio.open_nursery() as nursery:
        cluster = Cluster(
            client,
            namespace=namespace,
            scheduler=TrioScheduler(nursery),
            max_pending=max_pending,
            watch_policy=watch_policy,
            ingress=ingress,
            nodes=nodes,
            pods=pods,
            services=services,
            ingresses=ingresses,
            ingress_rules=ingress_rules,
            network_policies=network_policies,
            configurations=configurations,
        )
        try:
            yield cluster
            await cluster.wait_idle()
        finally:
            nursery.cancel_scope.cancel()
