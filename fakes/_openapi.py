"""`/openapi/v3` and `/openapi/v2`: the OpenAPI documents kubectl reads before it writes.

What this module is for: kubectl `create` and `apply` (validation on, the default) first ask
`/openapi/v3` which group versions exist, then fetch `/openapi/v3/<api|apis/g>/<v>` and look
for a PATCH operation with `x-kubernetes-group-version-kind` of the kind and a `fieldValidation`
query parameter; found, they send `fieldValidation=Strict` and leave validation to the server
(reference section 8, "OpenAPI"). Client-side apply also builds its strategic merge patch from
the `components.schemas` of that document, and `kubectl explain` prints from it.

The documents are generated from what the fake serves (the registry: kinds, verbs,
subresources) and the schemas of `_schemas` (kubernetes-validate's definitions of Kubernetes
1.32, a real source; custom resources get permissive schemas). Shapes follow kube-openapi's
`handler3`: the index `{"paths": {"apis/apps/v1": {"serverRelativeURL":
"/openapi/v3/apis/apps/v1?hash=<SHA-512, upper-case hex>"}}}`; a document fetched with its
current hash is immutable (`Cache-Control: public, immutable`, `Etag`), a stale hash is
redirected (301) to the current URL. `/openapi/v2` serves the same content as Swagger 2.0 JSON
to clients that accept JSON; kubectl asks v2 only in protobuf and only when v3 failed, and the
protobuf form is not served (406, after which kubectl reports the v3 failure). Documents are
built on first request and rebuilt only when the registry changes (a CRD, a subresource).
It may import the other modules of `rxkube.fakes`; it does no I/O of its own.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Final

import orjson

from rxkube.fakes._errors import StatusError
from rxkube.fakes._http import Request, Response
from rxkube.fakes._resources import ResourceType, Subresource
from rxkube.fakes._schemas import META, REF_PREFIX, Schemas

if TYPE_CHECKING:
    from rxkube.fakes._api import ApiServer

__all__: list[str] = []

JSON: Final = "application/json"
PROTOBUF_V3: Final = "application/com.github.proto-openapi.spec.v3@v1.0+protobuf"
PATCH_TYPES: Final = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_OUTPUT_TYPES: Final = (
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
)
_WATCH_OUTPUT_TYPES: Final = (
    *_OUTPUT_TYPES,
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
)
_DESCRIPTIONS: Final = {
    "dryRun": "When present, indicates that modifications should not be persisted. An invalid "
    "or unrecognized dryRun directive will result in an error response and no further "
    "processing of the request. Valid values are: - All: all dry run stages will be processed",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is making "
    "these changes. The value must be less than or 128 characters long, and only contain "
    "printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the "
    "request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - "
    "Ignore: This will ignore any unknown fields that are silently dropped from the object, "
    "and will ignore all but the last duplicate field that the decoder encounters. This is "
    "the default behavior prior to v1.23. - Warn: This will send a warning via the standard "
    "warning response header for each unknown field that is dropped from the object, and for "
    "each duplicate field that is encountered. The request will still succeed if there are "
    "no other errors, and will only persist the last of any duplicate fields. This is the "
    "default in v1.23+ - Strict: This will fail the request with a BadRequest error if any "
    "unknown fields would be dropped from the object, or if any duplicate fields are "
    "present. The error returned from the server will contain all unknown and duplicate "
    "fields encountered.",
    "force": 'Force is going to "force" Apply requests. It means user will re-acquire '
    "conflicting fields owned by other people. Force flag must be unset for non-apply patch "
    "requests.",
    "pretty": "If 'true', then the output is pretty printed.",
    "name": "name of the {kind}",
    "namespace": "object name and auth scope, such as for teams and projects",
    "labelSelector": "A selector to restrict the list of returned objects by their labels. "
    "Defaults to everything.",
    "fieldSelector": "A selector to restrict the list of returned objects by their fields. "
    "Defaults to everything.",
    "limit": "limit is a maximum number of responses to return for a list call.",
    "continue": "The continue option should be set when retrieving more results from the server.",
    "resourceVersion": "resourceVersion sets a constraint on what resource versions a request "
    "may be served from.",
    "resourceVersionMatch": "resourceVersionMatch determines how resourceVersion is applied "
    "to list calls.",
    "sendInitialEvents": "`sendInitialEvents=true` may be set together with `watch=true`.",
    "timeoutSeconds": "Timeout for the list/watch call.",
    "watch": "Watch for changes to the described resources and return them as a stream of add, "
    "update, and remove notifications. Specify resourceVersion.",
    "allowWatchBookmarks": 'allowWatchBookmarks requests watch events with type "BOOKMARK".',
    "gracePeriodSeconds": "The duration in seconds before the object should be deleted.",
    "orphanDependents": "Deprecated: please use the PropagationPolicy, this field will be "
    "deprecated in 1.7.",
    "propagationPolicy": "Whether and how garbage collection will be performed.",
}
_TYPES: Final = {
    "force": "boolean",
    "allowWatchBookmarks": "boolean",
    "sendInitialEvents": "boolean",
    "watch": "boolean",
    "orphanDependents": "boolean",
    "limit": "integer",
    "timeoutSeconds": "integer",
    "gracePeriodSeconds": "integer",
}
_LIST_PARAMS: Final = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)


def _param(name: str, where: str = "query", kind: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _TYPES.get(name, "string"), "uniqueItems": True}
    out: dict[str, Any] = {
        "name": name,
        "in": where,
        "description": _DESCRIPTIONS[name].replace("{kind}", kind),
        "schema": schema,
    }
    if where == "path":
        out["required"] = True
    return out


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF_PREFIX + name}


def _content(name: str, types: tuple[str, ...] = _OUTPUT_TYPES) -> dict[str, Any]:
    return {media: {"schema": _ref(name)} for media in types}


def _camel(text: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in text.replace("-", ".").split("."))


def _group_prefix(group: str) -> str:
    """`apps` -> `Apps`, `networking.k8s.io` -> `Networking`, "" -> `Core` (kube-openapi)."""
    if not group:
        return "Core"
    return _camel(group.removesuffix(".k8s.io"))


class OpenApiDocuments:
    """Builds, caches and serves the OpenAPI documents of one fake API server."""

    def __init__(self, api: ApiServer, schemas: Schemas) -> None:
        self.api = api
        self.schemas = schemas
        self._signature: tuple[Any, ...] | None = None
        self._v3: dict[str, tuple[bytes, str]] = {}
        self._v2: bytes | None = None

    # -- serving -------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        if request.method != "GET":
            raise StatusError.method_not_allowed(request.method, request.path)
        path = request.path.rstrip("/")
        if path == "/openapi/v2":
            return self._serve_v2(request)
        if path == "/openapi/v3":
            self._refresh()
            index = {
                "paths": {
                    gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
                    for gv, (_, digest) in self._v3.items()
                }
            }
            return Response(
                200, orjson.dumps(index), [("Cache-Control", "no-cache, private")], JSON
            )
        if path.startswith("/openapi/v3/"):
            return self._serve_v3(request, path[len("/openapi/v3/") :])
        raise StatusError(404, "NotFound", "the server could not find the requested resource")

    def _serve_v3(self, request: Request, gv: str) -> Response:
        self._refresh()
        found = self._v3.get(gv)
        if found is None:
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        body, digest = found
        media = _accepts(request.header("accept"), (JSON, PROTOBUF_V3))
        if media != JSON:
            raise StatusError.not_acceptable([JSON, PROTOBUF_V3])
        wanted = request.query.get("hash")
        if wanted is None:
            return Response(200, body, [("Cache-Control", "no-cache, private")], JSON)
        if wanted != digest:
            location = f"/openapi/v3/{gv}?hash={digest}"
            return Response(
                301,
                b"",
                [("Location", location), ("Cache-Control", "no-cache, private")],
                "text/plain; charset=utf-8",
            )
        headers = [
            ("Cache-Control", "public, immutable"),
            ("Expires", formatdate(time.time() + 365 * 86400, usegmt=True)),
            ("Etag", f'"{digest}"'),
        ]
        return Response(200, body, headers, JSON)

    def _serve_v2(self, request: Request) -> Response:
        media = _accepts(request.header("accept"), (JSON,))
        if media != JSON:
            # The protobuf form (gnostic's OpenAPIv2 message) is not served.
            raise StatusError.not_acceptable([JSON])
        self._refresh()
        if self._v2 is None:
            self._v2 = orjson.dumps(self._swagger())
        return Response(200, self._v2, [], JSON)

    # -- building --------------------------------------------------------------------------

    def _refresh(self) -> None:
        registry = self.api.store.registry
        signature = tuple(
            (
                r.group,
                r.version,
                r.plural,
                r.kind,
                r.namespaced,
                r.verbs,
                r.subresources,
                r.custom,
            )
            for r in registry
        )
        if signature == self._signature:
            return
        self._signature = signature
        self._v2 = None
        self._v3 = {}
        for resource in registry:
            if resource.custom:
                self.schemas.add_custom(resource)
        for group, versions in registry.groups().items():
            for version in versions:
                gv = f"apis/{group}/{version}" if group else f"api/{version}"
                doc = self.document(group, version)
                body = orjson.dumps(doc)
                digest = hashlib.sha512(body).hexdigest().upper()
                self._v3[gv] = (body, digest)

    def document(self, group: str, version: str) -> dict[str, Any]:
        """The OpenAPI 3 document of one group version, as kube-apiserver structures it."""
        resources = self.api.store.registry.in_group_version(group, version)
        paths: dict[str, Any] = {}
        roots = [
            META + "Status",
            META + "DeleteOptions",
            META + "Patch",
            META + "WatchEvent",
            META + "APIResourceList",
        ]
        prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        paths[prefix + "/"] = {
            "get": {
                "tags": [_tag(group, version)],
                "description": "get available resources",
                "operationId": f"get{_group_prefix(group)}{_camel(version)}APIResources",
                "responses": {
                    "200": {"description": "OK", "content": _content(META + "APIResourceList")},
                    "401": {"description": "Unauthorized"},
                },
            }
        }
        for resource in resources:
            name = self.schemas.name_for(group, version, resource.kind)
            if name is None:
                continue
            list_name = self.schemas.name_for(group, version, resource.list_kind)
            roots.append(name)
            if list_name:
                roots.append(list_name)
            paths.update(self._resource_paths(resource, name, list_name))
            for sub in resource.subresources:
                sub_name = self._subresource_schema(resource, sub, name)
                if sub_name:
                    roots.append(sub_name)
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": paths,
            "components": {
                "schemas": self.schemas.closure(roots),
                "securitySchemes": {
                    "BearerToken": {
                        "type": "apiKey",
                        "description": "Bearer Token authentication",
                        "name": "authorization",
                        "in": "header",
                    }
                },
            },
            "security": [{"BearerToken": []}],
        }

    def _subresource_schema(self, resource: ResourceType, sub: Subresource, name: str) -> str:
        if not sub.kind:
            return name if sub.name == "status" else ""
        return self.schemas.name_for(sub.group, sub.version or resource.version, sub.kind) or ""

    def _resource_paths(
        self, resource: ResourceType, name: str, list_name: str | None
    ) -> dict[str, Any]:
        group, version, kind = resource.group, resource.version, resource.kind
        gvk = {"group": group, "kind": kind, "version": version}
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        scope = "Namespaced" if resource.namespaced else ""
        op_kind = f"{_group_prefix(group)}{_camel(version)}{scope}{kind}"
        tag = _tag(group, version)
        verbs = set(resource.verbs)
        if resource.namespaced:
            collection = f"{base}/namespaces/{{namespace}}/{resource.plural}"
            scope_params = [_param("namespace", "path")]
        else:
            collection = f"{base}/{resource.plural}"
            scope_params = []
        item = collection + "/{name}"
        write_params = ["dryRun", "fieldManager", "fieldValidation"]

        def op(
            verb: str,
            action: str,
            query: list[str],
            *,
            body: str = "",
            patch: bool = False,
            response: str = name,
            codes: tuple[str, ...] = ("200",),
            of: Mapping[str, str] = gvk,
            op_name: str = op_kind,
            describe: str = "",
        ) -> dict[str, Any]:
            out: dict[str, Any] = {
                "tags": [tag],
                "description": describe or f"{action} {kind}",
                "operationId": f"{verb}{op_name}",
                "parameters": [_param(q) for q in query],
            }
            if body:
                content = (
                    {t: {"schema": _ref(META + "Patch")} for t in PATCH_TYPES}
                    if patch
                    else {"*/*": {"schema": _ref(body)}}
                )
                out["requestBody"] = {"content": content, "required": True}
            responses: dict[str, Any] = {
                code: {"description": _CODE_TEXT[code], "content": _content(response)}
                for code in codes
            }
            responses["401"] = {"description": "Unauthorized"}
            out["responses"] = responses
            out["x-kubernetes-action"] = action
            out["x-kubernetes-group-version-kind"] = dict(of)
            return out

        paths: dict[str, Any] = {}
        coll_ops: dict[str, Any] = {}
        if "list" in verbs and list_name:
            coll_ops["get"] = op(
                "list",
                "list",
                ["allowWatchBookmarks", *_LIST_PARAMS[1:]],
                response=list_name,
                describe=f"list or watch objects of kind {kind}",
            )
        if "create" in verbs:
            coll_ops["post"] = op(
                "create", "post", write_params, body=name, codes=("200", "201", "202")
            )
        if "deletecollection" in verbs:
            coll_ops["delete"] = op(
                "delete",
                "deletecollection",
                [*_LIST_PARAMS[1:8], "dryRun", "gracePeriodSeconds", "propagationPolicy"],
                response=META + "Status",
                op_name=f"{_group_prefix(group)}{_camel(version)}Collection{scope}{kind}",
                describe=f"delete collection of {kind}",
            )
        if coll_ops:
            coll_ops["parameters"] = [*scope_params, _param("pretty")]
            paths[collection] = coll_ops
        item_ops: dict[str, Any] = {}
        if "get" in verbs:
            item_ops["get"] = op("read", "get", [], describe=f"read the specified {kind}")
        if "update" in verbs:
            item_ops["put"] = op("replace", "put", write_params, body=name, codes=("200", "201"))
        if "patch" in verbs:
            item_ops["patch"] = op(
                "patch",
                "patch",
                [*write_params, "force"],
                body=name,
                patch=True,
                codes=("200", "201"),
                describe=f"partially update the specified {kind}",
            )
        if "delete" in verbs:
            item_ops["delete"] = op(
                "delete",
                "delete",
                ["dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy"],
                response=META + "Status",
                codes=("200", "202"),
            )
        if item_ops:
            item_ops["parameters"] = [
                _param("name", "path", kind),
                *scope_params,
                _param("pretty"),
            ]
            paths[item] = item_ops
        if resource.namespaced and "list" in verbs and list_name:
            paths[f"{base}/{resource.plural}"] = {
                "get": op(
                    "list",
                    "list",
                    [],
                    response=list_name,
                    op_name=f"{_group_prefix(group)}{_camel(version)}{kind}ForAllNamespaces",
                    describe=f"list or watch objects of kind {kind}",
                ),
                "parameters": [_param(q) for q in _LIST_PARAMS] + [_param("pretty")],
            }
        for sub in resource.subresources:
            sub_schema = self._subresource_schema(resource, sub, name)
            sub_ops: dict[str, Any] = {}
            sub_kind = {
                "group": sub.group if sub.kind else group,
                "kind": sub.kind or kind,
                "version": sub.version or version if sub.kind else version,
            }
            op_name = op_kind + _camel(sub.name)
            if not sub_schema:
                # A connect-style subresource (exec, attach, log, ...): no request schema.
                for verb in sorted(set(sub.verbs) & {"get", "create"}):
                    method = "get" if verb == "get" else "post"
                    sub_ops[method] = {
                        "tags": [tag],
                        "description": f"connect {method.upper()} requests to {sub.name} of {kind}",
                        "operationId": f"connect{method.title()}{op_name}",
                        "responses": {
                            "200": {
                                "description": "OK",
                                "content": {"*/*": {"schema": {"type": "string"}}},
                            },
                            "401": {"description": "Unauthorized"},
                        },
                        "x-kubernetes-action": "connect",
                        "x-kubernetes-group-version-kind": dict(sub_kind),
                    }
            else:
                if "get" in sub.verbs:
                    sub_ops["get"] = op(
                        "read",
                        "get",
                        [],
                        response=sub_schema,
                        of=sub_kind,
                        op_name=op_name,
                        describe=f"read {sub.name} of the specified {kind}",
                    )
                if "update" in sub.verbs:
                    sub_ops["put"] = op(
                        "replace",
                        "put",
                        write_params,
                        body=sub_schema,
                        response=sub_schema,
                        codes=("200", "201"),
                        of=sub_kind,
                        op_name=op_name,
                        describe=f"replace {sub.name} of the specified {kind}",
                    )
                if "patch" in sub.verbs:
                    sub_ops["patch"] = op(
                        "patch",
                        "patch",
                        [*write_params, "force"],
                        body=sub_schema,
                        patch=True,
                        response=sub_schema,
                        codes=("200", "201"),
                        of=sub_kind,
                        op_name=op_name,
                        describe=f"partially update {sub.name} of the specified {kind}",
                    )
            if sub_ops:
                sub_ops["parameters"] = [
                    _param("name", "path", sub.kind or kind),
                    *scope_params,
                    _param("pretty"),
                ]
                paths[f"{item}/{sub.name}"] = sub_ops
        return paths

    # -- Swagger 2.0 -----------------------------------------------------------------------

    def _swagger(self) -> dict[str, Any]:
        definitions: dict[str, Any] = {}
        paths: dict[str, Any] = {}
        registry = self.api.store.registry
        for group, versions in registry.groups().items():
            for version in versions:
                doc = self.document(group, version)
                definitions.update(doc["components"]["schemas"])
                for path, item in doc["paths"].items():
                    paths[path] = _v2_path(item)
        swagger: dict[str, Any] = _v2_refs(
            {
                "swagger": "2.0",
                "info": {"title": "Kubernetes", "version": "v1.32.4"},
                "paths": dict(sorted(paths.items())),
                "definitions": dict(sorted(definitions.items())),
                "securityDefinitions": {
                    "BearerToken": {
                        "description": "Bearer Token authentication",
                        "type": "apiKey",
                        "name": "authorization",
                        "in": "header",
                    }
                },
                "security": [{"BearerToken": []}],
            }
        )
        return swagger


_CODE_TEXT: Final = {"200": "OK", "201": "Created", "202": "Accepted"}


def _tag(group: str, version: str) -> str:
    return f"{group.removesuffix('.k8s.io').replace('.', '')}_{version}" if group else "core_v1"


def _accepts(accept: str, offered: tuple[str, ...]) -> str:
    """The first of `offered` the Accept header allows ("" when none)."""
    if not accept.strip():
        return offered[0]
    for media_range in accept.split(","):
        media = media_range.split(";")[0].strip().lower()
        if media in ("*/*", "application/*"):
            return offered[0]
        if media in offered:
            return media
    return ""


def _v2_path(item: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method, operation in item.items():
        if method == "parameters":
            out["parameters"] = [_v2_param(p) for p in operation]
            continue
        converted: dict[str, Any] = {
            key: value
            for key, value in operation.items()
            if key not in ("parameters", "requestBody", "responses")
        }
        params = [_v2_param(p) for p in operation.get("parameters", ())]
        body = operation.get("requestBody")
        if body:
            consumes = list(body["content"])
            schema = next(iter(body["content"].values()))["schema"]
            params.insert(0, {"name": "body", "in": "body", "required": True, "schema": schema})
            converted["consumes"] = consumes
        if params:
            converted["parameters"] = params
        produces: list[str] = []
        responses: dict[str, Any] = {}
        for code, response in operation.get("responses", {}).items():
            entry: dict[str, Any] = {"description": response.get("description", "")}
            content = response.get("content") or {}
            if content:
                entry["schema"] = next(iter(content.values()))["schema"]
                produces.extend(m for m in content if m not in produces)
            responses[code] = entry
        if produces:
            converted["produces"] = produces
        converted["schemes"] = ["https"]
        converted["responses"] = responses
        out[method] = converted
    return out


def _v2_param(param: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in param.items() if k != "schema"}
    out.update(param.get("schema") or {})
    return out


def _v2_refs(node: Any) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                out[key] = "#/definitions/" + value.removeprefix(REF_PREFIX)
            else:
                out[key] = _v2_refs(value)
        return out
    if isinstance(node, list):
        return [_v2_refs(item) for item in node]
    return node
