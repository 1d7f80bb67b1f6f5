"""WatchEvent: immutable, lazily decoded or encoded, equal by content."""

from __future__ import annotations

import orjson
import pytest

from rxkube.streams import WatchEvent

POD = {"kind": "Pod", "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "7"}}


def test_event_from_raw_bytes_decodes_on_first_read_and_caches() -> None:
    event = WatchEvent("ADDED", raw=orjson.dumps(POD), resource_version="7", stream="pods/ns")
    first = event.object
    assert first == POD
    assert event.object is first


def test_event_from_object_encodes_raw_on_demand() -> None:
    event = WatchEvent("MODIFIED", POD, resource_version="7", stream="pods/ns")
    assert orjson.loads(event.raw) == POD


def test_events_are_immutable() -> None:
    event = WatchEvent("DELETED", POD, resource_version="7", stream="pods/ns")
    with pytest.raises(AttributeError, match="immutable"):
        event.type = "ADDED"
    with pytest.raises(AttributeError, match="immutable"):
        del event.stream


def test_raw_and_decoded_events_with_the_same_content_are_equal() -> None:
    a = WatchEvent("ADDED", POD, resource_version="7", stream="s")
    b = WatchEvent("ADDED", raw=orjson.dumps(POD), resource_version="7", stream="s")
    assert a == b
    assert hash(a) == hash(b)
    assert a != WatchEvent("ADDED", POD, resource_version="7", stream="s", final_state_unknown=True)


def test_synced_has_an_empty_object() -> None:
    synced = WatchEvent("SYNCED", resource_version="42", stream="s")
    assert synced.object == {}
    assert "SYNCED" in repr(synced)


def test_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown watch event type 'BOOKMARK'"):
        WatchEvent("BOOKMARK", POD, resource_version="1", stream="s")  # type: ignore[arg-type]


def test_with_stream_renames_without_copying_the_object() -> None:
    event = WatchEvent("ADDED", POD, resource_version="7", stream="a")
    renamed = event.with_stream("b")
    assert renamed.stream == "b"
    assert renamed.object is event.object
