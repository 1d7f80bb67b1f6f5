"""Exec in a container over the WebSocket channel protocol (wire reference section 10).

What this module is for: `pods.exec`, `pods.exec_script` and `pods.read_file`. Cloudsim ran its
commands over SPDY and threw the output of a successful command away; here the output is the
point: stdout and stderr stream out as they arrive and the stream ends with the exit status.

The protocol: `GET .../pods/{name}/exec?command=..&container=..&stdout=true&stderr=true
[&stdin=true]` upgraded to a WebSocket offering `v5.channel.k8s.io` then `v4.channel.k8s.io`
(the server picks the first it speaks: that is the fallback). Every binary message is one
channel byte and a payload: 0 stdin (to the server), 1 stdout, 2 stderr, 3 the final `Status`
(JSON), 255 close (v5 only: `FF 00` says stdin is finished). The server first sends an empty
message on the lowest output channel (readiness), which is skipped. The exit status is 0 for
`"status": "Success"`, the `ExitCode` cause for reason `NonZeroExitCode`; any other failure
(the runtime could not start the command) has no exit code.

stdin is sent whole before output is read (it is for scripts and small files, not for
interactive streams), then closed; only v5 can say "stdin is finished", so with stdin a server
that picks v4 is refused with a clear error. The decoding functions are pure; `exec_events` does
the I/O. It may import the client, errors, resources and types modules of `rxkube.streams`.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

import orjson
import trio

from rxkube.streams._client import KubeClient
from rxkube.streams._errors import KubeError
from rxkube.streams._resources import PODS
from rxkube.streams._types import Status
from rxkube.streams.orchestrator._errors import ExecFailed, TimedOut
from rxkube.streams.orchestrator._websocket import open_websocket

__all__ = ["ExecEvent", "ExecExit", "ExecOutput", "ExecResult"]

V5: Final = "v5.channel.k8s.io"
V4: Final = "v4.channel.k8s.io"
PROTOCOLS: Final = (V5, V4)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
_STDIN_CHUNK: Final = 32 * 1024
_STDERR_KEPT: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class ExecOutput:
    """Bytes the command wrote to `stdout` or `stderr`, as they arrived."""

    channel: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True, slots=True)
class ExecExit:
    """The command ended: `exit_code` (0 is success) and the server's `Status`."""

    exit_code: int
    status: Status


ExecEvent: TypeAlias = ExecOutput | ExecExit


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What `await cluster.pods.exec(...)` returns: all output and the exit status."""

    stdout: bytes
    stderr: bytes
    exit_code: int

    @property
    def text(self) -> str:
        """stdout as text (UTF-8, undecodable bytes replaced)."""
        return self.stdout.decode("utf-8", "replace")


def parse_status(payload: bytes) -> Status:
    """The Status JSON of channel 3 (a plain-text payload, as v1-v3 servers send, becomes a
    Failure Status carrying the text)."""
    try:
        decoded = orjson.loads(payload)
    except orjson.JSONDecodeError:
        decoded = None
    if isinstance(decoded, dict):
        return decoded  # type: ignore[return-value]
    return {
        "status": "Failure",
        "message": payload.decode("utf-8", "replace").strip(),
        "reason": "InternalError",
    }


def exit_code_of(status: Status) -> int | None:
    """0 for Success, the `ExitCode` cause for NonZeroExitCode, None for other failures
    (client-go's `remotecommand` reads it the same way)."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in status.get("details", {}).get("causes", ()):
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", ""))
                except ValueError:
                    return None
    return None


async def exec_events(
    client: KubeClient,
    *,
    namespace: str,
    pod: str,
    command: Sequence[str],
    container: str | None,
    stdin: bytes | None,
    check: bool,
    time_limit: float | None = None,
) -> AsyncIterator[ExecEvent]:
    """Run `command` in the pod and yield its output, then its `ExecExit` (see module
    docstring). With `check`, a non-zero exit raises `ExecFailed` after the `ExecExit`; a
    failure without an exit code always raises it. After `time_limit` seconds (from the start)
    the connection is closed and `TimedOut` raised."""
    argv = tuple(command)
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"exec needs a non-empty command of strings, got {command!r}")
    params: dict[str, str | bool | Sequence[str] | None] = {
        "command": list(argv),
        "container": container,
        "stdin": True if stdin is not None else None,
        "stdout": True,
        "stderr": True,
    }
    stderr_tail = bytearray()
    status: Status | None = None
    # The deadline applies to each wait, never across a `yield` (the consumer's time between
    # items counts, but no cancel scope is left open while the generator is suspended).
    deadline = trio.current_time() + time_limit if time_limit is not None else math.inf
    try:
        async with AsyncExitStack() as stack:
            with trio.fail_at(deadline):
                socket = await stack.enter_async_context(
                    open_websocket(
                        client,
                        PODS.object_path(pod, namespace, "exec"),
                        params=params,
                        subprotocols=PROTOCOLS,
                        verb="create",
                        resource="pods/exec",
                        namespace=namespace,
                    )
                )
            if stdin is not None:
                if socket.subprotocol != V5:
                    raise KubeError(
                        f"exec in pod {pod}: the server speaks {socket.subprotocol}, which "
                        "cannot signal the end of stdin; stdin needs v5.channel.k8s.io "
                        "(Kubernetes 1.30+)"
                    )
                with trio.fail_at(deadline):
                    for start in range(0, len(stdin), _STDIN_CHUNK):
                        await socket.send(bytes([STDIN]) + stdin[start : start + _STDIN_CHUNK])
                    await socket.send(bytes([CLOSE, STDIN]))
            while True:
                with trio.fail_at(deadline):
                    message = await socket.receive()
                if message is None:
                    break
                if not message:
                    continue
                channel, payload = message[0], message[1:]
                if channel == STDOUT and payload:
                    yield ExecOutput("stdout", payload)
                elif channel == STDERR and payload:
                    stderr_tail += payload
                    del stderr_tail[:-_STDERR_KEPT]
                    yield ExecOutput("stderr", payload)
                elif channel == ERROR and payload:
                    status = parse_status(payload)
    except trio.TooSlowError:
        assert time_limit is not None
        raise TimedOut(f"running {list(argv)} in pod {namespace}/{pod}", time_limit) from None
    if status is None:
        raise KubeError(
            f"exec {list(argv)} in pod {pod}: the connection closed without an exit status"
        )
    code = exit_code_of(status)
    if code is None:
        raise ExecFailed(
            pod=pod, command=argv, exit_code=None, status=status, stderr=bytes(stderr_tail)
        )
    yield ExecExit(code, status)
    if check and code != 0:
        raise ExecFailed(
            pod=pod, command=argv, exit_code=code, status=status, stderr=bytes(stderr_tail)
        )


async def collect(events: AsyncIterator[ExecEvent]) -> ExecResult:
    """All of an exec's output and its exit status (raises what the events raise)."""
    stdout = bytearray()
    stderr = bytearray()
    code = 0
    try:
        async for event in events:
            if isinstance(event, ExecOutput):
                (stdout if event.channel == "stdout" else stderr).extend(event.data)
            else:
                code = event.exit_code
    except ExecFailed as failed:
        # The stream keeps only stderr's tail; the collected form has all of both.
        raise ExecFailed(
            pod=failed.pod,
            command=failed.command,
            exit_code=failed.exit_code,
            status=failed.status,
            stdout=bytes(stdout),
            stderr=bytes(stderr),
        ) from None
    return ExecResult(bytes(stdout), bytes(stderr), code)
