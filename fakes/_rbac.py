"""Bearer-token authentication and RBAC authorization from the stored RBAC objects.

What this module is for: giving tests a real 401 (unknown or missing token) and a real 403
whose message names the verb, resource and namespace, and that goes away once a Role and
RoleBinding granting it are created (reference section 2.3, Forbidden texts). Authorization
reads Roles, RoleBindings, ClusterRoles and ClusterRoleBindings from the store on every
request, as the real RBAC authorizer reads its informers. Members of `system:masters` are
allowed everything (as on a real cluster). Discovery, /version and health paths are open to
every authenticated user (the default `system:discovery` and `system:public-info-viewer`
bindings); every authenticated user may also review its own access (`system:basic-user`).
`Authorizer.rules_for` is the only evaluation: requests, `kubectl auth can-i` (the access
reviews of `_access_reviews`) and impersonation (`Impersonate-User`, kubectl `--as`) all read
it. `Access` is the key of the API server's per-user accounting of authorized requests.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from rxkube.fakes._errors import StatusError
from rxkube.fakes._store import Store

__all__ = ["Access", "UserInfo"]

ANONYMOUS = "system:anonymous"
MASTERS = "system:masters"
_OPEN_PATHS = ("/api", "/apis", "/version", "/healthz", "/livez", "/readyz", "/openapi")
_ADMIN_RULES: tuple[Mapping[str, Any], ...] = (
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
)
# The default ClusterRoles bound to `system:authenticated` on a real cluster.
_AUTHENTICATED_RULES: tuple[Mapping[str, Any], ...] = (
    {
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    },
    {
        "verbs": ["create"],
        "apiGroups": ["authentication.k8s.io"],
        "resources": ["selfsubjectreviews"],
    },
    {
        "verbs": ["get"],
        "nonResourceURLs": sorted({u for p in _OPEN_PATHS for u in (p, p + "/*")}),
    },
)


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
    """RBAC over the store's objects; `enabled=False` allows everything.

    `rules_for` is the one evaluation: a request is allowed when one of the rules granted
    to its user (in its namespace, cluster-wide ones included) allows it, and the access
    reviews (`_access_reviews`) answer `kubectl auth can-i` from the same rules."""

    def __init__(self, store: Store, *, enabled: bool) -> None:
        self.store = store
        self.enabled = enabled

    def allowed(self, user: UserInfo, attrs: Attributes) -> bool:
        if not self.enabled:
            return True
        namespace = attrs.namespace if attrs.is_resource else ""
        return any(_rule_allows(rule, attrs) for rule in self.rules_for(user, namespace))

    def rules_for(self, user: UserInfo, namespace: str) -> Iterator[Mapping[str, Any]]:
        """The rules granted to `user` in `namespace` ("" = cluster-wide ones only), lazily
        (`allowed` stops at the first that allows): everything when RBAC is off and for
        `system:masters` (the `cluster-admin` binding), the default `system:discovery`,
        `system:basic-user` and `system:public-info-viewer` rules for every authenticated
        user, then the rules of the ClusterRoleBindings and of the RoleBindings of
        `namespace` naming the user."""
        if not self.enabled or MASTERS in user.groups:
            yield from _ADMIN_RULES
        if user.name != ANONYMOUS:
            yield from _AUTHENTICATED_RULES
        for binding in self.store.entries("clusterrolebindings"):
            yield from self._binding_rules(binding.object(), user, "")
        if namespace:
            for binding in self.store.entries("rolebindings"):
                if binding.namespace == namespace:
                    yield from self._binding_rules(binding.object(), user, namespace)

    def _binding_rules(
        self, binding: Mapping[str, Any], user: UserInfo, namespace: str
    ) -> list[Mapping[str, Any]]:
        subjects = binding.get("subjects") or ()
        if not any(_subject_matches(s, user, namespace) for s in subjects):
            return []
        return self._rules(binding.get("roleRef") or {}, namespace)

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

    def impersonate(self, user: UserInfo, headers: Mapping[str, str]) -> UserInfo:
        """The user a request acts as: `user`, or the one its `Impersonate-User` and
        `Impersonate-Group` headers name (kubectl `--as`, `--as-group`) when `user` may
        `impersonate` them (RBAC verb `impersonate` on `users`, `groups`, or
        `serviceaccounts` in the account's namespace), else the real 403."""
        name = headers.get("impersonate-user", "").strip()
        groups = tuple(
            g.strip() for g in headers.get("impersonate-group", "").split(",") if g.strip()
        )
        if not name and not groups:
            return user
        if not name:
            raise StatusError.bad_request(f"requested {list(groups)} without impersonating a user")
        prefix = "system:serviceaccount:"
        account = name[len(prefix) :].split(":") if name.startswith(prefix) else []
        if len(account) == 2:
            wanted = [Attributes("impersonate", "", "serviceaccounts", "", account[0], account[1])]
            target = UserInfo.service_account(account[0], account[1])
            target = UserInfo(target.name, (*target.groups, *groups))
        else:
            wanted = [Attributes("impersonate", "", "users", name=name)]
            target = UserInfo(name, groups)
        wanted += [Attributes("impersonate", "", "groups", name=g) for g in groups]
        for attrs in wanted:
            self.check(user, attrs)
        return target

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
