"""The local ticket authority and the proxy's ticker in virtual time (MockClock, no sockets)."""

from __future__ import annotations

import trio
import trio.testing

from rxkube.proxy import (
    AppConfig,
    Change,
    Granted,
    LocalTicketAuthority,
    ServerRef,
    ServerSpec,
    TicketAuthority,
    TicketReleased,
    WaiterLeft,
    Waiting,
    open_ticket_proxy,
)

S0 = ServerRef("lab-0", "u0")


def test_the_local_authority_is_a_ticket_authority() -> None:
    assert isinstance(LocalTicketAuthority(lambda: 0.0), TicketAuthority)


async def test_idle_release_and_leaving_happen_at_exact_virtual_times(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[tuple[float, Change]] = []
    async with open_ticket_proxy() as proxy:
        start = trio.current_time()
        proxy.changes.subscribe(lambda c: seen.append((trio.current_time() - start, c)))
        await proxy.set_app(AppConfig("lab", tickets_max=1, idle_timeout=60, refresh_interval=5))
        proxy.set_servers("lab", [ServerSpec(S0, "127.0.0.1:9")])
        authority = proxy.authority
        assert await authority.request("lab", "alice") == Granted("alice", S0, new=True)
        assert await authority.request("lab", "bob") == Waiting(position=0, queued=1)
        await trio.sleep(30)
        assert authority.touch("lab", "alice") == S0  # alice made a request at t=30
        for _ in range(4):  # bob polls every 5 s until t=50, then stops
            await trio.sleep(5)
            assert isinstance(await authority.request("lab", "bob"), Waiting)
        await trio.sleep(60)
    times = {
        (type(c).__name__, getattr(c, "reason", "")): t
        for t, c in seen
        if isinstance(c, TicketReleased | WaiterLeft)
    }
    # bob's last poll was at t=50, leave_after = 10 s, ticks every 1 s: he leaves at t=60.
    assert times[("WaiterLeft", "timeout")] == 60.0
    # alice's last touch was at t=30, idle_timeout = 60 s: released at the tick at t=90.
    assert times[("TicketReleased", "idle")] == 90.0
