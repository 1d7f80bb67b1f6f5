"""Signed ticket cookies: HMAC-SHA256 over the fields a later replica or restart needs.

A ticket cookie names the app, the server (pod name and uid), the ticket id, when it was issued and
its maximum lifetime, so a proxy that restarts (or another replica) can re-admit the user to the
same pod (issue 10) without any shared state. The value is

    v1.<key id>.<base64url(JSON [app, pod, uid, ticket, issued_at, max_lifetime])>.<base64url(mac)>

where the MAC is HMAC-SHA256 over everything before the last dot, and the key id names which key
signed it (so verification costs one HMAC even while a previous key is still accepted).

Keys come from a file (one key per line; the first signs, the others are still accepted: rotate
by writing `new\\nold`, later just `new`) or an environment variable; `TicketSigner.rotate()`
does the same from code, accepting the previous key until a given time. Time here is wall-clock
seconds passed in by the caller: cookies outlive the process, so monotonic time would not do.

This module does no I/O except `load_ticket_keys`, which reads the file or variable it is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

from rxkube.proxy._table import ServerRef

__all__ = [
    "CookieRefused",
    "TicketClaims",
    "TicketSigner",
    "load_ticket_keys",
]

DEFAULT_MAX_LIFETIME = 12 * 3600.0
MIN_KEY_BYTES = 32
_CACHE_SIZE = 4096
_CLOCK_SKEW = 300.0
"""Accept cookies issued up to this far in the future (clocks of replicas differ)."""

RefusalReason = Literal["malformed", "unknown-key", "bad-signature", "expired", "other-app"]


class CookieRefused(Exception):
    """A ticket cookie that must not be honoured; `reason` says why (for logs and metrics)."""

    def __init__(self, reason: RefusalReason, detail: str = "") -> None:
        super().__init__(f"ticket cookie refused ({reason}){': ' + detail if detail else ''}")
        self.reason: RefusalReason = reason


@dataclass(frozen=True, slots=True)
class TicketClaims:
    """What a valid ticket cookie says."""

    app: str
    server: ServerRef
    ticket: str
    issued_at: float
    max_lifetime: float

    @property
    def expires_at(self) -> float:
        return self.issued_at + self.max_lifetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key_id(key: bytes) -> str:
    return _b64(hashlib.sha256(b"rxkube-ticket-key-id:" + key).digest()[:6])


def load_ticket_keys(
    *,
    path: str | os.PathLike[str] | None = None,
    env: str | None = "RXKUBE_TICKET_KEY",
    environ: Mapping[str, str] | None = None,
) -> list[bytes]:
    """Keys from `path` (one per line, first signs) or else the environment variable `env`.

    Returns [] when neither is set (the caller then generates a key for this process only).
    Raises ValueError naming the source when a key is shorter than 32 bytes.
    """
    source: str
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        source = f"key file {os.fspath(path)}"
    else:
        environment = os.environ if environ is None else environ
        if env is None or not environment.get(env):
            return []
        text = environment[env]
        source = f"environment variable {env}"
    keys = [line.strip().encode() for line in text.splitlines() if line.strip()]
    if not keys:
        raise ValueError(f"{source} holds no key")
    for i, key in enumerate(keys):
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"{source}: key on line {i + 1} has {len(key)} bytes; use at least "
                f"{MIN_KEY_BYTES} (e.g. `openssl rand -hex 32`)"
            )
    return keys


class TicketSigner:
    """Signs and verifies ticket cookies; keeps a bounded cache of verified values."""

    __slots__ = ("_cache", "_keys", "_signing", "_until", "max_lifetime")

    def __init__(
        self, keys: Sequence[bytes], *, max_lifetime: float = DEFAULT_MAX_LIFETIME
    ) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        for key in keys:
            if len(key) < MIN_KEY_BYTES:
                raise ValueError(f"a ticket key needs at least {MIN_KEY_BYTES} bytes")
        if max_lifetime <= 0:
            raise ValueError("max_lifetime must be > 0")
        self.max_lifetime = max_lifetime
        self._keys: dict[str, bytes] = {}
        self._until: dict[str, float | None] = {}
        self._signing = ""
        self._cache: dict[str, tuple[TicketClaims, str]] = {}
        self.set_keys(keys)

    def set_keys(self, keys: Sequence[bytes]) -> None:
        """Replace the keys: the first signs, all are accepted (e.g. after a key file changed)."""
        self._keys = {_key_id(key): key for key in keys}
        self._until = dict.fromkeys(self._keys)
        self._signing = _key_id(keys[0])
        self._cache.clear()

    def rotate(self, key: bytes, *, accept_previous_until: float) -> None:
        """Sign with `key` from now on; keep accepting the older keys until the given time."""
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a ticket key needs at least {MIN_KEY_BYTES} bytes")
        for kid, until in self._until.items():
            if until is None or until > accept_previous_until:
                self._until[kid] = accept_previous_until
        kid = _key_id(key)
        self._keys[kid] = key
        self._until[kid] = None
        self._signing = kid
        self._cache.clear()

    def sign(
        self,
        app: str,
        server: ServerRef,
        ticket: str,
        *,
        issued_at: float,
        max_lifetime: float | None = None,
    ) -> str:
        lifetime = self.max_lifetime if max_lifetime is None else max_lifetime
        payload = orjson.dumps(
            [app, server.name, server.uid, ticket, int(issued_at), int(lifetime)]
        )
        head = f"v1.{self._signing}.{_b64(payload)}"
        mac = hmac.digest(self._keys[self._signing], head.encode("ascii"), "sha256")
        return f"{head}.{_b64(mac)}"

    def verify(self, value: str, *, app: str, now: float) -> TicketClaims:
        """The claims of a valid cookie for `app` at wall time `now`; else CookieRefused."""
        cached = self._cache.get(value)
        if cached is None:
            claims = self._verify_signature(value, now)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.clear()
            self._cache[value] = (claims, value.split(".", 2)[1])
        else:
            claims, kid = cached
            until = self._until.get(kid)
            if until is not None and now >= until:
                raise CookieRefused("unknown-key")
        if claims.app != app:
            raise CookieRefused("other-app", f"issued for {claims.app!r}")
        if not claims.issued_at - _CLOCK_SKEW <= now < claims.expires_at:
            raise CookieRefused("expired")
        return claims

    def _verify_signature(self, value: str, now: float) -> TicketClaims:
        parts = value.split(".")
        if len(parts) != 4 or parts[0] != "v1":
            raise CookieRefused("malformed")
        _, kid, payload_b64, mac_b64 = parts
        key = self._keys.get(kid)
        until = self._until.get(kid)
        if key is None or (until is not None and now >= until):
            raise CookieRefused("unknown-key")
        try:
            mac = _unb64(mac_b64)
            payload = _unb64(payload_b64)
        except (binascii.Error, ValueError):
            raise CookieRefused("malformed") from None
        expected = hmac.digest(key, f"v1.{kid}.{payload_b64}".encode("ascii"), "sha256")
        if not hmac.compare_digest(mac, expected):
            raise CookieRefused("bad-signature")
        try:
            app, pod, uid, ticket, issued_at, lifetime = orjson.loads(payload)
        except (orjson.JSONDecodeError, ValueError, TypeError):
            raise CookieRefused("malformed") from None
        fields_ok = all(isinstance(x, str) for x in (app, pod, uid, ticket)) and all(
            isinstance(x, int) for x in (issued_at, lifetime)
        )
        if not fields_ok:
            raise CookieRefused("malformed")
        return TicketClaims(app, ServerRef(pod, uid), ticket, float(issued_at), float(lifetime))
