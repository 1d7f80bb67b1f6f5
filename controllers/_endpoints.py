"""The runner's metrics and health listener: `/metrics`, `/healthz`, `/readyz` over HTTP/1.1.

What this module is for: the I/O edge that Prometheus and the kubelet's probes talk to (issue 7
item 4; deploy/deployment.yaml probes these paths on the `metrics` port).

- `/metrics`: the injected registry in Prometheus' text format (`generate_latest`).
- `/healthz`: 200 while the process's event loop answers (liveness: a wedged loop times out).
- `/readyz`: 200 only when `ready()` says so (the informers have synced and the first state is
  applied, and the controller is not draining); 503 with the reason otherwise.

Each connection gets one request (answered with `Connection: close`) within `request_timeout`;
anything but GET or HEAD is 405, other paths 404. h11 parses; trio serves. It may import
prometheus_client, h11 and trio; it reads no clock but trio's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Final

import h11
import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["serve_endpoints"]

log: Final = logging.getLogger("rxkube.controllers.endpoints")

Probe = Callable[[], tuple[bool, str]]
"""A check: (ok, reason shown in the body)."""


async def _handle(
    stream: trio.SocketStream,
    *,
    registry: CollectorRegistry,
    ready: Probe,
    request_timeout: float,
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
    try:
        with trio.move_on_after(request_timeout):
            request = None
            while request is None:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(16 * 1024)
                    if not data:
                        return
                    conn.receive_data(data)
                elif isinstance(event, h11.Request):
                    request = event
                else:
                    return
            try:
                status, content_type, body = _answer(request, registry, ready)
            except Exception:  # a broken collector costs one answer, never the listener
                log.exception("endpoint %r failed", request.target)
                status, content_type, body = 500, "text/plain; charset=utf-8", b"error\n"
            headers = [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Connection", "close"),
                ("Cache-Control", "no-store"),
            ]
            await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
            if request.method != b"HEAD":
                await stream.send_all(conn.send(h11.Data(data=body)))
            await stream.send_all(conn.send(h11.EndOfMessage()))
    except h11.RemoteProtocolError:
        with trio.move_on_after(1):
            await stream.send_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


def _answer(
    request: h11.Request, registry: CollectorRegistry, ready: Probe
) -> tuple[int, str, bytes]:
    text = "text/plain; charset=utf-8"
    if request.method not in (b"GET", b"HEAD"):
        return 405, text, b"method not allowed\n"
    path = request.target.split(b"?", 1)[0]
    if path == b"/metrics":
        return 200, CONTENT_TYPE_LATEST, generate_latest(registry)
    if path == b"/healthz":
        return 200, text, b"ok\n"
    if path == b"/readyz":
        ok, reason = ready()
        return (200 if ok else 503), text, reason.encode() + b"\n"
    return 404, text, b"not found: try /metrics, /healthz or /readyz\n"


async def serve_endpoints(
    host: str,
    port: int,
    *,
    registry: CollectorRegistry,
    ready: Probe,
    request_timeout: float = 10.0,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the three paths on (host, port) until cancelled; `task_status` gets the bound
    address (port 0 resolved). Start it with `await nursery.start(serve_endpoints, ...)`."""
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as error:
        shown = f"[{host}]" if ":" in host else host
        reason = error.strerror or str(error)
        raise OSError(error.errno, f"cannot listen on {shown}:{port}: {reason}") from error
    sockname = listeners[0].socket.getsockname()
    handler = partial(_handle, registry=registry, ready=ready, request_timeout=request_timeout)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        log.info("metrics and health endpoints on %s:%d", sockname[0], sockname[1])
        task_status.started((str(sockname[0]), int(sockname[1])))
