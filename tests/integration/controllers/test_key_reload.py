"""`rxkube run` re-reads its ticket key file: rotated keys take effect without a restart.

Virtual time (MockClock): the proxy's listener is bound but idle, so autojump is safe, and the
reload period passes exactly.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from rxkube.controllers._run_cmd import reload_ticket_keys
from rxkube.proxy import CookieRefused, ProxyConfig, ServerRef, TicketSigner, open_ticket_proxy
from tests.integration.controllers.conftest import loopback

OLD = b"a" * 32
NEW = b"b" * 32
SERVER = ServerRef("lab-1", "uid")


def cookie(key: bytes) -> str:
    return TicketSigner([key]).sign("lab", SERVER, "t1", issued_at=1000.0)


async def test_a_rotated_key_file_is_picked_up_and_a_broken_one_ignored(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "key"
    path.write_bytes(OLD + b"\n")
    config = ProxyConfig(ticket_keys=(OLD,))
    async with open_ticket_proxy(config, listen=[(loopback(), 0)]) as proxy:
        verify = partial(proxy.signer.verify, app="lab", now=1001.0)
        with pytest.raises(CookieRefused):
            verify(cookie(NEW))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(reload_ticket_keys, path, proxy, [OLD], interval=30.0))
            await trio.sleep(1.0)
            path.write_bytes(NEW + b"\n" + OLD + b"\n")  # the new key signs, the old one stays
            await trio.sleep(28.0)
            with pytest.raises(CookieRefused):
                verify(cookie(NEW))  # not re-read yet (at t=29)
            await trio.sleep(2.0)
            verify(cookie(NEW))  # re-read at t=30
            verify(cookie(OLD))
            path.write_bytes(b"too short\n")
            await trio.sleep(60.0)  # two reload periods: a broken file changes nothing
            verify(cookie(NEW))
            nursery.cancel_scope.cancel()
