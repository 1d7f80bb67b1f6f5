"""The orchestrator's own typed errors (the API's are `rxkube.streams`' `ApiError` family).

What this module is for: the outcomes a caller of the orchestrator handles differently and the
API server never names: a wait or an exec that ran out of time (`TimedOut`), a command whose
exit status was not zero (`ExecFailed`), a sink whose bounded queue was full (`SinkOverflow`),
an ingress without a rule for a host (`RuleNotFound`, a `NotFound`), a wait told to fail on an
empty selection (`NothingSelected`, a `NotFound`), a pod without an IP (`NoPodIP`). Errors the
API server reports (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `Forbidden`, ...) are
the client's, carrying the server's `Status`, and are not wrapped. Pure: no I/O.
"""

from __future__ import annotations

from rxkube.streams._errors import KubeError, NotFound
from rxkube.streams._types import Status

__all__ = [
    "ExecFailed",
    "NoPodIP",
    "NothingSelected",
    "RuleNotFound",
    "SinkOverflow",
    "TimedOut",
]


def not_found_status(message: str, *, kind: str, name: str) -> Status:
    """A `Status` shaped like the API server's 404 (wire reference 2.3), for the orchestrator's
    own "not found" outcomes, so every `NotFound` carries a Status."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "NotFound",
        "details": {"name": name, "kind": kind},
        "code": 404,
    }


class TimedOut(KubeError, TimeoutError):
    """A wait or an exec did not finish within its timeout.

    `what` names the operation; `timeout` is the limit in seconds; `detail` says how far it got
    (for a wait: which objects did not satisfy the condition yet, and the watch's last error).
    """

    def __init__(self, what: str, timeout: float, detail: str = "") -> None:
        self.what = what
        self.timeout = timeout
        self.detail = detail
        suffix = f": {detail}" if detail else ""
        super().__init__(f"timed out after {timeout:g} s {what}{suffix}")


class ExecFailed(KubeError):
    """A command run in a container failed.

    `exit_code` is its exit status (None when the container runtime failed to run it at all:
    then `status` says why); `stdout` and `stderr` are what it wrote (stderr at most the last
    64 KiB when streamed); `status` is the `Status` the server sent on the error channel.
    """

    def __init__(
        self,
        *,
        pod: str,
        command: tuple[str, ...],
        exit_code: int | None,
        status: Status,
        stdout: bytes = b"",
        stderr: bytes = b"",
    ) -> None:
        self.pod = pod
        self.command = command
        self.exit_code = exit_code
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        text = stderr.decode("utf-8", "replace").strip()
        tail = f"; stderr: {text[-500:]}" if text else ""
        if exit_code is None:
            why = status.get("message") or "the exec failed without an exit status"
            super().__init__(f"exec {list(command)} in pod {pod}: {why}{tail}")
        else:
            super().__init__(
                f"exec {list(command)} in pod {pod} exited with status {exit_code}{tail}"
            )


class SinkOverflow(KubeError):
    """A command was sent (`on_next`) to a sink whose queue already held `max_pending`
    commands. The command was not queued; its `Failed` outcome carries this error too."""


class RuleNotFound(NotFound):
    """The ingress (or Gloo VirtualService) has no rule (virtual host domain) for the host."""


class NothingSelected(NotFound):
    """A wait with `fail_if_empty=True` found no object matching its selector."""


class NoPodIP(KubeError):
    """The pod has no IP yet (wait for `Condition.HAS_IP` first)."""
