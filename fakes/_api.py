"""The Kubernetes REST API on top of the store: routing, verbs, watch streams, discovery.

What this module is for: turning an HTTP `Request` into what kube-apiserver would answer
(reference `kubernetes-api-wire.md`): paths (section 1.1, legacy `/watch/` paths included),
discovery (1.2, 1.3), errors as `Status` (2.3), list and watch semantics (3, 4), metadata-only
responses (5). The order of work for each request is the real server's: route, faults (they
stand for the network and the server failing, so they come first), authentication (401),
authorization (403), then the verb. It may import the other modules of `rxkube.fakes` and
trio; sockets live in `_http`.

Extension points, for the companion modules of issues 5 and 6:
- `ApiServer.add_subresource(resource, Subresource(...), handler)`: serve `pods/log`,
  `pods/exec`, `deployments/scale`, ... (discovery lists it at once);
- `ApiServer.add_collection(resource_type, handler)`: a kind that is not stored, whose
  collection a handler answers (the access reviews; `ApiServer.decode_body` reads bodies);
- `ApiServer.add_transform("Table", function)`: answer `Accept: ...;as=Table;...`;
- `ApiServer.add_path("/openapi", handler)`: serve a non-resource path (and what is under it);
- `ApiServer.body_decoders[content_type] = decode`: request bodies in another encoding
  (kubectl's typed `create` subcommands send `application/vnd.kubernetes.protobuf`);
- `ApiServer.write_options(request)`: the `WriteOptions` admission steps see (query, field
  manager, warnings), for subresource handlers that write through the store;
- `store.patch_types.register(content_type, function)`: strategic merge patch, apply;
- `store.admission.append(step)`: defaulting, schema validation, managedFields;
- `store.subscribe(callback)`: a controller observing every change.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import math
import random as _random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import trio
import yaml

from rxkube.fakes._errors import StatusCause, StatusError
from rxkube.fakes._faults import Fault, FaultRule, Faults, RequestInfo
from rxkube.fakes._http import AbortConnection, AnyResponse, Request, Response, StreamResponse
from rxkube.fakes._rbac import Access, Attributes, Authenticator, Authorizer, UserInfo
from rxkube.fakes._resources import ResourceType, Subresource
from rxkube.fakes._store import DeleteOptions, Entry, Store, Watcher, WriteOptions

__all__ = ["ApiServer", "RequestContext"]

logger = logging.getLogger("rxkube.fakes")

JSON: Final = "application/json"
AGGREGATED_V2: Final = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1: Final = (
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
)
_NOT_FOUND_MESSAGE: Final = "the server could not find the requested resource"

VERSION_INFO: Final = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "59526cd4867447956156ae3a602fcbac10a2c335",
    "gitTreeState": "clean",
    "buildDate": "2025-04-22T16:02:27Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _status_response(error: StatusError) -> Response:
    headers: list[tuple[str, str]] = list(error.headers.items())
    if error.details.retry_after_seconds and not any(k == "Retry-After" for k, _ in headers):
        headers.append(("Retry-After", str(error.details.retry_after_seconds)))
    return Response(error.code, orjson.dumps(error.status()), headers)


def _not_found_path() -> StatusError:
    return StatusError(404, "NotFound", _NOT_FOUND_MESSAGE)


def _bool_param(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name)
    if value is None or value in ("", "false", "0", "False"):
        return False
    if value in ("true", "1", "True"):
        return True
    raise StatusError.bad_request(f"invalid boolean value for {name}: {value!r}")


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise StatusError.bad_request(
            f'strconv.ParseInt: parsing "{value}": invalid syntax (query parameter {name})'
        ) from None


@dataclass(slots=True)
class _Route:
    group: str
    version: str
    resource: ResourceType
    namespace: str
    name: str
    subresource: str
    watch_path: bool


@dataclass(slots=True)
class RequestContext:
    """What a subresource handler receives."""

    request: Request
    resource: ResourceType
    namespace: str
    name: str
    subresource: str
    verb: str
    user: UserInfo
    api: ApiServer

    @property
    def store(self) -> Store:
        return self.api.store


SubresourceHandler = Callable[[RequestContext], Awaitable[AnyResponse]]
PathHandler = Callable[[Request], Awaitable[AnyResponse]]
BodyDecoder = Callable[[bytes, ResourceType], Any]
Transform = Callable[[ResourceType, list[Entry], Mapping[str, Any]], bytes]


@dataclass(slots=True)
class _Media:
    """The outcome of content negotiation: None = plain JSON objects."""

    as_kind: str | None = None


@dataclass(eq=False)
class _OpenWatch:
    resource: ResourceType
    namespace: str
    wake: trio.Event = field(default_factory=trio.Event)
    forced: str = ""

    def force(self, what: str) -> None:
        self.forced = what
        self.wake.set()


class ApiServer:
    """The request handler (`handle`) and its settings. One per fake server."""

    def __init__(
        self,
        store: Store,
        *,
        faults: Faults | None = None,
        tokens: Mapping[str, UserInfo] | None = None,
        rbac: bool = False,
        bookmark_interval: float = 60.0,
        min_request_timeout: float = 1800.0,
        max_watch_buffer: int = 10_000,
        too_large_wait: float = 3.0,
        random: _random.Random | None = None,
    ) -> None:
        self.store = store
        self.faults = faults if faults is not None else Faults()
        self.authenticator = Authenticator(tokens)
        self.authorizer = Authorizer(store, enabled=rbac)
        self.bookmark_interval = bookmark_interval
        self.min_request_timeout = min_request_timeout
        self.max_watch_buffer = max_watch_buffer
        self.too_large_wait = too_large_wait
        self.random = random if random is not None else _random.Random()
        self.server_address = "127.0.0.1:0"
        self._subresources: dict[tuple[str, str], SubresourceHandler] = {}
        self._collections: dict[str, SubresourceHandler] = {}
        self._transforms: dict[str, Transform] = {}
        self._paths_served: dict[str, PathHandler] = {}
        self.body_decoders: dict[str, BodyDecoder] = {}
        """Content type -> decoder of POST/PUT bodies into the object (JSON and YAML built in)."""
        self._open_watches: set[_OpenWatch] = set()
        self._watches_changed = trio.Event()
        self.requests: dict[str, int] = {}
        self.access: Counter[Access] = Counter()
        """Requests that reached authorization, per (user, verb, resource, allowed): what each
        user did and was refused (e.g. to show a Role is exactly what a controller uses)."""
        self.events_sent = 0
        self.faults._drop_watches = self._drop_watches
        self.faults._expire_watches = self._expire_watches
        self.faults._compact = store.compact

    # -- extension points ------------------------------------------------------------------

    def add_subresource(
        self, resource: str, subresource: Subresource, handler: SubresourceHandler
    ) -> None:
        """Serve `<resource>/<subresource.name>` with `handler` and list it in discovery."""
        res = self.store.resource(resource)
        updated = res.with_subresource(subresource)
        self.store.registry.register(updated)
        self._subresources[(updated.qualified, subresource.name)] = handler

    def add_collection(self, resource: ResourceType, handler: SubresourceHandler) -> None:
        """Serve `resource` (listed in discovery) with `handler` for every request on its
        collection or its objects, instead of the store (kinds that are not stored, such as
        `SelfSubjectAccessReview`: create-only, answered at once)."""
        self.store.registry.register(resource)
        self._collections[resource.qualified] = handler

    def decode_body(self, request: Request, resource: ResourceType) -> Any:
        """A request body as the object it carries (JSON, YAML, or a registered encoding)."""
        return _decode_body(request, resource, self.body_decoders)

    def add_transform(self, as_kind: str, transform: Transform) -> None:
        """Answer `Accept: application/json;as=<as_kind>;g=meta.k8s.io;v=v1` (e.g. Table)
        with `transform(resource, entries, context)`; context has `list` (bool),
        `resourceVersion`, `continue`, `watch_first` and the request `query`."""
        self._transforms[as_kind] = transform

    def add_path(self, prefix: str, handler: PathHandler) -> None:
        """Serve the non-resource path `prefix` (e.g. `/openapi`) and every path under it
        with `handler` (after faults, authentication and authorization, like any request)."""
        self._paths_served[prefix.rstrip("/")] = handler

    def write_options(self, request: Request, *, apply: bool = False) -> WriteOptions:
        """What admission steps learn of this request's write: query parameters, the field
        manager (`fieldManager`, else the User-Agent's product as kube-apiserver does) and
        whether it is a server-side apply; they add warnings to it."""
        query = request.query
        manager = query.get("fieldManager") or ""
        if not manager:
            agent = request.header("user-agent")
            manager = agent.split("/", 1)[0] if agent else ""
        return WriteOptions(
            query=query,
            manager=manager,
            operation="Apply" if apply else "Update",
            body=request.body,
            content_type=request.header("content-type").split(";")[0].strip(),
        )

    @property
    def open_watches(self) -> int:
        """How many watch streams are open now."""
        return len(self._open_watches)

    async def wait_open_watches(self, count: int) -> None:
        """Wait until exactly `count` watch streams are open (e.g. 0 after clients left)."""
        while len(self._open_watches) != count:
            await self._watches_changed.wait()

    def _watches_change(self) -> None:
        self._watches_changed.set()
        self._watches_changed = trio.Event()

    def statistics(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "open_watches": len(self._open_watches),
            "events_sent": self.events_sent,
            "faults": self.faults.counts,
            "resource_version": self.store.resource_version,
            "access": [
                {**key._asdict(), "count": count}
                for key, count in sorted(self.access.items(), key=lambda item: item[0])
            ],
        }

    # -- immediate faults ------------------------------------------------------------------

    def _select_watches(self, resource: str | None, namespace: str | None) -> list[_OpenWatch]:
        res = self.store.resource(resource) if resource else None
        return [
            w
            for w in self._open_watches
            if (res is None or w.resource.qualified == res.qualified)
            and (namespace is None or w.namespace == namespace)
            and not w.forced
        ]

    def _drop_watches(self, resource: str | None, namespace: str | None) -> int:
        selected = self._select_watches(resource, namespace)
        for watch in selected:
            watch.force("drop")
        if selected:
            self.faults.record("drop_watches", len(selected))
        return len(selected)

    def _expire_watches(self, resource: str | None, namespace: str | None) -> int:
        selected = self._select_watches(resource, namespace)
        for watch in selected:
            watch.force("expire")
        if selected:
            self.faults.record("expire_watches", len(selected))
        return len(selected)

    # -- entry point -----------------------------------------------------------------------

    async def handle(self, request: Request) -> AnyResponse:
        try:
            return await self._handle(request)
        except StatusError as error:
            return _status_response(error)
        except (AbortConnection, trio.Cancelled):
            raise
        except Exception as error:  # a bug in the fake: answer 500, keep serving
            logger.exception("fake API server: %s %s failed", request.method, request.target)
            return _status_response(StatusError.internal(f"{type(error).__name__}: {error}"))

    async def _handle(self, request: Request) -> AnyResponse:
        route = self._route(request.path)
        verb, info = self._classify(request, route)
        self.requests[verb] = self.requests.get(verb, 0) + 1
        rule = self.faults.match(info)
        stream_fault: FaultRule | None = None
        if rule is not None:
            early = await self._apply_fault(rule, info)
            if early is not None:
                return early
            if rule.fault.kind in ("drop", "truncate", "malformed", "expire"):
                stream_fault = rule
        user = self.authenticator.authenticate(request.header("authorization") or None)
        user = self.authorizer.impersonate(user, request.headers)
        if isinstance(route, _Route):
            attrs = Attributes(
                verb,
                route.resource.group,
                route.resource.plural,
                route.subresource,
                route.namespace,
                route.name,
            )
        else:
            attrs = Attributes(verb, path=request.path)
        allowed = self.authorizer.allowed(user, attrs)
        # Unknown paths share one key: a client probing paths must not grow the counter.
        target = attrs.target if route is not None else "/(unknown path)"
        self.access[Access(user.name, verb, target, allowed)] += 1
        if not allowed:
            raise self.authorizer.forbidden(user, attrs)
        if route is None:
            raise _not_found_path()
        if isinstance(route, str):
            served = self._paths_served.get(route)
            if served is not None:
                return await served(request)
            return self._non_resource(request, route)
        return await self._resource(request, route, verb, user, stream_fault)

    async def _apply_fault(self, rule: FaultRule, info: RequestInfo) -> AnyResponse | None:
        fault = rule.fault
        if fault.kind == "status":
            rule.record_fired()
            return _fault_status(fault)
        if fault.kind == "delay":
            rule.record_fired()
            await trio.sleep(fault.seconds)
            return None
        if fault.kind == "stall":
            rule.record_fired()
            await trio.sleep_forever()
        if fault.kind == "drop" and not info.watch:
            rule.record_fired()
            raise AbortConnection()
        return None

    # -- routing ---------------------------------------------------------------------------

    def _route(self, path: str) -> _Route | str | None:
        """A resource route, a non-resource path kind (str), or None (404)."""
        segs = [s for s in path.split("/") if s]
        if not segs:
            return "root"
        head = segs[0]
        if head in ("version", "healthz", "livez", "readyz") and len(segs) == 1:
            return head
        for prefix in self._paths_served:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix
        if head == "openapi":
            return None
        if head == "api":
            if len(segs) == 1:
                return "api"
            group, version, rest = "", segs[1], segs[2:]
        elif head == "apis":
            if len(segs) == 1:
                return "apis"
            if len(segs) == 2:
                return "group"
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return None
        if not rest:
            return "groupversion"
        watch_path = False
        if rest[0] == "watch":
            watch_path = True
            rest = rest[1:]
            if not rest:
                return None
        registry = self.store.registry
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            candidate = registry.lookup(group, version, rest[2])
            if candidate is not None and candidate.namespaced:
                namespace = rest[1]
                rest = rest[2:]
        if len(rest) > 3:
            return None
        resource = registry.lookup(group, version, rest[0])
        if resource is None:
            return None
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        if resource.namespaced and not namespace and name:
            return None
        if sub and resource.subresource(sub) is None:
            return None
        return _Route(group, version, resource, namespace, name, sub, watch_path)

    def _classify(self, request: Request, route: _Route | str | None) -> tuple[str, RequestInfo]:
        method = request.method
        watch = False
        if isinstance(route, _Route):
            watch = route.watch_path or (
                method == "GET" and request.query.get("watch") in ("true", "1", "True")
            )
            if method == "GET" and route.subresource and request.header("upgrade"):
                # exec/attach over WebSocket are GETs that RBAC checks as `create`
                # (kube-apiserver >= 1.31, AuthorizePodWebsocketUpgradeCreatePermission).
                verb = "create"
            elif method == "GET":
                verb = "watch" if watch else ("get" if route.name else "list")
            elif method == "POST":
                verb = "create"
            elif method == "PUT":
                verb = "update"
            elif method == "PATCH":
                verb = "patch"
            elif method == "DELETE":
                verb = "delete" if route.name else "deletecollection"
            else:
                verb = method.lower()
            info = RequestInfo(
                verb,
                route.resource.plural,
                route.resource.group,
                route.subresource,
                route.namespace,
                request.path,
                watch,
            )
        else:
            verb = method.lower()
            info = RequestInfo(verb, "", "", "", "", request.path, False)
        return verb, info

    # -- non-resource paths ----------------------------------------------------------------

    def _non_resource(self, request: Request, kind: str) -> AnyResponse:
        if request.method != "GET":
            raise StatusError.method_not_allowed(request.method, request.path)
        if kind in ("healthz", "livez", "readyz"):
            return Response(200, b"ok", content_type="text/plain; charset=utf-8")
        if kind == "version":
            return Response(200, orjson.dumps(VERSION_INFO))
        if kind == "root":
            return Response(200, orjson.dumps({"paths": self._paths()}))
        aggregated = _wants_aggregated(request.header("accept"))
        if kind == "api":
            if aggregated:
                return Response(
                    200, orjson.dumps(self._aggregated(core=True)), content_type=aggregated
                )
            return Response(
                200,
                orjson.dumps(
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}
                        ],
                    }
                ),
            )
        if kind == "apis":
            if aggregated:
                return Response(
                    200, orjson.dumps(self._aggregated(core=False)), content_type=aggregated
                )
            groups = [
                self._api_group(name, versions)
                for name, versions in self.store.registry.groups().items()
                if name
            ]
            return Response(
                200, orjson.dumps({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
            )
        segs = [s for s in request.path.split("/") if s]
        served = self.store.registry.groups()
        if kind == "group":
            name = segs[1]
            if name not in served or not name:
                raise _not_found_path()
            body = {"kind": "APIGroup", "apiVersion": "v1", **self._api_group(name, served[name])}
            return Response(200, orjson.dumps(body))
        group, version = ("", segs[1]) if segs[0] == "api" else (segs[1], segs[2])
        if version not in served.get(group, ()):
            raise _not_found_path()
        return Response(200, orjson.dumps(self._resource_list(group, version)))

    def _paths(self) -> list[str]:
        paths = ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/readyz", "/version"]
        for group, versions in self.store.registry.groups().items():
            if group:
                paths.append(f"/apis/{group}")
                paths.extend(f"/apis/{group}/{v}" for v in versions)
        return sorted(paths)

    @staticmethod
    def _api_group(name: str, versions: list[str]) -> dict[str, Any]:
        entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": entries, "preferredVersion": entries[0]}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: list[dict[str, Any]] = []
        for res in self.store.registry.in_group_version(group, version):
            item: dict[str, Any] = {
                "name": res.plural,
                "singularName": res.singular,
                "namespaced": res.namespaced,
                "kind": res.kind,
                "verbs": sorted(res.verbs),
            }
            if res.short_names:
                item["shortNames"] = list(res.short_names)
            if res.categories:
                item["categories"] = list(res.categories)
            item["storageVersionHash"] = _storage_hash(res)
            resources.append(item)
            for sub in res.subresources:
                entry: dict[str, Any] = {
                    "name": f"{res.plural}/{sub.name}",
                    "singularName": "",
                    "namespaced": res.namespaced,
                }
                if sub.group or sub.version:
                    entry["group"] = sub.group
                    entry["version"] = sub.version
                entry["kind"] = sub.kind or res.kind
                entry["verbs"] = sorted(sub.verbs)
                resources.append(entry)
        gv = f"{group}/{version}" if group else version
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": resources,
        }

    def _aggregated(self, *, core: bool) -> dict[str, Any]:
        items: list[dict[str, Any]] = []
        for group, versions in self.store.registry.groups().items():
            if bool(group) == core:
                continue
            version_entries = []
            for version in versions:
                resources = []
                for res in self.store.registry.in_group_version(group, version):
                    item: dict[str, Any] = {
                        "resource": res.plural,
                        "responseKind": {"group": group, "version": version, "kind": res.kind},
                        "scope": "Namespaced" if res.namespaced else "Cluster",
                        "singularResource": res.singular,
                        "verbs": sorted(res.verbs),
                    }
                    if res.short_names:
                        item["shortNames"] = list(res.short_names)
                    if res.categories:
                        item["categories"] = list(res.categories)
                    if res.subresources:
                        item["subresources"] = [
                            {
                                "subresource": sub.name,
                                "responseKind": {
                                    "group": sub.group if sub.kind else group,
                                    "version": sub.version if sub.kind and sub.version else version,
                                    "kind": sub.kind or res.kind,
                                },
                                "verbs": sorted(sub.verbs),
                            }
                            for sub in res.subresources
                        ]
                    resources.append(item)
                version_entries.append(
                    {"version": version, "resources": resources, "freshness": "Current"}
                )
            metadata: dict[str, Any] = {"creationTimestamp": None}
            if group:
                metadata = {"name": group, "creationTimestamp": None}
            items.append({"metadata": metadata, "versions": version_entries})
        return {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }

    # -- resources -------------------------------------------------------------------------

    async def _resource(
        self,
        request: Request,
        route: _Route,
        verb: str,
        user: UserInfo,
        stream_fault: FaultRule | None,
    ) -> AnyResponse:
        res = route.resource
        collection = self._collections.get(res.qualified)
        if collection is not None and not route.subresource:
            return await collection(
                RequestContext(request, res, route.namespace, route.name, "", verb, user, self)
            )
        if route.subresource and route.subresource != "status":
            handler = self._subresources.get((res.qualified, route.subresource))
            if handler is None:
                raise _not_found_path()
            context = RequestContext(
                request, res, route.namespace, route.name, route.subresource, verb, user, self
            )
            return await handler(context)
        if route.subresource:
            if verb not in ("get", "update", "patch"):
                raise StatusError.method_not_allowed(verb, f"{res.plural}/{route.subresource}")
        elif verb not in res.verbs:
            raise StatusError.method_not_allowed(request.method, res.plural)
        if (verb in ("update", "patch") and not route.name) or (verb == "create" and route.name):
            raise StatusError.method_not_allowed(request.method, res.plural)
        query = request.query
        if verb == "watch":
            media = self._negotiate(request, single=True)
            return await self._watch(request, route, media, stream_fault)
        if verb == "list":
            media = self._negotiate(request, single=False)
            return self._list(route, query, media)
        if verb == "get":
            media = self._negotiate(request, single=True)
            entry = self.store.get_entry(res, route.namespace, route.name)
            return Response(200, self._render_one(entry, media, query))
        dry_run = _dry_run(query)
        name_user = user.name
        if verb == "create":
            body = _decode_body(request, res, self.body_decoders)
            with self.store.write_options(self.write_options(request)) as written:
                entry = self.store.create(
                    res, body, namespace=route.namespace, user=name_user, dry_run=dry_run
                )
            return Response(201, entry.raw, warning_headers(written.warnings))
        if verb == "update":
            body = _decode_body(request, res, self.body_decoders)
            with self.store.write_options(self.write_options(request)) as written:
                entry = self.store.update(
                    res,
                    body,
                    namespace=route.namespace,
                    name=route.name,
                    subresource=route.subresource,
                    user=name_user,
                    dry_run=dry_run,
                )
            return Response(200, entry.raw, warning_headers(written.warnings))
        if verb == "patch":
            content_type = request.header("content-type").split(";")[0].strip()
            if _bool_param(query, "force") and content_type != "application/apply-patch+yaml":
                raise StatusError.invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    [
                        StatusCause(
                            "FieldValueForbidden",
                            "Forbidden: may not be specified for non-apply patch",
                            "force",
                        )
                    ],
                )
            apply = content_type == "application/apply-patch+yaml"
            with self.store.write_options(self.write_options(request, apply=apply)) as written:
                entry, created = self.store.patch(
                    res,
                    route.namespace,
                    route.name,
                    request.body,
                    patch_type=content_type,
                    subresource=route.subresource,
                    options=query,
                    user=name_user,
                    dry_run=dry_run,
                )
            return Response(201 if created else 200, entry.raw, warning_headers(written.warnings))
        if verb == "delete":
            options = DeleteOptions.from_json(_decode_optional(request), query)
            entry, removed = self.store.delete(
                res, route.namespace, route.name, options, user=name_user
            )
            if res.returns_deleted_object or not removed:
                return Response(200, entry.raw)
            return Response(200, _success_status(res, entry))
        if verb == "deletecollection":
            options = DeleteOptions.from_json(_decode_optional(request), query)
            deleted = self.store.delete_collection(
                res,
                route.namespace,
                label_selector=query.get("labelSelector"),
                field_selector=query.get("fieldSelector"),
                options=options,
                user=name_user,
            )
            body = _list_bytes(
                res, [e.item_raw() for e in deleted], self.store.resource_version, "", None
            )
            return Response(200, body)
        raise StatusError.method_not_allowed(request.method, res.plural)

    def _negotiate(self, request: Request, *, single: bool) -> _Media:
        accept = request.header("accept") or "*/*"
        wanted_partial = "PartialObjectMetadata" if single else "PartialObjectMetadataList"
        saw_protobuf = False
        for media_range in accept.split(","):
            parts = [p.strip() for p in media_range.split(";")]
            media_type = parts[0].lower()
            params = {}
            for p in parts[1:]:
                k, _, v = p.partition("=")
                params[k.strip().lower()] = v.strip()
            if media_type == "application/vnd.kubernetes.protobuf":
                saw_protobuf = True
                continue
            if media_type not in ("application/json", "application/*", "*/*"):
                continue
            as_kind = params.get("as")
            if as_kind is None:
                return _Media()
            if params.get("g") != "meta.k8s.io" or params.get("v") not in ("v1", "v1beta1"):
                continue
            if as_kind == wanted_partial:
                return _Media(as_kind)
            if as_kind in self._transforms:
                return _Media(as_kind)
        del saw_protobuf
        raise StatusError.not_acceptable(
            ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
        )

    def _render_one(self, entry: Entry, media: _Media, query: Mapping[str, str]) -> bytes:
        if media.as_kind is None:
            return entry.raw
        if media.as_kind == "PartialObjectMetadata":
            return entry.partial_raw()
        transform = self._transforms[media.as_kind]
        return transform(
            entry.resource,
            [entry],
            {"list": False, "resourceVersion": str(entry.rv), "continue": "", "query": query},
        )

    def _list(self, route: _Route, query: Mapping[str, str], media: _Media) -> Response:
        res = route.resource
        if _bool_param(query, "sendInitialEvents"):
            raise StatusError.invalid(
                "ListOptions",
                "meta.k8s.io",
                "",
                [
                    StatusCause(
                        "FieldValueForbidden",
                        "Forbidden: sendInitialEvents is forbidden for list",
                        "sendInitialEvents",
                    )
                ],
            )
        page = self.store.list(
            res,
            route.namespace,
            label_selector=query.get("labelSelector"),
            field_selector=query.get("fieldSelector"),
            limit=_int_param(query, "limit"),
            continue_token=query.get("continue") or None,
            resource_version=query.get("resourceVersion"),
            resource_version_match=query.get("resourceVersionMatch") or None,
        )
        if media.as_kind is None:
            items = [e.item_raw() for e in page.items]
            body = _list_bytes(
                res, items, page.resource_version, page.continue_token, page.remaining
            )
        elif media.as_kind == "PartialObjectMetadataList":
            items = [e.partial_raw() for e in page.items]
            body = _list_bytes(
                res,
                items,
                page.resource_version,
                page.continue_token,
                page.remaining,
                kind="PartialObjectMetadataList",
                api_version="meta.k8s.io/v1",
            )
        else:
            body = self._transforms[media.as_kind](
                res,
                page.items,
                {
                    "list": True,
                    "resourceVersion": str(page.resource_version),
                    "continue": page.continue_token,
                    "remainingItemCount": page.remaining,
                    "query": query,
                },
            )
        return Response(200, body)

    # -- watch -----------------------------------------------------------------------------

    async def _watch(
        self,
        request: Request,
        route: _Route,
        media: _Media,
        stream_fault: FaultRule | None,
    ) -> AnyResponse:
        query = request.query
        res = route.resource
        send_initial = query.get("sendInitialEvents")
        match = query.get("resourceVersionMatch") or ""
        if send_initial is not None and send_initial != "" and match != "NotOlderThan":
            raise _watch_option_invalid(
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                "NotOlderThan",
                "sendInitialEvents",
            )
        if match and (send_initial is None or send_initial == ""):
            raise _watch_option_invalid(
                "resourceVersionMatch",
                "Forbidden: resourceVersionMatch is forbidden for watch unless "
                "sendInitialEvents is provided",
                "resourceVersionMatch",
            )
        send_initial_events = _bool_param(query, "sendInitialEvents")
        bookmarks = _bool_param(query, "allowWatchBookmarks")
        timeout = _int_param(query, "timeoutSeconds")
        if timeout is None or timeout <= 0:
            timeout_s = self.min_request_timeout * (1 + self.random.random())
        else:
            timeout_s = float(timeout)
        field_selector = query.get("fieldSelector") or ""
        if route.name:
            # Legacy /watch/.../{name}: a watch of one object.
            extra = f"metadata.name={route.name}"
            field_selector = f"{field_selector},{extra}" if field_selector else extra
        rv_text = query.get("resourceVersion") or ""
        # Validate selectors now: a bad selector is a plain 400, not an in-band error.
        from rxkube.fakes._selectors import FieldSelector, LabelSelector

        labels = LabelSelector.parse(query.get("labelSelector"))
        fields = FieldSelector.parse(field_selector, res.field_selectors)
        if rv_text not in ("", "0"):
            try:
                requested = int(rv_text)
            except ValueError:
                raise StatusError.bad_request(f"invalid resource version: {rv_text!r}") from None
            if requested > self.store.resource_version:
                await self._wait_for_rv(requested)
        try:
            watcher = self.store.watch(
                res,
                route.namespace,
                label_selector=labels,
                field_selector=fields,
                resource_version=rv_text or None,
                send_initial_events=send_initial_events,
                max_buffer=self.max_watch_buffer,
            )
        except StatusError as error:
            # The watch cache answers 200 and reports the failure in-band (reference 4.3).
            line = b'{"type":"ERROR","object":' + orjson.dumps(error.status()) + b"}\n"
            return StreamResponse(200, _one_shot(line))
        open_watch = _OpenWatch(res, route.namespace)
        self._open_watches.add(open_watch)
        self._watches_change()
        body = self._watch_body(
            watcher, open_watch, media, bookmarks, timeout_s, stream_fault, query
        )
        return StreamResponse(200, body)

    async def _wait_for_rv(self, requested: int) -> None:
        if self.store.resource_version >= requested:
            return
        reached = trio.Event()

        def check(_change: object) -> None:
            if self.store.resource_version >= requested:
                reached.set()

        unsubscribe = self.store.subscribe(check)
        try:
            with trio.move_on_after(self.too_large_wait):
                await reached.wait()
        finally:
            unsubscribe()

    def _bookmark(self, res: ResourceType, media: _Media, rv: int, *, initial_end: bool) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        if media.as_kind == "PartialObjectMetadata":
            obj: dict[str, Any] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": meta,
            }
        else:
            obj = {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    def _event_line(
        self,
        event_type: str,
        entry: Entry,
        media: _Media,
        query: Mapping[str, str],
        first: bool,
    ) -> bytes:
        if media.as_kind is None:
            obj = entry.raw
        elif media.as_kind == "PartialObjectMetadata":
            obj = entry.partial_raw()
        else:
            obj = self._transforms[media.as_kind](
                entry.resource,
                [entry],
                {
                    "list": False,
                    "watch_first": first,
                    "resourceVersion": str(entry.rv),
                    "continue": "",
                    "query": query,
                },
            )
        return b'{"type":"' + event_type.encode() + b'","object":' + obj + b"}\n"

    async def _watch_body(
        self,
        watcher: Watcher,
        open_watch: _OpenWatch,
        media: _Media,
        bookmarks: bool,
        timeout_s: float,
        stream_fault: FaultRule | None,
        query: Mapping[str, str],
    ) -> AsyncIterator[bytes]:
        res = watcher.resource
        deadline = trio.current_time() + timeout_s
        interval = self.bookmark_interval
        next_bookmark = trio.current_time() + interval if bookmarks else math.inf
        sent = 0
        first = True
        fault: Fault | None = stream_fault.fault if stream_fault is not None else None
        try:
            while True:
                if open_watch.forced == "drop":
                    raise AbortConnection()
                if open_watch.forced == "expire":
                    yield self._expired_line(watcher)
                    return
                if fault is not None and sent >= fault.after_events:
                    assert stream_fault is not None
                    if fault.kind == "drop":
                        stream_fault.record_fired()
                        raise AbortConnection()
                    if fault.kind == "expire":
                        stream_fault.record_fired()
                        yield self._expired_line(watcher)
                        return
                    if fault.kind == "malformed":
                        stream_fault.record_fired()
                        fault = None
                        yield b'{"type":"MODIFIED","object":{"kind":"Po\n'
                        continue
                items = watcher.take()
                if items:
                    chunks: list[bytes] = []
                    for index, (event_type, item) in enumerate(items):
                        if isinstance(item, int):
                            chunks.append(self._bookmark(res, media, item, initial_end=True))
                            continue
                        line = self._event_line(event_type, item, media, query, first)
                        first = False
                        if (
                            fault is not None
                            and fault.kind == "truncate"
                            and (sent >= fault.after_events)
                        ):
                            assert stream_fault is not None
                            chunks.append(line[: max(1, len(line) // 2)])
                            yield b"".join(chunks)
                            stream_fault.record_fired()
                            raise AbortConnection()
                        chunks.append(line)
                        sent += 1
                        if (
                            fault is not None
                            and fault.kind != "truncate"
                            and (sent >= fault.after_events)
                        ):
                            # Put the rest back in order: the fault acts at this event boundary.
                            watcher.buffer.extendleft(reversed(items[index + 1 :]))
                            break
                    self.events_sent += sum(1 for c in chunks if c.startswith(b'{"type":"'))
                    yield b"".join(chunks)
                    continue
                if watcher.closed:
                    return
                now = trio.current_time()
                if now >= deadline:
                    if bookmarks:
                        yield self._bookmark(res, media, watcher.progress_rv, initial_end=False)
                    return
                if now >= next_bookmark:
                    next_bookmark = now + interval
                    yield self._bookmark(res, media, watcher.progress_rv, initial_end=False)
                    continue
                ready = trio.Event()
                watcher.on_ready = ready.set
                open_watch.wake = ready
                if watcher.buffer or watcher.closed or open_watch.forced:
                    continue
                with trio.move_on_at(min(deadline, next_bookmark)):
                    await ready.wait()
        finally:
            watcher.on_ready = None
            watcher.close("stream ended")
            self._open_watches.discard(open_watch)
            self._watches_change()

    def _expired_line(self, watcher: Watcher) -> bytes:
        floor = self.store.floor(watcher.resource)
        error = StatusError.expired(
            f"too old resource version: {watcher.progress_rv} ({max(floor, watcher.progress_rv)})"
        )
        return b'{"type":"ERROR","object":' + orjson.dumps(error.status()) + b"}\n"


def warning_headers(warnings: list[str]) -> list[tuple[str, str]]:
    """`Warning: 299 - "<text>"` headers, text escaped as kube-apiserver does (reference 7)."""
    out: list[tuple[str, str]] = []
    for text in dict.fromkeys(warnings):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        out.append(("Warning", f'299 - "{escaped}"'))
    return out


async def _one_shot(line: bytes) -> AsyncIterator[bytes]:
    yield line


def _fault_status(fault: Fault) -> Response:
    code = fault.code
    headers: list[tuple[str, str]] = []
    if fault.retry_after is not None:
        headers.append(("Retry-After", str(fault.retry_after)))
    if fault.plain_text:
        return Response(
            code,
            b"Too many requests, please try again later.\n",
            headers,
            content_type="text/plain; charset=utf-8",
        )
    defaults = {
        410: ("Expired", "The resourceVersion for the provided watch is too old."),
        429: ("TooManyRequests", "Too many requests, please try again later."),
        500: ("InternalError", "Internal error occurred: injected fault"),
        503: ("ServiceUnavailable", "The server is currently unable to handle the request"),
        504: ("Timeout", "Timeout: request did not complete within the allowed duration"),
    }
    reason, message = defaults.get(code, ("", f"injected fault {code}"))
    error = StatusError(
        code,
        fault.reason or reason,
        fault.message or message,
        retry_after_seconds=fault.retry_after or 0,
    )
    return Response(code, orjson.dumps(error.status()), headers)


def _watch_option_invalid(field_name: str, message: str, cause_field: str) -> StatusError:
    del field_name
    return StatusError.invalid(
        "ListOptions",
        "meta.k8s.io",
        "",
        [StatusCause("FieldValueForbidden", message, cause_field)],
    )


def _wants_aggregated(accept: str) -> str:
    """The aggregated discovery media type to answer with, or "" for legacy JSON."""
    for media_range in accept.split(","):
        parts = [p.strip() for p in media_range.split(";")]
        params = dict(p.partition("=")[::2] for p in parts[1:])
        if parts[0] != "application/json" or params.get("as") != "APIGroupDiscoveryList":
            if parts[0] == "application/json" and "as" not in params:
                return ""
            continue
        if params.get("g") != "apidiscovery.k8s.io":
            continue
        if params.get("v") == "v2":
            return AGGREGATED_V2
    return ""


def _storage_hash(res: ResourceType) -> str:
    digest = hashlib.sha256(f"{res.group}/{res.version}/{res.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _list_bytes(
    res: ResourceType,
    items: list[bytes],
    rv: int,
    continue_token: str,
    remaining: int | None,
    *,
    kind: str = "",
    api_version: str = "",
) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if continue_token:
        meta["continue"] = continue_token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    head = orjson.dumps(
        {
            "kind": kind or res.list_kind,
            "apiVersion": api_version or res.api_version,
            "metadata": meta,
        }
    )
    return head[:-1] + b',"items":[' + b",".join(items) + b"]}"


def _success_status(res: ResourceType, entry: Entry) -> bytes:
    details: dict[str, Any] = {"name": entry.name}
    if res.group:
        details["group"] = res.group
    details["kind"] = res.plural
    details["uid"] = entry.uid
    return orjson.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }
    )


def _dry_run(query: Mapping[str, str]) -> bool:
    value = query.get("dryRun")
    if not value:
        return False
    if value != "All":
        raise StatusError.invalid(
            "",
            "",
            "",
            [
                StatusCause(
                    "FieldValueNotSupported",
                    f'Unsupported value: "{value}": supported values: "All"',
                    "dryRun",
                )
            ],
        )
    return True


def _decode_body(request: Request, res: ResourceType, decoders: Mapping[str, BodyDecoder]) -> Any:
    content_type = request.header("content-type").split(";")[0].strip().lower()
    body = request.body
    if not body.strip():
        raise StatusError.bad_request("the body of the request was empty")
    decoder = decoders.get(content_type)
    if decoder is not None:
        return decoder(body, res)
    if content_type in ("", "application/json", "*/*"):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise StatusError.bad_request(
                f"couldn't get version/kind; json parse error: {error}"
            ) from None
    if content_type in ("application/yaml", "application/x-yaml"):
        try:
            return yaml.safe_load(body)
        except yaml.YAMLError as error:
            raise StatusError.bad_request(f"error converting YAML to JSON: {error}") from None
    raise StatusError.unsupported_media_type(
        content_type, ["application/json", "application/yaml", *decoders]
    )


def _decode_optional(request: Request) -> Mapping[str, Any] | None:
    if not request.body.strip():
        return None
    try:
        value = orjson.loads(request.body)
    except orjson.JSONDecodeError as error:
        raise StatusError.bad_request(
            f"couldn't get version/kind; json parse error: {error}"
        ) from None
    if not isinstance(value, dict):
        raise StatusError.bad_request("DeleteOptions must be a JSON object")
    return value
