"""The API over no socket, in virtual time: watch timeouts and bookmarks at exact times."""

from __future__ import annotations

import random

import httpx
import orjson
import pytest
import trio
import trio.testing

from rxkube.fakes import ApiServer, ApiTransport, Fault, Store


@pytest.fixture
def api() -> ApiServer:
    return ApiServer(
        Store(now=lambda: 1_700_000_000.0, random=random.Random(1)), bookmark_interval=60.0
    )


async def test_bookmarks_and_timeout_in_virtual_time(
    api: ApiServer, autojump_clock: trio.testing.MockClock
) -> None:
    start = trio.current_time()
    times: list[tuple[str, float]] = []
    async with httpx.AsyncClient(transport=ApiTransport(api), base_url="http://fake") as http:
        listed = (await http.get("/api/v1/namespaces/default/configmaps")).json()
        rv = listed["metadata"]["resourceVersion"]
        params = {
            "watch": "true",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "150",
        }
        async with http.stream(
            "GET", "/api/v1/namespaces/default/configmaps", params=params
        ) as response:
            async for line in response.aiter_lines():
                event = orjson.loads(line)
                times.append((event["type"], trio.current_time() - start))
                if len(times) == 1:
                    api.store.create("configmaps", {"metadata": {"name": "c"}}, namespace="default")
    # Bookmarks every 60 s of idle time, one more as the 150 s timeout ends the watch.
    assert times == [("BOOKMARK", 60.0), ("ADDED", 60.0), ("BOOKMARK", 120.0), ("BOOKMARK", 150.0)]


async def test_faults_over_the_transport(
    api: ApiServer, autojump_clock: trio.testing.MockClock
) -> None:
    api.store.create("configmaps", {"metadata": {"name": "a"}}, namespace="default")
    api.faults.inject(Fault.drop(after_events=1), verb="watch")
    api.faults.inject(Fault.delay(30), verb="get")
    async with httpx.AsyncClient(transport=ApiTransport(api), base_url="http://fake") as http:
        lines: list[str] = []

        async def watch() -> None:
            async with http.stream("GET", "/api/v1/configmaps", params={"watch": "1"}) as response:
                async for line in response.aiter_lines():
                    lines.append(line)

        with pytest.raises(httpx.RemoteProtocolError):
            await watch()
        assert len(lines) == 1
        start = trio.current_time()
        await http.get("/api/v1/namespaces/default/configmaps/a")
        assert trio.current_time() - start == 30.0
    assert api.faults.counts == {"drop": 1, "delay": 1}
    assert api.open_watches == 0
