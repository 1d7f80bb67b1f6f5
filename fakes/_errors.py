"""`StatusError`: an API failure as kube-apiserver reports it, a `Status` body with its code.

What this module is for: one exception type that every layer of the fake raises (the store,
selectors, patches, authorization) and that the HTTP layer turns into the exact `Status` JSON of
the reference (`kubernetes-api-wire.md` section 2.3): key order `kind, apiVersion, metadata,
status, message, reason, details, code`, empty fields omitted, `details.kind` the resource
plural for NotFound/AlreadyExists/Conflict/Forbidden but the Kind for Invalid. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["StatusCause", "StatusError"]


@dataclass(frozen=True, slots=True)
class StatusCause:
    """One entry of `details.causes` (e.g. a field that failed validation)."""

    reason: str = ""
    message: str = ""
    field: str = ""

    def to_json(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        if self.field:
            out["field"] = self.field
        return out


@dataclass(frozen=True, slots=True)
class _Details:
    name: str = ""
    group: str = ""
    kind: str = ""
    uid: str = ""
    causes: tuple[StatusCause, ...] = ()
    retry_after_seconds: int = 0


class StatusError(Exception):
    """A failed API call: HTTP `code`, machine `reason`, human `message`, optional details.

    `status()` is the wire `Status` body. Build them with the class methods, which copy the
    real server's message formats so that clients (client-go, the official Python client,
    kubectl) classify them exactly as they would against a real cluster.
    """

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        name: str = "",
        group: str = "",
        kind: str = "",
        uid: str = "",
        causes: Sequence[StatusCause] = (),
        retry_after_seconds: int = 0,
        metadata: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = _Details(name, group, kind, uid, tuple(causes), retry_after_seconds)
        self.metadata: dict[str, str] = dict(metadata or {})
        self.headers: dict[str, str] = dict(headers or {})

    def __repr__(self) -> str:
        return f"StatusError({self.code}, {self.reason!r}, {self.message!r})"

    def status(self) -> dict[str, Any]:
        """The `Status` object, keys in the order the Go server emits them."""
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": dict(self.metadata),
            "status": "Failure",
        }
        if self.message:
            out["message"] = self.message
        if self.reason:
            out["reason"] = self.reason
        d = self.details
        details: dict[str, Any] = {}
        if d.name:
            details["name"] = d.name
        if d.group:
            details["group"] = d.group
        if d.kind:
            details["kind"] = d.kind
        if d.uid:
            details["uid"] = d.uid
        if d.causes:
            details["causes"] = [c.to_json() for c in d.causes]
        if d.retry_after_seconds:
            details["retryAfterSeconds"] = d.retry_after_seconds
        if details:
            out["details"] = details
        out["code"] = self.code
        return out

    # -- constructors, one per reason, messages as the real server writes them --------------

    @classmethod
    def not_found(cls, resource: str, group: str, name: str) -> StatusError:
        return cls(
            404,
            "NotFound",
            f'{_qualified(resource, group)} "{name}" not found',
            name=name,
            group=group,
            kind=resource,
        )

    @classmethod
    def already_exists(
        cls, resource: str, group: str, name: str, *, generated: bool = False
    ) -> StatusError:
        message = f'{_qualified(resource, group)} "{name}" already exists'
        if generated:
            message += ", the server was not able to generate a unique name for the object"
        return cls(
            409,
            "AlreadyExists",
            message,
            name=name,
            group=group,
            kind=resource,
            retry_after_seconds=1 if generated else 0,
        )

    @classmethod
    def conflict(cls, resource: str, group: str, name: str, detail: str) -> StatusError:
        return cls(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {detail}',
            name=name,
            group=group,
            kind=resource,
        )

    @classmethod
    def stale(cls, resource: str, group: str, name: str) -> StatusError:
        """The optimistic-concurrency conflict (a write with an outdated resourceVersion)."""
        return cls.conflict(
            resource,
            group,
            name,
            "the object has been modified; please apply your changes to the latest version "
            "and try again",
        )

    @classmethod
    def invalid(
        cls, kind: str, group: str, name: str, causes: Sequence[StatusCause]
    ) -> StatusError:
        """422: `<Kind>[.group] "<name>" is invalid: <field>: <message>[, ...]`."""
        texts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
        joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
        qualified = f"{kind}.{group}" if group else kind
        return cls(
            422,
            "Invalid",
            f'{qualified} "{name}" is invalid: {joined}',
            name=name,
            group=group,
            kind=kind,
            causes=causes,
        )

    @classmethod
    def bad_request(cls, message: str) -> StatusError:
        return cls(400, "BadRequest", message)

    @classmethod
    def forbidden(cls, resource: str, group: str, name: str, reason_text: str) -> StatusError:
        subject = _qualified(resource, group) if resource else ""
        if name:
            subject += f' "{name}"'
        prefix = f"{subject} is forbidden" if subject else "forbidden"
        return cls(
            403,
            "Forbidden",
            f"{prefix}: {reason_text}",
            name=name,
            group=group,
            kind=resource,
        )

    @classmethod
    def unauthorized(cls) -> StatusError:
        return cls(401, "Unauthorized", "Unauthorized")

    @classmethod
    def expired(cls, message: str, *, metadata: Mapping[str, str] | None = None) -> StatusError:
        return cls(410, "Expired", message, metadata=metadata)

    @classmethod
    def gone(cls, message: str) -> StatusError:
        return cls(410, "Gone", message)

    @classmethod
    def method_not_allowed(cls, verb: str, resource: str) -> StatusError:
        return cls(
            405,
            "MethodNotAllowed",
            f'{verb} is not supported on resources of kind "{resource}"',
        )

    @classmethod
    def not_acceptable(cls, accepted: Sequence[str]) -> StatusError:
        return cls(
            406,
            "NotAcceptable",
            "only the following media types are accepted: " + ", ".join(accepted),
        )

    @classmethod
    def unsupported_media_type(cls, content_type: str, accepted: Sequence[str]) -> StatusError:
        return cls(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(accepted)}"
            if content_type
            else "the body of the request was in an unknown format",
        )

    @classmethod
    def too_large_resource_version(cls, requested: int, current: int) -> StatusError:
        return cls(
            504,
            "Timeout",
            f"Timeout: Too large resource version: {requested}, current: {current}",
            causes=[StatusCause("ResourceVersionTooLarge", "Too large resource version")],
            retry_after_seconds=1,
        )

    @classmethod
    def internal(cls, message: str) -> StatusError:
        return cls(500, "InternalError", f"Internal error occurred: {message}")

    @classmethod
    def request_entity_too_large(cls, limit: int) -> StatusError:
        return cls(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def _qualified(resource: str, group: str) -> str:
    """`pods` for the core group, `deployments.apps` for a named group."""
    return f"{resource}.{group}" if group else resource
