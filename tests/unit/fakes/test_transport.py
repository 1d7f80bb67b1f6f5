"""The API over no socket, in virtual time: watch timeouts and bookmarks at exact times."""

from __future__ import annotations

import random
from collections import Counter

import httpx
import orjson
import pytest
import trio
import trio.testing

from rxkube.fakes import Access, ApiServer, ApiTransport, Fault, Store, UserInfo


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


async def test_access_is_counted_per_user_verb_resource_and_outcome() -> None:
    """`api.access` counts what each user asked and whether RBAC allowed it (403 otherwise)."""
    store = Store(now=lambda: 1_700_000_000.0, random=random.Random(1))
    sa = UserInfo.service_account("apps", "rxkube")
    api = ApiServer(store, tokens={"t-sa": sa, "t-bob": UserInfo("bob")}, rbac=True)
    store.create("namespaces", {"metadata": {"name": "apps"}})
    store.create(
        "roles",
        {
            "metadata": {"name": "r"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]},
            ],
        },
        namespace="apps",
    )
    store.create(
        "rolebindings",
        {
            "metadata": {"name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "rxkube"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        },
        namespace="apps",
    )
    sa_headers = {"Authorization": "Bearer t-sa"}
    async with httpx.AsyncClient(transport=ApiTransport(api), base_url="http://fake") as http:
        pods = "/api/v1/namespaces/apps/pods"
        assert (await http.get(pods, headers=sa_headers)).status_code == 200
        assert (await http.get(pods, headers=sa_headers)).status_code == 200
        assert (await http.get(pods + "/p/status", headers=sa_headers)).status_code == 403
        lease = "/apis/coordination.k8s.io/v1/namespaces/apps/leases/rxkube"
        assert (await http.get(lease, headers=sa_headers)).status_code == 404  # allowed
        assert (await http.put(lease, headers=sa_headers, json={})).status_code == 403
        assert (await http.get("/api", headers=sa_headers)).status_code == 200
        for path in ("/nothing/here", "/or/there"):
            assert (await http.get(path, headers=sa_headers)).status_code == 403
        assert (await http.get(pods, headers={"Authorization": "Bearer t-bob"})).status_code == 403
        assert (await http.get(pods)).status_code == 401  # no user: not counted
    name = "system:serviceaccount:apps:rxkube"
    assert api.access == Counter(
        {
            Access(name, "list", "pods", True): 2,
            Access(name, "get", "pods/status", False): 1,
            Access(name, "get", "leases.coordination.k8s.io", True): 1,
            Access(name, "update", "leases.coordination.k8s.io", False): 1,
            Access(name, "get", "/api", True): 1,
            Access(name, "get", "/(unknown path)", False): 2,
            Access("bob", "list", "pods", False): 1,
        }
    )
    assert api.statistics()["access"][0] == {
        "user": "bob",
        "verb": "list",
        "resource": "pods",
        "allowed": False,
        "count": 1,
    }
