"""The admin listener: a live status page, its JSON, and a server-sent event feed.

What this module is for: issue 12 item 6, the status page in the spirit of HAProxy's stats
page, on an address of its own (`--admin HOST:PORT`; off unless asked for, since it shows pod
addresses and users). Paths:

- `/`: the page (`data/status.html`, one file: inline CSS and script, no external assets, so it
  works offline). It listens to `/status/events` and falls back to polling `/status.json`.
- `/status.json`: the current `StatusSnapshot` as JSON.
- `/status/events`: `text/event-stream`; a `status` event with the snapshot at once, then
  whenever the board changes (at most every `min_interval` seconds, so a burst of tickets costs
  one message) and at least every `max_interval` seconds (ages and counters move on).

Anything but GET or HEAD is 405; other paths 404; a malformed request 400. One request per
connection. h11 parses, trio serves; the snapshot comes from a callable (the controller's
`status()`), the change signal from the `StatusBoard`. It reads no clock but trio's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from importlib.resources import files
from typing import Final

import h11
import orjson
import trio

from rxkube.controllers._status import StatusBoard, StatusSnapshot

__all__ = ["serve_admin"]

log: Final = logging.getLogger("rxkube.controllers.admin")

_PAGE: Final = files("rxkube.controllers").joinpath("data/status.html")


def status_page() -> bytes:
    """The page's bytes (read from package data on each request: it is small)."""
    return _PAGE.read_bytes()


async def _read_request(stream: trio.SocketStream, conn: h11.Connection) -> h11.Request | None:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(16 * 1024)
            if not data:
                return None
            conn.receive_data(data)
        elif isinstance(event, h11.Request):
            return event
        else:
            return None


async def _respond(
    stream: trio.SocketStream,
    conn: h11.Connection,
    request: h11.Request,
    status: int,
    content_type: str,
    body: bytes,
) -> None:
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


async def _feed(
    stream: trio.SocketStream,
    conn: h11.Connection,
    *,
    status: Callable[[], StatusSnapshot],
    board: StatusBoard,
    min_interval: float,
    max_interval: float,
) -> None:
    headers = [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
    ]
    await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)))
    changed = trio.Event()

    def wake() -> None:
        changed.set()

    remove = board.add_listener(wake)
    try:
        while True:
            changed = trio.Event()
            message = b"event: status\ndata: " + orjson.dumps(status().to_json()) + b"\n\n"
            await stream.send_all(conn.send(h11.Data(data=message)))
            # Coalesce a burst: wait the minimum, then for a change or the maximum.
            await trio.sleep(min_interval)
            with trio.move_on_after(max_interval - min_interval):
                await changed.wait()
    finally:
        remove()


async def _handle(
    stream: trio.SocketStream,
    *,
    status: Callable[[], StatusSnapshot],
    board: StatusBoard,
    request_timeout: float,
    min_interval: float,
    max_interval: float,
) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
    text = "text/plain; charset=utf-8"
    try:
        with trio.move_on_after(request_timeout):
            request = await _read_request(stream, conn)
        if request is None:
            return
        path = request.target.split(b"?", 1)[0]
        if request.method not in (b"GET", b"HEAD"):
            await _respond(stream, conn, request, 405, text, b"method not allowed\n")
        elif path == b"/":
            await _respond(stream, conn, request, 200, "text/html; charset=utf-8", status_page())
        elif path == b"/status.json":
            body = orjson.dumps(status().to_json(), option=orjson.OPT_INDENT_2)
            await _respond(stream, conn, request, 200, "application/json", body)
        elif path == b"/status/events" and request.method == b"GET":
            await _feed(
                stream,
                conn,
                status=status,
                board=board,
                min_interval=min_interval,
                max_interval=max_interval,
            )
        else:
            await _respond(
                stream,
                conn,
                request,
                404,
                text,
                b"not found: try /, /status.json or /status/events\n",
            )
    except h11.RemoteProtocolError:
        with trio.move_on_after(1):
            await stream.send_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


async def serve_admin(
    host: str,
    port: int,
    *,
    status: Callable[[], StatusSnapshot],
    board: StatusBoard,
    request_timeout: float = 10.0,
    min_interval: float = 0.25,
    max_interval: float = 2.0,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the status page on (host, port) until cancelled; `task_status` gets the bound
    address (port 0 resolved). Start it with `await nursery.start(serve_admin, ...)`."""
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as error:
        shown = f"[{host}]" if ":" in host else host
        reason = error.strerror or str(error)
        raise OSError(error.errno, f"cannot listen on {shown}:{port}: {reason}") from error
    sockname = listeners[0].socket.getsockname()
    handler = partial(
        _handle,
        status=status,
        board=board,
        request_timeout=request_timeout,
        min_interval=min_interval,
        max_interval=max_interval,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        log.info("status page on http://%s:%d/", sockname[0], sockname[1])
        task_status.started((str(sockname[0]), int(sockname[1])))
