"""Fixtures: the fake API server on loopback and the real rxkube client configured from the
kubeconfig it writes (so configuration, client and watch are all exercised for real)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from rxkube.fakes import FakeApiServer, open_fake_apiserver
from rxkube.streams import KubeClient, load_kubeconfig, open_client

# Idle watches get a bookmark this often, well inside the tests' inactivity timeout.
BOOKMARK_INTERVAL = 0.2


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    async with open_fake_apiserver(bookmark_interval=BOOKMARK_INTERVAL) as fake:
        yield fake


@pytest.fixture
async def client(server: FakeApiServer) -> AsyncIterator[KubeClient]:
    async with open_client(load_kubeconfig(server.kubeconfig_path), rate_limit=None) as kube:
        yield kube
