"""Typed errors for the Kubernetes API, carrying the server's `Status` (wire reference 2.3).

What this module is for: one exception class per outcome a caller handles differently
(`NotFound`, `AlreadyExists`, `Conflict`, `Gone`, `Unauthorized`, `Forbidden`,
`TooManyRequests`, `Invalid`, `BadRequest`, `ServerError`), each built from the response's
`Status` (or, when the body is not one, a Status synthesized from the HTTP code, as client-go
does). A `Forbidden` says exactly what RBAC must allow. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Final

import orjson

from rxkube.streams._types import Status, StatusCause, StatusDetails

__all__ = [
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeConnectionError",
    "KubeError",
    "NotFound",
    "ServerError",
    "TooManyRequests",
    "Unauthorized",
]


class KubeError(Exception):
    """Base of every error the client raises."""


class KubeConnectionError(KubeError):
    """The API server could not be reached, or the connection broke mid-response."""


class ApiError(KubeError):
    """The API server answered with an error status.

    `status` is the server's `Status` object; `code`, `reason` and `message` are read from it.
    `method` and `path` name the request; `verb`, `resource` and `namespace` say what it
    asked for in RBAC terms (`list`, `deployments.apps`, `lab`). `retry_after` is the
    server's hint in seconds (`Retry-After` header, else `details.retryAfterSeconds`), or None.
    """

    status: Status
    method: str
    path: str
    verb: str
    resource: str
    namespace: str | None
    retry_after: float | None

    def __init__(
        self,
        status: Status,
        *,
        method: str = "",
        path: str = "",
        verb: str = "",
        resource: str = "",
        namespace: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.method = method
        self.path = path
        self.verb = verb
        self.resource = resource
        self.namespace = namespace
        super().__init__(self._describe())

    @property
    def code(self) -> int:
        return int(self.status.get("code", 0))

    @property
    def reason(self) -> str:
        return self.status.get("reason", "")

    @property
    def message(self) -> str:
        return self.status.get("message", "")

    @property
    def details(self) -> StatusDetails:
        return self.status.get("details", {})

    def _describe(self) -> str:
        where = f" ({self.method} {self.path})" if self.method else ""
        return f"{self.code} {self.reason or 'Error'}: {self.message}{where}"


class BadRequest(ApiError):
    """400: the request itself is malformed (bad selector, bad patch, strict decoding...)."""


class Unauthorized(ApiError):
    """401: the credentials were refused (after one refresh and retry)."""


class Forbidden(ApiError):
    """403: RBAC does not allow the request. `rbac_hint` says what to grant, to whom."""

    @property
    def subject(self) -> str | None:
        """The user the server named (`system:serviceaccount:ns:name`, `alice`), if any."""
        match = _USER.search(self.message)
        return match.group(1) if match else None

    @property
    def rbac_hint(self) -> str:
        """E.g. "grant `list` on `pods` in namespace `apps` to service account `ns1/default`"."""
        verb = self.verb or "?"
        resource = self.resource or "?"
        scope = (
            f"in namespace `{self.namespace}` (a Role and RoleBinding)"
            if self.namespace
            else "cluster-wide (a ClusterRole and ClusterRoleBinding)"
        )
        who = self.subject
        if who is not None and who.startswith("system:serviceaccount:"):
            ns, _, name = who.removeprefix("system:serviceaccount:").partition(":")
            to = f" to service account `{ns}/{name}`"
        elif who is not None:
            to = f" to user `{who}`"
        else:
            to = ""
        return f"grant `{verb}` on `{resource}` {scope}{to}"

    def _describe(self) -> str:
        return f"{super()._describe()}; RBAC must allow it: {self.rbac_hint}"


class NotFound(ApiError):
    """404: no such object (or namespace, for a create)."""


class AlreadyExists(ApiError):
    """409 AlreadyExists: a create found the name taken."""


class Conflict(ApiError):
    """409 Conflict: stale resourceVersion, or a server-side-apply field conflict; re-read
    and retry."""


class Gone(ApiError):
    """410 Expired/Gone: the resourceVersion or continue token is too old; relist."""

    @property
    def continue_token(self) -> str | None:
        """The fresh (inconsistent) continue token a 410 on a paginated list may carry."""
        token = self.status.get("metadata", {}).get("continue")
        return token or None


class Invalid(ApiError):
    """422: the object fails validation; `causes` lists each field and why."""

    @property
    def causes(self) -> list[StatusCause]:
        return self.details.get("causes", [])


class TooManyRequests(ApiError):
    """429: the server sheds load (APF, max-inflight, or an eviction a PDB blocks); wait
    `retry_after` seconds when given."""


class ServerError(ApiError):
    """5xx: the server failed (500, 503, 504 Timeout...)."""


_USER: Final = re.compile(r'User "([^"]*)"')
_REASONS: Final[dict[int, str]] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Gone",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (only the delta-seconds form is used by the
    API server; an HTTP date is ignored rather than trusted against our clock)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def status_from_response(code: int, body: bytes, method: str) -> Status:
    """The body's `Status`, or one synthesized from the code (client-go: a 409 without a
    Status is AlreadyExists for POST and Conflict otherwise)."""
    try:
        decoded = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        decoded = None
    if isinstance(decoded, dict) and decoded.get("kind") == "Status":
        status: Status = decoded  # type: ignore[assignment]
        status.setdefault("code", code)
        return status
    reason = _REASONS.get(code, "InternalError" if code >= 500 else "Unknown")
    if code == 409:
        reason = "AlreadyExists" if method == "POST" else "Conflict"
    text = body.decode("utf-8", "replace").strip()[:1000] if body else ""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": text or f"the server responded with HTTP {code}",
        "reason": reason,
        "code": code,
    }


def error_from_status(
    status: Status,
    *,
    retry_after: float | None = None,
    method: str = "",
    path: str = "",
    verb: str = "",
    resource: str = "",
    namespace: str | None = None,
) -> ApiError:
    """The typed error for a failed request's `Status`."""
    code = int(status.get("code", 0))
    reason = status.get("reason", "")
    if retry_after is None:
        hinted = status.get("details", {}).get("retryAfterSeconds")
        retry_after = float(hinted) if isinstance(hinted, int | float) and hinted > 0 else None
    cls: type[ApiError]
    if code == 429 or reason == "TooManyRequests":
        cls = TooManyRequests
    elif code >= 500:
        cls = ServerError
    elif code == 409:
        cls = AlreadyExists if reason == "AlreadyExists" else Conflict
    else:
        cls = {
            400: BadRequest,
            401: Unauthorized,
            403: Forbidden,
            404: NotFound,
            410: Gone,
            422: Invalid,
        }.get(code, ApiError)
    if reason in ("Expired", "Gone") and code < 500:
        cls = Gone
    return cls(
        status,
        method=method,
        path=path,
        verb=verb,
        resource=resource,
        namespace=namespace,
        retry_after=retry_after,
    )
