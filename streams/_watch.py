"""`watch()`: a Kubernetes collection as a cold Observable of `WatchEvent`s that never goes blind.

What this module is for: DESIGN section 4 ("Watch semantics") and wire reference section 14,
client-go's reflector, as a reactive source:

1. list (paginated, `limit` per page) and emit ADDED/MODIFIED for what is new or changed since
   the previous list, DELETED (`final_state_unknown=True`) for what vanished, then SYNCED;
2. watch from the LIST's resourceVersion with `allowWatchBookmarks=true` and a server
   `timeoutSeconds` spread randomly over [T, 2T); every event and bookmark advances the
   resourceVersion; bookmarks are not passed on;
3. a normal end of the stream (server timeout, dropped connection) re-watches from the last
   resourceVersion at once, without relisting; a watch that ends in under a second having
   delivered nothing backs off first ("very short watch");
4. 410 Gone (an ERROR event, or the HTTP status of a list or watch) relists: first
   not-older-than the last resourceVersion, then, if that is gone too, the latest state; an
   expired continue token restarts the list in one request without `limit` (client-go's pager);
5. 429 (honouring Retry-After), 5xx and connection failures back off with jitter: 0.8 s
   doubling to 30 s, reset after a healthy period (client-go's backoff manager); a 403 is
   logged as an error naming what RBAC must allow and retried the same way (a Role applied
   after the controller starts is an install race, not a crash); a 401 refreshes the
   credentials (the client does it) and is retried;
6. a client-side inactivity timeout (no byte for `inactivity_timeout` seconds) catches dead or
   stalled connections that the server's timeout never ends;
7. a malformed line is logged and answered by a relist: the stream never dies of bad input.
   Only errors no retry can fix (400 bad selector, 422, 405/406/415) end it with `on_error`.

It is cold: subscribing with a `TrioScheduler` (`obs.subscribe(observer, scheduler=...)`)
starts one reflector task in that scheduler's nursery; disposing the subscription cancels it
and closes its connection. All time comes from trio's clock (the scheduler's), randomness from
an injectable `random.Random`. The hot path reads the httpx byte stream with a plain
`bytes.split` line splitter and decodes each line with the codec's `decode_watch_line` (the
object stays raw bytes plus a GC-untracked metadata view).

It may import the client, errors, resources, events, codec and scheduler modules of
`rxkube.streams`, and trio, httpx, msgspec and reactivex.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

import httpx
import msgspec
import reactivex
import trio
from reactivex import abc

from rxkube.streams._client import ACCEPT_METADATA, KubeClient
from rxkube.streams._codec import (
    ObjectMetaView,
    RawObject,
    RawTransform,
    WatchLineError,
    decode_meta,
    decode_watch_line,
    drop_managed_fields,
)
from rxkube.streams._errors import (
    ApiError,
    BadRequest,
    Forbidden,
    Gone,
    Invalid,
    KubeConnectionError,
    KubeError,
    ServerError,
    TooManyRequests,
    Unauthorized,
    error_from_status,
)
from rxkube.streams._events import WatchEvent
from rxkube.streams._resources import Resource
from rxkube.streams._scheduler import as_trio_scheduler
from rxkube.streams._store import Store

__all__ = [
    "WatchCounters",
    "WatchPolicy",
    "WatchStatistics",
    "stream_id",
    "stream_spec",
    "watch",
]

log: Final = logging.getLogger("rxkube.streams.watch")


@dataclass(frozen=True, slots=True)
class WatchPolicy:
    """Timings of a watch, as plain data (defaults are client-go's; tests shorten them).

    - `page_size`: `limit` per list page (client-go's pager: 500).
    - `server_timeout`: T; each watch asks the server to end it after `int(T * (1 + r))`
      seconds, r uniform in [0, 1) (client-go: 300 s, so 300-599 s), which spreads the
      re-watches of many clients.
    - `inactivity_timeout`: no byte for this long means the connection is dead or stalled:
      reconnect. Servers send a bookmark about every minute, so the default allows two misses.
    - `backoff_initial`, `backoff_max`, `backoff_factor`, `backoff_jitter`: delay before a
      retry after a failure: initial, times factor after each failure, capped at max, plus up
      to `jitter` times itself at random (client-go: 0.8 s, 30 s, 2.0, 1.0).
    - `backoff_reset`: after this long without a failure, the delay starts again from
      initial (client-go: 2 min).
    - `short_watch`: a watch that ends normally within this time having delivered nothing
      counts as a failure (client-go's "very short watch", 1 s).
    """

    page_size: int = 500
    server_timeout: float = 300.0
    inactivity_timeout: float = 130.0
    backoff_initial: float = 0.8
    backoff_max: float = 30.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 1.0
    backoff_reset: float = 120.0
    short_watch: float = 1.0

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError("WatchPolicy.page_size must be at least 1")
        if self.server_timeout < 1:
            raise ValueError("WatchPolicy.server_timeout must be at least 1 s (whole seconds)")
        for name in ("inactivity_timeout", "backoff_initial", "backoff_max", "backoff_reset"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WatchPolicy.{name} must be positive")
        if self.backoff_factor < 1 or self.backoff_jitter < 0 or self.short_watch < 0:
            raise ValueError("WatchPolicy: backoff_factor >= 1, jitter and short_watch >= 0")


@dataclass(frozen=True, slots=True)
class WatchStatistics:
    """A snapshot of one watch's health (trio's `statistics()` convention).

    - `events`: ADDED/MODIFIED/DELETED events passed on (from lists and watches).
    - `bookmarks`: bookmarks received (not passed on).
    - `lists`: complete lists (the first one and every relist); `relists` excludes the first.
    - `watches`: watch requests opened; `reconnects`: those that resumed from the last
      resourceVersion after a stream ended or broke (no relist in between).
    - `synthesized_deletions`: DELETED events made up for objects gone while disconnected.
    - `errors`: failures by kind (`Gone`, `Forbidden`, `TooManyRequests`, `ServerError`,
      `Unauthorized`, `Connection`, `Inactivity`, `Malformed`, `ShortWatch`, ...).
    - `resource_version`: the last resourceVersion seen (list, event or bookmark).
    - `synced`: a complete list has been delivered at least once.
    - `last_error`: the message of the last failure, or None.
    """

    events: int = 0
    bookmarks: int = 0
    lists: int = 0
    relists: int = 0
    watches: int = 0
    reconnects: int = 0
    synthesized_deletions: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    resource_version: str = ""
    synced: bool = False
    last_error: str | None = None


class WatchCounters:
    """The live, mutable counters a watch updates; pass one to `watch(counters=...)` and read
    `statistics()` for a frozen snapshot (the informer does this), or wait for a condition on
    them with `wait_until`."""

    __slots__ = (
        "_lot",
        "bookmarks",
        "errors",
        "events",
        "last_error",
        "lists",
        "reconnects",
        "relists",
        "resource_version",
        "synced",
        "synthesized_deletions",
        "watches",
    )

    def __init__(self) -> None:
        self.events = 0
        self.bookmarks = 0
        self.lists = 0
        self.relists = 0
        self.watches = 0
        self.reconnects = 0
        self.synthesized_deletions = 0
        self.errors: Counter[str] = Counter()
        self.resource_version = ""
        self.synced = False
        self.last_error: str | None = None
        self._lot = trio.lowlevel.ParkingLot()

    def changed(self) -> None:
        """Wake whoever waits in `wait_until` (called on lists, watches, errors, and by the
        informer on events; cheap when nobody waits)."""
        if self._lot:
            self._lot.unpark_all()

    async def wait_until(self, predicate: Callable[[WatchStatistics], bool]) -> WatchStatistics:
        """Wait until `predicate(statistics())` holds; re-checked at every change."""
        while True:
            stats = self.statistics()
            if predicate(stats):
                return stats
            await self._lot.park()

    def statistics(self) -> WatchStatistics:
        return WatchStatistics(
            events=self.events,
            bookmarks=self.bookmarks,
            lists=self.lists,
            relists=self.relists,
            watches=self.watches,
            reconnects=self.reconnects,
            synthesized_deletions=self.synthesized_deletions,
            errors=dict(self.errors),
            resource_version=self.resource_version,
            synced=self.synced,
            last_error=self.last_error,
        )


def stream_id(
    resource: Resource,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    metadata_only: bool = False,
) -> str:
    """The id naming one watch exactly (DESIGN section 4, "Trace format"):
    `deployments.apps/lab?labelSelector=app%3Dweb&meta`; all namespaces omit `/<ns>`."""
    sid = resource.qualified_name
    if namespace is not None:
        sid += f"/{namespace}"
    query = []
    if label_selector:
        query.append(f"labelSelector={quote(label_selector, safe='')}")
    if field_selector:
        query.append(f"fieldSelector={quote(field_selector, safe='')}")
    if metadata_only:
        query.append("meta")
    return f"{sid}?{'&'.join(query)}" if query else sid


def stream_spec(
    resource: Resource,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    metadata_only: bool = False,
) -> dict[str, str | bool]:
    """What one watch watches, as a trace header declares it (DESIGN section 4, "Trace
    format"): `{"resource": "deployments.apps", "apiVersion": "apps/v1", "kind":
    "Deployment", "namespace": "lab", "labelSelector": ..., "metadataOnly": true}` (absent
    settings are left out). Pair it with `stream_id(...)` of the same arguments."""
    spec: dict[str, str | bool] = {
        "resource": resource.qualified_name,
        "apiVersion": resource.api_version,
        "kind": resource.kind,
    }
    if namespace is not None:
        spec["namespace"] = namespace
    if label_selector:
        spec["labelSelector"] = label_selector
    if field_selector:
        spec["fieldSelector"] = field_selector
    if metadata_only:
        spec["metadataOnly"] = True
    return spec


# -- decoding lists ------------------------------------------------------------------------


class _ListMeta(msgspec.Struct, frozen=True, gc=False):
    resourceVersion: str = ""
    continue_: str = msgspec.field(default="", name="continue")


class _ListPage(msgspec.Struct, gc=False):
    metadata: _ListMeta = _ListMeta()
    items: list[msgspec.Raw] | None = None


class _ItemHead(msgspec.Struct, gc=False):
    kind: str = ""
    metadata: ObjectMetaView = ObjectMetaView()


_page_decoder: Final = msgspec.json.Decoder(_ListPage)
_item_decoder: Final = msgspec.json.Decoder(_ItemHead)


class _Malformed(Exception):
    """A line or page that cannot be decoded: logged, counted, answered by a relist."""


class _Terminal(Exception):
    """Carries an error no retry can fix out of the loop, to `on_error`."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


_TERMINAL_CODES: Final = frozenset({405, 406, 415})


class _Backoff:
    """client-go's exponential backoff manager on trio's clock."""

    def __init__(self, policy: WatchPolicy, rng: random.Random) -> None:
        self._policy = policy
        self._rng = rng
        self._next = policy.backoff_initial
        self._last: float | None = None

    def delay(self) -> float:
        policy = self._policy
        now = trio.current_time()
        if self._last is not None and now - self._last > policy.backoff_reset:
            self._next = policy.backoff_initial
        self._last = now
        base = self._next
        self._next = min(base * policy.backoff_factor, policy.backoff_max)
        return base + base * policy.backoff_jitter * self._rng.random()


class _Reflector:
    """One watch's state and loop; emits to one observer. See the module docstring."""

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        *,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        metadata_only: bool,
        policy: WatchPolicy,
        rng: random.Random,
        counters: WatchCounters,
        stream: str,
        on_next: Callable[[WatchEvent], None],
        store: Store | None = None,
        transform: RawTransform | None = None,
    ) -> None:
        self._client = client
        self._resource = resource
        self._namespace = namespace
        self._policy = policy
        self._rng = rng
        self._counters = counters
        self._stream = stream
        self._on_next = on_next
        self._path = resource.collection_path(namespace)
        self._selectors = {"labelSelector": label_selector, "fieldSelector": field_selector}
        self._metadata_only = metadata_only
        if metadata_only:
            self._item_prefix = b'{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1",'
        else:
            self._item_prefix = (
                f'{{"kind":"{resource.kind}","apiVersion":"{resource.api_version}",'.encode()
            )
        self._backoff = _Backoff(policy, rng)
        # What downstream has been told exists, as client-go's reflector keeps it: a Store
        # (raw bytes shared with the events, gc=False views). It diffs each relist
        # (`Store.replace`, the one place deletions are synthesized) and gives a synthesized
        # deletion the last state seen. The informer passes its own; it must not have a
        # transform of its own (the reflector applies `transform`, so events and store hold
        # the same bytes).
        self.store = store if store is not None else Store(transform=None)
        self._transform = transform
        self._rv = ""
        self._need_list = True
        self._listed_once = False
        self._paginated = False
        self._rv_unavailable = False
        self._resumed = False

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                if self._need_list:
                    await self._list()
                    self._resumed = False
                await self._watch()
            except Gone as exc:
                self._failed("Gone", exc, level=logging.INFO)
                self._need_list = True
                await trio.sleep(self._backoff.delay())
            except TooManyRequests as exc:
                self._failed("TooManyRequests", exc, level=logging.WARNING)
                await trio.sleep(max(exc.retry_after or 0.0, self._backoff.delay()))
            except Forbidden as exc:
                self._failed(
                    "Forbidden",
                    exc,
                    level=logging.ERROR,
                    note=" (a watch needs both `list` and `watch`); retrying",
                )
                await trio.sleep(self._backoff.delay())
            except Unauthorized as exc:
                # The client refreshed the credentials once already; try again later.
                self._failed("Unauthorized", exc, level=logging.ERROR)
                await trio.sleep(self._backoff.delay())
            except (BadRequest, Invalid) as exc:
                raise _Terminal(exc) from exc
            except ServerError as exc:
                self._failed("ServerError", exc, level=logging.WARNING)
                if not self._need_list and _too_large_rv(exc):
                    # The server is behind the resourceVersion we hold (e.g. another replica
                    # after a failover): relist from the latest state (client-go does too).
                    self._need_list = True
                    self._rv_unavailable = True
                await trio.sleep(max(exc.retry_after or 0.0, self._backoff.delay()))
            except ApiError as exc:
                if exc.code in _TERMINAL_CODES:
                    raise _Terminal(exc) from exc
                # e.g. 404 for a custom resource whose CRD is not installed yet.
                self._failed(exc.reason or f"HTTP{exc.code}", exc, level=logging.ERROR)
                await trio.sleep(self._backoff.delay())
            except (KubeConnectionError, httpx.TransportError) as exc:
                self._failed("Connection", exc, level=logging.WARNING)
                await trio.sleep(self._backoff.delay())
            except _Malformed as exc:
                self._failed("Malformed", exc, level=logging.ERROR, note="; relisting")
                self._need_list = True
                await trio.sleep(self._backoff.delay())
            except KubeError as exc:
                self._failed(type(exc).__name__, exc, level=logging.ERROR)
                await trio.sleep(self._backoff.delay())

    def _failed(self, kind: str, exc: Exception, *, level: int, note: str = "") -> None:
        counters = self._counters
        counters.errors[kind] += 1
        counters.last_error = f"{kind}: {exc}"
        counters.changed()
        log.log(level, "watch %s: %s%s", self._stream, exc, note)

    # -- list ------------------------------------------------------------------------------

    def _list_version(self) -> str:
        if self._rv_unavailable:
            return ""  # the latest state (a consistent read)
        return self._rv if self._listed_once and self._rv else "0"

    async def _list(self) -> None:
        rv = self._list_version()
        # client-go pages only from "" or "0": with a specific RV a limit means an *exact*
        # read that compaction may have made impossible; unless the server paged before.
        limit: int | None = self._policy.page_size
        if rv not in ("", "0") and not self._paginated:
            limit = None
        items: list[RawObject] = []
        token: str | None = None
        while True:
            try:
                body = await self._client.list_page(
                    self._resource,
                    namespace=self._namespace,
                    label_selector=self._selectors["labelSelector"],
                    field_selector=self._selectors["fieldSelector"],
                    limit=limit,
                    continue_token=token,
                    resource_version=rv,
                    metadata_only=self._metadata_only,
                )
            except Gone as exc:
                if token is not None:
                    # An expired continue token: redo the whole list in one request.
                    self._failed("Gone", exc, level=logging.INFO, note="; listing in one request")
                    items.clear()
                    token, limit = None, None
                    continue
                if not self._rv_unavailable and rv not in ("", "0"):
                    self._rv_unavailable = True
                raise
            except ServerError as exc:
                if _too_large_rv(exc) and not self._rv_unavailable:
                    self._rv_unavailable = True
                raise
            page = self._decode_page(body, items)
            if page.continue_:
                self._paginated = True
                token = page.continue_
                continue
            break
        self._replace(items, page.resourceVersion)

    def _decode_page(self, body: bytes, into: list[RawObject]) -> _ListMeta:
        transform = self._transform
        try:
            page = _page_decoder.decode(body)
            prefix = self._item_prefix
            for item in page.items or ():
                raw = bytes(item)
                head = _item_decoder.decode(raw)
                meta = head.metadata
                if not head.kind:
                    # Items of built-in kinds carry no kind/apiVersion (wire reference 3.2);
                    # watch events do. Add them, so every event's object looks the same.
                    raw = prefix + raw[1:] if raw != b"{}" else prefix[:-1] + b"}"
                if transform is not None:
                    raw, meta = _transformed(transform, raw, meta)
                into.append(RawObject(raw, meta))
        except msgspec.DecodeError as exc:
            raise _Malformed(f"malformed list response ({exc}): {body[:120]!r}") from None
        if not page.metadata.resourceVersion:
            raise _Malformed("list response without metadata.resourceVersion")
        return page.metadata

    def _replace(self, items: list[RawObject], list_rv: str) -> None:
        """Tell downstream what changed since it last knew, then SYNCED (a relist is a diff)."""
        counters = self._counters
        events = self.store.replace(items, resource_version=list_rv, stream=self._stream)
        self._rv = list_rv
        counters.resource_version = list_rv
        counters.lists += 1
        if self._listed_once:
            counters.relists += 1
        self._listed_once = True
        self._rv_unavailable = False
        self._need_list = False
        counters.synced = True
        on_next = self._on_next
        for event in events:
            if event.type != "SYNCED":
                counters.events += 1
                if event.final_state_unknown:
                    counters.synthesized_deletions += 1
            on_next(event)
        counters.changed()

    # -- watch -----------------------------------------------------------------------------

    async def _watch(self) -> None:
        policy = self._policy
        counters = self._counters
        timeout_seconds = int(policy.server_timeout * (1.0 + self._rng.random()))
        params = {
            "watch": "true",
            "resourceVersion": self._rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
            **self._selectors,
        }
        headers = {"Accept": ACCEPT_METADATA} if self._metadata_only else None
        started = trio.current_time()
        counters.watches += 1
        if self._resumed:
            counters.reconnects += 1
        self._resumed = True
        counters.changed()
        received = 0
        inactivity = policy.inactivity_timeout
        broken: Exception | None = None
        with trio.CancelScope(deadline=started + inactivity) as idle:
            async with self._client.stream(
                "GET",
                self._path,
                verb="watch",
                resource=self._resource.qualified_name,
                namespace=self._namespace,
                params=params,
                headers=headers,
            ) as response:
                # Undecoded reads skip a layer of httpx per chunk; a compressed body (the
                # server may gzip when asked) goes through the decoder.
                identity = response.headers.get("content-encoding", "identity") == "identity"
                chunks = response.aiter_raw() if identity else response.aiter_bytes()
                pending = b""
                while True:
                    try:
                        chunk = await chunks.__anext__()
                    except StopAsyncIteration:
                        break
                    except httpx.TransportError as exc:
                        broken = exc  # dropped mid-stream: resume from the last RV
                        break
                    idle.deadline = trio.current_time() + inactivity
                    if pending:
                        chunk = pending + chunk
                    lines = chunk.split(b"\n")
                    pending = lines.pop()
                    received += self._lines(lines)
                # A clean end may leave a last line without its newline; a broken one leaves
                # half a line, which is dropped (the resume replays it).
                if broken is None and pending.strip():
                    received += self._lines([pending])
        if idle.cancelled_caught:
            self._failed(
                "Inactivity",
                KubeConnectionError(f"nothing received for {inactivity:g} s"),
                level=logging.WARNING,
                note="; reconnecting",
            )
            return
        if broken is not None:
            self._failed("Connection", broken, level=logging.INFO, note="; resuming")
        if received == 0 and trio.current_time() - started < policy.short_watch:
            counters.errors["ShortWatch"] += 1
            counters.last_error = "ShortWatch: the watch ended at once having sent nothing"
            counters.changed()
            await trio.sleep(self._backoff.delay())

    def _lines(self, lines: list[bytes]) -> int:
        """Decode and pass on complete lines; returns how many carried an event or bookmark."""
        counters = self._counters
        apply = self.store.apply
        transform = self._transform
        # The default transform is done while decoding, in the same pass (see the codec).
        keep_managed = transform is not drop_managed_fields
        if not keep_managed:
            transform = None
        stream = self._stream
        on_next = self._on_next
        n = 0
        for line in lines:
            if not line or line.isspace():
                continue
            try:
                decoded = decode_watch_line(line, keep_managed_fields=keep_managed)
            except WatchLineError as exc:
                raise _Malformed(str(exc)) from None
            kind = decoded.type
            meta = decoded.meta
            if kind == "ADDED" or kind == "MODIFIED" or kind == "DELETED":
                rv = meta.resource_version
                raw = decoded.raw
                if transform is not None:
                    raw, meta = _transformed(transform, raw, meta)
                event = WatchEvent(kind, raw=raw, meta=meta, resource_version=rv, stream=stream)
                # The store first: whoever reads it from on_next sees this event applied.
                apply(event)
                if rv:
                    self._rv = rv
                counters.events += 1
                on_next(event)
            elif kind == "BOOKMARK":
                self._rv = meta.resource_version or self._rv
                counters.bookmarks += 1
            else:  # ERROR: a Status; 410 means relist
                counters.resource_version = self._rv
                raise _error_event(decoded.raw, self._resource, self._namespace)
            n += 1
        counters.resource_version = self._rv
        if n:
            counters.changed()  # per chunk, not per line: bookmarks wake waiters too
        return n


def _transformed(
    transform: RawTransform, raw: bytes, meta: ObjectMetaView
) -> tuple[bytes, ObjectMetaView]:
    out = transform(raw)
    if out is raw:
        return raw, meta
    # A user's transform may rewrite metadata: the view must describe what is kept (the
    # default one only drops managedFields, which the view does not hold).
    return out, meta if transform is drop_managed_fields else decode_meta(out)


def _error_event(raw: bytes, resource: Resource, namespace: str | None) -> Exception:
    try:
        status = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return _Malformed(f"ERROR watch event whose object is not JSON: {raw[:120]!r}")
    if not isinstance(status, dict) or "code" not in status:
        return _Malformed(f"ERROR watch event whose object is not a Status: {raw[:120]!r}")
    return error_from_status(
        status,  # type: ignore[arg-type]
        method="GET",
        verb="watch",
        resource=resource.qualified_name,
        namespace=namespace,
    )


def _too_large_rv(exc: ServerError) -> bool:
    causes = exc.details.get("causes", [])
    return any(c.get("reason") == "ResourceVersionTooLarge" for c in causes) or (
        "Too large resource version" in exc.message
    )


def watch(
    client: KubeClient,
    resource: Resource,
    *,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    metadata_only: bool = False,
    policy: WatchPolicy | None = None,
    rng: random.Random | None = None,
    counters: WatchCounters | None = None,
) -> reactivex.Observable[WatchEvent]:
    """Watch `resource` (in `namespace`, or all namespaces when None) as a cold Observable.

    Subscribe with a `TrioScheduler`; each subscription runs its own list+watch in the
    scheduler's nursery until disposed. `metadata_only=True` asks for PartialObjectMetadata.
    `counters` (optional) is updated live; `rng` makes the timeout spread and jitter
    reproducible in tests.

        async with trio.open_nursery() as nursery:
            events = watch(client, PODS, namespace="apps", label_selector="app=web")
            events.subscribe(print, scheduler=TrioScheduler(nursery))
    """
    sid = stream_id(
        resource,
        namespace=namespace,
        label_selector=label_selector,
        field_selector=field_selector,
        metadata_only=metadata_only,
    )
    resource.collection_path(namespace)  # a cluster-scoped kind with a namespace fails here
    chosen_policy = policy or WatchPolicy()

    def subscribe(
        observer: abc.ObserverBase[WatchEvent], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        trio_scheduler = as_trio_scheduler(scheduler, what=f"watch({sid!r})")
        reflector = _Reflector(
            client,
            resource,
            namespace=namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            metadata_only=metadata_only,
            policy=chosen_policy,
            rng=rng or random.Random(),
            counters=counters if counters is not None else WatchCounters(),
            stream=sid,
            on_next=observer.on_next,
        )

        async def run() -> None:
            try:
                await reflector.run()
            except _Terminal as exc:
                log.error("watch %s stopped: %s", sid, exc.error)
                observer.on_error(exc.error)

        return trio_scheduler.start_task(run, name=f"watch {sid}")

    return reactivex.create(subscribe)
