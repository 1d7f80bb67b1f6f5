"""Bad input (issue 3): the real status and Status body, and nothing in the store changes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from rxkube.fakes import FakeApiServer

from .conftest import configmap

CMS = "/api/v1/namespaces/default/configmaps"
JSON = {"content-type": "application/json"}


def snapshot(server: FakeApiServer) -> tuple[int, list[bytes]]:
    return server.store.resource_version, [e.raw for e in server.store.list("configmaps").items]


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "reason", "text"),
    [
        ("POST", CMS, b'{"metadata": {"name": ', 400, "BadRequest", "json parse error"),
        ("POST", CMS, b"[1, 2]", 400, "BadRequest", "cannot unmarshal array"),
        ("POST", CMS, b"", 400, "BadRequest", "the body of the request was empty"),
        ("POST", CMS, b'{"metadata": {}}', 422, "Invalid", "name or generateName is required"),
        ("POST", CMS, b'{"metadata": {"name": 5}}', 400, "BadRequest", "ObjectMeta.metadata.name"),
        (
            "POST",
            CMS,
            b'{"metadata": {"name": "x"}, "data": {"k": 1}}',
            400,
            "BadRequest",
            "map[string]string",
        ),
        ("POST", CMS, b'{"metadata": {"name": "x", "labels": "a=b"}}', 400, "BadRequest", "labels"),
        (
            "POST",
            CMS,
            b'{"kind": "Pod", "metadata": {"name": "x"}}',
            400,
            "BadRequest",
            "expected kind",
        ),
        ("POST", CMS, b'{"metadata": {"name": "UPPER"}}', 422, "Invalid", "RFC 1123 subdomain"),
        (
            "POST",
            CMS,
            b'{"metadata": {"name": "exists"}}',
            409,
            "AlreadyExists",
            'configmaps "exists" already',
        ),
        (
            "POST",
            "/api/v1/namespaces/default/widgets",
            b"{}",
            404,
            "NotFound",
            "could not find the requested",
        ),
        (
            "POST",
            "/apis/nope.example/v1/namespaces/default/things",
            b"{}",
            404,
            "NotFound",
            "could not find",
        ),
        (
            "POST",
            "/api/v1/namespaces/ghost/configmaps",
            b'{"metadata": {"name": "x"}}',
            404,
            "NotFound",
            'namespaces "ghost" not found',
        ),
        (
            "PUT",
            f"{CMS}/exists",
            b'{"metadata": {"name": "other"}}',
            400,
            "BadRequest",
            "does not match the name",
        ),
        (
            "PUT",
            f"{CMS}/exists",
            b'{"metadata": {"name": "exists", "resourceVersion": "1"}}',
            409,
            "Conflict",
            "has been modified",
        ),
        (
            "PUT",
            f"{CMS}/missing",
            b'{"metadata": {"name": "missing"}}',
            404,
            "NotFound",
            'configmaps "missing" not found',
        ),
        (
            "GET",
            f"{CMS}?labelSelector=a%20in%20(b",
            b"",
            400,
            "BadRequest",
            "unable to parse requirement",
        ),
        (
            "GET",
            f"{CMS}?fieldSelector=spec.foo%3Dbar",
            b"",
            400,
            "BadRequest",
            "field label not supported",
        ),
        ("GET", f"{CMS}?limit=abc", b"", 400, "BadRequest", "invalid syntax"),
        ("GET", f"{CMS}?continue=garbage", b"", 400, "BadRequest", "continue key is not valid"),
        (
            "GET",
            f"{CMS}?resourceVersionMatch=Exact",
            b"",
            422,
            "Invalid",
            "resourceVersionMatch is forbidden",
        ),
        (
            "DELETE",
            f"{CMS}/exists",
            b'{"propagationPolicy": "Sideways"}',
            422,
            "Invalid",
            "Unsupported value",
        ),
        ("DELETE", f"{CMS}/missing", b"", 404, "NotFound", 'configmaps "missing" not found'),
        ("PUT", CMS, b"{}", 405, "MethodNotAllowed", "not supported"),
        ("POST", f"{CMS}?dryRun=Some", b'{"metadata": {"name": "y"}}', 422, "Invalid", "dryRun"),
    ],
)
async def test_bad_requests_get_the_real_status_and_change_nothing(
    server: FakeApiServer,
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: bytes,
    code: int,
    reason: str,
    text: str,
) -> None:
    server.store.create("configmaps", configmap("exists"), namespace="default")
    before = snapshot(server)
    response = await client.request(method, path, content=body, headers=JSON)
    assert response.status_code == code, response.text
    assert response.headers["content-type"] == "application/json"
    status: dict[str, Any] = response.json()
    assert status["kind"] == "Status"
    assert status["status"] == "Failure"
    assert status["reason"] == reason
    assert status["code"] == code
    assert text in status["message"]
    assert snapshot(server) == before


async def test_unsupported_patch_and_body_types_are_415(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    server.store.create("configmaps", configmap("exists"), namespace="default")
    before = snapshot(server)
    patch = await client.patch(
        f"{CMS}/exists", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert patch.status_code == 415
    assert patch.json()["reason"] == "UnsupportedMediaType"
    # Protobuf bodies are decoded for the kinds kubectl's typed `create` sends (issue 6);
    # CBOR is off by default in kube-apiserver 1.32.
    post = await client.post(CMS, content=b"x", headers={"content-type": "application/cbor"})
    assert post.status_code == 415
    assert snapshot(server) == before


async def test_a_body_over_the_limit_is_413(
    server: FakeApiServer, client: httpx.AsyncClient
) -> None:
    before = snapshot(server)
    huge = b'{"metadata": {"name": "big"}, "data": {"x": "' + b"a" * (3 * 1024 * 1024) + b'"}}'
    response = await client.post(CMS, content=huge, headers=JSON)
    assert response.status_code == 413
    assert response.json()["message"] == "Request entity too large: limit is 3145728"
    assert snapshot(server) == before


async def test_malformed_http_gets_400_and_the_server_keeps_serving(server: FakeApiServer) -> None:
    stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        await stream.send_all(b"THIS IS NOT HTTP\r\n\r\n")
        reply = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(4096):
                reply += chunk
    assert reply.startswith(b"HTTP/1.1 400")
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/version")).status_code == 200
