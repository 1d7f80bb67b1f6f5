"""Strategic merge patch directives, managed field sets and table cells (pure code)."""

from __future__ import annotations

from typing import Any

import pytest

from rxkube.fakes import StatusError
from rxkube.fakes._managed import Fields, path_text
from rxkube.fakes._schemas import Schemas
from rxkube.fakes._strategic import apply_strategic
from rxkube.fakes._tables import human_duration

SCHEMAS = Schemas()


def _pod_spec(**spec: Any) -> dict[str, Any]:
    return {"spec": spec}


def smp(kind: str, original: dict[str, Any], patch: Any) -> dict[str, Any]:
    group, version, name_of_kind = kind.split("/")
    name = SCHEMAS.name_for(group, version, name_of_kind)
    assert name is not None
    return apply_strategic(SCHEMAS, SCHEMAS.definition(name), original, patch)


def pod(original: dict[str, Any], patch: Any) -> dict[str, Any]:
    return smp("/v1/Pod", original, patch)


def test_containers_merge_by_name_and_ports_by_container_port() -> None:
    original = _pod_spec(
        containers=[
            {"name": "a", "image": "x:1", "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "b", "image": "y:1"},
        ]
    )
    patched = pod(
        original,
        {"spec": {"containers": [{"name": "a", "image": "x:2", "ports": [{"containerPort": 81}]}]}},
    )
    assert patched["spec"]["containers"] == [
        {
            "name": "a",
            "image": "x:2",
            "ports": [{"containerPort": 81}, {"containerPort": 80, "name": "http"}],
        },
        {"name": "b", "image": "y:1"},
    ]


def test_delete_replace_and_set_element_order() -> None:
    original = _pod_spec(
        containers=[
            {"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}
        ],
        volumes=[{"name": "v1", "emptyDir": {}}, {"name": "v2", "emptyDir": {}}],
    )
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "a"}],
            "containers": [
                {
                    "name": "a",
                    "$setElementOrder/env": [{"name": "Z"}, {"name": "X"}],
                    "env": [{"name": "Z", "value": "3"}, {"$patch": "delete", "name": "Y"}],
                }
            ],
            "volumes": [{"name": "v3", "configMap": {"name": "c"}}, {"$patch": "replace"}],
        }
    }
    patched = pod(original, patch)
    assert patched["spec"]["containers"][0]["env"] == [
        {"name": "Z", "value": "3"},
        {"name": "X", "value": "1"},
    ]
    assert patched["spec"]["volumes"] == [{"name": "v3", "configMap": {"name": "c"}}]
    assert "$setElementOrder/containers" not in patched["spec"]


def test_retain_keys_map_replace_and_null_delete() -> None:
    original = {
        "metadata": {"labels": {"a": "1", "b": "2"}},
        "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
    }
    patched = smp(
        "apps/v1/Deployment",
        original,
        {
            "metadata": {"labels": {"b": None, "c": "3"}},
            "spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}},
        },
    )
    assert patched["metadata"]["labels"] == {"a": "1", "c": "3"}
    assert patched["spec"]["strategy"] == {"type": "Recreate"}
    replaced = smp(
        "apps/v1/Deployment", original, {"metadata": {"labels": {"$patch": "replace", "z": "9"}}}
    )
    assert replaced["metadata"]["labels"] == {"z": "9"}


def test_primitive_lists_merge_as_sets_and_delete_from_primitive_list() -> None:
    original = {"metadata": {"finalizers": ["a", "b"]}}
    added = pod(original, {"metadata": {"finalizers": ["c", "a"]}})
    assert added["metadata"]["finalizers"] == ["c", "a", "b"]
    removed = pod(original, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert removed["metadata"]["finalizers"] == ["b"]
    args = pod(
        _pod_spec(containers=[{"name": "a", "args": ["1", "2"]}]),
        {"spec": {"containers": [{"name": "a", "args": ["3"]}]}},
    )
    assert args["spec"]["containers"][0]["args"] == ["3"]  # atomic list: replaced


def test_malformed_patches_are_bad_requests() -> None:
    with pytest.raises(StatusError) as missing_key:
        pod(_pod_spec(containers=[{"name": "a"}]), {"spec": {"containers": [{"image": "x"}]}})
    assert missing_key.value.code == 400
    assert "does not contain declared merge key: name" in missing_key.value.message
    with pytest.raises(StatusError) as bad_directive:
        pod({"spec": {}}, {"spec": {"$patch": "explode"}})
    assert "Unknown patch type: explode" in bad_directive.value.message
    with pytest.raises(StatusError) as retain:
        smp(
            "apps/v1/Deployment",
            {"spec": {}},
            {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}},
        )
    assert retain.value.code == 400


def test_field_sets_and_paths() -> None:
    name = SCHEMAS.name_for("apps", "v1", "Deployment")
    assert name is not None
    fields = Fields(SCHEMAS, SCHEMAS.definition(name))
    obj = {
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["x"]},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80}]}]}
            },
        },
        "status": {"replicas": 1},
    }
    paths = set(fields.of(obj, scope="main"))
    container = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"app"}')
    port = (*container, "f:ports", 'k:{"containerPort":80,"protocol":"TCP"}')
    assert paths == {
        ("f:metadata", "f:labels"),
        ("f:metadata", "f:labels", "f:app"),
        ("f:metadata", "f:finalizers", 'v:"x"'),
        ("f:spec", "f:replicas"),
        container,
        (*container, "f:name"),
        port,
        (*port, "f:containerPort"),
    }
    trie = Fields.to_fields_v1(paths)
    assert trie["f:metadata"]["f:labels"] == {".": {}, "f:app": {}}
    assert Fields.from_fields_v1(trie) == paths
    assert path_text((*port, "f:containerPort")) == (
        '.spec.template.spec.containers[name="app"].ports[containerPort=80,protocol="TCP"]'
        ".containerPort"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (0, "0s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (10_920, "3h2m"),
        (36_000, "10h"),
        (3 * 86_400 + 7200, "3d2h"),
        (400 * 86_400, "400d"),
        (3 * 365 * 86_400, "3y"),
    ],
)
def test_ages_read_like_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text
