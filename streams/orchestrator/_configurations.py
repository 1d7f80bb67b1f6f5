"""`Configurations`: create, update and delete ConfigMaps (a sink), and read them.

What this module is for: the configurations part of the `Cluster` (Cloudsim's
`Configurations`), with the update Cloudsim lacked: read, replace the data, write with the read
resourceVersion, and retry on 409 so a concurrent writer is never overwritten unseen. `get`
returns a `Configuration` with `binaryData` decoded to bytes. It may import `rxkube.streams`'
client and resources modules and the orchestrator's private modules.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from rxkube.streams._client import KubeClient
from rxkube.streams._errors import KubeError
from rxkube.streams._events import KubeObject
from rxkube.streams._resources import CONFIGMAPS
from rxkube.streams._scheduler import TrioScheduler
from rxkube.streams._selector import SelectorLike, parse_selector
from rxkube.streams.orchestrator._call import Call
from rxkube.streams.orchestrator._commands import (
    ConfigurationCommand,
    CreateConfiguration,
    DeleteConfiguration,
    DeleteConfigurations,
    UpdateConfiguration,
)
from rxkube.streams.orchestrator._retry import update_with_retry
from rxkube.streams.orchestrator._sink import DEFAULT_MAX_PENDING, Sink

__all__ = ["Configuration", "Configurations"]


@dataclass(frozen=True, slots=True)
class Configuration:
    """A ConfigMap as read: `data` (text), `binary_data` (decoded bytes), `labels`, and the
    `object` itself (its `metadata.resourceVersion` included)."""

    name: str
    data: Mapping[str, str]
    binary_data: Mapping[str, bytes]
    labels: Mapping[str, str]
    object: KubeObject

    @classmethod
    def from_object(cls, obj: KubeObject) -> Configuration:
        meta = obj.get("metadata") or {}
        binary: dict[str, bytes] = {}
        for key, text in (obj.get("binaryData") or {}).items():
            try:
                binary[key] = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as error:
                raise KubeError(
                    f"ConfigMap {meta.get('name')!r}: binaryData[{key!r}] is not base64: {error}"
                ) from error
        return cls(
            name=str(meta.get("name", "")),
            data=dict(obj.get("data") or {}),
            binary_data=binary,
            labels=dict(meta.get("labels") or {}),
            object=obj,
        )


class Configurations(Sink[ConfigurationCommand]):
    """ConfigMaps in one namespace (commands may name another).

    ::

        await cluster.configurations.create(
            CreateConfiguration("sim-config", data={"world": "tunnel"},
                                binary_data={"map.bin": b"\\x00\\x01"}))
        config = await cluster.configurations.get("sim-config")
        config.binary_data["map.bin"]
    """

    name = "configurations"
    commands = (CreateConfiguration, UpdateConfiguration, DeleteConfiguration, DeleteConfigurations)

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

    async def _execute(self, command: ConfigurationCommand) -> KubeObject | None:
        ns = command.namespace or self.namespace
        if isinstance(command, CreateConfiguration):
            return await self.client.create(CONFIGMAPS, command.manifest(), namespace=ns)
        if isinstance(command, UpdateConfiguration):
            return await update_with_retry(
                self.client, CONFIGMAPS, command.name, namespace=ns, change=command.apply_to
            )
        if isinstance(command, DeleteConfiguration):
            return await self.client.delete(CONFIGMAPS, command.name, namespace=ns)
        return await self.client.delete_collection(
            CONFIGMAPS, namespace=ns, label_selector=str(command.selector)
        )

    def create(self, configuration: CreateConfiguration) -> Call[KubeObject | None]:
        """Create the ConfigMap; the created object."""
        return self._call(configuration, what=f"create({configuration.name!r})")

    def update(self, configuration: UpdateConfiguration) -> Call[KubeObject | None]:
        """Replace the ConfigMap's data (retrying on conflict); the updated object."""
        return self._call(configuration, what=f"update({configuration.name!r})")

    def delete(self, name: str, *, namespace: str | None = None) -> Call[KubeObject | None]:
        """Delete one ConfigMap (`NotFound` if absent)."""
        return self._call(DeleteConfiguration(name, namespace=namespace), what=f"delete({name!r})")

    def delete_all(
        self, selector: SelectorLike, *, namespace: str | None = None
    ) -> Call[KubeObject | None]:
        """Delete every ConfigMap the (non-empty) label selector matches."""
        command = DeleteConfigurations(selector, namespace=namespace)
        return self._call(command, what=f"delete_all({str(command.selector)!r})")

    def get(self, name: str, *, namespace: str | None = None) -> Call[Configuration]:
        """One ConfigMap, decoded (`NotFound` if absent)."""
        ns = namespace or self.namespace

        async def run() -> Configuration:
            return Configuration.from_object(await self.client.get(CONFIGMAPS, name, namespace=ns))

        return Call(run, name=f"configurations.get({name!r})")

    def list(
        self, selector: SelectorLike = "", *, namespace: str | None = None
    ) -> Call[tuple[Configuration, ...]]:
        """The ConfigMaps the label selector matches (all, when empty), decoded."""
        ns = namespace or self.namespace
        text = str(parse_selector(selector))

        async def run() -> tuple[Configuration, ...]:
            found = await self.client.list(CONFIGMAPS, namespace=ns, label_selector=text or None)
            return tuple(Configuration.from_object(obj) for obj in found.items)

        return Call(run, name=f"configurations.list({text!r})")
