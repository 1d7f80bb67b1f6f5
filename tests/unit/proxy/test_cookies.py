"""Ticket cookies: valid ones verify; forged, tampered, expired and other-app ones are refused."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pytest

from rxkube.proxy import CookieRefused, ServerRef, TicketClaims, TicketSigner, load_ticket_keys

KEY = b"k" * 32
OTHER = b"o" * 32
POD = ServerRef("lab-0", "3f1c")


def test_a_signed_cookie_verifies_with_every_field() -> None:
    signer = TicketSigner([KEY], max_lifetime=3600)
    value = signer.sign("lab", POD, "t1", issued_at=1000.0)
    assert signer.verify(value, app="lab", now=1001.0) == TicketClaims(
        "lab", POD, "t1", 1000.0, 3600.0
    )


@pytest.mark.parametrize(
    ("now", "app", "reason"),
    [(4600.0, "lab", "expired"), (1000.0, "other", "other-app"), (0.0, "lab", "expired")],
)
def test_expired_and_other_app_cookies_are_refused(now: float, app: str, reason: str) -> None:
    signer = TicketSigner([KEY], max_lifetime=3600)
    value = signer.sign("lab", POD, "t1", issued_at=1000.0)
    signer.verify(value, app="lab", now=1000.0)  # cached: the checks still run on a hit
    with pytest.raises(CookieRefused) as refused:
        signer.verify(value, app=app, now=now)
    assert refused.value.reason == reason


def _tamper_payload(value: str) -> str:
    version, kid, payload, mac = value.split(".")
    fields = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields[1] = "other-pod"
    forged = base64.urlsafe_b64encode(orjson.dumps(fields)).rstrip(b"=").decode()
    return ".".join([version, kid, forged, mac])


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (_tamper_payload, "bad-signature"),
        (lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"), "bad-signature"),
        (lambda v: TicketSigner([OTHER]).sign("lab", POD, "t1", issued_at=1000.0), "unknown-key"),
        (lambda v: "v1." + v.split(".", 1)[1].replace(".", "", 1), "malformed"),
        (lambda v: "garbage", "malformed"),
        (lambda v: "v2" + v[2:], "malformed"),
        (lambda v: v.rsplit(".", 1)[0] + ".!!!", "bad-signature"),
    ],
)
def test_forged_or_tampered_cookies_are_refused(mangle: object, reason: str) -> None:
    signer = TicketSigner([KEY])
    value = signer.sign("lab", POD, "t1", issued_at=1000.0)
    assert callable(mangle)
    with pytest.raises(CookieRefused) as refused:
        signer.verify(mangle(value), app="lab", now=1001.0)
    assert refused.value.reason == reason


def test_a_forged_payload_signed_with_a_guessed_key_id_is_refused() -> None:
    signer = TicketSigner([KEY])
    kid = signer.sign("lab", POD, "t", issued_at=0).split(".")[1]
    payload = base64.urlsafe_b64encode(orjson.dumps(["lab", "p", "u", "t", 0, 99])).decode()
    with pytest.raises(CookieRefused) as refused:
        signer.verify(f"v1.{kid}.{payload.rstrip('=')}.AAAA", app="lab", now=1.0)
    assert refused.value.reason == "bad-signature"


def test_rotation_accepts_the_previous_key_for_a_while() -> None:
    signer = TicketSigner([KEY])
    old = signer.sign("lab", POD, "t1", issued_at=1000.0)
    signer.rotate(OTHER, accept_previous_until=2000.0)
    new = signer.sign("lab", POD, "t2", issued_at=1500.0)
    assert new.split(".")[1] != old.split(".")[1]
    assert signer.verify(old, app="lab", now=1999.0).ticket == "t1"
    assert signer.verify(new, app="lab", now=2500.0).ticket == "t2"
    with pytest.raises(CookieRefused) as refused:
        signer.verify(old, app="lab", now=2000.0)
    assert refused.value.reason == "unknown-key"


def test_keys_from_a_file_first_signs_others_still_accepted(tmp_path: Path) -> None:
    old_signer = TicketSigner([OTHER])
    old = old_signer.sign("lab", POD, "t1", issued_at=10.0)
    path = tmp_path / "keys"
    path.write_text(f"{KEY.decode()}\n{OTHER.decode()}\n")
    signer = TicketSigner(load_ticket_keys(path=path))
    assert signer.verify(old, app="lab", now=11.0).ticket == "t1"
    assert signer.sign("lab", POD, "t", issued_at=1).split(".")[1] != old.split(".")[1]


def test_keys_from_the_environment_and_clear_errors(tmp_path: Path) -> None:
    assert load_ticket_keys(environ={"RXKUBE_TICKET_KEY": KEY.decode()}) == [KEY]
    assert load_ticket_keys(environ={}) == []
    short = tmp_path / "short"
    short.write_text("tooshort\n")
    with pytest.raises(ValueError, match="at least 32"):
        load_ticket_keys(path=short)
    with pytest.raises(ValueError, match="at least 32"):
        TicketSigner([b"x"])
