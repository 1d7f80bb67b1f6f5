"""Typed views of the Kubernetes objects controllers read: `TypedDict`s, camelCase as on the wire.

What this module is for: giving the decoded JSON (`WatchEvent.object`, `Store` reads) types that
mypy checks, without converting anything: a `Pod` here IS the dict orjson decoded, so reading
`pod["status"]["podIP"]` costs nothing. Fields are optional (`total=False`) where the API may
omit them; `Required` marks what the API server always sets. Only the fields rxkube's controllers
and orchestrator read are listed: more may be present, and the dicts must be treated as
read-only (they are shared by everyone downstream of a watch). Use `typing.cast(Pod, obj)` at
the edge where an object's kind is known. It imports only `typing`; no I/O, no logic.

Reference: the Kubernetes API reference (v1.30+), core/v1 Pod, apps/v1 Deployment,
meta/v1 ObjectMeta, OwnerReference, PartialObjectMetadata and Status.
"""

from __future__ import annotations

from typing import Literal, Required, TypeAlias, TypedDict

__all__ = [
    "ConditionStatus",
    "Container",
    "ContainerPort",
    "ContainerStatus",
    "Deployment",
    "DeploymentCondition",
    "DeploymentSpec",
    "DeploymentStatus",
    "LabelSelector",
    "LabelSelectorRequirement",
    "ManagedFieldsEntry",
    "ObjectMeta",
    "OwnerReference",
    "PartialObjectMetadata",
    "Pod",
    "PodCondition",
    "PodIP",
    "PodPhase",
    "PodSpec",
    "PodStatus",
    "PodTemplateSpec",
    "Status",
    "StatusCause",
    "StatusDetails",
]

ConditionStatus: TypeAlias = Literal["True", "False", "Unknown"]
PodPhase: TypeAlias = Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]


class OwnerReference(TypedDict, total=False):
    apiVersion: Required[str]
    kind: Required[str]
    name: Required[str]
    uid: Required[str]
    controller: bool
    blockOwnerDeletion: bool


class ManagedFieldsEntry(TypedDict, total=False):
    manager: str
    operation: Literal["Apply", "Update"]
    apiVersion: str
    time: str
    fieldsType: str
    fieldsV1: dict[str, object]
    subresource: str


class ObjectMeta(TypedDict, total=False):
    name: str
    generateName: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    deletionGracePeriodSeconds: int
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[OwnerReference]
    finalizers: list[str]
    managedFields: list[ManagedFieldsEntry]


class LabelSelectorRequirement(TypedDict):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str]


class LabelSelector(TypedDict, total=False):
    matchLabels: dict[str, str]
    matchExpressions: list[LabelSelectorRequirement]


class ContainerPort(TypedDict, total=False):
    containerPort: Required[int]
    name: str
    protocol: Literal["TCP", "UDP", "SCTP"]
    hostPort: int
    hostIP: str


class Container(TypedDict, total=False):
    name: Required[str]
    image: str
    imagePullPolicy: Literal["Always", "IfNotPresent", "Never"]
    command: list[str]
    args: list[str]
    ports: list[ContainerPort]
    env: list[dict[str, object]]
    resources: dict[str, dict[str, str]]
    readinessProbe: dict[str, object]
    livenessProbe: dict[str, object]


class PodSpec(TypedDict, total=False):
    containers: Required[list[Container]]
    initContainers: list[Container]
    nodeName: str
    restartPolicy: Literal["Always", "OnFailure", "Never"]
    serviceAccountName: str
    terminationGracePeriodSeconds: int
    hostname: str
    subdomain: str
    nodeSelector: dict[str, str]


class PodCondition(TypedDict, total=False):
    type: Required[str]
    """PodScheduled, Initialized, ContainersReady, Ready, PodReadyToStartContainers, ..."""
    status: Required[ConditionStatus]
    lastProbeTime: str | None
    lastTransitionTime: str
    reason: str
    message: str


class ContainerStatus(TypedDict, total=False):
    name: Required[str]
    ready: Required[bool]
    restartCount: Required[int]
    image: str
    imageID: str
    containerID: str
    started: bool
    state: dict[str, dict[str, object]]
    """One key: `waiting`, `running` or `terminated`."""
    lastState: dict[str, dict[str, object]]


class PodIP(TypedDict):
    ip: str


class PodStatus(TypedDict, total=False):
    phase: PodPhase
    conditions: list[PodCondition]
    podIP: str
    podIPs: list[PodIP]
    hostIP: str
    startTime: str
    containerStatuses: list[ContainerStatus]
    qosClass: str
    reason: str
    message: str


class Pod(TypedDict, total=False):
    apiVersion: Required[str]
    kind: Required[str]
    metadata: Required[ObjectMeta]
    spec: PodSpec
    status: PodStatus


class PodTemplateSpec(TypedDict, total=False):
    metadata: ObjectMeta
    spec: Required[PodSpec]


class DeploymentSpec(TypedDict, total=False):
    replicas: int
    selector: Required[LabelSelector]
    template: Required[PodTemplateSpec]
    strategy: dict[str, object]
    minReadySeconds: int
    revisionHistoryLimit: int
    progressDeadlineSeconds: int
    paused: bool


class DeploymentCondition(TypedDict, total=False):
    type: Required[str]
    status: Required[ConditionStatus]
    lastUpdateTime: str
    lastTransitionTime: str
    reason: str
    message: str


class DeploymentStatus(TypedDict, total=False):
    observedGeneration: int
    replicas: int
    updatedReplicas: int
    readyReplicas: int
    availableReplicas: int
    unavailableReplicas: int
    conditions: list[DeploymentCondition]


class Deployment(TypedDict, total=False):
    apiVersion: Required[str]
    kind: Required[str]
    metadata: Required[ObjectMeta]
    spec: DeploymentSpec
    status: DeploymentStatus


class PartialObjectMetadata(TypedDict, total=False):
    """What a metadata-only watch (`Accept: ...;as=PartialObjectMetadata`) returns."""

    apiVersion: Required[str]
    kind: Required[str]
    metadata: Required[ObjectMeta]


class StatusCause(TypedDict, total=False):
    reason: str
    message: str
    field: str


class StatusDetails(TypedDict, total=False):
    name: str
    group: str
    kind: str
    uid: str
    causes: list[StatusCause]
    retryAfterSeconds: int


class Status(TypedDict, total=False):
    """meta/v1 Status: the body of an API error, and the object of a watch ERROR event."""

    apiVersion: str
    kind: Literal["Status"]
    metadata: dict[str, str]
    status: Literal["Success", "Failure"]
    message: str
    reason: str
    details: StatusDetails
    code: int
