"""`WatchEvent`: the one record every watch source, trace and pipeline passes around.

What this module is for: the frozen event type of DESIGN section 4 ("Events"). It may import
only the standard library and the JSON codecs; it must not do I/O.

Why it is not a dataclass: a watch delivers tens of thousands of events a second, and most
consumers (the Store, filters on the partial view) never need the whole decoded object. So an
event may be built from the object's raw JSON bytes and decodes them only when `.object` is
first read (then caches the result). Built from a decoded object instead, it encodes `.raw`
on demand. Either way the event is immutable: attributes cannot be set, and the decoded object
must be treated as read-only by everyone who receives it (it is shared, not copied).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias

import msgspec
import orjson

from rxkube.streams._codec import ObjectMetaView, decode_meta

__all__ = ["EventType", "KubeObject", "WatchEvent"]

EventType: TypeAlias = Literal["ADDED", "MODIFIED", "DELETED", "SYNCED"]
"""`SYNCED` is synthetic: it follows every complete list (initial or relist)."""

KubeObject: TypeAlias = Mapping[str, Any]
"""A Kubernetes object as decoded from JSON: camelCase keys, exactly as on the wire."""

EVENT_TYPES: Final[frozenset[str]] = frozenset({"ADDED", "MODIFIED", "DELETED", "SYNCED"})
_EMPTY: Final[Mapping[str, Any]] = {}


class WatchEvent:
    """One change seen on one watch stream.

    - `type`: ADDED, MODIFIED, DELETED, or SYNCED after each complete list.
    - `object`: the Kubernetes JSON (camelCase, never mutated); `{}` for SYNCED.
    - `resource_version`: the object's resourceVersion (for SYNCED: the list's).
    - `stream`: the id of the watch it came from (DESIGN section 4, Trace format).
    - `final_state_unknown`: True on deletions synthesized after a relist, when the object
      vanished while the watch was disconnected and its last state was never seen.
    - `meta`: a slim, GC-untracked view of `object["metadata"]` (namespace, name, uid,
      resourceVersion, labels, annotations, owners, ...), decoded from `raw` without building
      the object's dicts; pass it in when the watch loop already has it.
    """

    # The property `object` shadows the builtin inside this class body: annotations say
    # `builtins.object` where they mean the builtin.
    __slots__ = (
        "_meta",
        "_object",
        "_raw",
        "final_state_unknown",
        "resource_version",
        "stream",
        "type",
    )

    type: EventType
    resource_version: str
    stream: str
    final_state_unknown: bool
    _object: KubeObject | None
    _raw: bytes | None
    _meta: ObjectMetaView | None

    def __init__(
        self,
        type: EventType,
        object: KubeObject | None = None,
        *,
        resource_version: str,
        stream: str,
        final_state_unknown: bool = False,
        raw: bytes | None = None,
        meta: ObjectMetaView | None = None,
    ) -> None:
        if type not in EVENT_TYPES:
            raise ValueError(
                f"unknown watch event type {type!r}; expected one of {sorted(EVENT_TYPES)}"
            )
        if object is None and raw is None:
            object = _EMPTY
        setter = super().__setattr__
        setter("type", type)
        setter("resource_version", resource_version)
        setter("stream", stream)
        setter("final_state_unknown", final_state_unknown)
        setter("_object", object)
        setter("_raw", raw)
        setter("_meta", meta)

    @property
    def object(self) -> KubeObject:
        """The decoded object (decoded from `raw` on first use, then cached)."""
        obj = self._object
        if obj is None:
            assert self._raw is not None
            obj = orjson.loads(self._raw)
            super().__setattr__("_object", obj)
        return obj

    @property
    def raw(self) -> bytes:
        """The object's JSON bytes (encoded from `object` on first use, then cached)."""
        raw = self._raw
        if raw is None:
            raw = orjson.dumps(self._object)
            super().__setattr__("_raw", raw)
        return raw

    @property
    def meta(self) -> ObjectMetaView:
        """The metadata view (decoded from `raw`, or converted from `object`, then cached)."""
        meta = self._meta
        if meta is None:
            if self._raw is not None:
                meta = decode_meta(self._raw)
            else:
                assert self._object is not None
                meta = msgspec.convert(self._object.get("metadata", {}), ObjectMetaView)
            super().__setattr__("_meta", meta)
        return meta

    def __setattr__(self, name: str, value: builtins.object) -> None:
        raise AttributeError(f"WatchEvent is immutable (tried to set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"WatchEvent is immutable (tried to delete {name!r})")

    def __eq__(self, other: builtins.object) -> bool:
        if not isinstance(other, WatchEvent):
            return NotImplemented
        return (
            self.type == other.type
            and self.resource_version == other.resource_version
            and self.stream == other.stream
            and self.final_state_unknown == other.final_state_unknown
            and self.object == other.object
        )

    def __hash__(self) -> int:
        return hash((self.type, self.resource_version, self.stream, self.final_state_unknown))

    def __repr__(self) -> str:
        meta = self.object.get("metadata", {}) if self.type != "SYNCED" else {}
        where = f"{meta.get('namespace', '')}/{meta.get('name', '')}" if meta else ""
        extra = ", final_state_unknown=True" if self.final_state_unknown else ""
        return (
            f"WatchEvent({self.type}, {where or '-'}, rv={self.resource_version!r}, "
            f"stream={self.stream!r}{extra})"
        )

    def with_type(self, type: EventType) -> WatchEvent:
        """The same object, resourceVersion and stream under another type (e.g. a filter turns
        "stopped matching" into DELETED). Returns `self` if the type is already `type`."""
        if type == self.type:
            return self
        return WatchEvent(
            type,
            self._object,
            raw=self._raw,
            meta=self._meta,
            resource_version=self.resource_version,
            stream=self.stream,
            final_state_unknown=self.final_state_unknown,
        )

    def with_stream(self, stream: str) -> WatchEvent:
        """The same event attributed to another stream id (used when a trace renames streams)."""
        return WatchEvent(
            self.type,
            self._object,
            raw=self._raw,
            meta=self._meta,
            resource_version=self.resource_version,
            stream=stream,
            final_state_unknown=self.final_state_unknown,
        )
