"""rxkube.proxy: the data plane.

The ticket table (a pure state machine, no I/O) and the HTTP/WebSocket reverse proxy on trio.
It knows nothing of Kubernetes: whoever embeds it feeds it apps and server lists. It imports
none of rxkube's other packages (checked by import-linter).

Embedding (everything runs in a nursery the block owns; leaving it shuts down gracefully)::

    from rxkube.proxy import AppConfig, ProxyConfig, ServerRef, ServerSpec, open_ticket_proxy

    config = ProxyConfig(ticket_keys=(key,))
    async with open_ticket_proxy(config, listen=[("0.0.0.0", 8080)]) as proxy:
        await proxy.set_app(AppConfig("lab", tickets_max=2, idle_timeout=60))   # add or update
        proxy.set_servers("lab", [                                              # the whole list
            ServerSpec(ServerRef("lab-7d9f-x2", "3f1c..."), "10.0.0.7:8888", ready=True),
        ])
        proxy.set_server("lab", spec)          # add or update one server (ready=False drains it)
        proxy.remove_server("lab", ref)        # its tickets are released
        proxy.changes.subscribe(on_change)     # TicketIssued, TicketReleased, WaiterQueued,
                                               # WaiterLeft, ServerChanged, LoadChanged(AppLoad)
        proxy.statistics()                     # ProxyStatistics(apps={name: AppStatistics})
        proxy.observer = metrics               # a ProxyObserver: latency, upstream failures
        await proxy.remove_app("lab")

- `AppConfig`: name (DNS label), routing "path" (`/<name>/...`) or "host" (`<name>.<domain>`),
  strip_prefix, tickets_max (per server), idle_timeout, hold_time, refresh_interval (the waiting
  page; a waiter silent for twice this leaves), listen (an own listener), max_body_size.
- `ServerSpec`: ref (pod name + uid), address "host:port", path prefix, ready, capacity
  (None = the app's tickets_max). Lowering a capacity or clearing ready never evicts a user.
- `ProxyConfig`: ticket_keys (HMAC keys, first signs; see `load_ticket_keys`),
  cookie_max_lifetime (12 h), domain, trusted_proxies, `ProxyLimits`, shutdown_grace.

The proxy reaches the table only through a `TicketAuthority` (`LocalTicketAuthority` by default;
pass `authority=` to `open_ticket_proxy` to move it). `AppLoad` (in `LoadChanged`) has what an
autoscaler needs per app: servers, ready_servers, capacity, tickets, free, queued, held.

Several replicas (docs/reliability.md): one leads the ticket table, the others follow it over a
small HTTP API; whoever holds the Lease tells each replica its role::

    async with open_replicated_authority(keys=keys, listen=("0.0.0.0", 9091)) as authority:
        async with open_ticket_proxy(config, authority=authority) as proxy:
            authority.lead()                    # or: authority.follow("10.0.0.5:9091")
"""

from rxkube.proxy._authority import AuthorityUnavailable, LocalTicketAuthority, TicketAuthority
from rxkube.proxy._config import (
    AppConfig,
    AppStatistics,
    ProxyConfig,
    ProxyLimits,
    ProxyStatistics,
    ServerSpec,
)
from rxkube.proxy._cookies import (
    CookieRefused,
    TicketClaims,
    TicketSigner,
    load_ticket_keys,
)
from rxkube.proxy._replica import (
    AuthorityStatistics,
    ReplicatedTicketAuthority,
    open_replicated_authority,
)
from rxkube.proxy._server import ProxyObserver, TicketProxy, open_ticket_proxy
from rxkube.proxy._table import (
    AppAdded,
    AppLoad,
    AppRemoved,
    AppSettings,
    AppUpdated,
    Change,
    ClientState,
    Decision,
    Granted,
    LoadChanged,
    ServerAdded,
    ServerChanged,
    ServerRef,
    ServerRemoved,
    ServerUpdated,
    TableEvent,
    Tick,
    TicketConnectionClosed,
    TicketConnectionOpened,
    TicketIssued,
    TicketReleased,
    TicketReported,
    TicketRequested,
    TicketRestored,
    TicketReturned,
    TicketTable,
    TicketTableError,
    TicketTouched,
    Trigger,
    WaiterGaveUp,
    WaiterLeft,
    WaiterQueued,
    WaiterReported,
    Waiting,
)

__all__ = [
    "AppAdded",
    "AppConfig",
    "AppLoad",
    "AppRemoved",
    "AppSettings",
    "AppStatistics",
    "AppUpdated",
    "AuthorityStatistics",
    "AuthorityUnavailable",
    "Change",
    "ClientState",
    "CookieRefused",
    "Decision",
    "Granted",
    "LoadChanged",
    "LocalTicketAuthority",
    "ProxyConfig",
    "ProxyLimits",
    "ProxyObserver",
    "ProxyStatistics",
    "ReplicatedTicketAuthority",
    "ServerAdded",
    "ServerChanged",
    "ServerRef",
    "ServerRemoved",
    "ServerSpec",
    "ServerUpdated",
    "TableEvent",
    "Tick",
    "TicketAuthority",
    "TicketClaims",
    "TicketConnectionClosed",
    "TicketConnectionOpened",
    "TicketIssued",
    "TicketProxy",
    "TicketReleased",
    "TicketReported",
    "TicketRequested",
    "TicketRestored",
    "TicketReturned",
    "TicketSigner",
    "TicketTable",
    "TicketTableError",
    "TicketTouched",
    "Trigger",
    "WaiterGaveUp",
    "WaiterLeft",
    "WaiterQueued",
    "WaiterReported",
    "Waiting",
    "load_ticket_keys",
    "open_replicated_authority",
    "open_ticket_proxy",
]
