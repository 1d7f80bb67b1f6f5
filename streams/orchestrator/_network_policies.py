"""`NetworkPolicies`: create and remove network policies (a sink), get and list them.

What this module is for: the network_policies part of the `Cluster` (Cloudsim's `Policies`).
The rules are `PolicyRule`s: a rule with both peers and ports allows those peers on those ports
only (see `_commands.PolicyRule`). It may import `rxkube.streams`' client and resources modules
and the orchestrator's private modules.
"""

from __future__ import annotations

from rxkube.streams._client import KubeClient
from rxkube.streams._events import KubeObject
from rxkube.streams._resources import NETWORK_POLICIES
from rxkube.streams._scheduler import TrioScheduler
from rxkube.streams._selector import SelectorLike, parse_selector
from rxkube.streams.orchestrator._call import Call
from rxkube.streams.orchestrator._commands import (
    CreateNetworkPolicy,
    NetworkPolicyCommand,
    RemoveNetworkPolicies,
    RemoveNetworkPolicy,
)
from rxkube.streams.orchestrator._sink import DEFAULT_MAX_PENDING, Sink

__all__ = ["NetworkPolicies"]


class NetworkPolicies(Sink[NetworkPolicyCommand]):
    """Network policies in one namespace (commands may name another).

    ::

        await cluster.network_policies.create(CreateNetworkPolicy(
            "sim", {"app": "sim"},
            ingress=[PolicyRule(peers=[PodPeer({"app": "bridge"})], ports=[9090])],
            allow_all_outbound=True,
        ))
    """

    name = "network_policies"
    commands = (CreateNetworkPolicy, RemoveNetworkPolicy, RemoveNetworkPolicies)

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str | None = None,
        scheduler: TrioScheduler | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        super().__init__(scheduler=scheduler, max_pending=max_pending)
        self.client = client
        self.namespace = namespace or client.namespace

    async def _execute(self, command: NetworkPolicyCommand) -> KubeObject | None:
        ns = command.namespace or self.namespace
        if isinstance(command, CreateNetworkPolicy):
            return await self.client.create(NETWORK_POLICIES, command.manifest(), namespace=ns)
        if isinstance(command, RemoveNetworkPolicy):
            return await self.client.delete(NETWORK_POLICIES, command.name, namespace=ns)
        return await self.client.delete_collection(
            NETWORK_POLICIES, namespace=ns, label_selector=str(command.selector)
        )

    def create(self, policy: CreateNetworkPolicy) -> Call[KubeObject | None]:
        """Create the network policy; the created object."""
        return self._call(policy, what=f"create({policy.name!r})")

    def remove(self, name: str, *, namespace: str | None = None) -> Call[KubeObject | None]:
        """Delete one network policy (`NotFound` if absent)."""
        return self._call(RemoveNetworkPolicy(name, namespace=namespace), what=f"remove({name!r})")

    def remove_all(
        self, selector: SelectorLike, *, namespace: str | None = None
    ) -> Call[KubeObject | None]:
        """Delete every network policy the (non-empty) label selector matches."""
        command = RemoveNetworkPolicies(selector, namespace=namespace)
        return self._call(command, what=f"remove_all({str(command.selector)!r})")

    def get(self, name: str, *, namespace: str | None = None) -> Call[KubeObject]:
        """One network policy (`NotFound` if absent)."""
        ns = namespace or self.namespace

        async def run() -> KubeObject:
            return await self.client.get(NETWORK_POLICIES, name, namespace=ns)

        return Call(run, name=f"network_policies.get({name!r})")

    def list(
        self, selector: SelectorLike = "", *, namespace: str | None = None
    ) -> Call[tuple[KubeObject, ...]]:
        """The network policies the label selector matches (all, when empty)."""
        ns = namespace or self.namespace
        text = str(parse_selector(selector))

        async def run() -> tuple[KubeObject, ...]:
            found = await self.client.list(
                NETWORK_POLICIES, namespace=ns, label_selector=text or None
            )
            return found.items

        return Call(run, name=f"network_policies.list({text!r})")
