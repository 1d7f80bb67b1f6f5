"""The arena of the proxy abuse suite: one proxy, three apps, real backends, a canary user.

- `lab` (two backends) is the app under attack;
- `other` (one backend) is where an attack would escape to: it must see only what a test sends
  it on purpose (`Arena.other_allowed`), and no backend may ever see a smuggled request (any
  target containing "smuggled");
- `canary` (one backend) has a user who makes a request every 20 ms for the whole test: every
  one must succeed within `LATENCY`, whatever the attackers do, and three more after the attack.

`TRIED` counts the abuse cases by kind; the suite prints it at the end (tests/chaos/conftest.py).
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from rxkube.proxy import (
    AppConfig,
    ProxyConfig,
    ProxyLimits,
    ServerRef,
    ServerSpec,
    TicketProxy,
    open_ticket_proxy,
)
from tests.integration.proxy.backend import Backend, open_backend
from tests.integration.proxy.conftest import (
    KEY,
    _start_backend,
    parse_reply,
    read_response,
    wait_until,
)

__all__ = ["TRIED", "WALL", "Arena", "connect_and_send", "open_arena", "read_response"]

TRIED: Counter[str] = Counter()
LATENCY = 2.0
"""The canary's bound on one request (generous: two cores shared with other test suites)."""
WALL = 1_700_000_000.0


@dataclass
class Canary:
    successes: int = 0
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0

    async def run(self, port: int) -> None:
        jar: dict[str, str] = {}
        while True:
            start = trio.current_time()
            cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
            request = (
                "GET /canary/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + (f"Cookie: {cookie}\r\n" if cookie else "")
                + "Connection: close\r\n\r\n"
            )
            try:
                with trio.fail_after(LATENCY):
                    async with connect_and_send(port, request.encode()) as stream:
                        data = b""
                        while chunk := await stream.receive_some(65536):
                            data += chunk
                    reply = parse_reply(data)
            except (trio.TooSlowError, trio.BrokenResourceError, OSError, IndexError) as error:
                self.failures.append(repr(error))
            else:
                if reply.status == 200:
                    self.successes += 1
                    jar.update(reply.cookies())
                else:
                    self.failures.append(f"status {reply.status}")
            self.slowest = max(self.slowest, trio.current_time() - start)
            await trio.sleep(0.02)


def connect_and_send(port: int, data: bytes) -> trio.SocketStream:
    """A connection to the proxy at `port` with `data` (a few bytes) sent, before the proxy can
    see the connection. A client on another machine sends at once; one in this process may be
    held up between its connect and its send (a busy machine, the loop's order), long enough
    for the slow-client tests' 0.5 s keep-alive timeout to close the connection as idle."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(data)
    return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


@dataclass
class Arena:
    proxy: TicketProxy
    lab: list[Backend]
    lab_scopes: list[trio.CancelScope]
    """Cancel one to kill that lab backend (its listener and connections close at once)."""
    other: Backend
    canary_backend: Backend
    canary: Canary
    other_allowed: set[str] = field(default_factory=set)
    """Targets the test itself sends to `other` (the only ones it may see)."""

    @property
    def port(self) -> int:
        return self.proxy.addresses[0][1]

    def lab_server(self, i: int) -> ServerSpec:
        return ServerSpec(ServerRef(f"lab-{i}", f"uid-{i}"), self.lab[i].address)

    def lab_targets(self) -> list[str]:
        return [target for backend in self.lab for target, _ in backend.seen]

    async def check(self) -> None:
        """What must hold after any attack: the canary went on (and goes on) without a failure,
        nothing smuggled reached a backend, nothing escaped to the other app."""
        done = self.canary.successes
        await wait_until(lambda: self.canary.successes >= done + 3 or bool(self.canary.failures))
        assert self.canary.failures == [], self.canary.failures
        for backend in [*self.lab, self.other, self.canary_backend]:
            for target, _ in backend.seen:
                assert "smuggled" not in target, f"{backend.name} saw {target}"
        escaped = [t for t, _ in self.other.seen if t not in self.other_allowed]
        assert escaped == [], f"the other app's backend saw {escaped}"


@asynccontextmanager
async def open_arena(
    *, lab: AppConfig | None = None, limits: ProxyLimits | None = None, **config: object
) -> AsyncIterator[Arena]:
    async with trio.open_nursery() as nursery:
        killable = [await _start_killable_backend(nursery, f"lab{i}") for i in range(2)]
        lab_backends = [backend for backend, _ in killable]
        other = await _start_backend(nursery, "other0")
        canary_backend = await _start_backend(nursery, "canary0")
        proxy_config = ProxyConfig(
            ticket_keys=(KEY,),
            limits=limits or ProxyLimits(),
            shutdown_grace=0.5,
            wall_clock=lambda: WALL,
            **config,  # type: ignore[arg-type]
        )
        async with open_ticket_proxy(proxy_config) as proxy:
            await proxy.set_app(lab or AppConfig("lab", tickets_max=100))
            await proxy.set_app(AppConfig("other", tickets_max=100))
            await proxy.set_app(AppConfig("canary", tickets_max=1))
            proxy.set_servers(
                "lab",
                [
                    ServerSpec(ServerRef(f"lab-{i}", f"uid-{i}"), b.address)
                    for i, b in enumerate(lab_backends)
                ],
            )
            proxy.set_servers("other", [ServerSpec(ServerRef("other-0", "o0"), other.address)])
            proxy.set_servers(
                "canary", [ServerSpec(ServerRef("canary-0", "c0"), canary_backend.address)]
            )
            arena = Arena(
                proxy,
                lab_backends,
                [scope for _, scope in killable],
                other,
                canary_backend,
                Canary(),
            )
            nursery.start_soon(arena.canary.run, arena.port)
            yield arena
            await arena.check()
            nursery.cancel_scope.cancel()


async def _start_killable_backend(
    nursery: trio.Nursery, name: str
) -> tuple[Backend, trio.CancelScope]:
    scope = trio.CancelScope()
    box: list[Backend] = []
    ready = trio.Event()

    async def run() -> None:
        with scope:
            async with open_backend(name) as backend:
                box.append(backend)
                ready.set()
                await trio.sleep_forever()

    nursery.start_soon(run)
    await ready.wait()
    return box[0], scope
