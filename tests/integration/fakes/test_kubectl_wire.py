"""The wire details kubectl relies on, checked over loopback with httpx (issue 6).

OpenAPI index and documents (hash, redirect, caching headers, 406), fieldValidation
(Warn headers, Strict 400, unknown directive 422), Tables (includeObject, watch
columnDefinitions), server-side apply (fieldManager required, unknown fields, re-apply is a
no-op), the scale subresource, and protobuf bodies that cannot be decoded.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from rxkube.fakes import FakeApiServer

from .conftest import read_watch

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def _deployment(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
            },
            **spec,
        },
    }


async def test_openapi_v3_index_documents_and_caching(client: httpx.AsyncClient) -> None:
    index = (await client.get("/openapi/v3")).json()["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/gateway.solo.io/v1"} <= set(index)
    url = index["apis/apps/v1"]["serverRelativeURL"]
    digest = url.split("hash=")[1]
    assert len(digest) == 128
    assert digest == digest.upper()
    response = await client.get(url, headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, immutable"
    assert response.headers["etag"] == f'"{digest}"'
    doc = response.json()
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "kind": "Deployment",
        "version": "v1",
    }
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["get"]["x-kubernetes-group-version-kind"]["kind"] == "Scale"
    spec = doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["properties"]["strategy"]["x-kubernetes-patch-strategy"] == "retainKeys"
    stale = await client.get("/openapi/v3/apis/apps/v1?hash=00", follow_redirects=False)
    assert stale.status_code == 301
    assert stale.headers["location"] == url
    refused = await client.get(url, headers={"Accept": "text/html"})
    assert refused.status_code == 406
    assert (await client.get("/openapi/v3/apis/nope/v1")).status_code == 404


async def test_openapi_v2_is_json_only(client: httpx.AsyncClient) -> None:
    swagger = await client.get("/openapi/v2", headers={"Accept": "application/json"})
    assert swagger.status_code == 200
    body = swagger.json()
    assert body["swagger"] == "2.0"
    assert "io.k8s.api.core.v1.Pod" in body["definitions"]
    protobuf = await client.get(
        "/openapi/v2",
        headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"},
    )
    assert protobuf.status_code == 406


async def test_field_validation_directives(client: httpx.AsyncClient) -> None:
    body = _deployment("web")
    body["spec"]["replicaz"] = 2
    body["metadata"]["colour"] = "blue"
    warned = await client.post(DEPLOYMENTS, json=body)
    assert warned.status_code == 201
    assert warned.headers.get_list("warning") == [
        '299 - "unknown field \\"metadata.colour\\""',
        '299 - "unknown field \\"spec.replicaz\\""',
    ]
    assert "replicaz" not in warned.text
    strict = await client.post(
        DEPLOYMENTS, params={"fieldValidation": "Strict"}, json=_deployment("x", foo=1)
    )
    assert strict.status_code == 400
    assert strict.json()["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.foo"'
    )
    duplicate = await client.post(
        "/api/v1/namespaces/default/configmaps",
        params={"fieldValidation": "Strict"},
        content=b'{"metadata":{"name":"d"},"data":{"a":"1","a":"2"}}',
        headers={"Content-Type": "application/json"},
    )
    assert duplicate.status_code == 400
    assert 'duplicate field "data.a"' in duplicate.json()["message"]
    ignored = await client.post(
        DEPLOYMENTS, params={"fieldValidation": "Ignore"}, json=_deployment("y", foo=1)
    )
    assert ignored.status_code == 201
    assert "warning" not in ignored.headers
    unknown = await client.post(
        DEPLOYMENTS, params={"fieldValidation": "Loud"}, json=_deployment("z")
    )
    assert unknown.status_code == 422
    assert unknown.json()["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loud": '
        'supported values: "", "Ignore", "Strict", "Warn"'
    )
    patched = await client.patch(
        f"{DEPLOYMENTS}/web",
        params={"fieldValidation": "Strict"},
        content=b'{"spec":{"paused":true,"bogus":1}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status_code == 422
    assert 'strict decoding error: unknown field "spec.bogus"' in patched.json()["message"]


async def test_tables_include_object_and_watch_headers(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    server.store.create(
        "configmaps", {"metadata": {"name": "a"}, "data": {"k": "v"}}, namespace="default"
    )
    path = "/api/v1/namespaces/default/configmaps"
    default = (await client.get(path, headers={"Accept": TABLE})).json()
    assert default["kind"] == "Table"
    assert [c["name"] for c in default["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert default["rows"][0]["cells"][:2] == ["a", 1]
    assert default["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    full = (
        await client.get(path, params={"includeObject": "Object"}, headers={"Accept": TABLE})
    ).json()
    assert full["rows"][0]["object"]["data"] == {"k": "v"}
    none = (
        await client.get(path, params={"includeObject": "None"}, headers={"Accept": TABLE})
    ).json()
    assert none["rows"][0]["object"] is None
    bad = await client.get(path, params={"includeObject": "All"}, headers={"Accept": TABLE})
    assert bad.status_code == 422
    rv = default["metadata"]["resourceVersion"]
    server.store.create("configmaps", {"metadata": {"name": "b"}}, namespace="default")
    server.store.create("configmaps", {"metadata": {"name": "c"}}, namespace="default")
    events = await read_watch(
        client, path, {"resourceVersion": rv, "timeoutSeconds": "1"}, headers={"Accept": TABLE}
    )
    tables = [e["object"] for e in events]
    assert [t["rows"][0]["cells"][0] for t in tables] == ["b", "c"]
    assert tables[0]["columnDefinitions"] is not None
    assert tables[1]["columnDefinitions"] is None


async def test_server_side_apply_rules(client: httpx.AsyncClient) -> None:
    apply = {"Content-Type": "application/apply-patch+yaml"}
    no_manager = await client.patch(
        f"{DEPLOYMENTS}/ssa", content=orjson.dumps(_deployment("ssa")), headers=apply
    )
    assert no_manager.status_code == 422
    assert no_manager.json()["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for '
        "apply patch"
    )
    params = {"fieldManager": "me"}
    created = await client.patch(
        f"{DEPLOYMENTS}/ssa", params=params, content=orjson.dumps(_deployment("ssa")), headers=apply
    )
    assert created.status_code == 201
    again = await client.patch(
        f"{DEPLOYMENTS}/ssa", params=params, content=orjson.dumps(_deployment("ssa")), headers=apply
    )
    assert again.status_code == 200
    assert (
        again.json()["metadata"]["resourceVersion"] == created.json()["metadata"]["resourceVersion"]
    )
    typo = await client.patch(
        f"{DEPLOYMENTS}/ssa",
        params=params,
        content=orjson.dumps(_deployment("ssa", replicaz=1)),
        headers=apply,
    )
    assert typo.status_code == 500
    assert typo.json()["message"].endswith(
        "failed to create typed patch object (default/ssa; apps/v1, Kind=Deployment): "
        ".spec.replicaz: field not declared in schema"
    )
    other = await client.patch(
        f"{DEPLOYMENTS}/ssa",
        params={"fieldManager": "other"},
        content=orjson.dumps(_deployment("ssa", replicas=3)),
        headers=apply,
    )
    assert other.status_code == 409
    status = other.json()
    assert status["reason"] == "Conflict"
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "me": .spec.replicas'
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "me"',
            "field": ".spec.replicas",
        }
    ]


async def test_scale_subresource(client: httpx.AsyncClient) -> None:
    await client.post(DEPLOYMENTS, json=_deployment("web"))
    scale = (await client.get(f"{DEPLOYMENTS}/web/scale")).json()
    assert (scale["kind"], scale["apiVersion"]) == ("Scale", "autoscaling/v1")
    assert scale["spec"] == {"replicas": 1}
    assert scale["status"] == {"replicas": 0, "selector": "app=web"}
    scale["spec"]["replicas"] = 4
    updated = await client.put(f"{DEPLOYMENTS}/web/scale", json=scale)
    assert updated.json()["spec"]["replicas"] == 4
    stale = await client.put(f"{DEPLOYMENTS}/web/scale", json=scale)
    assert stale.status_code == 409
    negative = await client.patch(
        f"{DEPLOYMENTS}/web/scale",
        content=b'{"spec":{"replicas":-1}}',
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert negative.status_code == 422
    assert negative.json()["message"] == (
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: must be greater '
        "than or equal to 0"
    )


async def test_protobuf_bodies_that_cannot_be_decoded(client: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/vnd.kubernetes.protobuf"}
    garbage = await client.post(
        "/api/v1/namespaces/default/configmaps", content=b"nope", headers=headers
    )
    assert garbage.status_code == 400
    assert "protobuf magic" in garbage.json()["message"]
    # A Pod is not in the fake's protobuf table: 415 naming it, not a silent drop.
    unknown = b"k8s\x00" + b"\x0a\x09\x0a\x02v1\x12\x03Pod" + b"\x12\x00"
    pod = await client.post("/api/v1/namespaces/default/pods", content=unknown, headers=headers)
    assert pod.status_code == 415
    assert "v1 Pod" in pod.json()["message"]
