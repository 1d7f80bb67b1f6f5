"""Every fault kind, over loopback, and its counter."""

from __future__ import annotations

import httpx
import orjson
import pytest
import trio

from rxkube.fakes import FakeApiServer, Fault

from .conftest import configmap, read_watch

CMS = "/api/v1/namespaces/default/configmaps"


async def test_status_faults_answer_instead_of_the_request(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    rule = server.faults.inject(
        Fault.status(503, retry_after=2), verb="list", resource="configmaps"
    )
    unavailable = await client.get(CMS)
    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"] == "2"
    body = unavailable.json()
    assert body["reason"] == "ServiceUnavailable"
    assert body["details"]["retryAfterSeconds"] == 2
    assert (await client.get(CMS)).status_code == 200  # times=1: only the first
    assert rule.fired == 1
    assert rule.matched == 1

    server.faults.inject(Fault.status(500), verb="create", times=None)
    for _ in range(2):
        failed = await client.post(CMS, json=configmap("x"))
        assert failed.status_code == 500
        assert failed.json()["reason"] == "InternalError"
    assert server.store.list("configmaps", "default").items == []
    server.faults.clear()

    server.faults.inject(Fault.status(410), verb="list")
    gone = await client.get(CMS)
    assert gone.status_code == 410
    assert gone.json()["reason"] == "Expired"
    assert server.faults.fired("status") == 4


async def test_too_many_requests_is_plain_text_with_retry_after(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    server.faults.inject(Fault.too_many_requests(retry_after=3), path="/api/v1")
    limited = await client.get(CMS)
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert limited.text == "Too many requests, please try again later.\n"
    assert server.faults.fired("status") == 1


async def test_delay_serves_the_request_late(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    server.faults.inject(Fault.delay(0.3), verb="get", resource="namespaces")
    start = trio.current_time()
    response = await client.get("/api/v1/namespaces/default")
    assert response.status_code == 200
    assert trio.current_time() - start >= 0.3
    assert server.faults.fired("delay") == 1


async def test_stall_never_answers(server: FakeApiServer, client: httpx.AsyncClient) -> None:
    rule = server.faults.inject(Fault.stall(), verb="list")
    with pytest.raises(httpx.ReadTimeout):
        await client.get(CMS, timeout=0.3)
    assert rule.fired == 1
    assert (await client.get(CMS)).status_code == 200


async def test_drop_closes_a_plain_request_without_an_answer(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    server.faults.inject(Fault.drop(), verb="get")
    with pytest.raises(httpx.RemoteProtocolError):
        await client.get("/api/v1/namespaces/default")
    assert server.faults.fired("drop") == 1


async def _stream_lines(
    client: httpx.AsyncClient, params: dict[str, str]
) -> tuple[list[bytes], Exception | None]:
    """Raw lines of a watch, and the error that ended it (None for a clean end)."""
    lines: list[bytes] = []
    buffer = b""
    failure: Exception | None = None
    try:
        async with client.stream("GET", CMS, params={"watch": "true", **params}) as response:
            async for chunk in response.aiter_raw():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    lines.append(line)
    except httpx.HTTPError as error:
        failure = error
    if buffer:
        lines.append(buffer)
    return lines, failure


async def test_drop_a_watch_after_some_events(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    for name in ("a", "b", "c"):
        server.store.create("configmaps", configmap(name), namespace="default")
    rule = server.faults.inject(Fault.drop(after_events=2), verb="watch", resource="configmaps")
    lines, error = await _stream_lines(client, {"timeoutSeconds": "5"})
    assert isinstance(error, httpx.RemoteProtocolError)  # no terminating chunk
    assert [orjson.loads(line)["object"]["metadata"]["name"] for line in lines] == ["a", "b"]
    assert rule.fired == 1


async def test_truncated_line_then_drop(server: FakeApiServer, client: httpx.AsyncClient) -> None:
    server.store.create("configmaps", configmap("a"), namespace="default")
    server.store.create("configmaps", configmap("b"), namespace="default")
    server.faults.inject(Fault.truncate(after_events=1), verb="watch")
    lines, error = await _stream_lines(client, {"timeoutSeconds": "5"})
    assert isinstance(error, httpx.RemoteProtocolError)
    assert orjson.loads(lines[0])["object"]["metadata"]["name"] == "a"
    assert len(lines) == 2
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(lines[1])
    assert server.faults.fired("truncate") == 1


async def test_malformed_line_then_the_stream_goes_on(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    server.store.create("configmaps", configmap("a"), namespace="default")
    server.store.create("configmaps", configmap("b"), namespace="default")
    server.faults.inject(Fault.malformed(after_events=1), verb="watch")
    lines, error = await _stream_lines(client, {"timeoutSeconds": "1"})
    assert error is None
    assert len(lines) == 3
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(lines[1])
    assert [orjson.loads(lines[i])["object"]["metadata"]["name"] for i in (0, 2)] == ["a", "b"]
    assert server.faults.fired("malformed") == 1


async def test_expire_sends_an_in_band_410(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    server.store.create("configmaps", configmap("a"), namespace="default")
    server.faults.inject(Fault.expire(after_events=1), verb="watch")
    events = await read_watch(client, CMS, {"timeoutSeconds": "5"})
    assert [e["type"] for e in events] == ["ADDED", "ERROR"]
    assert events[1]["object"]["code"] == 410
    assert events[1]["object"]["reason"] == "Expired"
    assert server.faults.fired("expire") == 1


async def test_drop_and_expire_open_watches_now(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    results: dict[str, tuple[list[bytes], Exception | None]] = {}

    async def watch(key: str) -> None:
        results[key] = await _stream_lines(client, {"timeoutSeconds": "10", "resourceVersion": "1"})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, "dropped")
        with trio.fail_after(5):
            await server.api.wait_open_watches(1)
        assert server.faults.drop_watches(resource="configmaps") == 1
        with trio.fail_after(5):
            await server.api.wait_open_watches(0)
        nursery.start_soon(watch, "expired")
        with trio.fail_after(5):
            await server.api.wait_open_watches(1)
        assert server.faults.expire_watches() == 1
    assert isinstance(results["dropped"][1], httpx.RemoteProtocolError)
    lines, error = results["expired"]
    assert error is None
    assert orjson.loads(lines[0])["object"]["code"] == 410
    assert server.faults.counts == {"drop_watches": 1, "expire_watches": 1}


async def test_rules_match_by_path_namespace_and_count(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    rule = server.faults.inject(Fault.status(500), namespace="kube-system", times=2)
    assert (await client.get(CMS)).status_code == 200
    assert (await client.get("/api/v1/namespaces/kube-system/configmaps")).status_code == 500
    assert (await client.get("/api/v1/namespaces/kube-system/secrets")).status_code == 500
    assert (await client.get("/api/v1/namespaces/kube-system/secrets")).status_code == 200
    assert rule.fired == 2
    assert server.faults.rules() == []
    server.faults.inject(Fault.status(503), resource="deployments.apps")
    assert (await client.get("/apis/apps/v1/deployments")).status_code == 503
    assert (await client.get("/apis/apps/v1/replicasets")).status_code == 200
