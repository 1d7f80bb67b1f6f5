"""Watch and list semantics over HTTP, written from the Kubernetes API concepts page
(https://kubernetes.io/docs/reference/using-api/api-concepts/) and the wire reference."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import trio

from rxkube.fakes import FakeApiServer

from .conftest import configmap, pod, read_watch

PODS = "/api/v1/namespaces/default/pods"
CMS = "/api/v1/namespaces/default/configmaps"
META_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
META = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"


async def create(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_watch_resumes_from_a_resource_version(client: httpx.AsyncClient) -> None:
    a = await create(client, CMS, configmap("a"))
    start = a["metadata"]["resourceVersion"]
    await create(client, CMS, configmap("b"))
    patched = await client.patch(
        f"{CMS}/a",
        content=b'{"data":{"k":"v"}}',
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200
    events = await read_watch(client, CMS, {"resourceVersion": start, "timeoutSeconds": "1"})
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"),
        ("MODIFIED", "a"),
    ]
    # Event objects always carry kind and apiVersion (reference 4.2).
    assert {(e["object"]["kind"], e["object"]["apiVersion"]) for e in events} == {
        ("ConfigMap", "v1")
    }
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs)
    assert rvs[0] > int(start)


async def test_watch_without_rv_sends_synthetic_added_for_current_objects(
    client: httpx.AsyncClient,
) -> None:
    await create(client, CMS, configmap("x"))
    events = await read_watch(client, CMS, {"timeoutSeconds": "1"})
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "x")]


async def test_too_old_rv_is_http_200_then_an_error_event_with_410(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    created = await create(client, CMS, configmap("a"))
    await create(client, CMS, configmap("b"))
    server.store.compact()
    old = int(created["metadata"]["resourceVersion"])
    events = await read_watch(client, CMS, {"resourceVersion": str(old), "timeoutSeconds": "5"})
    assert events == [
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": f"too old resource version: {old} ({server.store.resource_version})",
                "reason": "Expired",
                "code": 410,
            },
        }
    ]


async def test_selector_transitions_arrive_as_added_and_deleted(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    await create(client, PODS, pod("p", {"app": "web"}))
    listed = (await client.get(PODS, params={"labelSelector": "app=web"})).json()
    rv = listed["metadata"]["resourceVersion"]
    merge = {"content-type": "application/merge-patch+json"}
    for value in ("db", "db2", "web"):
        body = orjson.dumps({"metadata": {"labels": {"app": value}}})
        assert (await client.patch(f"{PODS}/p", content=body, headers=merge)).status_code == 200
    events = await read_watch(
        client, PODS, {"labelSelector": "app=web", "resourceVersion": rv, "timeoutSeconds": "1"}
    )
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]
    # DELETED carries the last state that matched, with the RV of the change.
    assert events[0]["object"]["metadata"]["labels"] == {"app": "web"}
    assert int(events[0]["object"]["metadata"]["resourceVersion"]) == int(rv) + 1
    assert events[1]["object"]["metadata"]["labels"] == {"app": "web"}


async def test_bookmarks_only_when_asked_and_never_ahead(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    await create(client, CMS, configmap("a"))
    listed = (await client.get(CMS)).json()
    rv = listed["metadata"]["resourceVersion"]
    # A write to another kind moves the global RV; the idle watch's bookmark catches up.
    await create(client, PODS, pod("unrelated"))
    events = await read_watch(
        client, CMS, {"resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "1"}
    )
    assert events
    assert {e["type"] for e in events} == {"BOOKMARK"}
    bookmark = events[0]["object"]
    assert bookmark["kind"] == "ConfigMap"
    assert bookmark["apiVersion"] == "v1"
    assert int(bookmark["metadata"]["resourceVersion"]) == server.store.resource_version
    plain = await read_watch(client, CMS, {"resourceVersion": rv, "timeoutSeconds": "1"})
    assert plain == []


async def test_send_initial_events_ends_with_the_initial_events_end_bookmark(
    client: httpx.AsyncClient,
) -> None:
    await create(client, CMS, configmap("a"))
    events = await read_watch(
        client,
        CMS,
        {
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "1",
        },
    )
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    bad = await client.get(CMS, params={"watch": "true", "sendInitialEvents": "true"})
    assert bad.status_code == 422
    assert bad.json()["details"]["causes"][0]["field"] == "sendInitialEvents"


async def test_timeout_seconds_ends_the_watch_cleanly(client: httpx.AsyncClient) -> None:
    start = trio.current_time()
    events = await read_watch(client, CMS, {"resourceVersion": "1", "timeoutSeconds": "1"})
    elapsed = trio.current_time() - start
    assert events == []
    assert 1.0 <= elapsed < 3.0


async def test_a_watch_follows_changes_made_while_it_is_open(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    rv = str(server.store.resource_version)
    seen: list[str] = []
    async with client.stream(
        "GET", CMS, params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "10"}
    ) as response:
        lines = response.aiter_lines()
        for name in ("a", "b", "c"):
            server.store.create("configmaps", configmap(name), namespace="default")
            line = await lines.__anext__()
            seen.append(orjson.loads(line)["object"]["metadata"]["name"])
    assert seen == ["a", "b", "c"]
    # The server notices the client leaving and closes its watcher.
    with trio.fail_after(5):
        await server.api.wait_open_watches(0)
    assert server.store.watchers("configmaps") == []


async def test_metadata_only_list_get_and_watch(client: httpx.AsyncClient) -> None:
    created = await create(client, PODS, pod("m", {"app": "x"}))
    listed = (await client.get(PODS, headers={"accept": META_LIST})).json()
    assert listed["kind"] == "PartialObjectMetadataList"
    assert listed["apiVersion"] == "meta.k8s.io/v1"
    assert listed["items"] == [
        {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": created["metadata"],
        }
    ]
    one = (await client.get(f"{PODS}/m", headers={"accept": META})).json()
    assert one == listed["items"][0]
    events = await read_watch(
        client,
        PODS,
        {"allowWatchBookmarks": "true", "timeoutSeconds": "1"},
        headers={"accept": META},
    )
    assert events[0]["type"] == "ADDED"
    assert set(events[0]["object"]) == {"kind", "apiVersion", "metadata"}
    assert events[0]["object"]["kind"] == "PartialObjectMetadata"
    assert events[-1]["type"] == "BOOKMARK"
    assert events[-1]["object"]["kind"] == "PartialObjectMetadata"
    protobuf_only = await client.get(
        PODS, headers={"accept": "application/vnd.kubernetes.protobuf"}
    )
    assert protobuf_only.status_code == 406


async def test_list_selectors_over_http(client: httpx.AsyncClient) -> None:
    for name, labels in (("a", {"app": "web", "tier": "front"}), ("b", {"app": "db"})):
        await create(client, PODS, pod(name, labels))

    async def names(**params: str) -> list[str]:
        response = await client.get(PODS, params=params)
        assert response.status_code == 200, response.text
        return [item["metadata"]["name"] for item in response.json()["items"]]

    assert await names(labelSelector="app in (web,db),!tier") == ["b"]
    assert await names(labelSelector="tier notin (back)") == ["a", "b"]
    assert await names(fieldSelector="metadata.name=a") == ["a"]
    assert await names(fieldSelector="status.phase=Pending") == ["a", "b"]
    all_namespaces = await client.get(
        "/api/v1/pods", params={"fieldSelector": "metadata.namespace=default"}
    )
    assert len(all_namespaces.json()["items"]) == 2
    bad = await client.get(PODS, params={"labelSelector": "app in (web"})
    assert bad.status_code == 400
    assert bad.json()["reason"] == "BadRequest"


async def test_pagination_and_expired_continue(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    for i in range(5):
        await create(client, CMS, configmap(f"c{i}"))
    first = (await client.get(CMS, params={"limit": "2"})).json()
    assert len(first["items"]) == 2
    assert first["metadata"]["remainingItemCount"] == 3
    token = first["metadata"]["continue"]
    second = (await client.get(CMS, params={"limit": "2", "continue": token})).json()
    assert [i["metadata"]["name"] for i in second["items"]] == ["c2", "c3"]
    assert second["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    await create(client, CMS, configmap("late"))
    server.faults.compact()
    expired = await client.get(
        CMS, params={"limit": "2", "continue": second["metadata"]["continue"]}
    )
    assert expired.status_code == 410
    status = expired.json()
    assert status["reason"] == "Expired"
    assert status["code"] == 410
    rest = (await client.get(CMS, params={"continue": status["metadata"]["continue"]})).json()
    assert [i["metadata"]["name"] for i in rest["items"]] == ["c4", "late"]
    assert server.faults.fired("compact") == 1


async def test_put_with_a_stale_resource_version_is_409(client: httpx.AsyncClient) -> None:
    created = await create(client, CMS, configmap("c", a="1"))
    fresh = {**created, "data": {"a": "2"}}
    assert (await client.put(f"{CMS}/c", json=fresh)).status_code == 200
    stale = {**created, "data": {"a": "3"}}
    conflict = await client.put(f"{CMS}/c", json=stale)
    assert conflict.status_code == 409
    assert conflict.json()["reason"] == "Conflict"
    assert (await client.get(f"{CMS}/c")).json()["data"] == {"a": "2"}


async def test_legacy_watch_paths(server: FakeApiServer, client: httpx.AsyncClient) -> None:
    await create(client, CMS, configmap("one"))
    await create(client, CMS, configmap("two"))
    events = await read_watch(
        client, "/api/v1/watch/namespaces/default/configmaps/two", {"timeoutSeconds": "1"}
    )
    assert [e["object"]["metadata"]["name"] for e in events] == ["two"]
    everywhere = await read_watch(client, "/api/v1/watch/configmaps", {"timeoutSeconds": "1"})
    assert sorted(e["object"]["metadata"]["name"] for e in everywhere) == ["one", "two"]


async def test_watch_from_a_future_rv_waits_then_reports_too_large(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    server.api.too_large_wait = 0.2
    future = str(server.store.resource_version + 5)
    events = await read_watch(client, CMS, {"resourceVersion": future, "timeoutSeconds": "1"})
    assert len(events) == 1
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 504
    assert events[0]["object"]["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
