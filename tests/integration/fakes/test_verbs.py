"""The remaining verbs and subresources over HTTP, the extension points, and the thread mode."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import trio

from rxkube.fakes import (
    Change,
    FakeApiServer,
    Fault,
    RequestContext,
    Subresource,
    ThreadedFakeApiServer,
    Upgrade,
)

from .conftest import configmap, pod

PODS = "/api/v1/namespaces/default/pods"
CMS = "/api/v1/namespaces/default/configmaps"


async def test_status_subresource(client: httpx.AsyncClient) -> None:
    created = (await client.post(PODS, json=pod("p"))).json()
    created["status"] = {"phase": "Running", "podIP": "10.0.0.7"}
    created["spec"]["containers"][0]["image"] = "ignored:2"
    updated = await client.put(f"{PODS}/p/status", json=created)
    assert updated.status_code == 200
    body = updated.json()
    assert body["status"]["phase"] == "Running"
    assert body["spec"]["containers"][0]["image"] == "nginx:1.25"  # spec ignored on status
    merge = {"content-type": "application/merge-patch+json"}
    patched = await client.patch(
        f"{PODS}/p/status", content=b'{"status":{"phase":"Failed"}}', headers=merge
    )
    assert patched.json()["status"]["phase"] == "Failed"
    # The main endpoint ignores status changes.
    ignored = await client.patch(
        f"{PODS}/p", content=b'{"status":{"phase":"Pending"}}', headers=merge
    )
    assert ignored.json()["status"]["phase"] == "Failed"
    got = await client.get(f"{PODS}/p/status")
    assert got.json()["status"]["phase"] == "Failed"
    assert (await client.post(f"{PODS}/p/status", json=created)).status_code == 405


async def test_deletecollection(server: FakeApiServer, client: httpx.AsyncClient) -> None:
    for name, app in (("a", "web"), ("b", "web"), ("c", "db")):
        server.store.create(
            "configmaps",
            {**configmap(name), "metadata": {"name": name, "labels": {"app": app}}},
            namespace="default",
        )
    response = await client.delete(CMS, params={"labelSelector": "app=web"})
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "ConfigMapList"
    assert [i["metadata"]["name"] for i in body["items"]] == ["a", "b"]
    assert [e.name for e in server.store.list("configmaps", "default").items] == ["c"]


async def test_dry_run_and_generate_name(server: FakeApiServer, client: httpx.AsyncClient) -> None:
    rv = server.store.resource_version
    body = {"metadata": {"generateName": "job-"}, "data": {}}
    dry = await client.post(CMS, params={"dryRun": "All"}, json=body)
    assert dry.status_code == 201
    assert dry.json()["metadata"]["name"].startswith("job-")
    assert server.store.resource_version == rv
    real = await client.post(CMS, json=body)
    name = real.json()["metadata"]["name"]
    assert len(name) == len("job-") + 5
    deleted = await client.delete(f"{CMS}/{name}")
    assert deleted.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "kind": "configmaps", "uid": real.json()["metadata"]["uid"]},
    }


async def test_json_patch_over_http(client: httpx.AsyncClient) -> None:
    await client.post(CMS, json=configmap("c", a="1"))
    ops = [{"op": "add", "path": "/data/b", "value": "2"}, {"op": "remove", "path": "/data/a"}]
    patched = await client.patch(
        f"{CMS}/c",
        content=orjson.dumps(ops),
        headers={"content-type": "application/json-patch+json"},
    )
    assert patched.status_code == 200
    assert patched.json()["data"] == {"b": "2"}


async def test_a_subresource_added_later_is_served_and_discovered(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    """The extension point issue 5 uses for pods/exec: an upgrade to a raw byte stream."""

    async def echo(context: RequestContext) -> Upgrade:
        server.store.get_entry("pods", context.namespace, context.name)  # 404 if absent

        async def talk(stream: trio.abc.Stream, already: bytes) -> None:
            data = already or await stream.receive_some(1024)
            await stream.send_all(b"echo:" + data)
            await stream.aclose()

        return Upgrade([("upgrade", "echo"), ("connection", "Upgrade")], talk)

    server.api.add_subresource("pods", Subresource("echo", ("create", "get")), echo)
    resources = (await client.get("/api/v1")).json()["resources"]
    assert any(r["name"] == "pods/echo" for r in resources)
    server.store.create("pods", pod("p"), namespace="default")
    stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        await stream.send_all(
            b"GET /api/v1/namespaces/default/pods/p/echo HTTP/1.1\r\nHost: x\r\n"
            b"Connection: Upgrade\r\nUpgrade: echo\r\n\r\n"
        )
        head = b""
        with trio.fail_after(5):
            while b"\r\n\r\n" not in head:
                head += await stream.receive_some(1024)
            assert head.startswith(b"HTTP/1.1 101 ")
            await stream.send_all(b"hello")
            reply = b""
            while chunk := await stream.receive_some(1024):
                reply += chunk
    assert reply == b"echo:hello"
    missing = await client.get(f"{PODS}/nope/echo")
    assert missing.status_code == 404


async def test_the_change_feed_sees_http_writes(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    seen: list[tuple[str, str]] = []

    def observe(change: Change) -> None:
        seen.append((change.type, change.new.key))

    server.store.subscribe(observe)
    await client.post(CMS, json=configmap("x"))
    await client.delete(f"{CMS}/x")
    assert seen == [("ADDED", "default/x"), ("DELETED", "default/x")]


def test_thread_mode_store_and_faults_from_a_plain_thread(threaded: ThreadedFakeApiServer) -> None:
    entry = threaded.store.create("configmaps", configmap("t"), namespace="default")
    assert threaded.store.get("configmaps", "default", "t")["metadata"]["uid"] == entry.uid
    rule = threaded.faults.inject(Fault.status(503), verb="get")
    response = httpx.get(f"{threaded.url}/api/v1/namespaces/default/configmaps/t", timeout=10)
    assert response.status_code == 503
    assert rule.fired == 1
    assert threaded.faults.fired("status") == 1
    assert threaded.store.resource_version == entry.rv
    stats: dict[str, Any] = threaded.statistics()
    assert stats["requests"] == {"get": 1}


async def test_a_crd_serves_its_kind(server: FakeApiServer, client: httpx.AsyncClient) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {
                "plural": "widgets",
                "singular": "widget",
                "kind": "Widget",
                "shortNames": ["wd"],
            },
            "versions": [
                {"name": "v1", "served": True, "storage": True, "subresources": {"status": {}}}
            ],
        },
    }
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    created = await client.post(path, json=crd)
    assert created.status_code == 201, created.text
    established = (await client.get(f"{path}/widgets.example.com")).json()
    conditions = {c["type"]: c["status"] for c in established["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    widgets = "/apis/example.com/v1/namespaces/default/widgets"
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 3},
    }
    assert (await client.post(widgets, json=widget)).status_code == 201
    listed = (await client.get(widgets)).json()
    assert listed["kind"] == "WidgetList"
    assert listed["items"][0]["kind"] == "Widget"
    groups = [g["name"] for g in (await client.get("/apis")).json()["groups"]]
    assert "example.com" in groups
    bad = {**crd, "metadata": {"name": "wrong"}}
    invalid = await client.post(path, json=bad)
    assert invalid.status_code == 422
    assert 'must be spec.names.plural+"."+spec.group' in invalid.json()["message"]
    assert (await client.delete(f"{path}/widgets.example.com")).status_code == 200
    assert (await client.get(widgets)).json()["items"] == []
