"""Container logs of the simulated cluster, and the `pods/log` subresource that serves them.

What this module is for: a `ContainerLog` holds the lines one container instance wrote (its
startup lines, one line per request its backend served, what `exec` wrote to `/proc/1/fd/1`),
each with the time it was written, and wakes the followers of `kubectl logs -f`. The handler
answers `GET /api/v1/namespaces/{ns}/pods/{name}/log` as kube-apiserver and the kubelet do
(reference `kubernetes-api-wire.md` section 9): `container` (required when the pod has several),
`follow`, `previous`, `timestamps`, `tailLines`, `limitBytes`, `sinceSeconds`/`sinceTime`;
`text/plain` bytes with no framing; errors are the real 400 texts, decided like the kubelet's
`validateContainerLogStatus` from the pod's `containerStatuses` (so the logs of a container in
`CrashLoopBackOff` are those of its last run, as `kubectl logs` shows on a real cluster).
Logs are found by container ID (`containerd://...`), as the kubelet finds them.
It may import trio and the fake's core modules; it never touches sockets itself.
"""

from __future__ import annotations

import calendar
import re
import time as _time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import trio

from rxkube.fakes._errors import StatusCause, StatusError
from rxkube.fakes._http import Response, StreamResponse

__all__ = ["ContainerLog"]

MAX_LINES = 10_000
"""Lines kept per container instance (the kubelet rotates at 10 MiB; we count lines)."""


def log_timestamp(unix_ns: int) -> str:
    """RFC 3339 with exactly nine fractional digits (kubelet `RFC3339NanoFixed`)."""
    seconds, nanos = divmod(unix_ns, 1_000_000_000)
    return _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(seconds)) + f".{nanos:09d}Z"


class ContainerLog:
    """What one container instance wrote: lines with their time, bounded, followable.

    `write` takes bytes or text; each line (split at `\\n`) is kept with the time of the write
    (a trailing piece without a newline becomes a line of its own). `close()` marks the end
    of the instance: followers finish.
    """

    def __init__(self, *, now: Callable[[], float] = _time.time, max_lines: int = MAX_LINES):
        self.now = now
        self.max_lines = max_lines
        self.entries: deque[tuple[int, bytes]] = deque()
        self.dropped = 0
        self.closed = False
        self._changed = trio.Event()

    def write(self, data: bytes | str) -> None:
        if self.closed:
            return
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if not payload:
            return
        stamp = int(self.now() * 1_000_000_000)
        for line in payload.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                line += b"\n"
            self.entries.append((stamp, line))
        while len(self.entries) > self.max_lines:
            self.entries.popleft()
            self.dropped += 1
        self._wake()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def text(self) -> str:
        """Everything kept, as text (for tests and notebooks)."""
        return b"".join(line for _, line in self.entries).decode(errors="replace")

    def lines(self) -> list[str]:
        return [line.decode(errors="replace").rstrip("\n") for _, line in self.entries]

    async def wait_for(self, predicate: Callable[[ContainerLog], bool]) -> None:
        """Wait until `predicate(self)` holds (checked after every write)."""
        while not predicate(self):
            await self._changed.wait()

    async def follow(self, start: int) -> AsyncIterator[tuple[int, bytes]]:
        """Entries from absolute index `start` on, then new ones until `close()`."""
        index = start
        while True:
            first = max(index - self.dropped, 0)
            index = max(index, self.dropped)
            batch = list(self.entries)[first:]
            for entry in batch:
                yield entry
            index += len(batch)
            if self.closed and index - self.dropped >= len(self.entries):
                return
            if index - self.dropped < len(self.entries):
                continue
            await self._changed.wait()


class LogSource(Protocol):
    """Where the handler finds a container instance's log: by its container ID."""

    def log_for(self, container_id: str) -> ContainerLog | None: ...


# -- the pods/log subresource -------------------------------------------------------------


def _bool(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name)
    if value in (None, "", "false", "0", "False"):
        return False
    if value in ("true", "1", "True"):
        return True
    raise StatusError.bad_request(f'invalid boolean value for {name}: "{value}"')


def _int(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    assert value is not None
    try:
        return int(value)
    except ValueError:
        raise StatusError.bad_request(
            f'strconv.ParseInt: parsing "{value}": invalid syntax'
        ) from None


def _parse_time(text: str) -> float:
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})", text)
    if match is None:
        raise StatusError.bad_request(
            f'parsing time "{text}" as "2006-01-02T15:04:05Z07:00": cannot parse'
        )
    base = calendar.timegm(_time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    fraction = float(match.group(2) or 0)
    zone = match.group(3)
    offset = 0
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return base + fraction - offset


def container_names(pod: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    spec = pod.get("spec") or {}
    names = [str(c.get("name")) for c in spec.get("containers") or () if isinstance(c, dict)]
    inits = [str(c.get("name")) for c in spec.get("initContainers") or () if isinstance(c, dict)]
    return names, inits


def pick_container(pod: Mapping[str, Any], requested: str) -> str:
    """The container a log/exec request means, or the apiserver's 400 for a bad choice."""
    name = str((pod.get("metadata") or {}).get("name") or "")
    names, inits = container_names(pod)
    if not requested:
        if len(names) == 1:
            return names[0]
        default = ((pod.get("metadata") or {}).get("annotations") or {}).get(
            "kubectl.kubernetes.io/default-container"
        )
        if default in names:
            return str(default)
        message = (
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        )
        if inits:
            message += f" or one of the init containers: [{' '.join(inits)}]"
        raise StatusError.bad_request(message)
    if requested not in names and requested not in inits:
        raise StatusError.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def _status_of(pod: Mapping[str, Any], container: str) -> Mapping[str, Any] | None:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for item in status.get(key) or ():
            if isinstance(item, dict) and item.get("name") == container:
                return item
    return None


def container_id_for_logs(pod: Mapping[str, Any], container: str, previous: bool) -> str:
    """The container ID whose logs to serve (kubelet `validateContainerLogStatus`)."""
    pod_name = str((pod.get("metadata") or {}).get("name") or "")
    status = _status_of(pod, container)
    if status is None:
        raise StatusError.bad_request(
            f'container "{container}" in pod "{pod_name}" is waiting to start: ContainerCreating'
        )
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated")
    if previous:
        if not last or not last.get("containerID"):
            raise StatusError.bad_request(
                f'previous terminated container "{container}" in pod "{pod_name}" not found'
            )
        return str(last["containerID"])
    if "running" in state:
        return str(status.get("containerID") or "")
    terminated = state.get("terminated")
    if terminated is not None:
        if terminated.get("containerID"):
            return str(terminated["containerID"])
        if last and last.get("containerID"):
            return str(last["containerID"])
        raise StatusError.bad_request(f'container "{container}" in pod "{pod_name}" is terminated')
    if last is not None:
        if not last.get("containerID"):
            raise StatusError.bad_request(
                f'container "{container}" in pod "{pod_name}" is terminated'
            )
        return str(last["containerID"])
    waiting = state.get("waiting")
    if waiting is not None:
        reason = str(waiting.get("reason") or "")
        text = {
            "ErrImagePull": "image can't be pulled",
            "ImagePullBackOff": "trying and failing to pull image",
        }.get(reason, reason)
        raise StatusError.bad_request(
            f'container "{container}" in pod "{pod_name}" is waiting to start: {text}'
        )
    raise StatusError.bad_request(
        f'container "{container}" in pod "{pod_name}" is waiting to start - no logs yet'
    )


def _invalid_options(pod_name: str, field: str, message: str) -> StatusError:
    return StatusError.invalid(
        "PodLogOptions", "", pod_name, [StatusCause("FieldValueInvalid", message, field)]
    )


async def serve_pod_log(
    pod: Mapping[str, Any], query: Mapping[str, str], source: LogSource, *, now: float
) -> Response | StreamResponse:
    """The answer to a `pods/log` GET for `pod` (already read from the store)."""
    pod_name = str((pod.get("metadata") or {}).get("name") or "")
    follow = _bool(query, "follow")
    previous = _bool(query, "previous")
    timestamps = _bool(query, "timestamps")
    tail = _int(query, "tailLines")
    limit = _int(query, "limitBytes")
    since_seconds = _int(query, "sinceSeconds")
    since_time = query.get("sinceTime") or None
    if tail is not None and tail < 0:
        raise _invalid_options(
            pod_name, "tailLines", f"Invalid value: {tail}: must be greater than or equal to 0"
        )
    if limit is not None and limit < 1:
        raise _invalid_options(
            pod_name, "limitBytes", f"Invalid value: {limit}: must be greater than 0"
        )
    if since_seconds is not None and since_seconds < 1:
        raise _invalid_options(
            pod_name, "sinceSeconds", f"Invalid value: {since_seconds}: must be greater than 0"
        )
    if since_seconds is not None and since_time is not None:
        raise StatusError.invalid(
            "PodLogOptions",
            "",
            pod_name,
            [
                StatusCause(
                    "FieldValueForbidden",
                    "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
                    "",
                )
            ],
        )
    container = pick_container(pod, query.get("container") or "")
    if not (pod.get("spec") or {}).get("nodeName"):
        # kube-apiserver: a pod with no host has an empty log location: 200, no bytes.
        return Response(200, b"", content_type="text/plain")
    container_id = container_id_for_logs(pod, container, previous)
    log = source.log_for(container_id)
    if log is None:
        return Response(200, b"", content_type="text/plain")
    cutoff_ns = 0
    if since_seconds is not None:
        cutoff_ns = int((now - since_seconds) * 1_000_000_000)
    elif since_time is not None:
        cutoff_ns = int(_parse_time(since_time) * 1_000_000_000)
    return StreamResponse(
        200,
        _log_body(
            log, follow=follow, tail=tail, limit=limit, cutoff_ns=cutoff_ns, timestamps=timestamps
        ),
        content_type="text/plain",
    )


async def _log_body(
    log: ContainerLog,
    *,
    follow: bool,
    tail: int | None,
    limit: int | None,
    cutoff_ns: int,
    timestamps: bool,
) -> AsyncIterator[bytes]:
    entries = [e for e in log.entries if e[0] >= cutoff_ns]
    # Following goes on from where this snapshot ends, not from where the log ends once the
    # first chunk has been sent: a line written while it was on its way would be skipped.
    start = log.dropped + len(log.entries)
    if tail is not None:
        entries = entries[-tail:] if tail else []
    remaining = limit

    def render(stamp: int, line: bytes) -> bytes:
        return (log_timestamp(stamp).encode() + b" " + line) if timestamps else line

    chunk = b"".join(render(stamp, line) for stamp, line in entries)
    if remaining is not None:
        chunk = chunk[:remaining]
        remaining -= len(chunk)
    if chunk:
        yield chunk
    if not follow or (remaining is not None and remaining <= 0):
        return
    async for stamp, line in log.follow(start):
        data = render(stamp, line)
        if remaining is not None:
            data = data[:remaining]
            remaining -= len(data)
        yield data
        if remaining is not None and remaining <= 0:
            return
