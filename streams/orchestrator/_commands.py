"""The orchestrator's commands and the specs they carry, as frozen dataclasses.

What this module is for: the data of DESIGN section 4's orchestrator sinks. A command says what
to do (`CreatePod`, `DeletePods`, `UpsertPaths`, ...); a sink applies it and publishes an
outcome. Each command checks its own fields when it is built (a bad value is a `ValueError`
naming the field, before anything reaches the API) and knows its manifest (`manifest()`: the
Kubernetes JSON, camelCase, as the API expects it). Sequences are stored as tuples and mappings
as copies, so a command never changes after it is built. Pure: no I/O.

Every command takes an optional keyword `namespace`; None means the sink's namespace.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import orjson

from rxkube.streams._events import KubeObject
from rxkube.streams._selector import Selector, SelectorLike, parse_selector
from rxkube.streams._types import LabelSelector

__all__ = [
    "Command",
    "ConfigMapVolume",
    "ConfigurationCommand",
    "ContainerSpec",
    "CreateConfiguration",
    "CreateNetworkPolicy",
    "CreatePod",
    "CreatePodFromManifest",
    "CreateService",
    "DeleteConfiguration",
    "DeleteConfigurations",
    "DeletePod",
    "DeletePods",
    "EmptyDirVolume",
    "HostPathVolume",
    "IPBlock",
    "IngressPath",
    "IngressRuleCommand",
    "NamedPort",
    "NetworkPolicyCommand",
    "Peer",
    "PodCommand",
    "PodPeer",
    "PolicyPort",
    "PolicyRule",
    "RemoveNetworkPolicies",
    "RemoveNetworkPolicy",
    "RemovePaths",
    "RemoveService",
    "RemoveServices",
    "Rule",
    "SecretVolume",
    "ServiceCommand",
    "ServicePort",
    "Toleration",
    "UpdateConfiguration",
    "UpsertPaths",
    "Volume",
    "VolumeMount",
]

Protocol: TypeAlias = Literal["TCP", "UDP", "SCTP"]
_PROTOCOLS = ("TCP", "UDP", "SCTP")


def _set(obj: object, name: str, value: object) -> None:
    # Frozen dataclasses normalize their own fields in __post_init__ this way.
    object.__setattr__(obj, name, value)


def _require(value: str, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")


def _port_number(port: int, what: str) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"{what} must be a port number in 1..65535, got {port!r}")


def _tuple(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"{type(obj).__name__}.{name} must be a sequence, got {value!r}")
    _set(obj, name, tuple(value))


def _dict(obj: object, name: str) -> None:
    value = getattr(obj, name)
    if not isinstance(value, Mapping):
        raise ValueError(f"{type(obj).__name__}.{name} must be a mapping, got {value!r}")
    _set(obj, name, dict(value))


def label_selector(selector: Selector) -> LabelSelector:
    """A parsed selector as a meta/v1 `LabelSelector` (`matchLabels` + `matchExpressions`)."""
    match_labels: dict[str, str] = {}
    expressions: list[dict[str, Any]] = []
    for requirement in selector.requirements:
        op, key, values = requirement.operator, requirement.key, list(requirement.values)
        if op == "=" and key not in match_labels:
            match_labels[key] = values[0]
        elif op in ("=", "in"):
            expressions.append({"key": key, "operator": "In", "values": values})
        elif op in ("!=", "notin"):
            expressions.append({"key": key, "operator": "NotIn", "values": values})
        elif op == "exists":
            expressions.append({"key": key, "operator": "Exists"})
        elif op == "!":
            expressions.append({"key": key, "operator": "DoesNotExist"})
        else:
            raise ValueError(
                f"the selector {str(selector)!r} uses {op!r}, which a LabelSelector cannot say"
            )
    out: dict[str, Any] = {}
    if match_labels:
        out["matchLabels"] = match_labels
    if expressions:
        out["matchExpressions"] = expressions
    return out  # type: ignore[return-value]


def _meta(
    name: str, labels: Mapping[str, str], annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every orchestrator command. `namespace`: None means the sink's own."""

    namespace: str | None = field(default=None, kw_only=True)


# -- pods --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NamedPort:
    """A container port with a name (`http`), which Services can target by name."""

    name: str
    port: int
    protocol: Protocol = "TCP"

    def __post_init__(self) -> None:
        _require(self.name, "NamedPort.name")
        _port_number(self.port, "NamedPort.port")
        if self.protocol not in _PROTOCOLS:
            raise ValueError(f"NamedPort.protocol must be one of {_PROTOCOLS}")


@dataclass(frozen=True, slots=True)
class VolumeMount:
    """Mount the pod volume `name` at `mount_path` in a container."""

    name: str
    mount_path: str
    read_only: bool = False
    sub_path: str | None = None

    def __post_init__(self) -> None:
        _require(self.name, "VolumeMount.name")
        _require(self.mount_path, "VolumeMount.mount_path")

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "mountPath": self.mount_path}
        if self.read_only:
            out["readOnly"] = True
        if self.sub_path:
            out["subPath"] = self.sub_path
        return out


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """One container of a pod.

    `env` sets variables to values; `env_from_fields` sets them from the pod's own fields
    (`{"POD_IP": "status.podIP"}`, the downward API); `ports` are container port numbers or
    `NamedPort`s; `requests` and `limits` are resource quantities (`{"cpu": "500m",
    "memory": "1Gi"}`).
    """

    name: str
    image: str
    command: Sequence[str] = ()
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    env_from_fields: Mapping[str, str] = field(default_factory=dict)
    ports: Sequence[int | NamedPort] = ()
    requests: Mapping[str, str] = field(default_factory=dict)
    limits: Mapping[str, str] = field(default_factory=dict)
    volume_mounts: Sequence[VolumeMount] = ()
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    privileged: bool | None = None
    allow_privilege_escalation: bool | None = None
    working_dir: str | None = None

    def __post_init__(self) -> None:
        _require(self.name, "ContainerSpec.name")
        _require(self.image, f"ContainerSpec.image of container {self.name!r}")
        for name in ("command", "args", "ports", "volume_mounts"):
            _tuple(self, name)
        for name in ("env", "env_from_fields", "requests", "limits"):
            _dict(self, name)
        for port in self.ports:
            if not isinstance(port, NamedPort):
                _port_number(port, f"a port of container {self.name!r}")

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "image": self.image}
        if self.command:
            out["command"] = list(self.command)
        if self.args:
            out["args"] = list(self.args)
        env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in self.env.items()]
        env += [
            {"name": k, "valueFrom": {"fieldRef": {"fieldPath": path}}}
            for k, path in self.env_from_fields.items()
        ]
        if env:
            out["env"] = env
        if self.ports:
            out["ports"] = [
                {"name": p.name, "containerPort": p.port, "protocol": p.protocol}
                if isinstance(p, NamedPort)
                else {"containerPort": p}
                for p in self.ports
            ]
        resources: dict[str, Any] = {}
        if self.requests:
            resources["requests"] = dict(self.requests)
        if self.limits:
            resources["limits"] = dict(self.limits)
        if resources:
            out["resources"] = resources
        if self.volume_mounts:
            out["volumeMounts"] = [m.manifest() for m in self.volume_mounts]
        if self.image_pull_policy:
            out["imagePullPolicy"] = self.image_pull_policy
        security: dict[str, Any] = {}
        if self.privileged is not None:
            security["privileged"] = self.privileged
        if self.allow_privilege_escalation is not None:
            security["allowPrivilegeEscalation"] = self.allow_privilege_escalation
        if security:
            out["securityContext"] = security
        if self.working_dir:
            out["workingDir"] = self.working_dir
        return out


def _key_files(
    source: dict[str, Any],
    items: Mapping[str, str],
    default_mode: int | None,
    optional: bool | None,
) -> dict[str, Any]:
    """A ConfigMap or Secret volume source: `items` (key -> relative path) and the options set."""
    if items:
        source["items"] = [{"key": key, "path": path} for key, path in items.items()]
    if default_mode is not None:
        source["defaultMode"] = default_mode
    if optional is not None:
        source["optional"] = optional
    return source


@dataclass(frozen=True, slots=True)
class ConfigMapVolume:
    """A ConfigMap as a volume: every key a file, or only `items` (key -> relative path)."""

    name: str
    config_map: str
    items: Mapping[str, str] = field(default_factory=dict)
    default_mode: int | None = None
    optional: bool | None = None

    def __post_init__(self) -> None:
        _require(self.name, "ConfigMapVolume.name")
        _require(self.config_map, "ConfigMapVolume.config_map")
        _dict(self, "items")

    def manifest(self) -> dict[str, Any]:
        source = _key_files({"name": self.config_map}, self.items, self.default_mode, self.optional)
        return {"name": self.name, "configMap": source}


@dataclass(frozen=True, slots=True)
class SecretVolume:
    """A Secret as a volume: every key a file, or only `items` (key -> relative path)."""

    name: str
    secret: str
    items: Mapping[str, str] = field(default_factory=dict)
    default_mode: int | None = None
    optional: bool | None = None

    def __post_init__(self) -> None:
        _require(self.name, "SecretVolume.name")
        _require(self.secret, "SecretVolume.secret")
        _dict(self, "items")

    def manifest(self) -> dict[str, Any]:
        source = _key_files(
            {"secretName": self.secret}, self.items, self.default_mode, self.optional
        )
        return {"name": self.name, "secret": source}


@dataclass(frozen=True, slots=True)
class EmptyDirVolume:
    """A scratch directory that lives as long as the pod (`medium="Memory"` for tmpfs)."""

    name: str
    medium: Literal["", "Memory"] = ""
    size_limit: str | None = None

    def __post_init__(self) -> None:
        _require(self.name, "EmptyDirVolume.name")

    def manifest(self) -> dict[str, Any]:
        source: dict[str, Any] = {}
        if self.medium:
            source["medium"] = self.medium
        if self.size_limit:
            source["sizeLimit"] = self.size_limit
        return {"name": self.name, "emptyDir": source}


HostPathType: TypeAlias = Literal[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
]


@dataclass(frozen=True, slots=True)
class HostPathVolume:
    """A file or directory of the node (`type` checks what must be there)."""

    name: str
    path: str
    type: HostPathType = ""

    def __post_init__(self) -> None:
        _require(self.name, "HostPathVolume.name")
        _require(self.path, "HostPathVolume.path")

    def manifest(self) -> dict[str, Any]:
        source: dict[str, Any] = {"path": self.path}
        if self.type:
            source["type"] = self.type
        return {"name": self.name, "hostPath": source}


Volume: TypeAlias = ConfigMapVolume | SecretVolume | EmptyDirVolume | HostPathVolume


@dataclass(frozen=True, slots=True)
class Toleration:
    """Let the pod run on nodes with a matching taint (`operator="Exists"` ignores `value`)."""

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = ""
    seconds: int | None = None

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"operator": self.operator}
        if self.key is not None:
            out["key"] = self.key
        if self.value is not None:
            out["value"] = self.value
        if self.effect:
            out["effect"] = self.effect
        if self.seconds is not None:
            out["tolerationSeconds"] = self.seconds
        return out


@dataclass(frozen=True, slots=True)
class CreatePod(Command):
    """Create a pod.

    ::

        CreatePod(
            "sim-0",
            [ContainerSpec("sim", "sim:1.2", ports=[8080], env={"MODE": "race"})],
            labels={"app": "sim"},
            restart_policy="Never",
        )

    `termination_grace_period` is in seconds; `nameservers` adds DNS servers to the pod's
    resolver (`dnsConfig.nameservers`); `image_pull_secrets` names Secrets.
    """

    name: str
    containers: Sequence[ContainerSpec]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    init_containers: Sequence[ContainerSpec] = ()
    volumes: Sequence[Volume] = ()
    restart_policy: Literal["Always", "OnFailure", "Never"] | None = None
    termination_grace_period: int | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Toleration] = ()
    image_pull_secrets: Sequence[str] = ()
    nameservers: Sequence[str] = ()
    service_account: str | None = None

    def __post_init__(self) -> None:
        _require(self.name, "CreatePod.name")
        for name in ("containers", "init_containers", "volumes", "tolerations"):
            _tuple(self, name)
        for name in ("image_pull_secrets", "nameservers"):
            _tuple(self, name)
        for name in ("labels", "annotations", "node_selector"):
            _dict(self, name)
        if not self.containers:
            raise ValueError(f"CreatePod {self.name!r} needs at least one container")
        if self.termination_grace_period is not None and self.termination_grace_period < 0:
            raise ValueError("CreatePod.termination_grace_period must be >= 0 seconds")

    def manifest(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"containers": [c.manifest() for c in self.containers]}
        if self.init_containers:
            spec["initContainers"] = [c.manifest() for c in self.init_containers]
        if self.volumes:
            spec["volumes"] = [v.manifest() for v in self.volumes]
        if self.restart_policy:
            spec["restartPolicy"] = self.restart_policy
        if self.termination_grace_period is not None:
            spec["terminationGracePeriodSeconds"] = self.termination_grace_period
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            spec["tolerations"] = [t.manifest() for t in self.tolerations]
        if self.image_pull_secrets:
            spec["imagePullSecrets"] = [{"name": s} for s in self.image_pull_secrets]
        if self.nameservers:
            spec["dnsConfig"] = {"nameservers": list(self.nameservers)}
        if self.service_account:
            spec["serviceAccountName"] = self.service_account
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": _meta(self.name, self.labels, self.annotations),
            "spec": spec,
        }


@dataclass(frozen=True, slots=True)
class CreatePodFromManifest(Command):
    """Create a pod from a complete v1 Pod manifest (e.g. one a controller built from a
    Deployment's pod template). The manifest is copied when the command is built."""

    manifest: Mapping[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        manifest = self.manifest
        if not isinstance(manifest, Mapping):
            raise ValueError(f"CreatePodFromManifest needs a mapping, got {manifest!r}")
        if manifest.get("kind", "Pod") != "Pod":
            raise ValueError(f"CreatePodFromManifest needs a Pod, got kind {manifest['kind']!r}")
        meta = manifest.get("metadata")
        if not isinstance(meta, Mapping) or not (meta.get("name") or meta.get("generateName")):
            raise ValueError("CreatePodFromManifest needs metadata.name or generateName")
        _set(self, "manifest", orjson.loads(orjson.dumps(manifest)))

    @property
    def name(self) -> str:
        """The pod's name (its generateName prefix when the server picks the name)."""
        meta = self.manifest["metadata"]
        return str(meta.get("name") or meta.get("generateName"))

    def manifest_for_create(self) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads(orjson.dumps(self.manifest))
        body.setdefault("apiVersion", "v1")
        body.setdefault("kind", "Pod")
        return body


@dataclass(frozen=True, slots=True)
class DeletePod(Command):
    """Delete one pod; `grace_period` seconds overrides the pod's own (0: at once); `uid`
    deletes it only if it is still that incarnation of the name (409 Conflict otherwise)."""

    name: str
    grace_period: int | None = None
    uid: str | None = None

    def __post_init__(self) -> None:
        _require(self.name, "DeletePod.name")


@dataclass(frozen=True, slots=True)
class DeletePods(Command):
    """Delete every pod the label selector matches (one `deletecollection` request)."""

    selector: SelectorLike
    grace_period: int | None = None

    def __post_init__(self) -> None:
        parsed = parse_selector(self.selector)
        if not parsed.requirements:
            # An empty selector matches everything: never delete a whole namespace by accident.
            raise ValueError("DeletePods needs a non-empty selector")
        _set(self, "selector", parsed)


PodCommand: TypeAlias = CreatePod | CreatePodFromManifest | DeletePod | DeletePods


# -- services ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServicePort:
    """A service port; `target_port` is the pod's port number or its container port name."""

    name: str
    port: int
    target_port: int | str | None = None
    protocol: Protocol = "TCP"
    node_port: int | None = None

    def __post_init__(self) -> None:
        _require(self.name, "ServicePort.name")
        _port_number(self.port, f"ServicePort {self.name!r} port")

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "port": self.port, "protocol": self.protocol}
        if self.target_port is not None:
            out["targetPort"] = self.target_port
        if self.node_port is not None:
            out["nodePort"] = self.node_port
        return out


@dataclass(frozen=True, slots=True)
class CreateService(Command):
    """Create a service in front of the pods `selector` matches.

    `ports` maps port names to numbers (`{"http": 80}`) or lists `ServicePort`s.
    """

    name: str
    selector: Mapping[str, str]
    ports: Mapping[str, int] | Sequence[ServicePort]
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.name, "CreateService.name")
        _dict(self, "selector")
        _dict(self, "labels")
        ports = self.ports
        if isinstance(ports, Mapping):
            _set(self, "ports", tuple(ServicePort(n, p) for n, p in ports.items()))
        else:
            _tuple(self, "ports")
        if not self.ports:
            raise ValueError(f"CreateService {self.name!r} needs at least one port")

    def manifest(self) -> dict[str, Any]:
        ports = self.ports
        assert not isinstance(ports, Mapping)  # normalized in __post_init__
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(self.name, self.labels),
            "spec": {
                "type": self.type,
                "selector": dict(self.selector),
                "ports": [p.manifest() for p in ports],
            },
        }


@dataclass(frozen=True, slots=True)
class RemoveService(Command):
    """Delete one service."""

    name: str

    def __post_init__(self) -> None:
        _require(self.name, "RemoveService.name")


@dataclass(frozen=True, slots=True)
class RemoveServices(Command):
    """Delete every service the label selector matches (services have no `deletecollection`
    on every API server version, so each is deleted by name)."""

    selector: SelectorLike

    def __post_init__(self) -> None:
        parsed = parse_selector(self.selector)
        if not parsed.requirements:
            raise ValueError("RemoveServices needs a non-empty selector")
        _set(self, "selector", parsed)


ServiceCommand: TypeAlias = CreateService | RemoveService | RemoveServices


# -- ingress rules -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IngressPath:
    """One path of an ingress rule: requests whose path matches `address` go to `endpoint`.

    `uid` identifies the path for upserts and removals. `endpoint` is a Service name (Kubernetes
    Ingress) or a Gloo Upstream name; `port` is the Service port (a Gloo Upstream carries its
    own port, so Gloo paths read back with `port=None`).
    """

    uid: str
    address: str
    endpoint: str
    port: int | None = None

    def __post_init__(self) -> None:
        _require(self.uid, "IngressPath.uid")
        _require(self.address, "IngressPath.address")
        _require(self.endpoint, "IngressPath.endpoint")
        if self.port is not None:
            _port_number(self.port, "IngressPath.port")


@dataclass(frozen=True, slots=True)
class Rule:
    """The paths of one host of one ingress (or Gloo VirtualService), in their order."""

    ingress: str
    host: str
    paths: tuple[IngressPath, ...]

    def path(self, uid: str) -> IngressPath | None:
        """The path with this uid, if any."""
        return next((p for p in self.paths if p.uid == uid), None)


@dataclass(frozen=True, slots=True)
class UpsertPaths(Command):
    """Insert the paths into the host's rule, replacing those with the same uid in place."""

    ingress: str
    host: str
    paths: Sequence[IngressPath]

    def __post_init__(self) -> None:
        _require(self.ingress, "UpsertPaths.ingress")
        _require(self.host, "UpsertPaths.host")
        _tuple(self, "paths")
        uids = [p.uid for p in self.paths]
        if len(set(uids)) != len(uids):
            raise ValueError(f"UpsertPaths has the same uid twice: {uids}")


@dataclass(frozen=True, slots=True)
class RemovePaths(Command):
    """Remove the host's paths with these uids (given as uids or as `IngressPath`s); uids
    that are not there are ignored."""

    ingress: str
    host: str
    uids: Sequence[str | IngressPath]

    def __post_init__(self) -> None:
        _require(self.ingress, "RemovePaths.ingress")
        _require(self.host, "RemovePaths.host")
        _tuple(self, "uids")
        uids = tuple(u.uid if isinstance(u, IngressPath) else u for u in self.uids)
        for uid in uids:
            _require(uid, "a RemovePaths uid")
        _set(self, "uids", uids)


IngressRuleCommand: TypeAlias = UpsertPaths | RemovePaths


# -- network policies --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PodPeer:
    """Pods matching `selector` (in the policy's namespace, or in the namespaces matching
    `namespace_selector`)."""

    selector: SelectorLike
    namespace_selector: SelectorLike | None = None

    def __post_init__(self) -> None:
        _set(self, "selector", parse_selector(self.selector))
        if self.namespace_selector is not None:
            _set(self, "namespace_selector", parse_selector(self.namespace_selector))

    def manifest(self) -> dict[str, Any]:
        assert isinstance(self.selector, Selector)
        out: dict[str, Any] = {"podSelector": label_selector(self.selector)}
        if self.namespace_selector is not None:
            assert isinstance(self.namespace_selector, Selector)
            out["namespaceSelector"] = label_selector(self.namespace_selector)
        return out


@dataclass(frozen=True, slots=True)
class IPBlock:
    """Addresses in `cidr` (CIDR notation) except those in `except_`."""

    cidr: str
    except_: Sequence[str] = ()

    def __post_init__(self) -> None:
        _require(self.cidr, "IPBlock.cidr")
        if "/" not in self.cidr:
            raise ValueError(
                f"IPBlock.cidr must be in CIDR notation (a.b.c.d/n), got {self.cidr!r}"
            )
        _tuple(self, "except_")

    def manifest(self) -> dict[str, Any]:
        block: dict[str, Any] = {"cidr": self.cidr}
        if self.except_:
            block["except"] = list(self.except_)
        return {"ipBlock": block}


Peer: TypeAlias = PodPeer | IPBlock


@dataclass(frozen=True, slots=True)
class PolicyPort:
    """A port (number or named container port), optionally a range up to `end_port`."""

    port: int | str
    protocol: Protocol = "TCP"
    end_port: int | None = None

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"port": self.port, "protocol": self.protocol}
        if self.end_port is not None:
            out["endPort"] = self.end_port
        return out


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One ingress or egress rule: traffic with any of `peers` on any of `ports`.

    Empty `peers` means every peer, empty `ports` every port; a rule with both allows only those
    peers, only on those ports (Cloudsim put ports and peers in separate rules, so a port
    opened to one peer was open to all).
    """

    peers: Sequence[Peer] = ()
    ports: Sequence[int | PolicyPort] = ()

    def __post_init__(self) -> None:
        _tuple(self, "peers")
        _tuple(self, "ports")
        for port in self.ports:
            if not isinstance(port, PolicyPort):
                _port_number(port, "a PolicyRule port")

    def manifest(self, direction: Literal["from", "to"]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.peers:
            out[direction] = [p.manifest() for p in self.peers]
        if self.ports:
            out["ports"] = [
                p.manifest() if isinstance(p, PolicyPort) else {"port": p, "protocol": "TCP"}
                for p in self.ports
            ]
        return out


@dataclass(frozen=True, slots=True)
class CreateNetworkPolicy(Command):
    """Create a network policy for the pods `pod_selector` matches.

    The selected pods accept only what `ingress` allows and reach only what `egress` allows
    (both directions are isolated, as in Cloudsim); `allow_all_outbound=True` adds an egress
    rule that allows everything (e.g. the internet).
    """

    name: str
    pod_selector: SelectorLike
    ingress: Sequence[PolicyRule] = ()
    egress: Sequence[PolicyRule] = ()
    allow_all_outbound: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    policy_types: Sequence[Literal["Ingress", "Egress"]] = ("Ingress", "Egress")

    def __post_init__(self) -> None:
        _require(self.name, "CreateNetworkPolicy.name")
        _set(self, "pod_selector", parse_selector(self.pod_selector))
        for name in ("ingress", "egress", "policy_types"):
            _tuple(self, name)
        _dict(self, "labels")

    def manifest(self) -> dict[str, Any]:
        assert isinstance(self.pod_selector, Selector)
        egress = [r.manifest("to") for r in self.egress]
        if self.allow_all_outbound:
            egress.append({})
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(self.name, self.labels),
            "spec": {
                "podSelector": label_selector(self.pod_selector),
                "ingress": [r.manifest("from") for r in self.ingress],
                "egress": egress,
                "policyTypes": list(self.policy_types),
            },
        }


@dataclass(frozen=True, slots=True)
class RemoveNetworkPolicy(Command):
    """Delete one network policy."""

    name: str

    def __post_init__(self) -> None:
        _require(self.name, "RemoveNetworkPolicy.name")


@dataclass(frozen=True, slots=True)
class RemoveNetworkPolicies(Command):
    """Delete every network policy the label selector matches (`deletecollection`)."""

    selector: SelectorLike

    def __post_init__(self) -> None:
        parsed = parse_selector(self.selector)
        if not parsed.requirements:
            raise ValueError("RemoveNetworkPolicies needs a non-empty selector")
        _set(self, "selector", parsed)


NetworkPolicyCommand: TypeAlias = CreateNetworkPolicy | RemoveNetworkPolicy | RemoveNetworkPolicies


# -- configurations ----------------------------------------------------------------------------


def _check_data(data: Mapping[str, str], binary: Mapping[str, bytes], what: str) -> None:
    both = set(data) & set(binary)
    if both:
        raise ValueError(f"{what}: keys {sorted(both)} are in both data and binary_data")
    for key, value in data.items():
        if not isinstance(value, str):
            raise ValueError(f"{what}: data[{key!r}] must be str (bytes go in binary_data)")
    for key, blob in binary.items():
        if not isinstance(blob, bytes):
            raise ValueError(f"{what}: binary_data[{key!r}] must be bytes")


def _encode_binary(binary: Mapping[str, bytes]) -> dict[str, str]:
    return {key: base64.b64encode(blob).decode("ascii") for key, blob in binary.items()}


@dataclass(frozen=True, slots=True)
class CreateConfiguration(Command):
    """Create a ConfigMap with text `data` and `binary_data` (sent base64, as the API wants)."""

    name: str
    data: Mapping[str, str] = field(default_factory=dict)
    binary_data: Mapping[str, bytes] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.name, "CreateConfiguration.name")
        for name in ("data", "binary_data", "labels"):
            _dict(self, name)
        _check_data(self.data, self.binary_data, f"CreateConfiguration {self.name!r}")

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta(self.name, self.labels),
        }
        if self.data:
            out["data"] = dict(self.data)
        if self.binary_data:
            out["binaryData"] = _encode_binary(self.binary_data)
        return out


@dataclass(frozen=True, slots=True)
class UpdateConfiguration(Command):
    """Replace a ConfigMap's `data` and `binary_data` (and `labels`, when given).

    Read, changed and written with the read resourceVersion; a concurrent writer's 409 makes
    it read and write again, so neither write is lost."""

    name: str
    data: Mapping[str, str] = field(default_factory=dict)
    binary_data: Mapping[str, bytes] = field(default_factory=dict)
    labels: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        _require(self.name, "UpdateConfiguration.name")
        _dict(self, "data")
        _dict(self, "binary_data")
        if self.labels is not None:
            _dict(self, "labels")
        _check_data(self.data, self.binary_data, f"UpdateConfiguration {self.name!r}")

    def apply_to(self, current: KubeObject) -> dict[str, Any]:
        """The new object: `current` with this command's data (pure)."""
        updated: dict[str, Any] = dict(current)
        meta = dict(current.get("metadata") or {})
        if self.labels is not None:
            meta["labels"] = dict(self.labels)
        updated["metadata"] = meta
        updated.pop("data", None)
        updated.pop("binaryData", None)
        if self.data:
            updated["data"] = dict(self.data)
        if self.binary_data:
            updated["binaryData"] = _encode_binary(self.binary_data)
        return updated


@dataclass(frozen=True, slots=True)
class DeleteConfiguration(Command):
    """Delete one ConfigMap."""

    name: str

    def __post_init__(self) -> None:
        _require(self.name, "DeleteConfiguration.name")


@dataclass(frozen=True, slots=True)
class DeleteConfigurations(Command):
    """Delete every ConfigMap the label selector matches (`deletecollection`)."""

    selector: SelectorLike

    def __post_init__(self) -> None:
        parsed = parse_selector(self.selector)
        if not parsed.requirements:
            raise ValueError("DeleteConfigurations needs a non-empty selector")
        _set(self, "selector", parsed)


ConfigurationCommand: TypeAlias = (
    CreateConfiguration | UpdateConfiguration | DeleteConfiguration | DeleteConfigurations
)
