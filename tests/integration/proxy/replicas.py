"""Helpers for tests with several proxy replicas (or proxy restarts) in front of the same backends.

A `Replica` is one proxy process as far as the test can tell: its own `ReplicatedTicketAuthority`
(API listener) and `TicketProxy` (user listener), in a task of its own that `kill()` cancels
(no grace: its sockets close at once, as when a pod is deleted with a short grace period).
Users are `User`s: a cookie jar and a name the backends record (X-User), so a test can count
the distinct users each backend served.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio

from rxkube.proxy import (
    AppConfig,
    ProxyConfig,
    ReplicatedTicketAuthority,
    ServerSpec,
    TicketProxy,
    open_replicated_authority,
    open_ticket_proxy,
)
from tests.integration.proxy.backend import Backend
from tests.integration.proxy.conftest import KEY, Reply, get

WALL = 1_700_000_000.0
"""The replicas' wall clock (cookie timestamps), fixed."""


@dataclass
class Replica:
    name: str
    authority: ReplicatedTicketAuthority
    proxy: TicketProxy
    scope: trio.CancelScope
    stopped: trio.Event

    @property
    def port(self) -> int:
        return self.proxy.addresses[0][1]

    @property
    def api(self) -> str:
        host, port = self.authority.address
        return f"{host}:{port}"

    async def kill(self) -> None:
        self.scope.cancel()
        await self.stopped.wait()


async def start_replica(
    nursery: trio.Nursery,
    name: str,
    app: AppConfig,
    servers: Callable[[], Sequence[ServerSpec]],
    *,
    lead: bool = False,
    follow: Replica | None = None,
    config: ProxyConfig | None = None,
    heartbeat: float = 0.2,
    keys: Sequence[bytes] = (KEY,),
) -> Replica:
    """Start a replica in `nursery`, fed `app` and `servers()` as its embedder would."""
    ready: list[Replica] = []
    started = trio.Event()
    stopped = trio.Event()
    scope = trio.CancelScope()
    proxy_config = config or ProxyConfig(
        ticket_keys=(KEY,), shutdown_grace=0.1, tick_interval=0.2, wall_clock=lambda: WALL
    )

    async def run() -> None:
        try:
            with scope:
                async with (
                    open_replicated_authority(
                        keys=keys, identity=name, heartbeat=heartbeat, lead=lead
                    ) as authority,
                    open_ticket_proxy(proxy_config, authority=authority) as proxy,
                ):
                    await proxy.set_app(app)
                    proxy.set_servers(app.name, servers())
                    if follow is not None:
                        authority.follow(follow.api)
                        await authority.wait_synced()
                    ready.append(Replica(name, authority, proxy, scope, stopped))
                    started.set()
                    await trio.sleep_forever()
        finally:
            stopped.set()

    nursery.start_soon(run)
    await started.wait()
    return ready[0]


@dataclass
class User:
    name: str
    app: str = "lab"
    jar: dict[str, str] = field(default_factory=dict)
    backend: str | None = None
    """The backend that answered last."""
    position: int | None = None
    """1-based place in the queue, from the last waiting page."""

    async def visit(self, port: int, path: str = "/echo") -> Reply:
        reply = await get(
            port, f"/{self.app}{path}", cookies=self.jar, extra=f"X-User: {self.name}\r\n"
        )
        for name, value in reply.cookies().items():
            if value:
                self.jar[name] = value
            else:
                self.jar.pop(name, None)
        if reply.status == 200 and path == "/echo":
            self.backend = json.loads(reply.body)["backend"]
        place = re.search(rb'id="position">(\d+)<', reply.body)
        self.position = int(place.group(1)) if reply.status == 503 and place else None
        return reply

    @property
    def waiting(self) -> bool:
        return f"rxkube-wait-{self.app}" in self.jar and f"rxkube-ticket-{self.app}" not in self.jar


def users_per_backend(backends: Sequence[Backend]) -> dict[str, set[str]]:
    """The distinct users (X-User) each backend served."""
    return {
        backend.name: {h["x-user"] for _, h in backend.seen if "x-user" in h}
        for backend in backends
    }
