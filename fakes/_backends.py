"""Pod networking and the built-in web app every simulated container runs.

What this module is for: making simulated pods reachable by real clients (the ticket proxy,
tests, curl). `PodNetwork` gives each pod an address and binds its declared container ports;
`serve_backend` is the app behind each port: it answers every HTTP request with a JSON echo
naming the pod (and `X-Rxkube-Pod`), echoes WebSocket messages, and writes an access-log
line per request to the container's log. Images are never run.

Addresses. Linux routes all of 127.0.0.0/8 to the loopback interface, so each pod gets its
own 127.B.x.y (B picked at random per simulation, so that simulations running side by side
rarely meet) and every pod of an app listens on the same container port, as in a real
cluster: a client connects to `status.podIP:containerPort`. Where binding 127.0.0.2 fails
(macOS without loopback aliases, some sandboxes), `PodNetwork` falls back to "shared" mode:
every pod's IP is 127.0.0.1 and each container port is bound to a free port, recorded in the
pod annotation `sim.rxkube.io/ports` (JSON, container port -> host port). The same remapping
applies to a single port that cannot be bound (a port below 1024 without privileges, a port
another process holds). `pod_address(pod, port)` reads both and says where to connect.

Why ports are bound at sandbox time but only listened on when the container starts: binding
(without SO_REUSEADDR) claims the address at once, so a clash is found before the pod's IP is
published, and a connection before the container runs is refused, as it would be.

Backend query parameters, for tests of proxies: `?status=503` answers with that status,
`?delay=0.5` waits that long (on the trio clock) before answering.

Pages for browsers (the pod annotation `sim.rxkube.io/page`, in `BackendInfo.page`): with
`"html"`, a GET whose Accept header names text/html gets a small HTML page naming the pod
(what a person sees through the ticket proxy); `"websocket"` adds a script that opens a
WebSocket back to the same path + `ws` and shows the echoes, the way interactive apps keep a
socket open. Everything else, and every other client, still gets the JSON echo.
"""

from __future__ import annotations

import errno
import html
import json
import logging
import random as _random
import socket as _stdlib_socket
import time as _time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import h11
import orjson
import trio

from rxkube.fakes._logs import ContainerLog
from rxkube.fakes._websocket import WebSocket, handshake_headers, is_websocket_upgrade

__all__ = ["pod_address"]

logger = logging.getLogger("rxkube.fakes")

PORTS_ANNOTATION: Final = "sim.rxkube.io/ports"
NetworkMode = Literal["auto", "loopback", "shared"]
BackendPage = Literal["html", "websocket"]
BACKEND_PAGES: Final[tuple[BackendPage, ...]] = ("html", "websocket")
MAX_REQUEST_BODY: Final = 1024 * 1024


def pod_address(pod: Mapping[str, Any], port: int) -> tuple[str, int]:
    """Where to connect to container port `port` of a simulated pod: (podIP, port), or the
    remapped host port from the `sim.rxkube.io/ports` annotation."""
    meta = pod.get("metadata") or {}
    ip = str((pod.get("status") or {}).get("podIP") or "")
    if not ip:
        name = meta.get("name", "?")
        raise LookupError(f"pod {name} has no IP yet (status.podIP is empty)")
    remapped = (meta.get("annotations") or {}).get(PORTS_ANNOTATION)
    if remapped:
        try:
            table = json.loads(remapped)
        except ValueError:
            table = {}
        if str(port) in table:
            return ip, int(table[str(port)])
    return ip, port


def loopback_aliases_work() -> bool:
    """True when addresses of 127/8 other than 127.0.0.1 can be bound (Linux)."""
    probe = _stdlib_socket.socket(_stdlib_socket.AF_INET, _stdlib_socket.SOCK_STREAM)
    try:
        probe.bind(("127.3.2.1", 0))
    except OSError:
        return False
    finally:
        probe.close()
    return True


@dataclass
class PodPorts:
    """The sockets of one pod sandbox: container port -> bound socket and host port."""

    ip: str
    sockets: dict[int, trio.socket.SocketType] = field(default_factory=dict)
    host_ports: dict[int, int] = field(default_factory=dict)

    def remapped(self) -> dict[str, int]:
        return {str(k): v for k, v in self.host_ports.items() if k != v}

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()


class PodNetwork:
    """Allocates pod addresses and binds their container ports (see the module docstring)."""

    def __init__(self, mode: NetworkMode = "auto", *, random: _random.Random | None = None) -> None:
        rng = random if random is not None else _random.Random()
        if mode == "auto":
            mode = "loopback" if loopback_aliases_work() else "shared"
        self.mode: Literal["loopback", "shared"] = mode
        self._octet = rng.randrange(16, 250)
        self._next = 0
        self._used: set[str] = set()

    @property
    def cidr(self) -> str:
        return f"127.{self._octet}.0.0/16" if self.mode == "loopback" else "127.0.0.1/32"

    def _candidate(self) -> str:
        for _ in range(65536):
            self._next = (self._next + 1) % 65536
            third, fourth = divmod(self._next, 256)
            if fourth in (0, 255):
                continue
            ip = f"127.{self._octet}.{third}.{fourth}"
            if ip not in self._used:
                return ip
        raise RuntimeError("the simulated pod network is full (65,000 pods)")

    def allocate(self) -> str:
        """An address for a pod without sockets (no ports, or backends off)."""
        if self.mode == "shared":
            return "127.0.0.1"
        ip = self._candidate()
        self._used.add(ip)
        return ip

    def release(self, ip: str) -> None:
        self._used.discard(ip)

    async def open_pod(self, ports: list[int]) -> PodPorts:
        """An address with `ports` bound (not yet listening), trying further addresses on
        a clash with another process."""
        if self.mode == "shared":
            pod = PodPorts("127.0.0.1")
            await self._bind_all(pod, ports, remap_all=True)
            return pod
        last_error: OSError | None = None
        for _ in range(32):
            ip = self._candidate()
            self._used.add(ip)
            pod = PodPorts(ip)
            try:
                await self._bind_all(pod, ports, remap_all=False)
            except OSError as error:
                pod.close()
                last_error = error
                continue
            return pod
        raise RuntimeError(f"could not bind pod ports {ports}: {last_error}")

    async def _bind_all(self, pod: PodPorts, ports: list[int], *, remap_all: bool) -> None:
        for port in ports:
            if port in pod.sockets:
                continue
            sock = trio.socket.socket(_stdlib_socket.AF_INET, _stdlib_socket.SOCK_STREAM)
            try:
                await sock.bind((pod.ip, 0 if remap_all else port))
            except OSError as error:
                sock.close()
                if error.errno != errno.EACCES:
                    raise
                # A privileged port without the privilege: serve it on a free port instead.
                sock = trio.socket.socket(_stdlib_socket.AF_INET, _stdlib_socket.SOCK_STREAM)
                await sock.bind((pod.ip, 0))
            pod.sockets[port] = sock
            pod.host_ports[port] = sock.getsockname()[1]

    async def rebind(self, pod: PodPorts, ports: Collection[int] | None = None) -> None:
        """Bind the pod's ports (or only `ports`: one container's, since the others' are
        listening) again after a container restart (same host ports)."""
        for port, host_port in pod.host_ports.items():
            if port in pod.sockets or (ports is not None and port not in ports):
                continue
            sock = trio.socket.socket(_stdlib_socket.AF_INET, _stdlib_socket.SOCK_STREAM)
            sock.setsockopt(_stdlib_socket.SOL_SOCKET, _stdlib_socket.SO_REUSEADDR, 1)
            await sock.bind((pod.ip, host_port))
            pod.sockets[port] = sock


@dataclass(frozen=True, slots=True)
class BackendInfo:
    """Who a backend says it is."""

    namespace: str
    pod: str
    container: str
    pod_ip: str
    node: str
    page: BackendPage | None = None
    """What a browser gets (see the module docstring); None: the JSON echo only."""


def _access_time(now: float) -> str:
    return _time.strftime("%d/%b/%Y:%H:%M:%S +0000", _time.gmtime(now))


async def serve_backend(
    sock: trio.socket.SocketType,
    port: int,
    info: BackendInfo,
    log: ContainerLog,
    now: Callable[[], float] = _time.time,
    *,
    served: Callable[[], None] = lambda: None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on `sock` (bound already) and serve the echo app until cancelled; `served` is
    called after each request answered (the container's `RequestMeter`, for metrics)."""
    sock.listen(128)
    listener = trio.SocketListener(sock)
    async with trio.open_nursery() as nursery, listener:
        task_status.started()
        while True:
            try:
                stream = await listener.accept()
            except OSError:
                await trio.sleep(0.05)
                continue
            nursery.start_soon(_connection, stream, port, info, log, now, served)


async def _connection(
    stream: trio.SocketStream,
    port: int,
    info: BackendInfo,
    log: ContainerLog,
    now: Callable[[], float],
    served: Callable[[], None],
) -> None:
    try:
        peer = stream.socket.getpeername()[0]
    except OSError:
        peer = "-"
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            request, body = await _read_request(stream, conn)
            if request is None:
                return
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
            target = request.target.decode("latin-1")
            agent = headers.get("user-agent", "-")
            if is_websocket_upgrade(headers) and request.method == b"GET":
                await stream.send_all(
                    conn.send(
                        h11.InformationalResponse(
                            status_code=101,
                            headers=[
                                (k.encode(), v.encode())
                                for k, v in handshake_headers(headers, None)
                            ],
                        )
                    )
                    or b""
                )
                served()
                log.write(
                    f'{peer} - - [{_access_time(now())}] "GET {target} HTTP/1.1" 101 0 "-" '
                    f'"{agent}"\n'
                )
                trailing, _ = conn.trailing_data
                await _echo_websocket(WebSocket(stream, trailing))
                return
            if (
                info.page is not None
                and request.method in (b"GET", b"HEAD")
                and "text/html" in headers.get("accept", "")
            ):
                page = _html_page(info, port, urlsplit(target).path)
                data = (
                    conn.send(
                        h11.Response(
                            status_code=200,
                            headers=[
                                (b"content-type", b"text/html; charset=utf-8"),
                                (b"content-length", str(len(page)).encode()),
                                (b"cache-control", b"no-store"),
                                (b"x-rxkube-pod", info.pod.encode()),
                            ],
                        )
                    )
                    or b""
                )
                if request.method == b"GET":
                    data += conn.send(h11.Data(data=page)) or b""
                data += conn.send(h11.EndOfMessage()) or b""
                await stream.send_all(data)
                served()
                log.write(
                    f'{peer} - - [{_access_time(now())}] "{request.method.decode()} {target} '
                    f'HTTP/{request.http_version.decode()}" 200 {len(page)} "-" "{agent}"\n'
                )
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                try:
                    conn.start_next_cycle()
                except h11.LocalProtocolError:
                    return
                continue
            query = dict(parse_qsl(urlsplit(target).query))
            status = 200
            if query.get("status", "").isdigit() and 200 <= int(query["status"]) <= 599:
                status = int(query["status"])
            delay = _float(query.get("delay"))
            if delay:
                await trio.sleep(min(delay, 60.0))
            payload = orjson.dumps(
                {
                    "pod": info.pod,
                    "namespace": info.namespace,
                    "container": info.container,
                    "podIP": info.pod_ip,
                    "port": port,
                    "node": info.node,
                    "method": request.method.decode("latin-1"),
                    "path": urlsplit(target).path,
                    "query": urlsplit(target).query,
                    "headers": headers,
                    "body": body.decode("utf-8", "replace"),
                }
            )
            payload += b"\n"
            response = h11.Response(
                status_code=status,
                headers=[
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"x-rxkube-pod", info.pod.encode()),
                ],
            )
            data = conn.send(response) or b""
            if request.method != b"HEAD":
                data += conn.send(h11.Data(data=payload)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
            await stream.send_all(data)
            served()
            log.write(
                f'{peer} - - [{_access_time(now())}] "{request.method.decode()} {target} '
                f'HTTP/{request.http_version.decode()}" {status} {len(payload)} "-" "{agent}"\n'
            )
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError):
        return
    finally:
        with trio.CancelScope(shield=True):
            await stream.aclose()


_SOCKET_SCRIPT: Final = """<p id="socket">WebSocket: connecting...</p>
<script>
(function () {
  var here = location.pathname.replace(/[^/]*$/, "");
  var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + here + "ws";
  var shown = document.getElementById("socket"), echoes = 0, sent = 0;
  var socket = new WebSocket(url);
  socket.onopen = function () {
    shown.textContent = "WebSocket: open";
    shown.dataset.state = "open";
    setInterval(function () { sent += 1; socket.send("ping " + sent); }, 1000);
  };
  socket.onmessage = function () {
    echoes += 1;
    shown.textContent = "WebSocket: open, " + echoes + " echoes from the pod";
    shown.dataset.echoes = String(echoes);
  };
  socket.onclose = function () {
    shown.textContent = "WebSocket: closed";
    shown.dataset.state = "closed";
  };
})();
</script>"""


def _html_page(info: BackendInfo, port: int, path: str) -> bytes:
    """The page a browser gets from a pod whose annotation asks for one."""
    title = html.escape(f"{info.pod} ({info.namespace})")
    socket = _SOCKET_SCRIPT if info.page == "websocket" else ""
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{title}</title></head><body>"
        f"<h1>Served by pod <code id=pod>{html.escape(info.pod)}</code></h1>"
        f"<p>namespace {html.escape(info.namespace)}, container "
        f"{html.escape(info.container)}, pod IP {html.escape(info.pod_ip)}:{port}, node "
        f"{html.escape(info.node)}; path <code>{html.escape(path)}</code></p>"
        f"{socket}</body></html>\n"
    ).encode()


def _float(text: str | None) -> float:
    try:
        return max(float(text or 0), 0.0)
    except ValueError:
        return 0.0


async def _read_request(
    stream: trio.SocketStream, conn: h11.Connection
) -> tuple[h11.Request | None, bytes]:
    request: h11.Request | None = None
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                message = f"bad request: {error}\n".encode()
                await stream.send_all(
                    (
                        conn.send(
                            h11.Response(
                                status_code=error.error_status_hint,
                                headers=[
                                    (b"content-length", str(len(message)).encode()),
                                    (b"connection", b"close"),
                                ],
                            )
                        )
                        or b""
                    )
                    + (conn.send(h11.Data(data=message)) or b"")
                    + (conn.send(h11.EndOfMessage()) or b"")
                )
            return None, b""
        if event is h11.NEED_DATA:
            try:
                data = await stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
            continue
        if isinstance(event, h11.Data):
            if len(body) + len(event.data) <= MAX_REQUEST_BODY:
                body.extend(event.data)
            continue
        if isinstance(event, h11.EndOfMessage):
            return request, bytes(body)
        # ConnectionClosed, PAUSED (an upgrade): a PAUSED connection has its request already.
        if event is h11.PAUSED and request is not None:
            return request, bytes(body)
        return None, b""


async def _echo_websocket(ws: WebSocket) -> None:
    try:
        while True:
            message = await ws.receive()
            if message is None:
                break
            await ws.send(message)
    finally:
        await ws.close()
