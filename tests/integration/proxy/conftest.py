"""Helpers for the proxy's loopback tests: a raw HTTP client and a proxy with one backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio
from reactivex import operators

from rxkube.proxy import (
    AppConfig,
    Change,
    ProxyConfig,
    ProxyLimits,
    ServerRef,
    ServerSpec,
    TicketProxy,
    open_ticket_proxy,
)
from tests.integration.proxy.backend import Backend, open_backend

KEY = b"0123456789abcdef0123456789abcdef"


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def cookies(self) -> dict[str, str]:
        jar = {}
        for key, value in self.headers:
            if key.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                name, _, val = pair.partition("=")
                jar[name] = val
        return jar


def parse_reply(data: bytes) -> Reply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    return Reply(status, [(k, v) for k, v in headers], body)


async def raw(port: int, data: bytes, *, limit: float = 5.0) -> bytes:
    """Send bytes, read until the proxy closes (or `timeout`), return everything read."""
    with trio.fail_after(limit):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(data)
            chunks = []
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)


async def get(
    port: int,
    path: str,
    *,
    cookies: dict[str, str] | None = None,
    host: str = "127.0.0.1",
    extra: str = "",
) -> Reply:
    cookie = ""
    if cookies:
        cookie = "Cookie: " + "; ".join(f"{k}={v}" for k, v in cookies.items()) + "\r\n"
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{cookie}{extra}Connection: close\r\n\r\n"
    return parse_reply(await raw(port, request.encode()))


async def read_response(stream: trio.SocketStream, buffer: bytearray) -> tuple[int, bytes]:
    """One Content-Length response from a keep-alive connection: (status, body)."""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError("closed before a response head")
        buffer += data
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end]).decode("latin-1")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    while len(buffer) < end + length:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError("closed inside a response body")
        buffer += data
    body = bytes(buffer[end : end + length])
    del buffer[: end + length]
    return int(head.split(" ", 2)[1]), body


async def wait_until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    """Wait for a condition that no event announces (e.g. a backend's request counter)."""
    with trio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - nothing announces a backend's counters
            await trio.sleep(0.005)


@dataclass
class Harness:
    proxy: TicketProxy
    backends: list[Backend]
    changes: list[Change] = field(default_factory=list)
    _waiters: list[tuple[Callable[[Change], bool], trio.Event]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.proxy.addresses[0][1]

    def server(self, i: int, **kwargs: object) -> ServerSpec:
        return ServerSpec(ServerRef(f"lab-{i}", f"uid-{i}"), self.backends[i].address, **kwargs)  # type: ignore[arg-type]

    def _on_change(self, change: Change) -> None:
        self.changes.append(change)
        for predicate, event in list(self._waiters):
            if predicate(change):
                event.set()

    async def wait_for(self, predicate: Callable[[Change], bool], limit: float = 5.0) -> None:
        """Wait until a change matching `predicate` is published (or was already)."""
        if any(predicate(c) for c in self.changes):
            return
        event = trio.Event()
        self._waiters.append((predicate, event))
        with trio.fail_after(limit):
            await event.wait()


@asynccontextmanager
async def open_harness(
    *,
    backends: int = 1,
    app: AppConfig | None = None,
    limits: ProxyLimits | None = None,
    **config: object,
) -> AsyncIterator[Harness]:
    async with trio.open_nursery() as nursery:
        opened = []
        for i in range(backends):
            opened.append(await _start_backend(nursery, f"b{i}"))
        proxy_config = ProxyConfig(
            ticket_keys=(KEY,),
            limits=limits or ProxyLimits(),
            **config,  # type: ignore[arg-type]
        )
        async with open_ticket_proxy(proxy_config) as proxy:
            harness = Harness(proxy, opened)
            proxy.changes.pipe(operators.filter(lambda c: True)).subscribe(harness._on_change)
            await proxy.set_app(app or AppConfig("lab", tickets_max=2))
            proxy.set_servers("lab", [harness.server(i) for i in range(backends)])
            yield harness
        nursery.cancel_scope.cancel()


async def _start_backend(nursery: trio.Nursery, name: str) -> Backend:
    ready: trio.Event = trio.Event()
    box: list[Backend] = []

    async def run() -> None:
        async with open_backend(name) as backend:
            box.append(backend)
            ready.set()
            await trio.sleep_forever()

    nursery.start_soon(run)
    await ready.wait()
    return box[0]
