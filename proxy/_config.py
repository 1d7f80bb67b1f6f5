"""Settings and records of the ticket proxy: what an embedder passes in and reads back.

Frozen dataclasses only; validated on construction so a bad value fails where it is made, with a
message naming the field. No I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from rxkube.proxy._cookies import DEFAULT_MAX_LIFETIME
from rxkube.proxy._table import AppSettings, ServerRef

__all__ = [
    "AppConfig",
    "AppStatistics",
    "ProxyConfig",
    "ProxyLimits",
    "ProxyStatistics",
    "ServerSpec",
]

# DNS-1123 label: what Kubernetes allows in an app name, and what is safe in a path, a host name
# and a cookie name without any escaping.
_APP_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _check_positive(owner: str, **values: float | None) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            raise ValueError(f"{owner}.{name} must be > 0, got {value}")


@dataclass(frozen=True, slots=True)
class AppConfig:
    """One app served by the proxy.

    `routing="path"` serves it at `/<name>/...` on the shared listeners; `routing="host"` at
    `<name>.<domain>` (the proxy's `ProxyConfig.domain`). `listen` adds a listener of its own
    (host, port) that serves only this app, at `/` (k8sTicket's `deployment.port`).
    """

    name: str
    routing: Literal["path", "host"] = "path"
    strip_prefix: bool = True
    """Path mode: the upstream sees `/rest` for `/<name>/rest` (True) or the whole path (False)."""
    tickets_max: int = 1
    """Users per server, unless a server states its own capacity."""
    idle_timeout: float = 60.0
    hold_time: float = 30.0
    refresh_interval: float = 5.0
    """The waiting-room page reloads this often; a waiter silent for twice this leaves."""
    listen: tuple[str, int] | None = None
    max_body_size: int | None = 100 * 2**20
    """Request bodies above this get 413 (None: no limit)."""
    max_websocket_frame: int | None = 16 * 2**20
    """A client WebSocket frame with a larger payload cuts the connection (None: no limit).
    Checked on frame heads as they pass (see `_frames.py`); messages are the backend's to bound."""

    def __post_init__(self) -> None:
        if not _APP_NAME.match(self.name):
            raise ValueError(
                f"app name {self.name!r} must be a DNS label (lowercase letters, digits, '-')"
            )
        if self.routing not in ("path", "host"):
            raise ValueError(f"AppConfig.routing must be 'path' or 'host', got {self.routing!r}")
        if self.tickets_max < 0:
            raise ValueError(f"AppConfig.tickets_max must be >= 0, got {self.tickets_max}")
        _check_positive(
            "AppConfig",
            idle_timeout=self.idle_timeout,
            hold_time=self.hold_time,
            refresh_interval=self.refresh_interval,
            max_body_size=self.max_body_size,
            max_websocket_frame=self.max_websocket_frame,
        )

    @property
    def table_settings(self) -> AppSettings:
        return AppSettings(
            tickets_max=self.tickets_max,
            idle_timeout=self.idle_timeout,
            hold_time=self.hold_time,
            leave_after=2 * self.refresh_interval,
        )


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One backend of an app: in Kubernetes, a pod (`ref` = its name and uid)."""

    ref: ServerRef
    address: str
    """`host:port` (`[v6]:port` for IPv6)."""
    path: str = "/"
    """Prefix the upstream path starts with (k8sTicket's `pod.path`)."""
    ready: bool = True
    capacity: int | None = None
    """None: the app's `tickets_max`."""

    def __post_init__(self) -> None:
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"ServerSpec.address must be host:port, got {self.address!r}")
        if not self.path.startswith("/"):
            raise ValueError(f"ServerSpec.path must start with '/', got {self.path!r}")
        if self.capacity is not None and self.capacity < 0:
            raise ValueError(f"ServerSpec.capacity must be >= 0, got {self.capacity}")

    @property
    def host(self) -> str:
        host = self.address.rpartition(":")[0]
        return host[1:-1] if host.startswith("[") else host

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    """Limits that protect the proxy and its users from slow or hostile clients and backends."""

    max_header_bytes: int = 16 * 1024
    """Request line plus headers; above this: 431."""
    max_headers: int = 100
    """Header fields per request; above this: 431."""
    keepalive_timeout: float = 20.0
    """An idle client connection is closed after this long without a request."""
    head_timeout: float = 10.0
    """A request head must arrive completely within this long of its first byte (408)."""
    body_timeout: float = 30.0
    """Longest pause while reading a request body or writing to a slow client."""
    min_body_rate: float | None = 1024.0
    """Bytes per second a request body must average once it has taken `body_timeout` (408
    otherwise; None: no minimum). Stops slow-drip uploads holding connections open."""
    connect_timeout: float = 5.0
    upstream_timeout: float = 120.0
    """Longest wait for a backend's response head, and longest pause inside its body (504)."""
    max_idle_upstream: int = 64
    """Idle keep-alive connections kept per server."""

    def __post_init__(self) -> None:
        _check_positive(
            "ProxyLimits",
            max_header_bytes=self.max_header_bytes,
            max_headers=self.max_headers,
            keepalive_timeout=self.keepalive_timeout,
            head_timeout=self.head_timeout,
            body_timeout=self.body_timeout,
            min_body_rate=self.min_body_rate,
            connect_timeout=self.connect_timeout,
            upstream_timeout=self.upstream_timeout,
        )


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Settings of the whole proxy (apps and servers come and go through the proxy's methods)."""

    ticket_keys: tuple[bytes, ...] = ()
    """HMAC keys, first signs (see `load_ticket_keys`). Empty: a random key for this process,
    so cookies do not survive a restart."""
    cookie_max_lifetime: float = DEFAULT_MAX_LIFETIME
    domain: str | None = None
    """Host routing serves `<app>.<domain>`."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (CIDR) whose X-Forwarded-*/Forwarded headers are believed."""
    limits: ProxyLimits = field(default_factory=ProxyLimits)
    shutdown_grace: float = 10.0
    """On close: stop accepting, let open requests finish for this long, then cut."""
    tick_interval: float = 1.0
    wall_clock: Callable[[], float] | None = None
    """Wall-clock seconds for cookie timestamps (None: `time.time`); injected for tests."""

    def __post_init__(self) -> None:
        _check_positive(
            "ProxyConfig",
            cookie_max_lifetime=self.cookie_max_lifetime,
            shutdown_grace=self.shutdown_grace,
            tick_interval=self.tick_interval,
        )
        for network in self.trusted_proxies:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(
                    f"ProxyConfig.trusted_proxies: {network!r} is not an address or CIDR network"
                ) from None


@dataclass(frozen=True, slots=True)
class AppStatistics:
    name: str
    servers: int
    ready_servers: int
    tickets: int
    free: int
    queued: int
    requests: int
    """Requests proxied to a backend."""
    upstream_errors: int
    """502/504 answers (backend refused, died or timed out)."""
    refused_cookies: int
    waiting_pages: int
    oversized_frames: int = 0
    """WebSocket connections cut for a client frame over `max_websocket_frame`."""
    unavailable: int = 0
    """503 answers because the ticket authority could not decide (a follower without leader)."""


@dataclass(frozen=True, slots=True)
class ProxyStatistics:
    apps: Mapping[str, AppStatistics]
    connections: int
    """Client connections open now."""
    bad_requests: int
    """Requests answered 4xx by the proxy itself (malformed, too large, too slow, unknown app)."""
    addresses: tuple[tuple[str, int], ...]
    """The shared listeners' bound addresses."""
