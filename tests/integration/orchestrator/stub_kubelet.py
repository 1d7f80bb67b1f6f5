"""A stand-in kubelet for protocol edge cases the simulated cluster does not produce.

What this module is for: on a fake API server without the simulation, `StubKubelet` serves
`pods/exec` (registered with the fake's `add_subresource` extension point) so the orchestrator's
real client code meets what real servers may do (wire reference section 10): a server that
speaks only `v4.channel.k8s.io`, a runtime that cannot start a command (a Failure Status with no
exit code), output split in many messages, a command that runs until the client hangs up. The
commands run on a tiny interpreter over an in-memory file system per pod.

It also plays the kubelet's status writes (`set_pod_status`) and makes nodes (`make_node`), for
tests that need each step of a watch to be exact.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio
import wsproto
import wsproto.events as ws_events
from wsproto.connection import Connection, ConnectionState

from rxkube.fakes import (
    FakeApiServer,
    RequestContext,
    StatusError,
    Subresource,
    Upgrade,
)
from rxkube.fakes._http import AnyResponse
from rxkube.streams.orchestrator._websocket import accept_key

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"


@dataclass
class Container:
    """What a stub container holds: its files."""

    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Result:
    stdout: bytes = b""
    stderr: bytes = b""
    code: int | None = 0
    runtime_error: str = ""


class StubKubelet:
    """Serves exec for pods in the fake's store from per-container state."""

    def __init__(self, server: FakeApiServer, *, protocols: tuple[str, ...] = (V5, V4)) -> None:
        self.server = server
        self.protocols = protocols
        self.containers: dict[tuple[str, str, str], Container] = {}
        self.execs: list[tuple[str, tuple[str, ...], str]] = []
        self.hung_up = trio.Event()  # a client left an exec that was still running
        server.api.add_subresource(
            "pods", Subresource("exec", ("create", "get"), kind="PodExecOptions"), self._exec
        )

    def container(self, pod: str, name: str = "app", namespace: str = "default") -> Container:
        return self.containers.setdefault((namespace, pod, name), Container())

    def _resolve(self, ctx: RequestContext) -> tuple[Container, str]:
        pod = ctx.store.get("pods", ctx.namespace, ctx.name)  # 404 when absent
        names = [c["name"] for c in pod["spec"]["containers"]]
        name = ctx.request.query.get("container") or ""
        if not name:
            if len(names) != 1:
                raise StatusError.bad_request(
                    f"a container name must be specified for pod {ctx.name}, "
                    f"choose one of: [{' '.join(names)}]"
                )
            name = names[0]
        if name not in names:
            raise StatusError.bad_request(f"container {name} is not valid for pod {ctx.name}")
        return self.container(ctx.name, name, ctx.namespace), name

    # -- exec --------------------------------------------------------------------------------------

    async def _exec(self, ctx: RequestContext) -> AnyResponse:
        request = ctx.request
        if request.header("upgrade").lower() != "websocket":
            raise StatusError.bad_request("exec needs a WebSocket upgrade")
        offered = [p.strip() for p in request.header("sec-websocket-protocol").split(",")]
        chosen = next((p for p in offered if p in self.protocols), None)
        if chosen is None:
            raise StatusError.bad_request(f"no supported subprotocol in {offered}")
        container, _ = self._resolve(ctx)
        argv = tuple(v for k, v in request.query_list if k == "command")
        wants_stdin = request.query.get("stdin") == "true"
        self.execs.append((ctx.name, argv, chosen))
        key = request.header("sec-websocket-key")

        async def run(stream: trio.abc.Stream, trailing: bytes) -> None:
            connection = Connection(wsproto.ConnectionType.SERVER)
            if trailing:
                connection.receive_data(trailing)

            async def send(channel: int, payload: bytes) -> None:
                message = ws_events.BytesMessage(data=bytes([channel]) + payload)
                await stream.send_all(connection.send(message))

            await send(1, b"")  # readiness: an empty message on the lowest output channel
            stdin = bytearray()
            if wants_stdin:
                done = False
                pending = list(connection.events())
                while not done:
                    while not pending:
                        data = await stream.receive_some(65536)
                        if not data:
                            return
                        connection.receive_data(bytes(data))
                        pending = list(connection.events())
                    event = pending.pop(0)
                    if isinstance(event, ws_events.BytesMessage):
                        if event.data[:1] == b"\x00":
                            stdin += event.data[1:]
                        elif event.data == b"\xff\x00":
                            done = True
            if argv == ("sleep", "infinity"):
                # Runs until the client goes away.
                while await stream.receive_some(65536):
                    pass
                self.hung_up.set()
                return
            result = run_command(container, argv, bytes(stdin))
            # Output in several messages, as a real runtime streams it.
            for start in range(0, len(result.stdout), 7):
                await send(1, result.stdout[start : start + 7])
            if result.stderr:
                await send(2, result.stderr)
            await send(3, orjson.dumps(_status(result, argv)))
            await stream.send_all(connection.send(ws_events.CloseConnection(code=1000)))
            with trio.move_on_after(2):
                while connection.state is not ConnectionState.CLOSED:
                    data = await stream.receive_some(65536)
                    if not data:
                        break
                    connection.receive_data(bytes(data))
                    list(connection.events())
            await stream.aclose()

        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key)),
            ("Sec-WebSocket-Protocol", chosen),
        ]
        return Upgrade(headers, run)


def _status(result: Result, argv: tuple[str, ...]) -> dict[str, Any]:
    if result.runtime_error:
        return {
            "metadata": {},
            "status": "Failure",
            "message": f"Internal error occurred: error executing command in container: "
            f"{result.runtime_error}",
            "reason": "InternalError",
            "details": {"causes": [{"message": result.runtime_error}]},
            "code": 500,
        }
    if result.code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command "
        f"{list(argv)}, exit code {result.code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(result.code)}]},
    }


BINARIES = ("cat", "echo", "sh", "ls", "true", "false")


def run_command(container: Container, argv: tuple[str, ...], stdin: bytes) -> Result:
    """A tiny interpreter: `cat`, `echo`, `ls`, `true`, `false` and `sh -c SCRIPT` where a
    script is statements separated by `;` or newlines, each one of those commands, `exit N`,
    with `> FILE` or `>&2` redirections."""
    if argv[0] not in BINARIES:
        return Result(
            code=None,
            runtime_error=f'exec: "{argv[0]}": executable file not found in $PATH',
        )
    if argv[0] == "sh":
        if len(argv) != 3 or argv[1] != "-c":
            return Result(stderr=b"sh: usage: sh -c SCRIPT\n", code=2)
        out = Result()
        for statement in argv[2].replace("\n", ";").split(";"):
            words = shlex.split(statement)
            if not words:
                continue
            if words[0] == "exit":
                out.code = int(words[1]) if len(words) > 1 else 0
                return out
            step = _simple(container, words, stdin)
            out.stdout += step.stdout
            out.stderr += step.stderr
            out.code = step.code
        return out
    return _simple(container, list(argv), stdin)


def _simple(container: Container, words: list[str], stdin: bytes) -> Result:
    target = ""
    to_stderr = False
    if ">&2" in words:
        words.remove(">&2")
        to_stderr = True
    if ">" in words:
        index = words.index(">")
        target = words[index + 1]
        words = words[:index]
    command, args = words[0], words[1:]
    result = Result()
    if command == "echo":
        result.stdout = (" ".join(args) + "\n").encode()
    elif command == "cat":
        if not args:
            result.stdout = stdin
        for path in args:
            if path in container.files:
                result.stdout += container.files[path]
            else:
                result.stderr += f"cat: {path}: No such file or directory\n".encode()
                result.code = 1
    elif command == "ls":
        directory = (args[0] if args else "/").rstrip("/") + "/"
        names = sorted(p[len(directory) :] for p in container.files if p.startswith(directory))
        result.stdout = "".join(f"{n}\n" for n in names).encode()
    elif command == "false":
        result.code = 1
    elif command != "true":
        result.stderr = f"sh: {command}: not found\n".encode()
        result.code = 127
    if target:
        container.files[target] = result.stdout
        result.stdout = b""
    if to_stderr:
        result.stderr, result.stdout = result.stderr + result.stdout, b""
    return result


def set_pod_status(
    server: FakeApiServer,
    name: str,
    *,
    phase: str = "Running",
    ready: bool = True,
    ip: str | None = "10.244.0.7",
    namespace: str = "default",
) -> None:
    """Write a pod's status as a kubelet would (phase, Ready condition, IP)."""
    pod = server.store.get("pods", namespace, name)
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [
            {"type": "Ready", "status": "True" if ready else "False"},
        ],
    }
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    pod["status"] = status
    server.store.update("pods", pod, namespace=namespace, subresource="status")


def make_node(server: FakeApiServer, name: str, *, ready: bool, labels: dict[str, str]) -> None:
    """Create (or update) a node with the Ready condition set."""
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }
    try:
        current = server.store.get("nodes", "", name)
    except StatusError:
        server.store.create("nodes", node)
        return
    current["status"] = node["status"]
    server.store.update("nodes", current, subresource="status")
