"""Bearer-token authentication and RBAC authorization from the stored RBAC objects.

What this module is for: giving tests a real 401 (unknown or missing token) and a real 403
whose message names the verb, resource and namespace, and that goes away once a Role and
RoleBinding granting it are created (reference section 2.3, Forbidden texts). Authorization
reads Roles, RoleBindings, ClusterRoles and ClusterRoleBindings from the store on every
request, as the real RBAC authorizer reads its informers. Members of `system:masters` are
allowed everything (as on a real cluster). Discovery, /version and health paths are open to
every authenticated user (the default `system:discovery` and `system:public-info-viewer`
bindings). `Access` is the key of the API server's per-user accounting of authorized
requests. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from rxkube.fakes._errors import StatusError
from rxkube.fakes._store import Store

__all__ = ["Access", "UserInfo"]

ANONYMOUS = "system:anonymous"
MASTERS = "system:masters"
_OPEN_PATHS = ("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi")


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated user: name and groups (`system:authenticated` is implied)."""

    name: str
    groups: tuple[str, ...] = ()

    @classmethod
    def service_account(cls, namespace: str, name: str) -> UserInfo:
        return cls(
            f"system:serviceaccount:{namespace}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
        )

    def all_groups(self) -> tuple[str, ...]:
        if self.name == ANONYMOUS:
            return (*self.groups, "system:unauthenticated")
        return (*self.groups, "system:authenticated")


class Access(NamedTuple):
    """One kind of authorized request, as the API server's per-user accounting counts it
    (`ApiServer.access`): who asked, the RBAC verb, what (`resource` as RBAC names it:
    `pods`, `pods/log`, `leases.coordination.k8s.io`; a non-resource request's path, which
    starts with `/`) and whether authorization allowed it (False: answered 403)."""

    user: str
    verb: str
    resource: str
    allowed: bool


@dataclass(frozen=True, slots=True)
class Attributes:
    """What is being asked: the RBAC request attributes."""

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)

    @property
    def target(self) -> str:
        """What is asked for, as RBAC names it: `pods/log`, `leases.coordination.k8s.io`, or
        the path of a non-resource request."""
        if not self.is_resource:
            return self.path
        resource = self.resource + (f"/{self.subresource}" if self.subresource else "")
        if not self.group:
            return resource
        plural, _, sub = resource.partition("/")
        return f"{plural}.{self.group}" + (f"/{sub}" if sub else "")


class Authenticator:
    """Token -> user. When `tokens` is None authentication is off and everyone is admin."""

    def __init__(self, tokens: Mapping[str, UserInfo] | None) -> None:
        self.enabled = tokens is not None
        self.tokens: dict[str, UserInfo] = dict(tokens or {})

    def authenticate(self, authorization: str | None) -> UserInfo:
        if not self.enabled:
            return UserInfo("admin", (MASTERS,))
        if not authorization:
            raise StatusError.unauthorized()
        scheme, _, token = authorization.partition(" ")
        user = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if user is None:
            raise StatusError.unauthorized()
        return user


def _matches(values: Iterable[str], wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values)


def _rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    verbs = rule.get("verbs") or ()
    if not _matches(verbs, attrs.verb):
        return False
    if not attrs.is_resource:
        for url in rule.get("nonResourceURLs") or ():
            if (
                url == attrs.path
                or url == "*"
                or (url.endswith("*") and attrs.path.startswith(url[:-1]))
            ):
                return True
        return False
    if not _matches(rule.get("apiGroups") or (), attrs.group):
        return False
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    resources = rule.get("resources") or ()
    if not any(
        r in ("*", resource)
        or (attrs.subresource and r == f"*/{attrs.subresource}")
        or (r == f"{attrs.resource}/*" and attrs.subresource)
        for r in resources
    ):
        return False
    names = rule.get("resourceNames") or ()
    return not names or attrs.name in names


def _subject_matches(subject: Mapping[str, Any], user: UserInfo, binding_ns: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name")
    if kind == "User":
        return bool(name == user.name)
    if kind == "Group":
        return name in user.all_groups()
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        return user.name == f"system:serviceaccount:{ns}:{name}"
    return False


class Authorizer:
    """RBAC over the store's objects; `enabled=False` allows everything."""

    def __init__(self, store: Store, *, enabled: bool) -> None:
        self.store = store
        self.enabled = enabled

    def allowed(self, user: UserInfo, attrs: Attributes) -> bool:
        if not self.enabled or MASTERS in user.groups:
            return True
        if (
            not attrs.is_resource
            and user.name != ANONYMOUS
            and any(attrs.path == p or attrs.path.startswith(p + "/") for p in _OPEN_PATHS)
        ):
            return True
        for binding in self.store.entries("clusterrolebindings"):
            obj = binding.object()
            if self._binding_allows(obj, user, attrs, ""):
                return True
        if attrs.namespace and attrs.is_resource:
            for binding in self.store.entries("rolebindings"):
                if binding.namespace != attrs.namespace:
                    continue
                if self._binding_allows(binding.object(), user, attrs, attrs.namespace):
                    return True
        return False

    def _binding_allows(
        self, binding: Mapping[str, Any], user: UserInfo, attrs: Attributes, namespace: str
    ) -> bool:
        subjects = binding.get("subjects") or ()
        if not any(_subject_matches(s, user, namespace) for s in subjects):
            return False
        ref = binding.get("roleRef") or {}
        rules = self._rules(ref, namespace)
        return any(_rule_allows(rule, attrs) for rule in rules)

    def _rules(self, ref: Mapping[str, Any], namespace: str) -> list[Mapping[str, Any]]:
        kind = ref.get("kind")
        name = str(ref.get("name") or "")
        try:
            if kind == "ClusterRole":
                role = self.store.get("clusterroles", "", name)
            elif kind == "Role" and namespace:
                role = self.store.get("roles", namespace, name)
            else:
                return []
        except StatusError:
            return []
        return list(role.get("rules") or ())

    def check(self, user: UserInfo, attrs: Attributes) -> None:
        """Raise the real 403 when `user` may not do `attrs`."""
        if not self.allowed(user, attrs):
            raise self.forbidden(user, attrs)

    @staticmethod
    def forbidden(user: UserInfo, attrs: Attributes) -> StatusError:
        """The real 403 for `user` asking `attrs`."""
        if not attrs.is_resource:
            return StatusError.forbidden(
                "", "", "", f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
            )
        resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
        where = (
            f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
        )
        return StatusError.forbidden(
            attrs.resource,
            attrs.group,
            attrs.name,
            f'User "{user.name}" cannot {attrs.verb} resource "{resource}" in API group '
            f'"{attrs.group}" {where}',
        )
