"""Between the proxy's ticket table and the controllers' cores: settings in, load out.

What this module is for: the two small translations every pipeline needs, kept pure and in one
place. `table_settings` turns an `AppSpec` into the table's `AppSettings`; `track_idle` and
`load_summary` read a `TicketTable` (after it applied a step at `now`) into the autoscaler's
`LoadSummary`. It may import `rxkube.proxy` and this package; it does no I/O and reads no clock.

Why idle times are tracked here: the table knows how many tickets each server holds, not since
when it has held none. Tickets change only when the table applies a step, so calling
`track_idle` after every step (with that step's `now`) records the exact time each server
became idle, in live runs and replays alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from rxkube.controllers._appspec import AppSpec
from rxkube.controllers._autoscaler import LoadSummary, ServerLoad
from rxkube.proxy import AppSettings, TicketTable

__all__ = ["load_summary", "table_settings", "track_idle"]


def table_settings(spec: AppSpec) -> AppSettings:
    """The ticket table's settings for an app (capacity per pod, idle and hold times)."""
    return AppSettings(
        tickets_max=spec.tickets_max,
        idle_timeout=spec.ticket_idle_timeout,
        hold_time=spec.ticket_hold_time,
    )


def track_idle(
    idle_since: Mapping[str, float], table: TicketTable, app: str, *, now: float
) -> dict[str, float]:
    """Update server name -> the time it became idle (no tickets), after a table step at `now`.

    Servers with tickets, and servers that are gone, drop out; a server idle before keeps its
    time; a server idle now for the first time gets `now`.
    """
    if app not in table.apps:
        return {}
    updated: dict[str, float] = {}
    for server in table.servers(app):
        if table.server_tickets(app, server) == 0:
            updated[server.name] = idle_since.get(server.name, now)
    return updated


def load_summary(
    table: TicketTable, app: str, *, idle_since: Mapping[str, float], now: float
) -> LoadSummary:
    """The autoscaler's view of one app: every server's capacity, users, readiness, idle time.

    Waiting users are all the queued ones; slots held for the head of the queue are free
    tickets (as in the table's own `AppLoad.free`), so the two cancel out in the target.
    """
    if app not in table.apps:
        return LoadSummary()
    servers = []
    for server in table.servers(app):
        users = table.server_tickets(app, server)
        servers.append(
            ServerLoad(
                name=server.name,
                capacity=table.server_capacity(app, server),
                users=users,
                ready=table.server_ready(app, server),
                idle_since=None if users else idle_since.get(server.name, now),
            )
        )
    return LoadSummary(tuple(servers), len(table.queue(app)))
