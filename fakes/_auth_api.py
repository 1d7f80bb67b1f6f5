"""The authorization and authentication APIs: access reviews, `whoami`, service account tokens.

What this module is for: `kubectl auth can-i` (a `SelfSubjectAccessReview`, or with `--list`
a `SelfSubjectRulesReview`), `kubectl auth whoami` (a `SelfSubjectReview`) and `kubectl create
token` (the `serviceaccounts/token` subresource, a `TokenRequest`). The reviews are kinds that
are not stored: a POST of the review answers it at once (201, the review with its `status`).
Every answer comes from the fake's own RBAC evaluation (`Authorizer.allowed` and
`Authorizer.rules_for` of `_rbac`), never from a second evaluator, so `can-i` says `yes`
exactly when the same request would pass. `SubjectAccessReview` and
`LocalSubjectAccessReview` ask about another user (RBAC checks that the caller may create
them, as for any kind). A token from `TokenRequest` authenticates as its service account
from then on (expiry is reported, not enforced).

It may import the other modules of `rxkube.fakes`; it writes nothing to the store, only a
token to the server's authenticator.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from rxkube.fakes._errors import StatusCause, StatusError
from rxkube.fakes._http import AnyResponse, Response
from rxkube.fakes._rbac import Attributes, UserInfo
from rxkube.fakes._resources import ResourceType, Subresource
from rxkube.fakes._store import rfc3339

if TYPE_CHECKING:
    from rxkube.fakes._api import ApiServer, RequestContext

__all__: list[str] = []

AUTHORIZATION: Final = "authorization.k8s.io"
AUTHENTICATION: Final = "authentication.k8s.io"
_CREATE: Final = ("create",)
DEFAULT_TOKEN_SECONDS: Final = 3600
ISSUER: Final = "https://kubernetes.default.svc.cluster.local"


def auth_resources() -> list[ResourceType]:
    """The review kinds, as kube-apiserver's discovery lists them (create only)."""
    return [
        ResourceType(
            AUTHORIZATION,
            "v1",
            "localsubjectaccessreviews",
            "LocalSubjectAccessReview",
            True,
            verbs=_CREATE,
        ),
        ResourceType(
            AUTHORIZATION,
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            False,
            verbs=_CREATE,
        ),
        ResourceType(
            AUTHORIZATION,
            "v1",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            False,
            verbs=_CREATE,
        ),
        ResourceType(
            AUTHORIZATION, "v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=_CREATE
        ),
        ResourceType(
            AUTHENTICATION, "v1", "selfsubjectreviews", "SelfSubjectReview", False, verbs=_CREATE
        ),
    ]


def install_auth_api(api: ApiServer) -> None:
    """Serve the reviews and `serviceaccounts/token` on `api` (and list them in discovery)."""
    for resource in auth_resources():
        api.add_collection(resource, _review)
    api.add_subresource(
        "serviceaccounts",
        Subresource(
            "token", verbs=_CREATE, kind="TokenRequest", group=AUTHENTICATION, version="v1"
        ),
        _token_request,
    )


def _invalid(kind: str, group: str, field: str, message: str) -> StatusError:
    return StatusError.invalid(kind, group, "", [StatusCause("FieldValueRequired", message, field)])


def _attributes(kind: str, spec: Mapping[str, Any], namespace: str) -> Attributes:
    resource = spec.get("resourceAttributes")
    if isinstance(resource, Mapping):
        if kind == "LocalSubjectAccessReview" and (resource.get("namespace") or "") != namespace:
            raise _invalid(
                kind,
                AUTHORIZATION,
                "spec.resourceAttributes.namespace",
                "must match metadata.namespace",
            )
        return Attributes(
            str(resource.get("verb") or ""),
            str(resource.get("group") or ""),
            str(resource.get("resource") or ""),
            str(resource.get("subresource") or ""),
            str(resource.get("namespace") or ""),
            str(resource.get("name") or ""),
        )
    other = spec.get("nonResourceAttributes")
    if isinstance(other, Mapping):
        return Attributes(str(other.get("verb") or ""), path=str(other.get("path") or ""))
    raise _invalid(
        kind,
        AUTHORIZATION,
        "spec.resourceAttributes",
        "Required value: exactly one of nonResourceAttributes or resourceAttributes must be "
        "specified",
    )


def _subject(kind: str, spec: Mapping[str, Any], caller: UserInfo) -> UserInfo:
    if kind.startswith("Self"):
        return caller
    name = str(spec.get("user") or "")
    groups = tuple(str(g) for g in spec.get("groups") or ())
    if not name and not groups:
        raise _invalid(
            kind,
            AUTHORIZATION,
            "spec.user",
            'Invalid value: "": at least one of user or group must be specified',
        )
    prefix = "system:serviceaccount:"
    account = name[len(prefix) :].split(":") if name.startswith(prefix) else []
    if len(account) == 2:
        sa = UserInfo.service_account(account[0], account[1])
        return UserInfo(sa.name, (*sa.groups, *groups))
    return UserInfo(name, groups)


def _rules_status(rules: list[Mapping[str, Any]]) -> dict[str, Any]:
    resource_rules: list[dict[str, Any]] = []
    non_resource_rules: list[dict[str, Any]] = []
    for rule in rules:
        verbs = list(rule.get("verbs") or ())
        if rule.get("nonResourceURLs"):
            non_resource_rules.append(
                {"verbs": verbs, "nonResourceURLs": list(rule["nonResourceURLs"])}
            )
            continue
        entry: dict[str, Any] = {
            "verbs": verbs,
            "apiGroups": list(rule.get("apiGroups") or ()),
            "resources": list(rule.get("resources") or ()),
        }
        if rule.get("resourceNames"):
            entry["resourceNames"] = list(rule["resourceNames"])
        resource_rules.append(entry)
    return {
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": False,
    }


async def _review(ctx: RequestContext) -> AnyResponse:
    res = ctx.resource
    if ctx.verb != "create" or ctx.name:
        raise StatusError.method_not_allowed(ctx.request.method, res.plural)
    body = ctx.api.decode_body(ctx.request, res)
    if not isinstance(body, Mapping):
        raise StatusError.bad_request(f"the body of a {res.kind} must be an object")
    spec: Mapping[str, Any] = body.get("spec") or {}
    authorizer = ctx.api.authorizer
    status: dict[str, Any]
    if res.kind == "SelfSubjectReview":
        user = ctx.user
        status = {"userInfo": {"username": user.name, "groups": list(user.all_groups())}}
    elif res.kind == "SelfSubjectRulesReview":
        namespace = str(spec.get("namespace") or "")
        status = _rules_status(list(authorizer.rules_for(ctx.user, namespace)))
    else:
        attrs = _attributes(res.kind, spec, ctx.namespace)
        allowed = authorizer.allowed(_subject(res.kind, spec, ctx.user), attrs)
        status = {"allowed": allowed}
    metadata: dict[str, Any] = {"creationTimestamp": None}
    if ctx.namespace:
        metadata["namespace"] = ctx.namespace
    answer = {
        "kind": res.kind,
        "apiVersion": res.api_version,
        "metadata": metadata,
        "spec": dict(spec),
        "status": status,
    }
    if res.kind == "SelfSubjectReview":
        del answer["spec"]
    return Response(201, orjson.dumps(answer))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


async def _token_request(ctx: RequestContext) -> AnyResponse:
    """`POST .../serviceaccounts/{name}/token`: a bound token for the service account."""
    if ctx.verb != "create":
        raise StatusError.method_not_allowed(ctx.request.method, "serviceaccounts/token")
    account = ctx.store.get("serviceaccounts", ctx.namespace, ctx.name)
    body = ctx.api.decode_body(ctx.request, ctx.resource) if ctx.request.body.strip() else {}
    spec: dict[str, Any] = dict(body.get("spec") or {}) if isinstance(body, Mapping) else {}
    seconds = int(spec.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
    if seconds < 600:
        raise _invalid(
            "TokenRequest",
            AUTHENTICATION,
            "spec.expirationSeconds",
            "Invalid value: may not specify a duration less than 10 minutes",
        )
    audiences = list(spec.get("audiences") or [ISSUER])
    now = int(ctx.store.now())
    user = UserInfo.service_account(ctx.namespace, ctx.name)
    claims = {
        "aud": audiences,
        "exp": now + seconds,
        "iat": now,
        "iss": ISSUER,
        "nbf": now,
        "sub": user.name,
        "kubernetes.io": {
            "namespace": ctx.namespace,
            "serviceaccount": {
                "name": ctx.name,
                "uid": (account.get("metadata") or {}).get("uid", ""),
            },
        },
    }
    # A JWT's shape (header.claims.signature) so clients that decode it can; the signature
    # is random: the fake authenticates by looking the whole token up.
    token = ".".join(
        (
            _b64(orjson.dumps({"alg": "RS256", "kid": "rxkube-fake"})),
            _b64(orjson.dumps(claims)),
            _b64(secrets.token_bytes(32)),
        )
    )
    ctx.api.authenticator.tokens[token] = user
    spec.update({"audiences": audiences, "expirationSeconds": seconds})
    answer = {
        "kind": "TokenRequest",
        "apiVersion": f"{AUTHENTICATION}/v1",
        "metadata": {
            "name": ctx.name,
            "namespace": ctx.namespace,
            "creationTimestamp": rfc3339(now),
        },
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": rfc3339(now + seconds)},
    }
    return Response(201, orjson.dumps(answer))
