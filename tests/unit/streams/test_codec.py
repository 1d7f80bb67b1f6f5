"""The codec: watch lines to raw bytes + metadata views, managedFields, models on demand."""

from __future__ import annotations

import gc
from typing import Any, cast

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxkube.streams import (
    ObjectMetaView,
    Pod,
    PodStatus,
    WatchEvent,
    WatchLineError,
    decode_meta,
    decode_object,
    decode_watch_line,
    drop_managed_fields,
    object_transform,
    to_model,
)

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "gmweb-7d9f-abcde",
        "generateName": "gmweb-7d9f-",
        "namespace": "example",
        "uid": "0b8e6c1a-2f0e-4a51-9d51-4a1d5e7e1f00",
        "resourceVersion": "1234",
        "generation": 1,
        "creationTimestamp": "2024-05-01T10:00:00Z",
        "labels": {"ipb-halle.de/k8sticket.deployment.app.name": "gmweb"},
        "annotations": {"ipb-halle.de/k8sticket.pod.port": "3838"},
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "gmweb-7d9f",
                "uid": "rs-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
        "managedFields": [
            {
                "manager": "kube-controller-manager",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2024-05-01T10:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}}}},
            }
        ],
    },
    "spec": {
        "containers": [{"name": "web", "image": "gmweb:1", "ports": [{"containerPort": 3838}]}],
        "nodeName": "node-1",
    },
    "status": {
        "phase": "Running",
        "podIP": "10.0.0.7",
        "conditions": [{"type": "Ready", "status": "True"}],
    },
}


def _line(event_type: str, obj: object) -> bytes:
    return orjson.dumps({"type": event_type, "object": obj})


def test_a_watch_line_gives_the_type_raw_bytes_and_the_metadata_view() -> None:
    line = decode_watch_line(_line("ADDED", POD))
    assert line.type == "ADDED"
    assert orjson.loads(line.raw) == POD
    meta = line.meta
    assert (meta.namespace, meta.name, meta.uid) == (
        "example",
        "gmweb-7d9f-abcde",
        "0b8e6c1a-2f0e-4a51-9d51-4a1d5e7e1f00",
    )
    assert meta.resource_version == "1234"
    assert meta.generation == 1
    assert meta.labels == {"ipb-halle.de/k8sticket.deployment.app.name": "gmweb"}
    assert meta.annotations == {"ipb-halle.de/k8sticket.pod.port": "3838"}
    assert meta.deletion_timestamp is None
    owner = meta.controller_reference()
    assert owner is not None
    assert (owner.kind, owner.name, owner.uid) == ("ReplicaSet", "gmweb-7d9f", "rs-uid")
    assert meta.key == "example/gmweb-7d9f-abcde"


def test_the_metadata_view_is_invisible_to_the_garbage_collector() -> None:
    meta = decode_watch_line(_line("MODIFIED", POD)).meta
    assert not gc.is_tracked(meta)
    assert not gc.is_tracked(meta.labels)
    assert not gc.is_tracked(meta.annotations)
    assert not gc.is_tracked({"key": meta})  # a dict of views stays untracked too


def test_absent_metadata_fields_read_as_empty() -> None:
    meta = decode_meta(b'{"kind":"Namespace","metadata":{"name":"apps"}}')
    assert meta == ObjectMetaView(name="apps")
    assert meta.key == "apps"
    assert meta.labels == {}
    assert meta.controller_reference() is None
    assert decode_meta(b"{}") == ObjectMetaView()


def test_bookmark_and_error_lines() -> None:
    bookmark = decode_watch_line(
        _line(
            "BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "99"}}
        )
    )
    assert (bookmark.type, bookmark.meta.resource_version) == ("BOOKMARK", "99")
    gone = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "too old resource version: 1 (99)",
        "reason": "Expired",
        "code": 410,
    }
    error = decode_watch_line(_line("ERROR", gone))
    assert error.type == "ERROR"
    assert decode_object(error.raw)["code"] == 410


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"not json", "malformed watch line"),
        (b"", "malformed watch line"),
        (b'{"type": "ADDED"}', "missing required field `object`"),
        (b'{"object": {}}', "missing required field `type`"),
        (b'{"type": "BOGUS", "object": {}}', "Invalid enum value 'BOGUS'"),
        (b'{"type": "ADDED", "object": 5}', "malformed object in a ADDED watch line"),
        (
            b'{"type": "ADDED", "object": {"metadata": {"labels": {"a": 1}}}}',
            r"Expected `str`, got `int` - at `\$.metadata.labels\[...\]`",
        ),
        (b'{"type": "ADDED", "object": {"metadata": ', "malformed watch line"),
    ],
)
def test_bad_watch_lines_get_an_error_that_quotes_them(line: bytes, message: str) -> None:
    with pytest.raises(WatchLineError, match=message) as raised:
        decode_watch_line(line)
    assert repr(line[:20])[2:-1] in str(raised.value)


def reference(line: bytes, keep_managed_fields: bool) -> tuple[str, bytes, ObjectMetaView]:
    """What a watch line holds, by the general route: the whole line parsed into raw values
    (the last of duplicate keys wins), the metadata from the object's bytes."""
    top = msgspec.json.decode(line, type=dict[str, msgspec.Raw])
    raw = bytes(top["object"])
    meta = decode_meta(raw)
    return (
        orjson.loads(bytes(top["type"])),
        raw if keep_managed_fields else drop_managed_fields(raw),
        meta,
    )


texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8)
metadata = st.fixed_dictionaries(
    {"name": texts, "resourceVersion": st.integers(1, 10**6).map(str)},
    optional={
        "namespace": texts,
        "uid": texts,
        # A label named like the field must not be what is cut.
        "labels": st.dictionaries(st.sampled_from(["app", "managedFields", "x"]), texts),
        "annotations": st.dictionaries(texts, texts, max_size=2),
        "managedFields": st.one_of(
            st.lists(st.fixed_dictionaries({"manager": texts, "fieldsV1": st.just({})})),
            st.none(),
        ),
        "finalizers": st.lists(texts, max_size=2),
    },
)
objects = st.fixed_dictionaries(
    {"kind": st.just("Pod"), "metadata": metadata},
    optional={"spec": st.dictionaries(st.sampled_from(["object", "managedFields", "a"]), texts)},
)
layouts = st.sampled_from(["as written", "spaced", "object first", "extra key", "duplicate"])


def lay_out(kind: str, obj: dict[str, Any], layout: str) -> bytes:
    body = orjson.dumps(obj)
    if layout == "spaced":
        return b'{"type": "%s", "object": %s}\n' % (kind.encode(), body)
    if layout == "object first":
        return b'{"object":%s,"type":"%s"}' % (body, kind.encode())
    if layout == "extra key":
        return b'{"type":"%s","object":%s,"x":1}' % (kind.encode(), body)
    if layout == "duplicate":
        return b'{"type":"%s","object":{"metadata":{"name":"first"}},"object":%s}' % (
            kind.encode(),
            body,
        )
    return _line(kind, obj)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["ADDED", "MODIFIED", "DELETED"]),
    objects,
    layouts,
    st.booleans(),
)
def test_a_watch_line_decodes_to_what_the_general_route_gives(
    kind: str, obj: dict[str, Any], layout: str, keep_managed_fields: bool
) -> None:
    line = lay_out(kind, obj, layout)
    decoded = decode_watch_line(line, keep_managed_fields=keep_managed_fields)
    assert (decoded.type, decoded.raw, decoded.meta) == reference(line, keep_managed_fields)
    if not keep_managed_fields:
        expected = {**obj, "metadata": dict(obj["metadata"])}
        expected["metadata"].pop("managedFields", None)
        assert orjson.loads(decoded.raw) == expected


def test_drop_managed_fields_keeps_everything_else() -> None:
    raw = orjson.dumps(POD)
    dropped = drop_managed_fields(raw)
    expected = {
        **POD,
        "metadata": {k: v for k, v in POD["metadata"].items() if k != "managedFields"},
    }
    assert orjson.loads(dropped) == expected
    assert len(dropped) < len(raw)


def test_drop_managed_fields_returns_the_same_bytes_when_there_are_none() -> None:
    plain = orjson.dumps({"metadata": {"name": "x"}, "spec": {}})
    assert drop_managed_fields(plain) is plain
    # The key elsewhere (here a ConfigMap's data) is not metadata.managedFields.
    tricky = orjson.dumps({"metadata": {"name": "c"}, "data": {"managedFields": "x"}})
    assert drop_managed_fields(tricky) is tricky
    no_metadata = orjson.dumps({"data": {"managedFields": "x"}})
    assert drop_managed_fields(no_metadata) is no_metadata


def test_object_transform_wraps_a_dict_function() -> None:
    def strip_status(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k != "status"}

    transform = object_transform(strip_status)
    assert "status" not in orjson.loads(transform(orjson.dumps(POD)))


def test_to_model_builds_the_official_clients_model_on_demand() -> None:
    pod = to_model(POD, "V1Pod")
    assert pod.metadata is not None
    assert pod.metadata.name == "gmweb-7d9f-abcde"
    assert pod.metadata.labels == {"ipb-halle.de/k8sticket.deployment.app.name": "gmweb"}
    assert pod.status is not None
    assert pod.status.pod_ip == "10.0.0.7"
    assert pod.spec is not None
    ports = pod.spec.containers[0].ports
    assert ports is not None
    assert ports[0].container_port == 3838
    from_bytes = to_model(orjson.dumps(POD), "V1Pod")
    assert from_bytes.to_dict() == pod.to_dict()
    meta = to_model(POD["metadata"], "V1ObjectMeta")
    assert meta.resource_version == "1234"


def test_to_model_refuses_an_unknown_model() -> None:
    with pytest.raises(ValueError, match="no model named 'V1Podd'"):
        to_model(POD, "V1Podd")


def test_watch_event_meta_from_raw_from_object_or_given_agree() -> None:
    raw = orjson.dumps(POD)
    from_raw = WatchEvent("ADDED", raw=raw, resource_version="1234", stream="pods")
    from_object = WatchEvent("ADDED", POD, resource_version="1234", stream="pods")
    given_meta = decode_meta(raw)
    given = WatchEvent("ADDED", raw=raw, meta=given_meta, resource_version="1", stream="pods")
    assert from_raw.meta == from_object.meta == given_meta
    assert given.meta is given_meta
    assert from_raw.meta is from_raw.meta
    assert from_raw._object is None  # reading meta did not decode the object
    assert given.with_stream("other").meta is given_meta
    assert WatchEvent("SYNCED", resource_version="5", stream="pods").meta == ObjectMetaView()


def test_typed_views_type_the_decoded_json_without_converting_it() -> None:
    def is_ready(pod: Pod) -> bool:
        status: PodStatus = pod.get("status", {})
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
        )

    event = WatchEvent("ADDED", raw=orjson.dumps(POD), resource_version="1", stream="pods")
    pod = cast(Pod, event.object)
    assert is_ready(pod)
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert pod is event.object


def test_msgspec_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="Expected `object`"):
        decode_meta(b"[]")
    assert issubclass(msgspec.DecodeError, ValueError)
