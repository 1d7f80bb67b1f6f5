"""`ApiTransport`: the fake API server as an httpx transport, with no sockets at all.

What this module is for: tests in virtual time. httpx's seam (`handle_async_request`) is the
one the real network and a test double both implement; plugging the fake's request handler in
there gives a client the whole API (verbs, watch streams, faults, bookmarks) over no socket,
so trio's `MockClock(autojump_threshold=0)` can run watches of minutes in microseconds and
tests can assert exact virtual times. What it cannot do: connection upgrades (exec), and
httpx's own timeouts (httpcore implements them; wrap calls in `trio.fail_after` instead). A
fault that drops a connection surfaces as `httpx.RemoteProtocolError`, as over a socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from rxkube.fakes._api import ApiServer
from rxkube.fakes._http import AbortConnection, Request, Response, StreamResponse, parse_target

__all__ = ["ApiTransport"]


class _Body(httpx.AsyncByteStream):
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._chunks:
                yield chunk
        except AbortConnection:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body "
                "(incomplete chunked read)"
            ) from None

    async def aclose(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()


class ApiTransport(httpx.AsyncBaseTransport):
    """Serve httpx requests from an `ApiServer` in the same trio run."""

    def __init__(self, api: ApiServer) -> None:
        self.api = api

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        target = request.url.raw_path.decode("ascii")
        path, query, query_list = parse_target(target)
        headers: dict[str, str] = {}
        for name, value in request.headers.multi_items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        ours = Request(request.method, target, path, query, query_list, headers, body)
        try:
            response = await self.api.handle(ours)
        except AbortConnection:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response."
            ) from None
        if isinstance(response, Response):
            return httpx.Response(
                response.status,
                headers=[("content-type", response.content_type), *response.headers],
                content=response.body,
            )
        if isinstance(response, StreamResponse):
            return httpx.Response(
                response.status,
                headers=[
                    ("content-type", response.content_type),
                    ("transfer-encoding", "chunked"),
                    *response.headers,
                ],
                stream=_Body(response.body),
            )
        raise httpx.UnsupportedProtocol("ApiTransport cannot upgrade connections (use a socket)")
