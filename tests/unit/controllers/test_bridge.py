"""The bridge from the real ticket table to the autoscaler, at exact times."""

from __future__ import annotations

from typing import Any

from rxkube.controllers import (
    AppSpec,
    LoadSummary,
    ServerLoad,
    decide,
    load_summary,
    parse_app_spec,
    table_settings,
    track_idle,
)
from rxkube.proxy import (
    AppAdded,
    ServerAdded,
    ServerRef,
    ServerUpdated,
    TicketReturned,
    TicketTable,
)


def spec(**annotations: str) -> AppSpec:
    obj: dict[str, Any] = {
        "metadata": {"name": "nb", "namespace": "lab", "annotations": annotations},
        "spec": {"template": {"metadata": {}, "spec": {}}},
    }
    parsed = parse_app_spec(obj)
    assert isinstance(parsed, AppSpec)
    return parsed


def test_table_settings_carry_the_specs_numbers() -> None:
    s = spec(
        **{
            "ipb-halle.de/k8sticket.deployment.tickets.max": "3",
            "rxkube.io/tickets.idle-timeout": "2m",
            "rxkube.io/tickets.hold-time": "15s",
        }
    )
    settings = table_settings(s)
    assert (settings.tickets_max, settings.idle_timeout, settings.hold_time) == (3, 120.0, 15.0)
    # The spec's defaults are the table's own.
    default = table_settings(spec())
    assert (default.idle_timeout, default.hold_time) == (60.0, 30.0)


def test_load_and_idle_times_follow_the_table_step_by_step() -> None:
    table = TicketTable()
    app = spec()
    table.apply(AppAdded("nb", table_settings(app)), now=0.0)
    a, b = ServerRef("nb-a", "ua"), ServerRef("nb-b", "ub")
    idle: dict[str, float] = {}

    def step(now: float) -> LoadSummary:
        nonlocal idle
        idle = track_idle(idle, table, "nb", now=now)
        return load_summary(table, "nb", idle_since=idle, now=now)

    table.apply(ServerAdded("nb", a), now=1.0)
    assert step(1.0) == LoadSummary((ServerLoad("nb-a", 1, 0, True, 1.0),), 0)
    table.apply(ServerAdded("nb", b, ready=False), now=2.0)
    step(2.0)
    table.request("nb", "alice", now=3.0)
    table.request("nb", "bob", now=4.0)  # no free slot: bob waits
    assert step(4.0) == LoadSummary(
        (ServerLoad("nb-a", 1, 1, True, None), ServerLoad("nb-b", 1, 0, False, 2.0)), 1
    )
    table.apply(ServerUpdated("nb", b, ready=True), now=5.0)  # b's slot is held for bob
    summary = step(5.0)
    assert summary.free_tickets == 1
    assert summary.waiting == 1
    table.apply(TicketReturned("nb", "alice"), now=9.0)
    summary = step(9.0)
    assert summary.servers[0] == ServerLoad("nb-a", 1, 0, True, 9.0)  # idle since alice left
    # The autoscaler sees exactly that: a's cooldown (10 s) ends at 19.0.
    decision = decide(app, summary, [], now=9.0)
    assert decision.target == 3  # spare 2 + bob


def test_unknown_app_reads_as_empty() -> None:
    table = TicketTable()
    assert load_summary(table, "nope", idle_since={}, now=0.0) == LoadSummary()
    assert track_idle({"x": 1.0}, table, "nope", now=0.0) == {}
