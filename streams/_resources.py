"""`Resource`: what a request is about, for any kind, in one small record (lightkube-style).

What this module is for: naming an API resource by group, version and plural, and building
its URL paths (wire reference section 1.1) and its human names (`deployments.apps`, used in
errors, RBAC hints and stream ids). One generic record replaces a class per kind; the kinds
rxkube itself uses are predefined constants. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "EVENTS",
    "INGRESSES",
    "LEASES",
    "NAMESPACES",
    "NETWORK_POLICIES",
    "NODES",
    "PODS",
    "REPLICASETS",
    "SECRETS",
    "SERVICES",
    "UPSTREAMS",
    "VIRTUAL_SERVICES",
    "Resource",
]


def _segment(value: str, what: str) -> str:
    # Names, namespaces and subresources are DNS labels/subdomains; refusing separators here
    # means a bad name can never address another object (or another path) by accident.
    if not value or "/" in value or value in (".", ".."):
        raise ValueError(f"invalid {what} {value!r}: must be a non-empty name without '/'")
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class Resource:
    """An API resource: `Resource("apps", "v1", "deployments", "Deployment")`.

    `group` is `""` for the core group. `namespaced=False` for cluster-scoped kinds (nodes,
    namespaces). Paths follow wire reference section 1.1:

        PODS.collection_path("apps")        -> /api/v1/namespaces/apps/pods
        PODS.collection_path(None)          -> /api/v1/pods          (all namespaces)
        DEPLOYMENTS.object_path("web", "apps", "scale")
                                            -> /apis/apps/v1/namespaces/apps/deployments/web/scale
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    def __post_init__(self) -> None:
        for what in ("version", "plural", "kind"):
            if not getattr(self, what):
                raise ValueError(f"Resource.{what} must not be empty")
        if "/" in self.group or "/" in self.plural or "/" in self.version:
            raise ValueError(f"invalid resource {self.group}/{self.version}/{self.plural}")

    @property
    def api_version(self) -> str:
        """`apps/v1`, or `v1` for the core group: the objects' `apiVersion`."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified_name(self) -> str:
        """`deployments.apps`, or `pods` for the core group (as the API server names it in
        messages and as RBAC rules spell `resources` + `apiGroups`)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def _prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection_path(self, namespace: str | None) -> str:
        """The collection URL path; `namespace=None` is all namespaces (list/watch only)."""
        if namespace is None or not self.namespaced:
            if namespace is not None:
                raise ValueError(f"{self.qualified_name} is cluster-scoped: no namespace")
            return f"{self._prefix}/{self.plural}"
        return f"{self._prefix}/namespaces/{_segment(namespace, 'namespace')}/{self.plural}"

    def object_path(
        self, name: str, namespace: str | None = None, subresource: str | None = None
    ) -> str:
        """One object's URL path (optionally a subresource: `status`, `scale`, `log`...)."""
        if self.namespaced and namespace is None:
            raise ValueError(f"{self.qualified_name} is namespaced: a namespace is needed")
        path = f"{self.collection_path(namespace)}/{_segment(name, 'name')}"
        if subresource is not None:
            path += f"/{_segment(subresource, 'subresource')}"
        return path


PODS = Resource("", "v1", "pods", "Pod")
SERVICES = Resource("", "v1", "services", "Service")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
EVENTS = Resource("", "v1", "events", "Event")
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet")
INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress")
NETWORK_POLICIES = Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
VIRTUAL_SERVICES = Resource("gateway.solo.io", "v1", "virtualservices", "VirtualService")
"""Gloo Edge's VirtualService (the orchestrator's second ingress_rules implementation)."""
UPSTREAMS = Resource("gloo.solo.io", "v1", "upstreams", "Upstream")
