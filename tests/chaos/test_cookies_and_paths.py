"""Forged, tampered, expired and foreign ticket cookies; paths that try to leave their app.

A bad ticket cookie gets 403 (the cookie is cleared) and reaches no backend. A cookie that is
valid but names another app's pod never takes the user there: re-admission looks for the pod
among the app's own servers only. A path with a `.`/`..` segment, raw or encoded (up to three
times), with `/` or `\\` as separator, gets 400; an app name written differently gets 404.
The other app's backend sees only what the test sends it on purpose (`Arena.check`).
"""

from __future__ import annotations

import base64
import json

from rxkube.proxy import ServerRef, TicketSigner
from tests.chaos.arena import TRIED, WALL, open_arena
from tests.integration.proxy.conftest import KEY, get

LAB_0 = ServerRef("lab-0", "uid-0")
OTHER_0 = ServerRef("other-0", "o0")


def sign(app: str, server: ServerRef, *, key: bytes = KEY, issued: float = WALL) -> str:
    return TicketSigner([key], max_lifetime=3600).sign(app, server, "t" * 22, issued_at=issued)


def retag(value: str, part: int, text: str) -> str:
    parts = value.split(".")
    parts[part] = text
    return ".".join(parts)


def flip(text: str) -> str:
    return text[:-2] + ("AA" if text[-2:] != "AA" else "BB")


async def test_bad_ticket_cookies_are_refused_and_reach_no_backend() -> None:
    good = sign("lab", LAB_0)
    _, kid, payload, mac = good.split(".")
    forged_with_our_kid = retag(sign("lab", LAB_0, key=b"f" * 32), 1, kid)
    cases = {
        "other key": sign("lab", LAB_0, key=b"k" * 32),
        "other key, our key id": forged_with_our_kid,
        "payload changed": retag(good, 2, flip(payload)),
        "mac changed": retag(good, 3, flip(mac)),
        "mac truncated": retag(good, 3, mac[:10]),
        "mac empty": retag(good, 3, ""),
        "unknown key id": retag(good, 1, "AAAAAAAA"),
        "version 2": retag(good, 0, "v2"),
        "extra part": good + ".x",
        "three parts": ".".join(good.split(".")[:3]),
        "not base64": retag(good, 2, "!!!!"),
        "empty": "",
        "garbage": "garbage",
        "long": "v1." + "a" * 8000,
        "other app": sign("other", OTHER_0),
        "expired": sign("lab", LAB_0, issued=WALL - 3601),
        "from the future": sign("lab", LAB_0, issued=WALL + 3600),
        "payload swapped in": retag(
            good, 2, base64.urlsafe_b64encode(b'["lab","x","y","t",1,9999999]').decode().rstrip("=")
        ),
    }
    async with open_arena(cookie_max_lifetime=3600) as arena:
        for name, value in cases.items():
            TRIED["cookie/refused"] += 1
            reply = await get(arena.port, "/lab/echo", cookies={"rxkube-ticket-lab": value})
            if name == "empty":  # an empty value is no cookie at all: a ticket, as for anyone
                assert reply.status == 200, name
                continue
            assert reply.status == 403, name
            assert "Max-Age=0" in (reply.header("set-cookie") or ""), name
            # A forged waiting-room cookie next to it changes nothing.
            reply = await get(
                arena.port,
                "/lab/echo",
                cookies={"rxkube-ticket-lab": value, "rxkube-wait-lab": "A" * 22},
            )
            assert reply.status == 403, name
        assert arena.lab_targets() == ["/echo"]  # the "empty" one only
        refused = arena.proxy.statistics().apps["lab"].refused_cookies
        assert refused == 2 * (len(cases) - 1)


async def test_valid_cookies_never_take_a_user_out_of_their_app() -> None:
    async with open_arena(cookie_max_lifetime=3600) as arena:
        port = arena.port
        # Signed for lab but naming the other app's pod: a new ticket on one of lab's pods.
        TRIED["cookie/foreign"] += 1
        reply = await get(port, "/lab/echo", cookies={"rxkube-ticket-lab": sign("lab", OTHER_0)})
        assert reply.status == 200
        assert json.loads(reply.body)["backend"].startswith("lab")
        # Lab's valid cookie sent to the other app (under its own name): ignored there; the
        # user gets a ticket for the other app like anyone else.
        TRIED["cookie/foreign"] += 1
        arena.other_allowed.add("/echo?sent-on-purpose")
        reply = await get(
            port, "/other/echo?sent-on-purpose", cookies={"rxkube-ticket-lab": sign("lab", LAB_0)}
        )
        assert reply.status == 200
        assert json.loads(reply.body)["backend"] == "other0"
        # Lab's cookie renamed as the other app's: refused as issued for another app.
        TRIED["cookie/foreign"] += 1
        reply = await get(port, "/other/echo", cookies={"rxkube-ticket-other": sign("lab", LAB_0)})
        assert reply.status == 403
        assert b"other-app" in reply.body
        # A cookie name that merely contains the real one is not it.
        TRIED["cookie/foreign"] += 1
        reply = await get(
            port, "/lab/echo", cookies={"xrxkube-ticket-lab": sign("lab", LAB_0, key=b"k" * 32)}
        )
        assert reply.status == 200


# (path, status): 400 for an escape, 404 for no such app, 200 where the path stays in lab.
PATHS: list[tuple[str, int]] = [
    ("/lab/../other/echo", 400),
    ("/lab/..%2fother/echo", 400),
    ("/lab/..%2Fother/echo", 400),
    ("/lab/%2e%2e/other/echo", 400),
    ("/lab/%2E%2E/other/echo", 400),
    ("/lab/.%2e/other/echo", 400),
    ("/lab/%2e./other/echo", 400),
    ("/lab/%2e%2e%2fother%2fecho", 400),
    ("/lab/%252e%252e/other/echo", 400),
    ("/lab/%252e%252e%252fother/echo", 400),
    ("/lab/%25252e%25252e/other/echo", 400),
    ("/lab/%2525252e%2525252e/other/echo", 400),
    ("/lab/..%5cother/echo", 400),
    ("/lab/..%5Cother%5Cecho", 400),
    ("/lab/..\\other/echo", 400),
    ("/lab\\..\\other/echo", 400),
    ("/lab/%5c..%5cother/echo", 400),
    ("/lab//../other/echo", 400),
    ("/lab/echo/../../other/echo", 400),
    ("/lab/./echo", 400),
    ("/lab/%2e/echo", 400),
    ("/lab/.", 400),
    ("/lab/..", 400),
    ("/./lab/echo", 400),
    ("/other/../lab/echo", 400),
    ("/lab/echo#/../../other/echo", 400),
    ("//other/echo", 404),
    ("/%6cab/echo", 404),
    ("/%6Fther/echo", 404),
    ("/lab%2fecho", 404),
    ("/lab%2f..%2fother/echo", 400),
    ("/LAB/echo", 404),
    ("/lab./echo", 404),
    ("/lab/..;/other/echo", 200),  # `..;` is no dot segment: it stays in lab
    ("/lab/%c0%ae%c0%ae/other/echo", 200),  # overlong UTF-8 is not '.': stays in lab
    ("/lab/%2fother/echo", 200),
    ("/lab/echo?next=/../other/echo", 200),  # the query is not the path
    ("/lab/...//echo", 200),
]


async def test_paths_that_try_to_leave_the_app_never_reach_another_app() -> None:
    async with open_arena() as arena:
        for path, status in PATHS:
            TRIED["path-traversal"] += 1
            reply = await get(arena.port, path)
            assert reply.status == status, path
            if status == 200:
                assert json.loads(reply.body)["backend"].startswith("lab"), path
        forwarded = arena.lab_targets()
        assert len(forwarded) == sum(1 for _, status in PATHS if status == 200)
        for target in forwarded:
            assert not target.startswith("/lab"), target  # the prefix is stripped
