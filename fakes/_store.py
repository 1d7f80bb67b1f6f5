"""The object store of the fake API server: a pure core with no I/O, driven by method calls.

What this module is for: it holds every object, assigns the cluster-wide `resourceVersion`,
and implements the semantics of the verbs (reference `kubernetes-api-wire.md` sections 2-4 and
11.5): server-set metadata, optimistic concurrency, `generateName`, finalizers and
`deletionTimestamp`, ownerReference garbage collection, namespaces, list snapshots at a past
resourceVersion (for `continue` and `resourceVersionMatch=Exact`), bounded per-resource watch
history and compaction, and watchers with selector transitions. It may import the standard
library, orjson and the other pure modules of `rxkube.fakes`; it must not do I/O, read a clock
(time comes from the injected `now`) or use randomness other than the injected `random`.

Rules of the store (each is tested):
1. Every persisted write takes the next resourceVersion of one counter shared by all kinds; a
   write that changes nothing is not persisted (same RV returned, no event).
2. A failed write changes nothing (no RV used, no event, no partial state).
3. History is kept per resource (like the watch cache), bounded in count; `floor(resource)` is
   the highest RV whose events may be missing; watching or listing at an RV below it is 410.
4. A watcher sees the changes of its resource in RV order, after its start RV, each once; with
   selectors an object that starts matching arrives as ADDED, one that stops matching as
   DELETED (previous content, new RV), never MODIFIED across the boundary.
5. Subscribers (`subscribe`) see every committed change in order, after the store is
   consistent; a subscriber may write, and its writes are delivered after the current one.

Why objects are kept as bytes: a store of decoded dicts is walked again and again by CPython's
cyclic garbage collector (DESIGN section 4), and serving a list or a watch event to many
clients is then a join of bytes, not an encode per client. An `Entry` keeps the JSON, the
labels and the field-selector values; decode with `Entry.object()` (a fresh dict each time).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import random as _random
import time as _time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from rxkube.fakes._errors import StatusCause, StatusError
from rxkube.fakes._patch import PatchRequest, PatchTypes
from rxkube.fakes._resources import Registry, ResourceType, builtin_resources
from rxkube.fakes._selectors import FieldSelector, LabelSelector, valid_label_key, valid_label_value

__all__ = [
    "AdmissionRequest",
    "Change",
    "DeleteOptions",
    "Entry",
    "ListResult",
    "Store",
    "Watcher",
    "WriteOptions",
]

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]
Operation = Literal["CREATE", "UPDATE", "DELETE"]

_META_ORDER: Final = (
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
)
_NAME_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
_GENERATE_NAME_DRAWS: Final = 8
_SUBDOMAIN_MESSAGE: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MESSAGE: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
# Kinds whose names must be DNS labels (63 chars, no dots) rather than subdomains.
_DNS_LABEL_KINDS: Final = frozenset({"namespaces", "services"})
SYSTEM_NAMESPACES: Final = ("default", "kube-node-lease", "kube-public", "kube-system")


def rfc3339(seconds: float) -> str:
    """`metav1.Time`: whole seconds, UTC, `Z` (reference section 2.1)."""
    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(seconds))


def _valid_subdomain(name: str) -> bool:
    if not name or len(name) > 253:
        return False
    return all(_valid_label(part) for part in name.split("."))


def _valid_label(name: str) -> bool:
    if not name or len(name) > 63:
        return False
    if not (name[0].isalnum() and name[-1].isalnum()):
        return False
    return all(c.islower() or c.isdigit() or c == "-" for c in name)


class Entry:
    """One stored version of one object: its JSON bytes plus what selectors need.

    Immutable once built. `raw` is the full object (kind and apiVersion first);
    `item_raw()` is the form list items use (built-in kinds omit kind/apiVersion).
    """

    __slots__ = (
        "_partial",
        "fields",
        "key",
        "labels",
        "name",
        "namespace",
        "owner_uids",
        "raw",
        "resource",
        "rv",
        "uid",
    )

    resource: ResourceType
    namespace: str
    name: str
    key: str
    uid: str
    rv: int
    raw: bytes
    labels: dict[str, str]
    fields: dict[str, str]
    owner_uids: tuple[str, ...]
    _partial: bytes | None

    def __init__(self, resource: ResourceType, obj: Mapping[str, Any], rv: int) -> None:
        meta = obj.get("metadata") or {}
        self.resource = resource
        self.namespace = meta.get("namespace") or ""
        self.name = meta.get("name") or ""
        self.key = f"{self.namespace}/{self.name}" if self.namespace else self.name
        self.uid = meta.get("uid") or ""
        self.rv = rv
        self.raw = _encode(resource, obj)
        self.labels = dict(meta.get("labels") or {})
        self.fields = {label: get(obj) for label, get in resource.field_selectors.items()}
        self.owner_uids = tuple(
            ref["uid"] for ref in meta.get("ownerReferences") or () if ref.get("uid")
        )
        self._partial = None

    def object(self) -> dict[str, Any]:
        """The object, freshly decoded (the caller may mutate it)."""
        out: dict[str, Any] = orjson.loads(self.raw)
        return out

    def item_raw(self) -> bytes:
        """The JSON as a list item: built-in kinds without kind/apiVersion (section 3.2)."""
        if self.resource.custom:
            return self.raw
        return b"{" + self.raw[len(_prefix(self.resource)) :]

    def partial_raw(self) -> bytes:
        """`PartialObjectMetadata` JSON (reference section 5), computed once."""
        if self._partial is None:
            meta = orjson.loads(self.raw).get("metadata", {})
            self._partial = orjson.dumps(
                {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
            )
        return self._partial

    def __repr__(self) -> str:
        return f"Entry({self.resource.qualified} {self.key!r} rv={self.rv})"


_PREFIXES: dict[tuple[str, str], bytes] = {}


def _prefix(resource: ResourceType) -> bytes:
    key = (resource.api_version, resource.kind)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        prefix = orjson.dumps({"kind": resource.kind, "apiVersion": resource.api_version})[:-1]
        prefix += b","
        _PREFIXES[key] = prefix
    return prefix


def _canonical(resource: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
    """kind, apiVersion, metadata (keys in the Go struct's order), then the rest as given."""
    out: dict[str, Any] = {"kind": resource.kind, "apiVersion": resource.api_version}
    meta = obj.get("metadata") or {}
    ordered = {k: meta[k] for k in _META_ORDER if k in meta}
    for k, v in meta.items():
        if k not in ordered:
            ordered[k] = v
    out["metadata"] = ordered
    for k, v in obj.items():
        if k not in ("kind", "apiVersion", "metadata"):
            out[k] = v
    return out


def _encode(resource: ResourceType, obj: Mapping[str, Any]) -> bytes:
    return orjson.dumps(_canonical(resource, obj))


class Change:
    """One committed write as watchers and subscribers see it.

    `new` is the object after the write (for DELETED: its last state with the deletion's RV);
    `old` the state before (None for ADDED).
    """

    __slots__ = ("_old_at_rv", "new", "old", "resource", "rv", "type")

    def __init__(
        self, type: ChangeType, resource: ResourceType, new: Entry, old: Entry | None
    ) -> None:
        self.type = type
        self.resource = resource
        self.new = new
        self.old = old
        self.rv = new.rv
        self._old_at_rv: Entry | None = None

    def old_at_new_rv(self) -> Entry:
        """The previous content with this change's RV: what a selector-transition DELETED
        carries (reference section 4.4)."""
        if self._old_at_rv is None:
            assert self.old is not None
            obj = self.old.object()
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self._old_at_rv = Entry(self.resource, obj, self.rv)
        return self._old_at_rv

    def __repr__(self) -> str:
        return f"Change({self.type}, {self.resource.qualified} {self.new.key!r}, rv={self.rv})"


@dataclass(slots=True)
class _History:
    changes: deque[Change] = field(default_factory=deque)
    floor: int = 0


@dataclass(frozen=True, slots=True)
class ListResult:
    """A page of a list: entries in key order, the RV it was read at, the continue token."""

    items: list[Entry]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None

    def objects(self) -> list[dict[str, Any]]:
        return [entry.object() for entry in self.items]


@dataclass(frozen=True, slots=True)
class DeleteOptions:
    """The parts of `DeleteOptions` the store acts on."""

    propagation_policy: str = ""  # Background (default) | Foreground | Orphan
    grace_period_seconds: int | None = None
    uid: str = ""  # preconditions.uid
    resource_version: str = ""  # preconditions.resourceVersion
    dry_run: bool = False

    @classmethod
    def from_json(cls, body: Mapping[str, Any] | None, query: Mapping[str, str]) -> DeleteOptions:
        body = body or {}
        policy = query.get("propagationPolicy") or body.get("propagationPolicy") or ""
        orphan = query.get("orphanDependents", body.get("orphanDependents"))
        if not policy and orphan in (True, "true"):
            policy = "Orphan"
        if policy not in ("", "Background", "Foreground", "Orphan"):
            raise StatusError.invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                [
                    StatusCause(
                        "FieldValueNotSupported",
                        f'Unsupported value: "{policy}": supported values: "Foreground", '
                        '"Background", "Orphan", "nil"',
                        "propagationPolicy",
                    )
                ],
            )
        grace_text = query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        grace: int | None = None
        if grace_text is not None:
            try:
                grace = int(grace_text)
            except (TypeError, ValueError):
                raise StatusError.bad_request(
                    f"invalid gracePeriodSeconds: {grace_text!r}"
                ) from None
        pre = body.get("preconditions") or {}
        dry = query.get("dryRun") or body.get("dryRun") or []
        dry_list = [dry] if isinstance(dry, str) else list(dry)
        _check_dry_run(dry_list)
        return cls(
            policy,
            grace,
            str(pre.get("uid") or ""),
            str(pre.get("resourceVersion") or ""),
            bool(dry_list),
        )


def _check_dry_run(values: Iterable[str]) -> None:
    for value in values:
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


@dataclass(slots=True)
class WriteOptions:
    """What the HTTP request said about a write, for admission steps (`Store.write_options`).

    `query`: the request's query parameters (`fieldValidation`, `fieldManager`, ...);
    `manager`: the field manager (the `fieldManager` parameter, else the User-Agent's product);
    `operation`: `Update`, or `Apply` for server-side apply; `body`: the raw request body and
    `content_type` its type. Steps append to `warnings`; the server sends each as a
    `Warning: 299 - "..."` header.
    """

    query: Mapping[str, str] = field(default_factory=dict)
    manager: str = ""
    operation: str = "Update"
    body: bytes = b""
    content_type: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class AdmissionRequest:
    """What an admission step sees. It may change `object` in place or raise `StatusError`.

    Steps run after the store set server-owned metadata and before validation of the result is
    committed; `old` is None on CREATE. `options` is the HTTP request's (`WriteOptions`), or
    None for a direct call on the store.
    """

    operation: Operation
    resource: ResourceType
    subresource: str
    object: dict[str, Any]
    old: Mapping[str, Any] | None
    namespace: str
    user: str
    dry_run: bool
    store: Store
    options: WriteOptions | None = None


Admission = Callable[[AdmissionRequest], None]
Subscriber = Callable[[Change], None]

WatchItem = tuple[str, "Entry | int"]
_Watchers = list["Watcher"]
_Entries = list[Entry]
_JsonList = list[Any]
"""What a watcher buffers: (ADDED|MODIFIED|DELETED, entry) or ("INITIAL_END", rv)."""


class Watcher:
    """One watch on one resource: filters changes and buffers what the client must receive.

    Pure: the I/O side sets `on_ready` (called after items are buffered or the watcher
    closes) and drains with `take()`. `progress_rv` is the RV of the last change this watcher
    has considered, delivered or filtered out: a bookmark may carry it once the buffer is
    drained (reference common mistake 4: never ahead of undelivered events).
    """

    def __init__(
        self,
        store: Store,
        resource: ResourceType,
        *,
        namespace: str,
        labels: LabelSelector,
        fields: FieldSelector,
        max_buffer: int,
    ) -> None:
        self.store = store
        self.resource = resource
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.max_buffer = max_buffer
        self.buffer: deque[WatchItem] = deque()
        self.progress_rv = 0
        self.closed = False
        self.close_reason = ""
        self.on_ready: Callable[[], None] | None = None
        self._name = fields.exact_name()
        self.initial = 0
        """Items buffered when the watch started (synthetic ADDEDs, or the history replayed to a
        resumed watch), until taken: they do not count against `max_buffer`."""

    def matches(self, entry: Entry) -> bool:
        if self.namespace and entry.namespace != self.namespace:
            return False
        if self._name is not None and entry.name != self._name:
            return False
        return self.labels.matches(entry.labels) and self.fields.matches(entry.fields)

    def _offer(self, change: Change) -> None:
        if self.closed:
            return
        self.progress_rv = change.rv
        new_match = self.matches(change.new)
        if change.type == "ADDED":
            if new_match:
                self._push(("ADDED", change.new))
            return
        old_match = change.old is not None and self.matches(change.old)
        if change.type == "DELETED":
            if old_match or (change.old is None and new_match):
                self._push(("DELETED", change.new))
            return
        if old_match and new_match:
            self._push(("MODIFIED", change.new))
        elif new_match:
            self._push(("ADDED", change.new))
        elif old_match:
            self._push(("DELETED", change.old_at_new_rv()))

    def _push(self, item: WatchItem) -> None:
        self.buffer.append(item)
        if len(self.buffer) > self.max_buffer + self.initial:
            # The real watch cache terminates a watcher that cannot keep up; the client
            # re-watches from the last RV it received and loses nothing. The initial events
            # are not counted: the cache sends those before it dispatches live ones, blocking
            # rather than dropping (cacher.go, processInterval), so a client that resumes
            # after falling behind is not ended again at once, in a loop until a compaction.
            self.close("the watcher fell too far behind")
            return
        if self.on_ready is not None:
            self.on_ready()

    def take(self) -> list[WatchItem]:
        """Everything buffered, oldest first (the buffer is then empty)."""
        items = list(self.buffer)
        self.buffer.clear()
        self.initial = 0
        return items

    def close(self, reason: str = "closed") -> None:
        """Stop this watcher (idempotent); the I/O side ends the stream."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.buffer.clear()
        self.store._detach(self)
        if self.on_ready is not None:
            self.on_ready()


def encode_continue(rv: int, start: str) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start})
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode()


def decode_continue(token: str) -> tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        rv = int(data["rv"])
        start = str(data["start"])
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError("unknown version")
    except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError) as error:
        raise StatusError.bad_request(f"continue key is not valid: {error}") from None
    return rv, start


_EXPIRED_CONTINUE: Final = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted "
    "between the time the first chunk was returned and now may show up in the list."
)


class Store:
    """All objects of the fake cluster, and the verbs on them.

    Everything is synchronous and deterministic given `now` (wall-clock seconds, for
    timestamps) and `random` (for uids and generated names). Use it directly from tests or
    simulated controllers (`create`, `get`, `update`, `patch`, `delete`, `subscribe`), or through
    the HTTP server, which calls the same methods.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        now: Callable[[], float] = _time.time,
        random: _random.Random | None = None,
        history_limit: int = 10_000,
        graceful_pod_deletion: bool = False,
        seed: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else Registry(builtin_resources())
        self.now = now
        self.random = random if random is not None else _random.Random()
        self.history_limit = history_limit
        self.graceful_pod_deletion = graceful_pod_deletion
        """When True, deleting a scheduled pod only marks it (deletionTimestamp); a kubelet
        (issue 5) finishes with a grace-0 delete. When False pods go at once, as an
        unscheduled pod does on a real cluster."""
        self.patch_types = PatchTypes()
        self.admission: list[Admission] = []
        """Steps run on every create/update/patch (defaulting, validation, managedFields)."""
        self._rv = 0
        self._objects: dict[str, dict[str, Entry]] = {}
        self._history: dict[str, _History] = {}
        self._watchers: dict[str, list[Watcher]] = {}
        self._by_uid: dict[str, Entry] = {}
        self._dependents: dict[str, set[tuple[str, str]]] = {}
        self._subscribers: list[Subscriber] = []
        self._pending: deque[Change] = deque()
        self._notifying = False
        self._write_options: WriteOptions | None = None
        from rxkube.fakes._defaults import builtin_admission

        self.admission.extend(builtin_admission())
        from rxkube.fakes._crds import install_crd_controller

        install_crd_controller(self)
        if seed:
            for name in SYSTEM_NAMESPACES:
                self.create("namespaces", {"metadata": {"name": name}})

    # -- small accessors -------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The current cluster-wide resourceVersion (RV of the last write)."""
        return self._rv

    def resource(self, name: str | ResourceType) -> ResourceType:
        """A `ResourceType` from a name (`pods`, `deployments.apps`, `Deployment`, `deploy`)."""
        if isinstance(name, ResourceType):
            return name
        return self.registry.get(name)

    def floor(self, resource: str | ResourceType) -> int:
        """Events with RV above this are all in the resource's history (rule 3)."""
        return self._hist(self.resource(resource)).floor

    def _hist(self, resource: ResourceType) -> _History:
        hist = self._history.get(resource.qualified)
        if hist is None:
            # Nothing of this kind was ever written before: its history is complete.
            hist = self._history[resource.qualified] = _History(floor=0)
        return hist

    def _bucket(self, resource: ResourceType) -> dict[str, Entry]:
        bucket = self._objects.get(resource.qualified)
        if bucket is None:
            bucket = self._objects[resource.qualified] = {}
        return bucket

    def _timestamp(self) -> str:
        return rfc3339(self.now())

    def _new_uid(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))

    def namespace_exists(self, name: str) -> bool:
        return name in self._bucket(self.registry.get("namespaces"))

    def entries(self, resource: str | ResourceType) -> Iterator[Entry]:
        """The current entries of a kind (unordered; do not write while iterating)."""
        return iter(list(self._bucket(self.resource(resource)).values()))

    def by_uid(self, uid: str) -> Entry | None:
        return self._by_uid.get(uid)

    @contextlib.contextmanager
    def write_options(self, options: WriteOptions) -> Iterator[WriteOptions]:
        """Make `options` visible to admission steps for the writes inside the `with` (the
        HTTP layer wraps each create/update/patch; the store never awaits, so the scope is
        exactly one request's)."""
        previous = self._write_options
        self._write_options = options
        try:
            yield options
        finally:
            self._write_options = previous

    # -- change feed -----------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber(change)` after every committed write; returns the unsubscriber."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def _commit(self, change: Change) -> None:
        resource = change.resource
        bucket = self._bucket(resource)
        key = change.new.key
        old = bucket.get(key)
        if old is not None:
            self._unindex(old)
        if change.type == "DELETED":
            bucket.pop(key, None)
        else:
            bucket[key] = change.new
            self._index(change.new)
        hist = self._hist(resource)
        hist.changes.append(change)
        while len(hist.changes) > self.history_limit:
            hist.floor = hist.changes.popleft().rv
        for watcher in list(self._watchers.get(resource.qualified, ())):
            watcher._offer(change)
        self._pending.append(change)
        if self._notifying:
            return
        self._notifying = True
        try:
            while self._pending:
                pending = self._pending.popleft()
                for subscriber in list(self._subscribers):
                    subscriber(pending)
        finally:
            self._notifying = False
            self._pending.clear()

    def _index(self, entry: Entry) -> None:
        if entry.uid:
            self._by_uid[entry.uid] = entry
        for owner in entry.owner_uids:
            self._dependents.setdefault(owner, set()).add((entry.resource.qualified, entry.key))

    def _unindex(self, entry: Entry) -> None:
        if entry.uid and self._by_uid.get(entry.uid) is entry:
            del self._by_uid[entry.uid]
        for owner in entry.owner_uids:
            deps = self._dependents.get(owner)
            if deps is not None:
                deps.discard((entry.resource.qualified, entry.key))
                if not deps:
                    del self._dependents[owner]

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    # -- read verbs ------------------------------------------------------------------------

    def get_entry(self, resource: str | ResourceType, namespace: str, name: str) -> Entry:
        res = self.resource(resource)
        key = f"{namespace}/{name}" if res.namespaced else name
        entry = self._bucket(res).get(key)
        if entry is None:
            raise StatusError.not_found(res.plural, res.group, name)
        return entry

    def get(self, resource: str | ResourceType, namespace: str, name: str) -> dict[str, Any]:
        """The object (decoded), or 404 NotFound."""
        return self.get_entry(resource, namespace, name).object()

    def list(
        self,
        resource: str | ResourceType,
        namespace: str = "",
        *,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        resource_version: str | None = None,
        resource_version_match: str | None = None,
    ) -> ListResult:
        """A list with the semantics of reference section 3.1 (RV, limit, continue)."""
        res = self.resource(resource)
        labels = _labels(label_selector)
        fields = _fields(res, field_selector)
        rv_text = resource_version or ""
        if resource_version_match:
            if continue_token:
                raise _list_option_invalid(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                )
            if not rv_text:
                raise _list_option_invalid(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                )
            if resource_version_match not in ("Exact", "NotOlderThan"):
                raise _list_option_invalid(
                    "resourceVersionMatch",
                    f'Unsupported value: "{resource_version_match}": supported values: '
                    '"Exact", "NotOlderThan"',
                    reason="FieldValueNotSupported",
                )
            if resource_version_match == "Exact" and rv_text == "0":
                raise _list_option_invalid(
                    "resourceVersionMatch",
                    'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                    reason="FieldValueForbidden",
                )
        if limit is not None and limit < 0:
            limit = None
        start = ""
        if continue_token:
            if rv_text not in ("", "0"):
                raise StatusError.bad_request(
                    "specifying resource version is not allowed when using continue"
                )
            at_rv, start = decode_continue(continue_token)
            if at_rv == -1:
                at_rv = self._rv
            elif at_rv < self._hist(res).floor:
                raise StatusError.expired(
                    _EXPIRED_CONTINUE,
                    metadata={"continue": encode_continue(-1, start)},
                )
        else:
            requested = _parse_rv(rv_text) if rv_text not in ("", "0") else None
            if requested is not None and requested > self._rv:
                raise StatusError.too_large_resource_version(requested, self._rv)
            exact = requested is not None and (
                resource_version_match == "Exact" or (resource_version_match is None and limit)
            )
            if exact:
                assert requested is not None
                if requested < self._hist(res).floor:
                    raise StatusError.expired(
                        "The resourceVersion for the provided list is too old."
                    )
                at_rv = requested
            else:
                at_rv = self._rv
            if rv_text == "0" and not resource_version_match:
                # The watch cache serves RV "0" whole, ignoring limit (reference 3.1).
                limit = None
        snapshot = self._snapshot(res, at_rv)
        keys = sorted(snapshot)
        if namespace:
            prefix = namespace + "/"
            keys = [k for k in keys if k.startswith(prefix)]
        if start:
            keys = [k for k in keys if k >= start]
        selective = not labels.empty or not fields.empty
        items: list[Entry] = []
        token = ""
        remaining: int | None = None
        for index, key in enumerate(keys):
            entry = snapshot[key]
            if selective and not (labels.matches(entry.labels) and fields.matches(entry.fields)):
                continue
            if limit and len(items) >= limit:
                token = encode_continue(at_rv, items[-1].key + "\x00")
                if not selective:
                    remaining = len(keys) - index
                break
            items.append(entry)
        return ListResult(items, at_rv, token, remaining)

    def _snapshot(self, res: ResourceType, at_rv: int) -> dict[str, Entry]:
        """The resource's objects as they were at `at_rv` (rule 3: needs at_rv >= floor)."""
        objects = dict(self._bucket(res))
        if at_rv >= self._rv:
            return objects
        for change in reversed(self._hist(res).changes):
            if change.rv <= at_rv:
                break
            key = change.new.key
            if change.type == "ADDED":
                objects.pop(key, None)
            elif change.old is not None:
                objects[key] = change.old
        return objects

    # -- watch -----------------------------------------------------------------------------

    def watch(
        self,
        resource: str | ResourceType,
        namespace: str = "",
        *,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        resource_version: str | None = None,
        send_initial_events: bool = False,
        max_buffer: int = 10_000,
    ) -> Watcher:
        """Start a watcher (reference section 4.1). Its buffer already holds the initial
        events: synthetic ADDED for RV unset/"0" or with `send_initial_events` (then an
        ("INITIAL_END", rv) marker for the bookmark), or the history after RV N.

        Raises 410 Expired (`too old resource version: N (floor)`) when N is below the
        history floor and 504 when N is ahead of the store; the HTTP layer reports both
        in-band as an ERROR event, as the watch cache does.
        """
        res = self.resource(resource)
        watcher = Watcher(
            self,
            res,
            namespace=namespace,
            labels=_labels(label_selector),
            fields=_fields(res, field_selector),
            max_buffer=max_buffer,
        )
        rv_text = resource_version or ""
        requested = _parse_rv(rv_text) if rv_text not in ("", "0") else None
        hist = self._hist(res)
        if requested is not None and requested > self._rv:
            raise StatusError.too_large_resource_version(requested, self._rv)
        watcher.initial = len(hist.changes) + len(self._bucket(res))  # no limit while filling
        if requested is None or send_initial_events:
            if requested is not None and requested < hist.floor and not send_initial_events:
                raise _too_old(requested, hist.floor)
            for key in sorted(self._bucket(res)):
                entry = self._bucket(res)[key]
                if watcher.matches(entry):
                    watcher.buffer.append(("ADDED", entry))
            if send_initial_events:
                watcher.buffer.append(("INITIAL_END", self._rv))
        else:
            if requested < hist.floor:
                raise _too_old(requested, hist.floor)
            for change in hist.changes:
                if change.rv > requested:
                    watcher._offer(change)
        watcher.initial = len(watcher.buffer)
        watcher.progress_rv = self._rv
        self._watchers.setdefault(res.qualified, []).append(watcher)
        return watcher

    def _detach(self, watcher: Watcher) -> None:
        watchers = self._watchers.get(watcher.resource.qualified)
        if watchers and watcher in watchers:
            watchers.remove(watcher)

    def watchers(self, resource: str | ResourceType | None = None) -> _Watchers:
        """Open watchers (of one kind, or all)."""
        if resource is None:
            return [w for ws in self._watchers.values() for w in ws]
        return list(self._watchers.get(self.resource(resource).qualified, ()))

    def compact(self) -> int:
        """Forget all history now (as an etcd compaction does): every watch or list from an
        RV below the current one gets 410. Returns the new floor."""
        for res in self.registry:
            hist = self._hist(res)
            hist.changes.clear()
            hist.floor = self._rv
        return self._rv

    # -- write verbs -----------------------------------------------------------------------

    def create(
        self,
        resource: str | ResourceType,
        obj: Mapping[str, Any],
        *,
        namespace: str | None = None,
        user: str = "",
        dry_run: bool = False,
    ) -> Entry:
        """POST: validate, set server metadata, persist; returns the stored entry.

        `namespace` defaults to the object's own `metadata.namespace`.
        """
        res = self.resource(resource)
        body = _check_body(res, obj)
        meta = body["metadata"]
        ns = namespace if namespace is not None else str(meta.get("namespace") or "")
        if res.namespaced:
            if not ns:
                raise StatusError.bad_request(
                    "the server could not find the requested resource: a namespace is required"
                )
            if meta.get("namespace") not in (None, "", ns):
                raise StatusError.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            meta["namespace"] = ns
            namespace_entry = self._bucket(self.registry.get("namespaces")).get(ns)
            if namespace_entry is None:
                raise StatusError.not_found("namespaces", "", ns)
            if _is_deleting(namespace_entry.object()):
                raise StatusError(
                    403,
                    "Forbidden",
                    f'{res.qualified} "{meta.get("name") or meta.get("generateName", "")}" is '
                    f"forbidden: unable to create new content in namespace {ns} because it is "
                    "being terminated",
                    name=str(meta.get("name") or ""),
                    group=res.group,
                    kind=res.plural,
                )
        else:
            meta.pop("namespace", None)
        generated = False
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise StatusError.invalid(
                    res.kind,
                    res.group,
                    "",
                    [
                        StatusCause(
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                            "metadata.name",
                        )
                    ],
                )
            # Kubernetes 1.32+ (RetryGenerateName, GA) draws a new suffix when the name is
            # taken, 8 draws in all; only then is the collision a 409 (without retries,
            # 2,000 pods of one prefix collide in about one run of seven).
            stem = str(prefix)[: 63 - 5]
            bucket = self._bucket(res)
            for _ in range(_GENERATE_NAME_DRAWS):
                suffix = "".join(self.random.choice(_NAME_ALPHABET) for _ in range(5))
                meta["name"] = stem + suffix
                if (f"{ns}/{stem}{suffix}" if res.namespaced else stem + suffix) not in bucket:
                    break
            generated = True
        name = str(meta["name"])
        self._validate_metadata(res, body)
        for key in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        meta["uid"] = self._new_uid()
        meta["creationTimestamp"] = self._timestamp()
        if res.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if res.status_subresource and res.kind != "Node":
            # Status is written through the status subresource; create starts it empty
            # (kinds default it in admission, e.g. a Pod's phase Pending).
            body["status"] = {}
        self._admit("CREATE", res, "", body, None, ns, user, dry_run)
        key = f"{ns}/{name}" if res.namespaced else name
        if key in self._bucket(res):
            raise StatusError.already_exists(res.plural, res.group, name, generated=generated)
        if dry_run:
            return Entry(res, body, 0)
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        entry = Entry(res, body, rv)
        self._commit(Change("ADDED", res, entry, None))
        return entry

    def update(
        self,
        resource: str | ResourceType,
        obj: Mapping[str, Any],
        *,
        namespace: str | None = None,
        name: str | None = None,
        subresource: str = "",
        user: str = "",
        dry_run: bool = False,
    ) -> Entry:
        """PUT: replace the object (or only its status with `subresource="status"`).

        A `metadata.resourceVersion` in the body is a precondition (409 Conflict when stale);
        without one the update is unconditional. Returns the stored entry; a write that
        changes nothing returns the current entry and commits nothing (rule 1).
        """
        res = self.resource(resource)
        body = _check_body(res, obj)
        meta = body["metadata"]
        ns = namespace if namespace is not None else str(meta.get("namespace") or "")
        target = name if name is not None else str(meta.get("name") or "")
        if not target:
            raise StatusError.invalid(
                res.kind,
                res.group,
                "",
                [
                    StatusCause(
                        "FieldValueRequired", "Required value: name is required", "metadata.name"
                    )
                ],
            )
        if meta.get("name") not in (None, "", target):
            raise StatusError.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({target})"
            )
        if res.namespaced and meta.get("namespace") not in (None, "", ns):
            raise StatusError.bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        current = self.get_entry(res, ns, target)
        return self._replace(res, current, body, subresource, user, dry_run)

    def patch(
        self,
        resource: str | ResourceType,
        namespace: str,
        name: str,
        body: bytes | Mapping[str, Any] | _JsonList,
        *,
        patch_type: str = "application/merge-patch+json",
        subresource: str = "",
        options: Mapping[str, str] | None = None,
        user: str = "",
        dry_run: bool = False,
    ) -> tuple[Entry, bool]:
        """PATCH with the registered `patch_type` (merge and JSON patch built in).

        Returns (entry, created): `created` only when an apply-style patch type made the object.
        """
        res = self.resource(resource)
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        key = f"{namespace}/{name}" if res.namespaced else name
        current = self._bucket(res).get(key)
        if current is None and not self.patch_types.creates(patch_type):
            if patch_type not in self.patch_types.supported():
                raise StatusError.unsupported_media_type(patch_type, self.patch_types.supported())
            raise StatusError.not_found(res.plural, res.group, name)
        request = PatchRequest(
            res,
            current.object() if current is not None else None,
            raw,
            name,
            namespace,
            dict(options or {}),
        )
        patched = self.patch_types.apply(patch_type, request)
        if current is None:
            created = self.create(
                res, patched, namespace=namespace or None, user=user, dry_run=dry_run
            )
            return created, True
        if not isinstance(patched, dict):
            raise StatusError.bad_request("the patch did not produce an object")
        patched.setdefault("metadata", {})
        if not isinstance(patched["metadata"], dict):
            raise _type_error(res, "metadata", "ObjectMeta", patched["metadata"])
        if patched["metadata"].get("name", name) != name:
            raise StatusError.bad_request(
                f"the name of the object ({patched['metadata'].get('name')}) does not match the "
                f"name on the URL ({name})"
            )
        patched["metadata"]["name"] = name
        body_checked = _check_body(res, patched)
        return self._replace(res, current, body_checked, subresource, user, dry_run), False

    def _replace(
        self,
        res: ResourceType,
        current: Entry,
        body: dict[str, Any],
        subresource: str,
        user: str,
        dry_run: bool,
    ) -> Entry:
        old = current.object()
        meta = body["metadata"]
        old_meta = old["metadata"]
        wanted_rv = meta.get("resourceVersion")
        if wanted_rv not in (None, "") and str(wanted_rv) != str(current.rv):
            raise StatusError.stale(res.plural, res.group, current.name)
        if meta.get("uid") not in (None, "", current.uid):
            raise StatusError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.qualified} "{current.name}": '
                f"Precondition failed: UID in precondition: {meta.get('uid')}, UID in object "
                f"meta: {current.uid}",
                name=current.name,
                group=res.group,
                kind=res.plural,
            )
        if subresource == "status":
            new = copy.deepcopy(old)
            new["status"] = body.get("status", {})
        elif subresource:
            raise StatusError.not_found(res.plural, res.group, current.name)
        else:
            new = body
            for key in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            if "generateName" in old_meta:
                meta["generateName"] = old_meta["generateName"]
            if res.status_subresource:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            self._validate_metadata(res, new)
            if _is_deleting(old):
                added = set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ())
                if added:
                    raise StatusError.invalid(
                        res.kind,
                        res.group,
                        current.name,
                        [
                            StatusCause(
                                "FieldValueForbidden",
                                "Forbidden: no new finalizers can be added if the object is "
                                "being deleted, found new finalizers "
                                + str(sorted(added)).replace("'", '"'),
                                "metadata.finalizers",
                            )
                        ],
                    )
        meta = new["metadata"]
        meta["resourceVersion"] = str(current.rv)
        self._admit("UPDATE", res, subresource, new, old, current.namespace, user, dry_run)
        if res.generation and "generation" in old_meta and _spec_changed(res, old, new):
            meta["generation"] = int(old_meta["generation"]) + 1
        if _same(_canonical(res, old), _canonical(res, new)):
            return current
        if dry_run:
            return Entry(res, new, current.rv)
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        if (
            _is_deleting(new)
            and not new["metadata"].get("finalizers")
            and old_meta.get("finalizers")
        ):
            # The last finalizer went: the object goes. (A write to an object in graceful
            # deletion that has no finalizers, e.g. the kubelet's status of a terminating
            # pod, leaves it in place until the grace-0 delete.)
            self._remove(res, current, new, rv)
            return Entry(res, new, rv)
        entry = Entry(res, new, rv)
        self._commit(Change("MODIFIED", res, entry, current))
        return entry

    def delete(
        self,
        resource: str | ResourceType,
        namespace: str,
        name: str,
        options: DeleteOptions | None = None,
        *,
        user: str = "",
    ) -> tuple[Entry, bool]:
        """DELETE (reference section 11.5). Returns (entry, removed): `removed` False when the
        object stays, marked with `deletionTimestamp` (finalizers, Foreground, Orphan pending,
        graceful pod)."""
        res = self.resource(resource)
        options = options or DeleteOptions()
        current = self.get_entry(res, namespace, name)
        if options.uid and options.uid != current.uid:
            raise StatusError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.qualified} "{name}": Precondition '
                f"failed: UID in precondition: {options.uid}, UID in object meta: {current.uid}",
                name=name,
                group=res.group,
                kind=res.plural,
            )
        if options.resource_version and options.resource_version != str(current.rv):
            raise StatusError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.qualified} "{name}": Precondition '
                "failed: ResourceVersion in precondition: "
                f"{options.resource_version}, ResourceVersion in object meta: {current.rv}",
                name=name,
                group=res.group,
                kind=res.plural,
            )
        obj = current.object()
        meta = obj["metadata"]
        if options.dry_run:
            return current, False
        policy = options.propagation_policy or "Background"
        finalizers: list[str] = list(meta.get("finalizers") or [])
        if res.plural == "namespaces" and not res.group:
            return self._delete_namespace(res, current, obj)
        graceful = (
            res.plural == "pods"
            and not res.group
            and self.graceful_pod_deletion
            and (obj.get("spec") or {}).get("nodeName")
        )
        grace = options.grace_period_seconds
        if graceful:
            if grace is None:
                grace = int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            graceful = grace > 0
        if _is_deleting(obj) and (graceful or finalizers):
            # Already terminating; a grace-0 delete (the kubelet's last step) goes on below.
            return current, False
        if policy in ("Foreground", "Orphan") and self._dependents.get(current.uid):
            finalizer = "foregroundDeletion" if policy == "Foreground" else "orphan"
            if finalizer not in finalizers:
                finalizers.append(finalizer)
        if finalizers or graceful:
            if not _is_deleting(obj):
                if graceful:
                    assert grace is not None
                    meta["deletionTimestamp"] = rfc3339(self.now() + grace)
                    meta["deletionGracePeriodSeconds"] = grace
                else:
                    meta["deletionTimestamp"] = self._timestamp()
                    meta["deletionGracePeriodSeconds"] = 0
            meta["finalizers"] = finalizers
            rv = self._next_rv()
            meta["resourceVersion"] = str(rv)
            entry = Entry(res, obj, rv)
            self._commit(Change("MODIFIED", res, entry, current))
            if "foregroundDeletion" in finalizers or "orphan" in finalizers:
                self._collect_for_policy(res, entry, policy)
                entry = (
                    self.get_entry(res, namespace, name) if self._exists(res, entry.key) else entry
                )
                return entry, not self._exists(res, entry.key)
            return entry, False
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        self._remove(res, current, obj, rv)
        return Entry(res, obj, rv), True

    def _exists(self, res: ResourceType, key: str) -> bool:
        return key in self._bucket(res)

    def _remove(self, res: ResourceType, current: Entry, last: dict[str, Any], rv: int) -> None:
        """Commit the removal, then collect dependents and finish a namespace."""
        last["metadata"]["resourceVersion"] = str(rv)
        entry = Entry(res, last, rv)
        self._commit(Change("DELETED", res, entry, current))
        self._collect_garbage(current.uid)
        for owner_uid in current.owner_uids:
            # An owner in foreground deletion waits for its last dependent to go.
            owner = self._by_uid.get(owner_uid)
            if owner is None or self._dependents.get(owner_uid):
                continue
            owner_obj = owner.object()
            if "foregroundDeletion" in (owner_obj["metadata"].get("finalizers") or ()):
                self._collect_for_policy(owner.resource, owner, "Foreground")
        if res.namespaced and current.namespace:
            ns_entry = self._bucket(self.registry.get("namespaces")).get(current.namespace)
            if ns_entry is not None and _is_deleting(ns_entry.object()):
                self._finish_namespace(ns_entry)

    def _collect_garbage(self, owner_uid: str) -> None:
        """Background GC: delete dependents whose owners are all gone; strip the dangling
        reference from dependents that still have a live owner."""
        for qualified, key in sorted(self._dependents.get(owner_uid, ())):
            res = self.registry.get(qualified)
            entry = self._bucket(res).get(key)
            if entry is None:
                continue
            live = [u for u in entry.owner_uids if u != owner_uid and u in self._by_uid]
            if live:
                self._strip_owner(res, entry, owner_uid)
            else:
                try:
                    self.delete(res, entry.namespace, entry.name, DeleteOptions("Background"))
                except StatusError:
                    continue

    def _strip_owner(self, res: ResourceType, entry: Entry, owner_uid: str) -> None:
        obj = entry.object()
        refs = [
            r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid
        ]
        if refs:
            obj["metadata"]["ownerReferences"] = refs
        else:
            obj["metadata"].pop("ownerReferences", None)
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        self._commit(Change("MODIFIED", res, Entry(res, obj, rv), entry))

    def _collect_for_policy(self, res: ResourceType, owner: Entry, policy: str) -> None:
        """Foreground: delete dependents first; Orphan: strip their references. Then drop the
        policy finalizer (which removes the owner when no other finalizer is left)."""
        for qualified, key in sorted(self._dependents.get(owner.uid, ())):
            dep_res = self.registry.get(qualified)
            dep = self._bucket(dep_res).get(key)
            if dep is None:
                continue
            if policy == "Orphan":
                self._strip_owner(dep_res, dep, owner.uid)
            else:
                self.delete(dep_res, dep.namespace, dep.name, DeleteOptions("Foreground"))
        current = self._bucket(res).get(owner.key)
        if current is None:
            return
        finalizer = "foregroundDeletion" if policy == "Foreground" else "orphan"
        if policy == "Foreground" and self._dependents.get(owner.uid):
            return  # dependents still terminating (their own finalizers); finish later
        obj = current.object()
        obj["metadata"]["finalizers"] = [
            f for f in obj["metadata"].get("finalizers") or [] if f != finalizer
        ]
        self._replace(res, current, obj, "", "", False)

    def _delete_namespace(
        self, res: ResourceType, current: Entry, obj: dict[str, Any]
    ) -> tuple[Entry, bool]:
        """Namespace deletion: Terminating, delete its content, then remove it."""
        if not _is_deleting(obj):
            obj["metadata"]["deletionTimestamp"] = self._timestamp()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            obj.setdefault("status", {})["phase"] = "Terminating"
            rv = self._next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            entry = Entry(res, obj, rv)
            self._commit(Change("MODIFIED", res, entry, current))
        ns = current.name
        for kind in self.registry:
            if not kind.namespaced:
                continue
            for key in sorted(self._bucket(kind)):
                entry_in_ns = self._bucket(kind).get(key)
                if entry_in_ns is None or entry_in_ns.namespace != ns:
                    continue
                if _is_deleting(entry_in_ns.object()):
                    continue
                self.delete(kind, ns, entry_in_ns.name, DeleteOptions("Background"))
        latest = self._bucket(res).get(current.key)
        if latest is None:
            return Entry(res, obj, self._rv), True
        self._finish_namespace(latest)
        latest = self._bucket(res).get(current.key)
        return (latest, False) if latest is not None else (Entry(res, obj, self._rv), True)

    def _finish_namespace(self, ns_entry: Entry) -> None:
        ns = ns_entry.name
        for kind in self.registry:
            if kind.namespaced and any(e.namespace == ns for e in self._bucket(kind).values()):
                return
        obj = ns_entry.object()
        obj["metadata"].pop("finalizers", None)
        res = ns_entry.resource
        rv = self._next_rv()
        self._remove(res, ns_entry, obj, rv)

    def delete_collection(
        self,
        resource: str | ResourceType,
        namespace: str = "",
        *,
        label_selector: str | LabelSelector | None = None,
        field_selector: str | FieldSelector | None = None,
        options: DeleteOptions | None = None,
        user: str = "",
    ) -> _Entries:
        """DELETE on a collection: delete every matching object; returns what was deleted."""
        res = self.resource(resource)
        page = self.list(
            res, namespace, label_selector=label_selector, field_selector=field_selector
        )
        out: list[Entry] = []
        for entry in page.items:
            if not self._exists(res, entry.key):
                continue
            deleted, _ = self.delete(res, entry.namespace, entry.name, options, user=user)
            out.append(deleted)
        return out

    # -- helpers ---------------------------------------------------------------------------

    def _admit(
        self,
        operation: Operation,
        res: ResourceType,
        subresource: str,
        obj: dict[str, Any],
        old: Mapping[str, Any] | None,
        namespace: str,
        user: str,
        dry_run: bool,
    ) -> None:
        request = AdmissionRequest(
            operation,
            res,
            subresource,
            obj,
            old,
            namespace,
            user,
            dry_run,
            self,
            self._write_options,
        )
        for step in self.admission:
            step(request)

    def _validate_metadata(self, res: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        name = str(meta.get("name") or "")
        causes: list[StatusCause] = []
        if res.plural in _DNS_LABEL_KINDS and not res.group:
            if not _valid_label(name):
                causes.append(
                    StatusCause(
                        "FieldValueInvalid",
                        f'Invalid value: "{name}": {_LABEL_MESSAGE}',
                        "metadata.name",
                    )
                )
        elif not _valid_subdomain(name) and res.group != "rbac.authorization.k8s.io":
            causes.append(
                StatusCause(
                    "FieldValueInvalid",
                    f'Invalid value: "{name}": {_SUBDOMAIN_MESSAGE}',
                    "metadata.name",
                )
            )
        elif res.group == "rbac.authorization.k8s.io" and (
            not name or "/" in name or "%" in name or name in (".", "..")
        ):
            causes.append(
                StatusCause(
                    "FieldValueInvalid",
                    f"Invalid value: \"{name}\": may not contain '/' or '%'",
                    "metadata.name",
                )
            )
        for key, value in (meta.get("labels") or {}).items():
            if not valid_label_key(key):
                causes.append(
                    StatusCause(
                        "FieldValueInvalid",
                        f'Invalid value: "{key}": name part must consist of alphanumeric '
                        "characters, '-', '_' or '.', and must start and end with an "
                        "alphanumeric character",
                        "metadata.labels",
                    )
                )
            elif not valid_label_value(value):
                causes.append(
                    StatusCause(
                        "FieldValueInvalid",
                        f'Invalid value: "{value}": a valid label must be an empty string or '
                        "consist of alphanumeric characters, '-', '_' or '.', and must start "
                        "and end with an alphanumeric character",
                        "metadata.labels",
                    )
                )
        if causes:
            raise StatusError.invalid(res.kind, res.group, name, causes)


def _labels(selector: str | LabelSelector | None) -> LabelSelector:
    if isinstance(selector, LabelSelector):
        return selector
    return LabelSelector.parse(selector)


def _fields(res: ResourceType, selector: str | FieldSelector | None) -> FieldSelector:
    if isinstance(selector, FieldSelector):
        return selector
    return FieldSelector.parse(selector, res.field_selectors)


def _parse_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise StatusError.bad_request(f"invalid resource version: {text!r}")
    return value


def _too_old(requested: int, floor: int) -> StatusError:
    return StatusError.expired(f"too old resource version: {requested} ({floor})")


def _list_option_invalid(
    field_name: str, message: str, *, reason: str = "FieldValueForbidden"
) -> StatusError:
    prefix = "Forbidden: " if reason == "FieldValueForbidden" else ""
    return StatusError.invalid(
        "ListOptions",
        "meta.k8s.io",
        "",
        [StatusCause(reason, prefix + message, field_name)],
    )


def _is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _same(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return orjson.dumps(old, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        new, option=orjson.OPT_SORT_KEYS
    )


def _spec_changed(res: ResourceType, old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    skip = {"metadata", "kind", "apiVersion"}
    if res.status_subresource:
        skip.add("status")
    a = {k: v for k, v in old.items() if k not in skip}
    b = {k: v for k, v in new.items() if k not in skip}
    return not _same(a, b)


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    return "null"


def _type_error(res: ResourceType, path: str, go_type: str, value: Any) -> StatusError:
    """400 as the decoder writes it for a field of the wrong JSON type."""
    return StatusError.bad_request(
        f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: json: cannot '
        f"unmarshal {_go_type(value)} into Go struct field {path} of type {go_type}"
    )


def _check_body(res: ResourceType, obj: Any) -> dict[str, Any]:
    """Structural checks every write shares; returns a deep copy safe to modify."""
    if not isinstance(obj, Mapping):
        raise StatusError.bad_request(
            f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: json: '
            f"cannot unmarshal {_go_type(obj)} into Go value of type struct"
        )
    body: dict[str, Any] = copy.deepcopy(dict(obj))
    api_version = body.get("apiVersion")
    kind = body.get("kind")
    if api_version not in (None, "") and api_version != res.api_version:
        raise StatusError.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({res.api_version})"
        )
    if kind not in (None, "") and kind != res.kind:
        raise StatusError.bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({res.kind})"
        )
    body.pop("kind", None)
    body.pop("apiVersion", None)
    meta = body.get("metadata")
    if meta is None:
        meta = body["metadata"] = {}
    if not isinstance(meta, dict):
        raise _type_error(res, f"{res.kind}.metadata", "v1.ObjectMeta", meta)
    for key in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        if key in meta and meta[key] is not None and not isinstance(meta[key], str):
            raise _type_error(res, f"ObjectMeta.metadata.{key}", "string", meta[key])
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            meta.pop(key, None)
            continue
        if not isinstance(value, dict):
            raise _type_error(res, f"ObjectMeta.metadata.{key}", "map[string]string", value)
        for v in value.values():
            if not isinstance(v, str):
                raise _type_error(res, f"ObjectMeta.metadata.{key}", "map[string]string", v)
    for key in ("finalizers",):
        value = meta.get(key)
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise _type_error(res, f"ObjectMeta.metadata.{key}", "[]string", value)
    refs = meta.get("ownerReferences")
    if refs is not None and (
        not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs)
    ):
        raise _type_error(res, "ObjectMeta.metadata.ownerReferences", "[]v1.OwnerReference", refs)
    for key in ("spec", "status"):
        if key in body and body[key] is not None and not isinstance(body[key], dict):
            raise _type_error(res, f"{res.kind}.{key}", f"v1.{res.kind}{key.title()}", body[key])
    return body
