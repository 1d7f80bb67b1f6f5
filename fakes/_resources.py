"""The table of resource kinds the fake serves, and the registry that looks them up.

What this module is for: everything the fake knows about a kind is one row (`ResourceType`):
group, version, plural, Kind, scope, subresources, short names, categories, verbs, which field
selectors it supports and how each reads its value, whether writes bump `generation`, whether
it has a `status` subresource, whether DELETE returns the object. The store, the HTTP routes,
discovery and RBAC all read this table, so adding a kind (a CRD, a new subresource such as
`deployments/scale`) is adding a row, not code. Pure data: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Registry", "ResourceType", "Subresource", "builtin_resources"]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

FieldGetter = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True, slots=True)
class Subresource:
    """A subresource such as `status` or `scale` as discovery describes it.

    `group`/`version`/`kind` name the object the subresource speaks when it differs from the
    parent's (e.g. `scale` speaks `autoscaling/v1` `Scale`); empty means the parent's.
    """

    name: str
    verbs: tuple[str, ...] = ("get", "patch", "update")
    kind: str = ""
    group: str = ""
    version: str = ""


def _path(path: str, default: str = "") -> FieldGetter:
    keys = path.split(".")

    def get(obj: Mapping[str, Any]) -> str:
        value: Any = obj
        for key in keys:
            if not isinstance(value, Mapping):
                return default
            value = value.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return get


_META_FIELDS: dict[str, FieldGetter] = {
    "metadata.name": _path("metadata.name"),
    "metadata.namespace": _path("metadata.namespace"),
}


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One kind the fake serves (a row of the table).

    `field_selectors` maps each supported field label to a function reading its value from
    the object (`metadata.name` and `metadata.namespace` are always added). `generation`:
    writes that change anything but metadata and status bump `metadata.generation`.
    `status_subresource`: the main endpoint ignores status changes and `<kind>/status` ignores
    all but status. `returns_deleted_object`: DELETE answers with the object rather than a
    success Status (pods, service accounts, PVs, PVCs). `custom`: a custom resource (list items
    carry kind/apiVersion, strategic merge patch is refused).
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[Subresource, ...] = ()
    field_selectors: Mapping[str, FieldGetter] = field(default_factory=dict)
    generation: bool = False
    status_subresource: bool = False
    returns_deleted_object: bool = False
    custom: bool = False

    def __post_init__(self) -> None:
        if not self.singular:
            object.__setattr__(self, "singular", self.kind.lower())
        fields = dict(_META_FIELDS)
        fields.update(self.field_selectors)
        object.__setattr__(self, "field_selectors", fields)
        if self.status_subresource and not any(s.name == "status" for s in self.subresources):
            object.__setattr__(self, "subresources", (*self.subresources, Subresource("status")))

    @property
    def api_version(self) -> str:
        """`v1` for the core group, `apps/v1` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def qualified(self) -> str:
        """`pods`, `deployments.apps`: how error messages name the resource."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def subresource(self, name: str) -> Subresource | None:
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None

    def with_subresource(self, sub: Subresource) -> ResourceType:
        """A copy of this row with `sub` added or replaced (for companion modules)."""
        others = tuple(s for s in self.subresources if s.name != sub.name)
        return replace(self, subresources=(*others, sub))


class Registry:
    """The kinds served, looked up by (group, version, plural), by Kind, or by short name.

    Mutable only through `register`, so a CRD (or a companion module adding a subresource)
    can extend a running fake. Iteration order is registration order, which discovery keeps.
    """

    def __init__(self, resources: Iterable[ResourceType] = ()) -> None:
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        for resource in resources:
            self.register(resource)

    def register(self, resource: ResourceType) -> None:
        """Add a kind, or replace the row with the same group, version and plural."""
        self._by_path[(resource.group, resource.version, resource.plural)] = resource
        self._by_kind[(resource.api_version, resource.kind)] = resource

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._by_path.values()))

    def __len__(self) -> int:
        return len(self._by_path)

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        return self._by_kind.get((api_version, kind))

    def get(self, name: str) -> ResourceType:
        """Look a kind up by plural, `plural.group`, Kind or short name (for tests and tools).

        Raises `KeyError` naming the kinds served when nothing matches.
        """
        plural, _, group = name.partition(".")
        for resource in self._by_path.values():
            if group and resource.group != group:
                continue
            if plural in (resource.plural, resource.kind, resource.singular) or (
                plural in resource.short_names
            ):
                return resource
        known = ", ".join(sorted(r.qualified for r in self._by_path.values()))
        raise KeyError(f"no resource named {name!r}; served: {known}")

    def groups(self) -> dict[str, list[str]]:
        """Group name -> versions served, in registration order ("" is the core group)."""
        out: dict[str, list[str]] = {}
        for resource in self._by_path.values():
            versions = out.setdefault(resource.group, [])
            if resource.version not in versions:
                versions.append(resource.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [r for r in self._by_path.values() if r.group == group and r.version == version]


_STATUS = Subresource("status")

_POD_FIELDS: dict[str, FieldGetter] = {
    "spec.nodeName": _path("spec.nodeName"),
    "spec.restartPolicy": _path("spec.restartPolicy"),
    "spec.schedulerName": _path("spec.schedulerName"),
    "spec.serviceAccountName": _path("spec.serviceAccountName"),
    "spec.hostNetwork": _path("spec.hostNetwork", "false"),
    "status.phase": _path("status.phase"),
    "status.podIP": _path("status.podIP"),
    "status.nominatedNodeName": _path("status.nominatedNodeName"),
}

_EVENT_FIELDS: dict[str, FieldGetter] = {
    **{
        f"involvedObject.{key}": _path(f"involvedObject.{key}")
        for key in (
            "kind",
            "namespace",
            "name",
            "uid",
            "apiVersion",
            "resourceVersion",
            "fieldPath",
        )
    },
    "reason": _path("reason"),
    "reportingComponent": _path("reportingComponent"),
    "source": _path("source.component"),
    "type": _path("type"),
}


def builtin_resources() -> list[ResourceType]:
    """The kinds rxkube touches (issue 3), with their real discovery attributes."""
    core = "", "v1"
    apps = "apps", "v1"
    net = "networking.k8s.io", "v1"
    rbac = "rbac.authorization.k8s.io", "v1"
    all_ = ("all",)
    return [
        ResourceType(
            *core,
            "pods",
            "Pod",
            True,
            short_names=("po",),
            categories=all_,
            # log, exec, eviction, binding: added with their handlers (issue 5), so that
            # discovery never advertises a subresource nobody serves.
            subresources=(_STATUS,),
            field_selectors=_POD_FIELDS,
            status_subresource=True,
            returns_deleted_object=True,
        ),
        ResourceType(
            *core,
            "services",
            "Service",
            True,
            short_names=("svc",),
            categories=all_,
            status_subresource=True,
        ),
        ResourceType(*core, "configmaps", "ConfigMap", True, short_names=("cm",)),
        ResourceType(
            *core,
            "secrets",
            "Secret",
            True,
            field_selectors={"type": _path("type")},
        ),
        ResourceType(
            *core,
            "serviceaccounts",
            "ServiceAccount",
            True,
            short_names=("sa",),
            returns_deleted_object=True,
        ),
        ResourceType(
            *core,
            "nodes",
            "Node",
            False,
            short_names=("no",),
            field_selectors={"spec.unschedulable": _path("spec.unschedulable", "false")},
            status_subresource=True,
        ),
        ResourceType(
            *core,
            "events",
            "Event",
            True,
            short_names=("ev",),
            field_selectors=_EVENT_FIELDS,
        ),
        ResourceType(
            *core,
            "namespaces",
            "Namespace",
            False,
            short_names=("ns",),
            verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
            field_selectors={"status.phase": _path("status.phase")},
            status_subresource=True,
        ),
        ResourceType(
            *apps,
            "deployments",
            "Deployment",
            True,
            short_names=("deploy",),
            categories=all_,
            generation=True,
            status_subresource=True,
        ),
        ResourceType(
            *apps,
            "replicasets",
            "ReplicaSet",
            True,
            short_names=("rs",),
            categories=all_,
            field_selectors={"status.replicas": _path("status.replicas", "0")},
            generation=True,
            status_subresource=True,
        ),
        # batch/v1: `kubectl create job|cronjob`; the simulation runs a Job's pods (_sim_jobs).
        ResourceType(
            "batch",
            "v1",
            "jobs",
            "Job",
            True,
            categories=all_,
            generation=True,
            status_subresource=True,
        ),
        ResourceType(
            "batch",
            "v1",
            "cronjobs",
            "CronJob",
            True,
            short_names=("cj",),
            categories=all_,
            generation=True,
            status_subresource=True,
        ),
        ResourceType(
            *net,
            "ingresses",
            "Ingress",
            True,
            short_names=("ing",),
            generation=True,
            status_subresource=True,
        ),
        ResourceType(
            *net,
            "networkpolicies",
            "NetworkPolicy",
            True,
            short_names=("netpol",),
            generation=True,
        ),
        # deploy/ ships a PodDisruptionBudget for rxkube itself (issue 12): `kubectl apply -k`.
        ResourceType(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            True,
            short_names=("pdb",),
            generation=True,
            status_subresource=True,
        ),
        # `kubectl create quota|priorityclass`. No quota controller: status.used is never computed
        # and nothing is enforced (admission copies spec.hard to status.hard).
        ResourceType(
            *core,
            "resourcequotas",
            "ResourceQuota",
            True,
            short_names=("quota",),
            status_subresource=True,
        ),
        ResourceType(
            "scheduling.k8s.io",
            "v1",
            "priorityclasses",
            "PriorityClass",
            False,
            short_names=("pc",),
        ),
        ResourceType(*rbac, "roles", "Role", True),
        ResourceType(*rbac, "rolebindings", "RoleBinding", True),
        ResourceType(*rbac, "clusterroles", "ClusterRole", False),
        ResourceType(*rbac, "clusterrolebindings", "ClusterRoleBinding", False),
        ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
        # Creating a CRD serves its kind (see _crds.py).
        ResourceType(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            short_names=("crd", "crds"),
            categories=("api-extensions",),
            status_subresource=True,
        ),
        # Gloo's custom resources (DESIGN: the ingress_rules sink has a VirtualService flavour).
        ResourceType(
            "gateway.solo.io",
            "v1",
            "virtualservices",
            "VirtualService",
            True,
            short_names=("vs",),
            generation=True,
            custom=True,
        ),
        ResourceType(
            "gloo.solo.io",
            "v1",
            "upstreams",
            "Upstream",
            True,
            short_names=("us",),
            generation=True,
            custom=True,
        ),
    ]
