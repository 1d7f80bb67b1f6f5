"""`Nodes`: get, list, and wait for nodes (cluster-scoped; reads only).

What this module is for: the nodes part of the `Cluster` (Cloudsim's `Nodes`). Its wait is built
on the node watch (Cloudsim polled the node list). It may import `rxkube.streams`' client,
resources and watch modules and the orchestrator's private modules.
"""

from __future__ import annotations

from rxkube.streams._client import KubeClient
from rxkube.streams._events import KubeObject
from rxkube.streams._resources import NODES
from rxkube.streams._selector import SelectorLike, parse_selector
from rxkube.streams._watch import WatchPolicy
from rxkube.streams.orchestrator._call import Call
from rxkube.streams.orchestrator._wait import Condition, wait_for

__all__ = ["Nodes"]


class Nodes:
    """The cluster's nodes.

    ::

        nodes = await cluster.nodes.wait("cloudsim.io/role=sim", timeout=300)
    """

    def __init__(self, client: KubeClient, *, watch_policy: WatchPolicy | None = None) -> None:
        self.client = client
        self.watch_policy = watch_policy

    def get(self, name: str) -> Call[KubeObject]:
        """One node (`NotFound` if absent)."""

        async def run() -> KubeObject:
            return await self.client.get(NODES, name)

        return Call(run, name=f"nodes.get({name!r})")

    def list(self, selector: SelectorLike = "") -> Call[tuple[KubeObject, ...]]:
        """The nodes the label selector matches (all, when empty)."""
        text = str(parse_selector(selector))

        async def run() -> tuple[KubeObject, ...]:
            return (await self.client.list(NODES, label_selector=text or None)).items

        return Call(run, name=f"nodes.list({text!r})")

    def wait(
        self,
        selector: SelectorLike = "",
        condition: Condition = Condition.READY,
        *,
        timeout: float | None = None,
        fail_if_empty: bool = False,
    ) -> Call[tuple[KubeObject, ...]]:
        """Wait until every node the selector matches is Ready; the nodes then.

        `TimedOut` after `timeout` seconds; an empty selection keeps waiting (nodes may be
        joining) unless `fail_if_empty`, which raises `NothingSelected`.
        """
        if condition is not Condition.READY:
            raise ValueError(f"nodes can only be waited for to be READY, not {condition}")

        async def run() -> tuple[KubeObject, ...]:
            return await wait_for(
                self.client,
                NODES,
                namespace=None,
                selector=selector,
                satisfied=condition.satisfied_by,
                wanted=condition.value,
                time_limit=timeout,
                fail_if_empty=fail_if_empty,
                policy=self.watch_policy,
            )

        return Call(run, name=f"nodes.wait({str(parse_selector(selector))!r})")
