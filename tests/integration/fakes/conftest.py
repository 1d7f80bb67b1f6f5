"""Fixtures for the fake API server over loopback: in-process (trio) and in a thread."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson
import pytest
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from rxkube.fakes import (
    FakeApiServer,
    ThreadedFakeApiServer,
    fake_apiserver_thread,
    open_fake_apiserver,
)

# Short bookmark interval: tests wait for bookmarks by reading the stream, not by sleeping.
BOOKMARK_INTERVAL = 0.2


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    async with open_fake_apiserver(bookmark_interval=BOOKMARK_INTERVAL) as fake:
        yield fake


@pytest.fixture
async def client(server: FakeApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield http


@pytest.fixture
def threaded() -> Iterator[ThreadedFakeApiServer]:
    with fake_apiserver_thread(bookmark_interval=BOOKMARK_INTERVAL) as fake:
        yield fake


@pytest.fixture
def kube(threaded: ThreadedFakeApiServer) -> Iterator[kube_client.ApiClient]:
    """The official client, configured from the fake's kubeconfig (no global config)."""
    api_client = kube_config.new_client_from_config(str(threaded.kubeconfig_path))
    try:
        yield api_client
    finally:
        api_client.close()  # type: ignore[attr-defined]  # in kubernetes>=12, not in the stubs


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def pod(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
    }


async def read_watch(
    http: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    *,
    headers: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """All events of a watch until the server ends it (the test sets timeoutSeconds)."""
    events: list[dict[str, Any]] = []
    async with http.stream(
        "GET", path, params={**params, "watch": "true"}, headers=headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["transfer-encoding"] == "chunked"
        async for line in response.aiter_lines():
            if line:
                events.append(orjson.loads(line))
    return events
