"""The client's request building, error mapping, credential refresh and rate limit, with
`httpx.MockTransport` standing behind the client's one seam (the network).

The same client is exercised against the fake API server over loopback in
tests/integration/streams/."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
import trio.testing

from rxkube.streams import (
    DEPLOYMENTS,
    NODES,
    PODS,
    AlreadyExists,
    ApiError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeConfig,
    KubeConnectionError,
    NotFound,
    RateLimit,
    ServerError,
    StaticToken,
    TokenFile,
    TooManyRequests,
    Unauthorized,
    open_client,
)

Handler = Callable[[httpx.Request], httpx.Response]


def _status(code: int, reason: str, message: str, **details: Any) -> httpx.Response:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return httpx.Response(code, json=body)


def _config(**kw: Any) -> KubeConfig:
    return KubeConfig(server="http://k8s.test", namespace="apps", **kw)


async def test_paths_methods_and_bodies_for_every_verb() -> None:
    seen: list[tuple[str, str, dict[str, str], str | None, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(
            (
                request.method,
                request.url.path,
                dict(request.url.params),
                request.headers.get("content-type"),
                request.content,
            )
        )
        if request.method == "GET" and request.url.path.endswith("/pods"):
            return httpx.Response(
                200, json={"kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": []}
            )
        return httpx.Response(200, json={"kind": "Thing", "metadata": {"name": "x"}})

    async with open_client(_config(), transport=httpx.MockTransport(handler)) as client:
        await client.get(PODS, "web-0")
        await client.get(NODES, "n1")
        await client.get(DEPLOYMENTS, "web", namespace="lab", subresource="scale")
        listed = await client.list(PODS, label_selector="app=web")
        await client.create(PODS, {"metadata": {"name": "p", "namespace": "other"}})
        await client.replace(DEPLOYMENTS, {"metadata": {"name": "web"}, "spec": {}})
        await client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 2}})
        await client.patch(PODS, "p", [{"op": "remove", "path": "/x"}], patch_type="json")
        await client.patch(PODS, "p", {"metadata": {}}, patch_type="strategic")
        await client.patch(PODS, "p", {"metadata": {}}, patch_type="apply", force=True)
        await client.delete(PODS, "p", grace_period_seconds=0)
        await client.delete_collection(PODS, label_selector="app=web")
    assert listed.resource_version == "7"
    assert listed.items == ()
    assert [(m, p) for m, p, *_ in seen] == [
        ("GET", "/api/v1/namespaces/apps/pods/web-0"),
        ("GET", "/api/v1/nodes/n1"),
        ("GET", "/apis/apps/v1/namespaces/lab/deployments/web/scale"),
        ("GET", "/api/v1/pods"),  # list: namespace=None is all namespaces
        ("POST", "/api/v1/namespaces/other/pods"),  # the object's own namespace
        ("PUT", "/apis/apps/v1/namespaces/apps/deployments/web"),
        ("PATCH", "/apis/apps/v1/namespaces/apps/deployments/web"),
        ("PATCH", "/api/v1/namespaces/apps/pods/p"),
        ("PATCH", "/api/v1/namespaces/apps/pods/p"),
        ("PATCH", "/api/v1/namespaces/apps/pods/p"),
        ("DELETE", "/api/v1/namespaces/apps/pods/p"),
        ("DELETE", "/api/v1/namespaces/apps/pods"),
    ]
    assert seen[3][2] == {"labelSelector": "app=web", "limit": "500"}
    assert [ct for _, _, _, ct, _ in seen[6:10]] == [
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ]
    assert seen[9][2] == {"fieldManager": "rxkube", "force": "true"}
    assert orjson.loads(seen[10][4]) == {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "gracePeriodSeconds": 0,
    }
    assert seen[11][2] == {"labelSelector": "app=web"}


async def test_bad_arguments_are_refused_before_any_request() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.url}")

    async with open_client(_config(), transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ValueError, match="cluster-scoped"):
            await client.get(NODES, "n1", namespace="apps")
        with pytest.raises(ValueError, match="without '/'"):
            await client.get(PODS, "../secrets/x")
        with pytest.raises(ValueError, match="list of operations"):
            await client.patch(PODS, "p", {"a": 1}, patch_type="json")
        with pytest.raises(ValueError, match=r"metadata\.name"):
            await client.replace(PODS, {"metadata": {}})


@pytest.mark.parametrize(
    ("response", "error", "attrs"),
    [
        (
            _status(404, "NotFound", 'pods "x" not found', name="x", kind="pods"),
            NotFound,
            {"code": 404, "reason": "NotFound", "message": 'pods "x" not found'},
        ),
        (_status(409, "AlreadyExists", 'pods "x" already exists'), AlreadyExists, {}),
        (_status(409, "Conflict", "Operation cannot be fulfilled"), Conflict, {}),
        (_status(410, "Expired", "too old resource version: 1 (5)"), Gone, {"code": 410}),
        (
            _status(
                422,
                "Invalid",
                'Pod "x" is invalid',
                causes=[{"reason": "FieldValueRequired", "field": "spec.containers"}],
            ),
            Invalid,
            {"causes": [{"reason": "FieldValueRequired", "field": "spec.containers"}]},
        ),
        (
            httpx.Response(
                429,
                text="Too many requests, please try again later.\n",
                headers={"Retry-After": "2"},
            ),
            TooManyRequests,
            {"retry_after": 2.0, "reason": "TooManyRequests", "code": 429},
        ),
        (
            _status(504, "Timeout", "Too large resource version", retryAfterSeconds=1),
            ServerError,
            {"retry_after": 1.0},
        ),
        (httpx.Response(500, text="boom"), ServerError, {"message": "boom"}),
        (_status(405, "MethodNotAllowed", "nope"), ApiError, {"code": 405}),
    ],
)
async def test_errors_are_typed_and_carry_the_status(
    response: httpx.Response, error: type[ApiError], attrs: dict[str, Any]
) -> None:
    async with open_client(_config(), transport=httpx.MockTransport(lambda _: response)) as client:
        with pytest.raises(error) as info:
            await client.get(PODS, "x")
    assert type(info.value) is error
    for name, value in attrs.items():
        assert getattr(info.value, name) == value
    assert info.value.verb == "get"
    assert info.value.resource == "pods"


async def test_forbidden_names_what_rbac_must_allow() -> None:
    message = (
        'pods is forbidden: User "system:serviceaccount:rxkube:controller" cannot list '
        'resource "pods" in API group "" in the namespace "lab"'
    )
    response = _status(403, "Forbidden", message, kind="pods")
    async with open_client(_config(), transport=httpx.MockTransport(lambda _: response)) as client:
        with pytest.raises(Forbidden) as info:
            await client.list(PODS, namespace="lab")
        assert info.value.rbac_hint == (
            "grant `list` on `pods` in namespace `lab` (a Role and RoleBinding) "
            "to service account `rxkube/controller`"
        )
        assert "RBAC must allow it: grant `list` on `pods`" in str(info.value)
        with pytest.raises(Forbidden) as cluster_wide:
            await client.list(DEPLOYMENTS)
    assert cluster_wide.value.rbac_hint.startswith(
        "grant `list` on `deployments.apps` cluster-wide (a ClusterRole"
    )


async def test_a_401_refreshes_the_token_file_and_retries_once(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("old")
    source = TokenFile(token)
    auths: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth = request.headers.get("authorization")
        auths.append(auth)
        if auth != "Bearer new":
            # Rotated behind our back, between the stat and the request: only a re-read helps.
            tmp = tmp_path / "t"
            tmp.write_text("new")
            os.replace(tmp, token)
            return _status(401, "Unauthorized", "Unauthorized")
        return httpx.Response(200, json={"metadata": {"name": "x"}})

    async with open_client(
        _config(token_source=source), transport=httpx.MockTransport(handler)
    ) as client:
        assert (await client.get(PODS, "x"))["metadata"] == {"name": "x"}
    assert auths == ["Bearer old", "Bearer new"]


async def test_a_second_401_is_raised() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _status(401, "Unauthorized", "Unauthorized")

    async with open_client(
        _config(token_source=StaticToken("t")), transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(Unauthorized):
            await client.get(PODS, "x")
    assert calls == 2


async def test_connection_errors_are_wrapped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with open_client(_config(), transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(KubeConnectionError, match="cannot reach the API server"):
            await client.get(PODS, "x")


async def test_list_follows_pages_and_redoes_an_expired_continue_in_one_request() -> None:
    requests: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        requests.append(params)
        if "continue" in params:
            return _status(410, "Expired", "The provided continue parameter is too old")
        if "limit" in params:
            return httpx.Response(
                200,
                json={
                    "metadata": {"resourceVersion": "10", "continue": "tok"},
                    "items": [{"metadata": {"name": "a"}}],
                },
            )
        return httpx.Response(
            200,
            json={
                "metadata": {"resourceVersion": "12"},
                "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}],
            },
        )

    async with open_client(_config(), transport=httpx.MockTransport(handler)) as client:
        listed = await client.list(PODS, namespace="apps", limit=1)
    assert requests == [{"limit": "1"}, {"limit": "1", "continue": "tok"}, {}]
    assert [o["metadata"]["name"] for o in listed.items] == ["a", "b"]
    assert listed.resource_version == "12"


async def test_rate_limit_is_a_token_bucket_on_trio_time(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0
    times: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        return httpx.Response(200, json={})

    async with open_client(
        _config(), rate_limit=RateLimit(qps=4, burst=2), transport=httpx.MockTransport(handler)
    ) as client:
        start = trio.current_time()
        for _ in range(5):
            await client.get(PODS, "x")
        await trio.sleep(1.0)  # the bucket refills to its burst, no more
        for _ in range(3):
            await client.get(PODS, "x")
    assert [t - start for t in times] == [0.0, 0.0, 0.25, 0.5, 0.75, 1.75, 1.75, 2.0]
