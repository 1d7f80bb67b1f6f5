"""`pods/exec` and `pods/attach` over WebSocket: the channel protocols kubectl speaks.

What this module is for: answering `GET /api/v1/namespaces/{ns}/pods/{name}/exec?command=...`
as kube-apiserver and the kubelet's streaming server do (reference `kubernetes-api-wire.md`
section 10): the WebSocket handshake selecting the first sub-protocol the client offers that
the server supports (`v5.channel.k8s.io`, `v4.channel.k8s.io`, `v3`, `v2`, `channel.k8s.io`,
and the `base64` variants), an empty message on the lowest writable channel once ready, then
binary messages of one channel byte plus payload: stdin 0 (client to server), stdout 1,
stderr 2, the status on 3 (a `Status` JSON for v4 and v5, plain text before), resize 4, and
for v5 the close signal 255 (`FF 00` = stdin is finished). The command runs in the simulated
container (`_sim_shell`); its exit code travels as the `NonZeroExitCode` Status that makes
kubectl exit with it. Errors found before the upgrade are ordinary HTTP Status answers.
SPDY (kubectl's fallback) is not spoken: such a request gets a 400 that says so.

`pods/attach` (`kubectl attach POD [-c C] [-i]`) takes the same query minus `command` and the
same handshake; it streams what the container's main process writes to its log from now on
(`ContainerLog.follow` from the current end) on stdout, until the client leaves or the
container stops (its log closes), then sends the Success status. The simulated main process
reads no input: with `-i` the client's stdin is accepted and discarded.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson
import trio

from rxkube.fakes._errors import StatusError
from rxkube.fakes._http import Request, Response, Upgrade
from rxkube.fakes._logs import ContainerLog, pick_container
from rxkube.fakes._sim_shell import IO, Input
from rxkube.fakes._websocket import (
    WebSocket,
    handshake_headers,
    is_websocket_upgrade,
    offered_protocols,
)

__all__: list[str] = []

logger = logging.getLogger("rxkube.fakes")

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
MAX_MESSAGE: Final = 32 * 1024

# The order is the server's preference only when a client offers nothing.
PROTOCOLS: Final = {
    "v5.channel.k8s.io": (5, False),
    "v4.channel.k8s.io": (4, False),
    "v3.channel.k8s.io": (3, False),
    "v2.channel.k8s.io": (2, False),
    "channel.k8s.io": (1, False),
    "v5.base64.channel.k8s.io": (5, True),
    "v4.base64.channel.k8s.io": (4, True),
    "base64.channel.k8s.io": (1, True),
}


class ExecTarget(Protocol):
    """A running container that can run a command (the kubelet's `SimContainer`)."""

    running: bool

    async def run(self, argv: list[str], io: IO, *, tty: bool = False) -> int: ...


class AttachTarget(Protocol):
    """A running container whose main process's output can be followed (`SimContainer`)."""

    running: bool
    log: ContainerLog


FindContainer = Callable[[str, str, str, str], ExecTarget | None]
"""(namespace, pod name, pod uid, container) -> the container, or None if not simulated."""


@dataclass(frozen=True, slots=True)
class ExecOptions:
    command: list[str]
    container: str
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def _flag(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name)
    if value in (None, "", "false", "0", "False"):
        return False
    if value in ("true", "1", "True"):
        return True
    raise StatusError.bad_request(f'invalid boolean value for {name}: "{value}"')


def exec_options(request: Request) -> ExecOptions:
    query = request.query
    command = [v for k, v in request.query_list if k == "command"]
    tty = _flag(query, "tty")
    options = ExecOptions(
        command,
        query.get("container") or "",
        _flag(query, "stdin"),
        _flag(query, "stdout"),
        _flag(query, "stderr") and not tty,
        tty,
    )
    if not (options.stdin or options.stdout or options.stderr):
        raise StatusError.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return options


def _handshake(
    request: Request, pod: Mapping[str, Any], options: ExecOptions, verb: str
) -> tuple[str, int, bool, str]:
    """Checks made before the upgrade (pod bound and not finished, a WebSocket request with a
    protocol we speak): the chosen protocol, its version, whether base64, the container."""
    meta = pod.get("metadata") or {}
    name = str(meta.get("name") or "")
    container = pick_container(pod, options.container)
    if not (pod.get("spec") or {}).get("nodeName"):
        raise StatusError.bad_request(f"pod {name} does not have a host assigned")
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise StatusError.bad_request(
            f"cannot {verb} into a container in a completed pod; current phase is {phase}"
        )
    if verb == "exec" and not options.command:
        raise StatusError.bad_request("you must specify at least one command for the container")
    headers = request.headers
    if not is_websocket_upgrade(headers):
        if "spdy" in headers.get("upgrade", "").lower():
            raise StatusError.bad_request(
                "the rxkube fake API server does not speak SPDY; exec over WebSockets "
                "(Sec-WebSocket-Protocol: v5.channel.k8s.io) instead"
            )
        raise StatusError.bad_request("Upgrade request required")
    offered = offered_protocols(headers) or [""]
    chosen = next((p for p in offered if p in PROTOCOLS or p == ""), None)
    if chosen is None:
        raise StatusError.bad_request(
            f"requested protocol(s) are not supported: [{' '.join(offered)}]; supports "
            f"[{' '.join(PROTOCOLS)}]"
        )
    version, encoded = PROTOCOLS.get(chosen, (1, False))
    return chosen, version, encoded, container


def serve_exec(request: Request, pod: Mapping[str, Any], find: FindContainer) -> Response | Upgrade:
    """The answer to an exec request for `pod` (read from the store already)."""
    options = exec_options(request)
    chosen, version, encoded, container = _handshake(request, pod, options, "exec")
    meta = pod.get("metadata") or {}
    name = str(meta.get("name") or "")
    target = find(str(meta.get("namespace") or ""), name, str(meta.get("uid") or ""), container)

    async def session(stream: trio.abc.Stream, trailing: bytes) -> None:
        ws = WebSocket(stream, trailing)
        try:
            await _session(ws, version, encoded, options, target, container)
        finally:
            await ws.close()

    return Upgrade(handshake_headers(request.headers, chosen or None), session)


FindAttached = Callable[[str, str, str, str], AttachTarget | None]


def serve_attach(
    request: Request, pod: Mapping[str, Any], find: FindAttached
) -> Response | Upgrade:
    """The answer to an attach request for `pod` (read from the store already)."""
    options = exec_options(request)
    chosen, version, encoded, container = _handshake(request, pod, options, "attach")
    meta = pod.get("metadata") or {}
    name = str(meta.get("name") or "")
    target = find(str(meta.get("namespace") or ""), name, str(meta.get("uid") or ""), container)

    async def session(stream: trio.abc.Stream, trailing: bytes) -> None:
        ws = WebSocket(stream, trailing)
        try:
            await _attach_session(ws, version, encoded, options, target, container)
        finally:
            await ws.close()

    return Upgrade(handshake_headers(request.headers, chosen or None), session)


async def _attach_session(
    ws: WebSocket,
    version: int,
    encoded: bool,
    options: ExecOptions,
    target: AttachTarget | None,
    container: str,
) -> None:
    channels = _Channels(ws, version, encoded, options.tty)
    ready = STDOUT if options.stdout else STDERR if options.stderr else ERROR
    await channels.send(ready, b"")
    if target is None or not target.running:
        if version >= 4:
            message = f'container "{container}" is not running'
            await channels.send(ERROR, orjson.dumps(_internal(message)))
        return
    log = target.log
    gone = trio.Event()

    async def drain(scope: trio.CancelScope) -> None:
        """Client messages (stdin is read and dropped); the client leaving ends the attach."""
        while await ws.receive() is not None:
            pass
        gone.set()
        scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, nursery.cancel_scope)
        # Only what is written from now on, as a real attach (history is `kubectl logs`).
        async for _stamp, line in log.follow(log.dropped + len(log.entries)):
            if options.stdout:
                await channels.send(STDOUT, line)
        nursery.cancel_scope.cancel()
    if not gone.is_set() and version >= 4:
        await channels.send(ERROR, orjson.dumps({"metadata": {}, "status": "Success"}))


class _Channels:
    def __init__(self, ws: WebSocket, version: int, encoded: bool, tty: bool) -> None:
        self.ws = ws
        self.version = version
        self.encoded = encoded
        self.tty = tty

    async def send(self, channel: int, data: bytes) -> None:
        if self.tty and channel == STDOUT:
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        for start in range(0, max(len(data), 1), MAX_MESSAGE):
            chunk = data[start : start + MAX_MESSAGE]
            if self.encoded:
                await self.ws.send(str(channel) + base64.b64encode(chunk).decode())
            else:
                await self.ws.send(bytes([channel]) + chunk)

    def decode(self, message: bytes | str) -> tuple[int, bytes] | None:
        if self.encoded:
            text = message.decode("latin-1") if isinstance(message, bytes) else message
            if not text or not text[0].isdigit():
                return None
            try:
                return int(text[0]), base64.b64decode(text[1:])
            except ValueError:
                return None
        if isinstance(message, str):
            # The server side reads frames as bytes whatever their opcode (the official
            # Python client sends text frames): the first byte is the channel.
            message = message.encode()
        if not message:
            return None
        return message[0], message[1:]


def _failure(argv: list[str], code: int) -> dict[str, Any]:
    shown = " ".join(argv)
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: error executing command [{shown}], "
            f"exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def _internal(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {message}",
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


async def _session(
    ws: WebSocket,
    version: int,
    encoded: bool,
    options: ExecOptions,
    target: ExecTarget | None,
    container: str,
) -> None:
    channels = _Channels(ws, version, encoded, options.tty)
    ready = STDOUT if options.stdout else STDERR if options.stderr else ERROR
    await channels.send(ready, b"")

    async def report(status: dict[str, Any]) -> None:
        if version >= 4:
            await channels.send(ERROR, orjson.dumps(status))
        elif status["status"] != "Success":
            await channels.send(ERROR, str(status.get("message", "")).encode())

    if target is None or not target.running:
        await report(
            _internal(
                "error executing command in container: failed to exec in container: "
                f'container "{container}" is not running'
            )
        )
        return
    send_stdin, receive_stdin = trio.open_memory_channel[bytes](16)
    gone = trio.Event()

    async def pump(scope: trio.CancelScope) -> None:
        """Client messages: stdin, resize, close signals; the client leaving ends it all."""
        stdin_open = options.stdin
        try:
            while True:
                message = await ws.receive()
                if message is None:
                    gone.set()
                    scope.cancel()
                    return
                decoded = channels.decode(message)
                if decoded is None:
                    continue
                channel, payload = decoded
                if channel == STDIN and stdin_open and payload:
                    await send_stdin.send(payload)
                elif (
                    channel == CLOSE
                    and version >= 5
                    and payload[:1] == bytes([STDIN])
                    and stdin_open
                ):
                    stdin_open = False
                    await send_stdin.aclose()
        finally:
            await send_stdin.aclose()

    async def source() -> bytes:
        try:
            return await receive_stdin.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            return b""

    async def stdout(data: bytes) -> None:
        if options.stdout and data:
            await channels.send(STDOUT, data)

    async def stderr(data: bytes) -> None:
        if data:
            if options.stderr:
                await channels.send(STDERR, data)
            elif options.tty and options.stdout:
                await channels.send(STDOUT, data)

    stdin = Input(source) if options.stdin else Input.of(b"")
    code: int | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump, nursery.cancel_scope)
        try:
            code = await target.run(options.command, IO(stdin, stdout, stderr), tty=options.tty)
        except Exception as error:  # a bug in the simulated command: report, keep serving
            logger.exception("exec %s failed", options.command)
            await report(_internal(f"error executing command in container: {error}"))
            nursery.cancel_scope.cancel()
            return
        nursery.cancel_scope.cancel()
    if gone.is_set() or code is None:
        return
    await report(
        {"metadata": {}, "status": "Success"} if code == 0 else _failure(options.command, code)
    )
