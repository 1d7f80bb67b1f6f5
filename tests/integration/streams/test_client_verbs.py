"""The client's verbs and typed errors against the fake API server over loopback."""

from __future__ import annotations

import pytest

from rxkube.streams import (
    CONFIGMAPS,
    DEPLOYMENTS,
    NAMESPACES,
    AlreadyExists,
    Conflict,
    Invalid,
    KubeClient,
    NotFound,
)

NS = "default"


async def test_create_get_list_replace_patch_delete(client: KubeClient) -> None:
    created = await client.create(
        CONFIGMAPS, {"metadata": {"name": "a", "labels": {"app": "web"}}, "data": {"k": "1"}}
    )
    assert created["metadata"]["namespace"] == NS  # the config's namespace by default
    for name in ("b", "c"):
        await client.create(CONFIGMAPS, {"metadata": {"name": name, "labels": {"app": "db"}}})

    got = await client.get(CONFIGMAPS, "a")
    assert got["data"] == {"k": "1"}
    meta = await client.get(CONFIGMAPS, "a", metadata_only=True)
    assert meta["kind"] == "PartialObjectMetadata"
    assert "data" not in meta

    paged = await client.list(CONFIGMAPS, namespace=NS, limit=1)
    assert sorted(o["metadata"]["name"] for o in paged.items) == ["a", "b", "c"]
    assert int(paged.resource_version) >= int(created["metadata"]["resourceVersion"])
    selected = await client.list(CONFIGMAPS, namespace=NS, label_selector="app=db")
    assert sorted(o["metadata"]["name"] for o in selected.items) == ["b", "c"]
    everywhere = await client.list(CONFIGMAPS)  # all namespaces
    assert len(everywhere.items) == 3

    replaced = await client.replace(CONFIGMAPS, {**got, "data": {"k": "2"}})
    assert replaced["data"] == {"k": "2"}
    with pytest.raises(Conflict):  # `got` carries a stale resourceVersion now
        await client.replace(CONFIGMAPS, {**got, "data": {"k": "3"}})

    merged = await client.patch(CONFIGMAPS, "a", {"data": {"m": "1"}})
    assert merged["data"] == {"k": "2", "m": "1"}
    jsoned = await client.patch(
        CONFIGMAPS, "a", [{"op": "remove", "path": "/data/k"}], patch_type="json"
    )
    assert jsoned["data"] == {"m": "1"}
    strategic = await client.patch(
        CONFIGMAPS, "a", {"metadata": {"labels": {"tier": "x"}}}, patch_type="strategic"
    )
    assert strategic["metadata"]["labels"] == {"app": "web", "tier": "x"}

    await client.delete(CONFIGMAPS, "a")
    with pytest.raises(NotFound) as missing:
        await client.get(CONFIGMAPS, "a")
    assert missing.value.details.get("kind") == "configmaps"
    await client.delete_collection(CONFIGMAPS, label_selector="app=db")
    assert (await client.list(CONFIGMAPS, namespace=NS)).items == ()


async def test_typed_errors_carry_the_status(client: KubeClient) -> None:
    await client.create(CONFIGMAPS, {"metadata": {"name": "a"}})
    with pytest.raises(AlreadyExists) as taken:
        await client.create(CONFIGMAPS, {"metadata": {"name": "a"}})
    assert taken.value.code == 409
    assert taken.value.message == 'configmaps "a" already exists'
    with pytest.raises(NotFound, match='namespaces "nowhere" not found'):
        await client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, namespace="nowhere")
    with pytest.raises(Invalid) as invalid:
        await client.create(DEPLOYMENTS, {"metadata": {"name": "web"}, "spec": {"replicas": -1}})
    assert invalid.value.code == 422
    assert invalid.value.causes
    # A cluster-scoped kind: no namespace in the path.
    created = await client.create(NAMESPACES, {"metadata": {"name": "lab"}})
    assert created["metadata"]["name"] == "lab"
    assert "namespace" not in created["metadata"]
