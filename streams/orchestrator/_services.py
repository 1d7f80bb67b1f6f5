"""`Services`: create and remove services (a sink), get and list them.

What this module is for: the services part of the `Cluster` (Cloudsim's `Services`). It may
import `rxkube.streams`' client and resources modules and the orchestrator's private modules.
"""

from __future__ import annotations

from typing import Any

from rxkube.streams._client import KubeClient
from rxkube.streams._errors import NotFound
from rxkube.streams._events import KubeObject
from rxkube.streams._resources import SERVICES
from rxkube.streams._scheduler import TrioScheduler
from rxkube.streams._selector import SelectorLike, parse_selector
from rxkube.streams.orchestrator._call import Call
from rxkube.streams.orchestrator._commands import (
    CreateService,
    RemoveService,
    RemoveServices,
    ServiceCommand,
)
from rxkube.streams.orchestrator._sink import DEFAULT_MAX_PENDING, Sink

__all__ = ["Services"]


class Services(Sink[ServiceCommand]):
    """Services in one namespace (commands may name another).

    ::

        await cluster.services.create(CreateService("sim", {"app": "sim"}, {"http": 8080}))
    """

    name = "services"
    commands = (CreateService, RemoveService, RemoveServices)

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

    async def _execute(self, command: ServiceCommand) -> KubeObject | None:
        ns = command.namespace or self.namespace
        if isinstance(command, CreateService):
            return await self.client.create(SERVICES, command.manifest(), namespace=ns)
        if isinstance(command, RemoveService):
            return await self.client.delete(SERVICES, command.name, namespace=ns)
        found = await self.client.list(SERVICES, namespace=ns, label_selector=str(command.selector))
        deleted: list[KubeObject] = []
        for service in found.items:
            try:
                deleted.append(
                    await self.client.delete(SERVICES, service["metadata"]["name"], namespace=ns)
                )
            except NotFound:
                continue  # someone else removed it meanwhile: the goal is met
        items: list[Any] = deleted
        return {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}

    def create(self, service: CreateService) -> Call[KubeObject | None]:
        """Create the service; the created object."""
        return self._call(service, what=f"create({service.name!r})")

    def remove(self, name: str, *, namespace: str | None = None) -> Call[KubeObject | None]:
        """Delete one service (`NotFound` if absent)."""
        return self._call(RemoveService(name, namespace=namespace), what=f"remove({name!r})")

    def remove_all(
        self, selector: SelectorLike, *, namespace: str | None = None
    ) -> Call[KubeObject | None]:
        """Delete every service the (non-empty) label selector matches; a List of them."""
        command = RemoveServices(selector, namespace=namespace)
        return self._call(command, what=f"remove_all({str(command.selector)!r})")

    def get(self, name: str, *, namespace: str | None = None) -> Call[KubeObject]:
        """One service (`NotFound` if absent)."""
        ns = namespace or self.namespace

        async def run() -> KubeObject:
            return await self.client.get(SERVICES, name, namespace=ns)

        return Call(run, name=f"services.get({name!r})")

    def list(
        self, selector: SelectorLike = "", *, namespace: str | None = None
    ) -> Call[tuple[KubeObject, ...]]:
        """The services the label selector matches (all, when empty)."""
        ns = namespace or self.namespace
        text = str(parse_selector(selector))

        async def run() -> tuple[KubeObject, ...]:
            found = await self.client.list(SERVICES, namespace=ns, label_selector=text or None)
            return found.items

        return Call(run, name=f"services.list({text!r})")
