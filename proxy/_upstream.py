"""Raw non-blocking socket helpers and the upstream connection pool (one per server).

Why raw sockets and not `trio.SocketStream`: every `await stream.send_all()`/`receive_some()` in
trio ends with a scheduler round trip even when the kernel could take or give the bytes at once.
A proxied request needs four socket operations, so that is four trips through the run loop. Here
a send or receive is tried first and the task waits (`trio.lowlevel.wait_readable/_writable`, the
public low-level API) only when the kernel says it would block. A proxied request then costs two
trips: waiting for the client's request and waiting for the backend's answer. Cancellation still
works: every wait is a trio checkpoint, and every request waits at least once (for the backend).

The pool keeps idle keep-alive connections per server in a list used as a stack: checkout is
`pop()` and checkin is `append()`, both O(1), and the most recently used (warmest) connection is
reused first. A connection the backend closed while it sat idle is noticed at checkout with a
non-blocking `MSG_PEEK` (one syscall), so it is not handed out.
"""

from __future__ import annotations

import errno
import socket

import trio

from rxkube.proxy._config import ServerSpec

__all__: list[str] = []

READ_SIZE = 65536
"""Bytes asked of the kernel per receive."""


class UpstreamError(Exception):
    """Connecting to or talking with a backend failed (answered 502)."""


def close_socket(sock: socket.socket) -> None:
    if sock.fileno() >= 0:
        trio.lowlevel.notify_closing(sock)
        sock.close()


async def recv(sock: socket.socket) -> bytes:
    """Bytes from `sock`, b"" at EOF or on a reset; waits only when nothing is there."""
    while True:
        try:
            return sock.recv(READ_SIZE)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
        except (ConnectionResetError, ConnectionAbortedError, TimeoutError):
            return b""


async def send_all(sock: socket.socket, data: bytes | bytearray | memoryview) -> None:
    """Send everything; raises BrokenPipeError/ConnectionResetError if the peer went away."""
    try:
        sent = sock.send(data)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return
    view = memoryview(data)[sent:]
    while view:
        await trio.lowlevel.wait_writable(sock)
        try:
            sent = sock.send(view)
        except BlockingIOError:
            continue
        view = view[sent:]


async def connect(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket (numeric hosts skip the resolver thread)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError | None = None
    for family, type_, proto, _, address in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        if family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            code = sock.connect_ex(address)
            if code in (errno.EINPROGRESS, errno.EAGAIN):
                await trio.lowlevel.wait_writable(sock)
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise OSError(code, f"connect to {host}:{port}: {errno.errorcode.get(code, code)}")
        except BaseException as error:
            close_socket(sock)
            if isinstance(error, OSError):
                last = error
                continue
            raise
        return sock
    raise UpstreamError(f"cannot connect to {host}:{port}: {last}")


class UpstreamPool:
    """Keep-alive connections to one server."""

    __slots__ = ("_idle", "closed", "host", "max_idle", "path_prefix", "port", "spec")

    PEEK_AFTER = 1.0
    """Only a connection idle this long is checked with MSG_PEEK: one used just now is alive
    (and should the backend close it right then, a request without a body is retried)."""

    def __init__(self, spec: ServerSpec, *, max_idle: int) -> None:
        self.spec = spec
        self.host = spec.host
        self.port = spec.port
        self.path_prefix = spec.path.rstrip("/").encode("latin-1")
        self.max_idle = max_idle
        self.closed = False
        self._idle: list[tuple[socket.socket, float]] = []

    def checkout(self, now: float) -> socket.socket | None:
        """An idle connection the backend has not closed, or None (then `connect`)."""
        idle = self._idle
        while idle:
            sock, since = idle.pop()
            if now - since < self.PEEK_AFTER:
                return sock
            try:
                sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                return sock  # nothing to read: alive and idle, as it should be
            except OSError:
                pass
            close_socket(sock)  # EOF, an error, or stray bytes: not reusable
        return None

    async def connect(self) -> socket.socket:
        return await connect(self.host, self.port)

    def checkin(self, sock: socket.socket, now: float) -> None:
        if self.closed or len(self._idle) >= self.max_idle:
            close_socket(sock)
        else:
            self._idle.append((sock, now))

    @property
    def idle(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        """No more checkins; idle connections close now, busy ones when their request ends."""
        self.closed = True
        while self._idle:
            close_socket(self._idle.pop()[0])
