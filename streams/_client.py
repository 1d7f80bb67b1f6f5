"""The one Kubernetes client: generic verbs for any resource over `httpx` on trio.

What this module is for: every API request rxkube makes goes through `KubeClient` (DESIGN
section 4, "One Kubernetes client"). It is opened with `open_client(config)` and passed
explicitly; nothing here is global. It owns:
- an `httpx.AsyncClient` (TLS from the `KubeConfig`: CA bundle, client certificate);
- credentials: the `Authorization` header comes from the config's token source before each
  request, and a 401 refreshes the source (re-read token file, re-run exec plugin) and retries
  once;
- a client-side token-bucket rate limit on every request (client-go's QPS/burst);
- errors: a failed response raises the typed `ApiError` for its `Status` (`_errors.py`), with
  the verb, resource and namespace named so a 403 says what RBAC must allow.

JSON is decoded with orjson. The client does not retry anything but the 401; retry policies
for watches live in `_watch.py`. It may import `_config`, `_errors`, `_resources` and
`_events`; time comes only from trio's clock.
"""

from __future__ import annotations

import builtins
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, cast

import httpx
import orjson
import trio

from rxkube.streams._config import KubeConfig
from rxkube.streams._errors import (
    Gone,
    KubeConnectionError,
    KubeError,
    error_from_status,
    parse_retry_after,
    status_from_response,
)
from rxkube.streams._events import KubeObject
from rxkube.streams._resources import Resource
from rxkube.streams._version import __version__

__all__ = [
    "KubeClient",
    "ObjectList",
    "PatchType",
    "RateLimit",
    "open_client",
]

PatchType: TypeAlias = Literal["merge", "json", "strategic", "apply"]
_PATCH_CONTENT_TYPES: Final[dict[str, str]] = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    # JSON is YAML, so an apply configuration is sent as JSON under the YAML media type.
    "apply": "application/apply-patch+yaml",
}
_JSON: Final = "application/json"
# client-go's metadata client asks for PartialObjectMetadata and accepts plain JSON as a
# fallback (wire reference section 5).
ACCEPT_METADATA: Final = (
    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"
)
ACCEPT_METADATA_LIST: Final = (
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
)
DEFAULT_FIELD_MANAGER: Final = "rxkube"

Params: TypeAlias = Mapping[str, str | int | bool | Sequence[str] | None]
"""Query parameters; None values are left out, booleans are `true`/`false`, and a sequence of
strings repeats the key (`exec`'s `command=sh&command=-c&command=...`)."""


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Client-side rate limit on API requests: a token bucket refilled at `qps` tokens per
    second holding at most `burst` (client-go's `QPS`/`Burst`). Watches hold no token while
    they stream; opening one takes a token like any request."""

    qps: float = 50.0
    burst: int = 100

    def __post_init__(self) -> None:
        if self.qps <= 0 or self.burst < 1:
            raise ValueError(f"RateLimit needs qps > 0 and burst >= 1, got {self}")


class _TokenBucket:
    """Reservation-style token bucket (like Go's `rate.Limiter.Wait`): a caller that finds
    the bucket empty reserves the next token and sleeps until it is due, so waiters are served
    in order at exactly `qps`. Time is trio's clock (MockClock in tests)."""

    __slots__ = ("_burst", "_last", "_qps", "_tokens")

    def __init__(self, limit: RateLimit) -> None:
        self._qps = limit.qps
        self._burst = float(limit.burst)
        self._tokens = float(limit.burst)
        self._last: float | None = None

    async def acquire(self) -> None:
        now = trio.current_time()
        if self._last is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
        self._last = now
        self._tokens -= 1.0
        if self._tokens >= 0.0:
            return
        delay = -self._tokens / self._qps
        try:
            await trio.sleep(delay)
        except trio.Cancelled:
            self._tokens += 1.0  # give the reservation back
            raise


@dataclass(frozen=True, slots=True)
class ObjectList:
    """A complete (all pages) list: the items and the resourceVersion it was read at (the
    list's, not any item's: a watch resumes from it)."""

    items: tuple[KubeObject, ...]
    resource_version: str
    kind: str = ""


def _build_ssl_context(config: KubeConfig) -> ssl.SSLContext | bool:
    if not config.server.startswith("https://"):
        return True
    ctx = ssl.create_default_context(cafile=config.ca_file)
    if not config.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if config.client_cert_file is not None and config.client_key_file is not None:
        ctx.load_cert_chain(config.client_cert_file, config.client_key_file)
    return ctx


def _clean_params(params: Params | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if params:
        for key, value in params.items():
            if value is None:
                continue
            if isinstance(value, bool):
                out.append((key, "true" if value else "false"))
            elif isinstance(value, str | int):
                out.append((key, str(value)))
            else:
                out.extend((key, str(item)) for item in value)
    return out


def _metadata(obj: KubeObject) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


class KubeClient:
    """Generic verbs on any `Resource`. Open with `open_client(config)`.

    Namespaces: object verbs (`get`, `create`, `replace`, `patch`, `delete`) default to the
    object's own `metadata.namespace`, else the config's namespace. Collection reads (`list`,
    `watch`) take `namespace=None` as *all namespaces*; `delete_collection` defaults to the
    config's namespace (deleting across all namespaces is never implied).

        async with open_client(load_config()) as client:
            pod = await client.get(PODS, "web-0", namespace="apps")
            pods = await client.list(PODS, namespace="apps", label_selector="app=web")
    """

    def __init__(
        self,
        config: KubeConfig,
        http: httpx.AsyncClient,
        *,
        rate_limit: RateLimit | None,
    ) -> None:
        self.config = config
        self._http = http
        self._bucket = _TokenBucket(rate_limit) if rate_limit is not None else None
        self._tls_extensions: dict[str, Any] = (
            {"sni_hostname": config.tls_server_name} if config.tls_server_name else {}
        )

    @property
    def namespace(self) -> str:
        """The default namespace (kubeconfig context's, or the pod's)."""
        return self.config.namespace

    # -- the request core ------------------------------------------------------------------

    async def _build(
        self,
        method: str,
        path: str,
        params: Params | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        timeouts: httpx.Timeout | None,
    ) -> httpx.Request:
        hdrs = {"Accept": _JSON}
        if headers:
            hdrs.update(headers)
        source = self.config.token_source
        if source is not None:
            auth = await source.authorization()
            if auth:
                hdrs["Authorization"] = auth
        extensions: dict[str, Any] = dict(self._tls_extensions)
        if timeouts is not None:
            extensions["timeout"] = timeouts.as_dict()
        return self._http.build_request(
            method,
            path,
            params=tuple(_clean_params(params)) or None,
            content=content,
            headers=hdrs,
            extensions=extensions,
        )

    async def _send(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str,
        namespace: str | None,
        params: Params | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        timeouts: httpx.Timeout | None = None,
    ) -> httpx.Response:
        refreshed = False
        while True:
            if self._bucket is not None:
                await self._bucket.acquire()
            request = await self._build(method, path, params, content, headers, timeouts)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise KubeConnectionError(
                    f"{method} {path}: cannot reach the API server at {self.config.server}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            code = response.status_code
            if code < 400:
                return response
            try:
                body = await response.aread()
            except httpx.TransportError:
                body = b""
            finally:
                await response.aclose()
            if code == 401 and not refreshed and self.config.token_source is not None:
                # Rotated token file, expired exec credential: refresh once and retry.
                refreshed = True
                await self.config.token_source.refresh()
                continue
            raise error_from_status(
                status_from_response(code, body, method),
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                method=method,
                path=path,
                verb=verb,
                resource=resource,
                namespace=namespace,
            )

    async def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str = "",
        namespace: str | None = None,
        params: Params | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """Any request (subresources, discovery, `/version`): the response body's bytes.

        `verb`, `resource` and `namespace` name the request in RBAC terms for errors.
        """
        response = await self._send(
            method,
            path,
            verb=verb,
            resource=resource,
            namespace=namespace,
            params=params,
            content=content,
            headers=headers,
        )
        return response.content

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        resource: str = "",
        namespace: str | None = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """A streaming request (watches, `log?follow=true`): yields the open response, whose
        body is read with `aiter_bytes()`; leaving the block closes the connection. Errors are
        raised before the block is entered, as typed `ApiError`s."""
        response = await self._send(
            method,
            path,
            verb=verb,
            resource=resource,
            namespace=namespace,
            params=params,
            headers=headers,
            stream=True,
            timeouts=httpx.Timeout(self._http.timeout.connect, read=read_timeout, pool=None),
        )
        try:
            yield response
        finally:
            await response.aclose()

    async def _json(self, method: str, path: str, **kw: Any) -> KubeObject:
        body = await self.request(method, path, **kw)
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise KubeError(f"{method} {path}: the response is not JSON: {exc}") from exc
        if not isinstance(decoded, dict):
            raise KubeError(f"{method} {path}: expected a JSON object, got {type(decoded)}")
        return cast(KubeObject, decoded)

    # -- namespaces ------------------------------------------------------------------------

    def _object_namespace(
        self, resource: Resource, namespace: str | None, obj: KubeObject | None = None
    ) -> str | None:
        if not resource.namespaced:
            if namespace is not None:
                raise ValueError(f"{resource.qualified_name} is cluster-scoped: no namespace")
            return None
        if namespace is not None:
            return namespace
        if obj is not None:
            own = _metadata(obj).get("namespace")
            if isinstance(own, str) and own:
                return own
        return self.config.namespace

    # -- verbs -----------------------------------------------------------------------------

    async def get(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        metadata_only: bool = False,
    ) -> KubeObject:
        """One object (or its subresource, e.g. `scale`); `NotFound` when absent."""
        ns = self._object_namespace(resource, namespace)
        return await self._json(
            "GET",
            resource.object_path(name, ns, subresource),
            verb="get",
            resource=resource.qualified_name,
            namespace=ns,
            headers={"Accept": ACCEPT_METADATA} if metadata_only else None,
        )

    async def list_page(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        metadata_only: bool = False,
    ) -> bytes:
        """One raw page of a list (the response body): for callers that decode lists their own
        fast way (the watch does). Most callers want `list()`."""
        return await self.request(
            "GET",
            resource.collection_path(namespace),
            verb="list",
            resource=resource.qualified_name,
            namespace=namespace,
            params={
                "labelSelector": label_selector or None,
                "fieldSelector": field_selector or None,
                "limit": limit,
                "continue": continue_token,
                # A continue token fixes the RV itself; sending both is a 400 (wire ref 3.1).
                "resourceVersion": None if continue_token else resource_version,
            },
            headers={"Accept": ACCEPT_METADATA_LIST} if metadata_only else None,
        )

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = 500,
        resource_version: str | None = None,
        metadata_only: bool = False,
    ) -> ObjectList:
        """Every matching object, page by page (`limit` per page; None for one response).

        `namespace=None` lists all namespaces. When a continue token has expired mid-way
        (410), the list is redone in one request without `limit`, as client-go's pager does,
        so the result is always one consistent snapshot.
        """
        items: list[KubeObject] = []
        token: str | None = None
        page_limit = limit
        while True:
            try:
                body = await self.list_page(
                    resource,
                    namespace=namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    limit=page_limit,
                    continue_token=token,
                    resource_version=resource_version,
                    metadata_only=metadata_only,
                )
            except Gone:
                if token is None:
                    raise
                items.clear()
                token, page_limit = None, None
                continue
            page = orjson.loads(body)
            if not isinstance(page, dict):
                raise KubeError(f"list {resource.qualified_name}: expected a List object")
            items.extend(page.get("items") or ())
            meta = page.get("metadata") or {}
            token = meta.get("continue") or None
            if token is None:
                return ObjectList(
                    tuple(items), str(meta.get("resourceVersion", "")), page.get("kind", "")
                )

    async def create(
        self,
        resource: Resource,
        obj: KubeObject,
        *,
        namespace: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> KubeObject:
        """POST a new object (201); `AlreadyExists` when the name is taken."""
        ns = self._object_namespace(resource, namespace, obj)
        return await self._json(
            "POST",
            resource.collection_path(ns),
            verb="create",
            resource=resource.qualified_name,
            namespace=ns,
            params={"fieldManager": field_manager, "dryRun": "All" if dry_run else None},
            content=orjson.dumps(obj),
            headers={"Content-Type": _JSON},
        )

    async def replace(
        self,
        resource: Resource,
        obj: KubeObject,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> KubeObject:
        """PUT the whole object; with `metadata.resourceVersion` set, a stale copy is a
        `Conflict` (optimistic concurrency, wire reference 2.2)."""
        name = _metadata(obj).get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("replace needs the object's metadata.name")
        ns = self._object_namespace(resource, namespace, obj)
        return await self._json(
            "PUT",
            resource.object_path(name, ns, subresource),
            verb="update",
            resource=resource.qualified_name,
            namespace=ns,
            params={"fieldManager": field_manager, "dryRun": "All" if dry_run else None},
            content=orjson.dumps(obj),
            headers={"Content-Type": _JSON},
        )

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: KubeObject | builtins.list[Any],
        *,
        namespace: str | None = None,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> KubeObject:
        """PATCH an object: `merge` (RFC 7386), `json` (RFC 6902, a list of operations),
        `strategic` (core kinds only) or `apply` (server-side apply; `force` takes over
        conflicting fields; the field manager defaults to `rxkube`)."""
        if patch_type not in _PATCH_CONTENT_TYPES:
            raise ValueError(f"unknown patch type {patch_type!r}; use {list(_PATCH_CONTENT_TYPES)}")
        if (patch_type == "json") != isinstance(patch, list):
            raise ValueError("a json patch is a list of operations; other patches are objects")
        if patch_type == "apply" and field_manager is None:
            field_manager = DEFAULT_FIELD_MANAGER
        ns = self._object_namespace(resource, namespace)
        return await self._json(
            "PATCH",
            resource.object_path(name, ns, subresource),
            verb="patch",
            resource=resource.qualified_name,
            namespace=ns,
            params={
                "fieldManager": field_manager,
                "force": True if force and patch_type == "apply" else None,
                "dryRun": "All" if dry_run else None,
            },
            content=orjson.dumps(patch),
            headers={"Content-Type": _PATCH_CONTENT_TYPES[patch_type]},
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
        resource_version: str | None = None,
        uid: str | None = None,
        dry_run: bool = False,
    ) -> KubeObject:
        """DELETE an object: the server returns the (now terminating) object for some kinds
        and a `Status` for others. `resource_version` and `uid` are preconditions (409
        Conflict when the object changed, or is another incarnation of the name)."""
        ns = self._object_namespace(resource, namespace)
        return await self._json(
            "DELETE",
            resource.object_path(name, ns),
            verb="delete",
            resource=resource.qualified_name,
            namespace=ns,
            content=_delete_options(
                grace_period_seconds, propagation_policy, resource_version, dry_run, uid
            ),
            headers={"Content-Type": _JSON},
        )

    async def delete_collection(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: Literal["Foreground", "Background", "Orphan"] | None = None,
        dry_run: bool = False,
    ) -> KubeObject:
        """DELETE every matching object in one namespace (default: the config's)."""
        ns = self._object_namespace(resource, namespace)
        return await self._json(
            "DELETE",
            resource.collection_path(ns),
            verb="deletecollection",
            resource=resource.qualified_name,
            namespace=ns,
            params={"labelSelector": label_selector, "fieldSelector": field_selector},
            content=_delete_options(grace_period_seconds, propagation_policy, None, dry_run),
            headers={"Content-Type": _JSON},
        )


def _delete_options(
    grace_period_seconds: int | None,
    propagation_policy: str | None,
    resource_version: str | None,
    dry_run: bool,
    uid: str | None = None,
) -> bytes | None:
    options: dict[str, Any] = {}
    if grace_period_seconds is not None:
        options["gracePeriodSeconds"] = grace_period_seconds
    if propagation_policy is not None:
        options["propagationPolicy"] = propagation_policy
    preconditions = {
        key: value
        for key, value in (("resourceVersion", resource_version), ("uid", uid))
        if value is not None
    }
    if preconditions:
        options["preconditions"] = preconditions
    if dry_run:
        options["dryRun"] = ["All"]
    if not options:
        return None
    return orjson.dumps({"kind": "DeleteOptions", "apiVersion": "v1", **options})


@asynccontextmanager
async def open_client(
    config: KubeConfig,
    *,
    rate_limit: RateLimit | None = RateLimit(),
    request_timeout: float = 30.0,
    connect_timeout: float = 10.0,
    user_agent: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[KubeClient]:
    """Open the client for `config`; leaving the block closes every connection.

    `request_timeout` bounds each ordinary request's reads; watches set their own (see `watch()`).
    `rate_limit=None` turns the client-side limit off. `transport` replaces the network
    (e.g. `httpx.MockTransport` in tests of what lies behind this seam).

        async with open_client(load_kubeconfig(context="lab")) as client:
            await client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 3}}, namespace="apps")
    """
    http = httpx.AsyncClient(
        base_url=config.server,
        verify=_build_ssl_context(config),
        timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=32),
        headers={"User-Agent": user_agent or f"rxkube/{__version__}"},
        proxy=config.proxy,
        transport=transport,
        # Never read proxies or certificates from the environment: the config says it all.
        trust_env=False,
        follow_redirects=False,
    )
    async with http:
        yield KubeClient(config, http, rate_limit=rate_limit)
