"""A bound on the WebSocket frames a client sends through the proxy, found by parsing frame heads.

Why parse and not count bytes: a byte budget per connection would cut long sessions (a notebook
sends megabytes over hours), and a rate limit is not a size limit. Frame heads are cheap to find:
each frame starts with 2 to 14 bytes that state its payload length (RFC 6455 section 5.2), so
the guard reads those bytes and skips the payload by counting, without buffering or copying it.
The bound is per frame, as the proxy sees it on the wire; a message split into many frames is
the backend's to limit (its WebSocket library buffers messages, and it knows how large they may
be). Only the client-to-backend direction is guarded: backends are the app's own.

No I/O. The proxy feeds every chunk it relays from the client to `FrameGuard.feed` before sending
it on, so a frame over the limit is refused before its head reaches the backend.
"""

from __future__ import annotations

__all__: list[str] = []

_MAX_HEAD = 14  # 2 + 8 (64-bit length) + 4 (mask)


class FrameTooLarge(Exception):
    """A client frame states a payload larger than the app allows."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"WebSocket frame of {length} bytes exceeds the limit of {limit}")
        self.length = length


def _head_size(head: bytes) -> int:
    """Bytes in the frame head that `head` starts (needs at least 2 bytes)."""
    code = head[1] & 0x7F
    size = 2 + (2 if code == 126 else 8 if code == 127 else 0)
    return size + 4 if head[1] & 0x80 else size


def _payload_length(head: bytes) -> int:
    code = head[1] & 0x7F
    if code == 126:
        return int.from_bytes(head[2:4], "big")
    if code == 127:
        return int.from_bytes(head[2:10], "big")
    return code


class FrameGuard:
    """Walks a byte stream of WebSocket frames; raises `FrameTooLarge` at an oversized head."""

    __slots__ = ("_partial", "_skip", "frames", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.frames = 0
        """Frame heads seen so far."""
        self._skip = 0
        """Payload bytes of the current frame still to pass."""
        self._partial = b""
        """The start of a frame head split across chunks."""

    def feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while True:
            if self._skip:
                take = min(self._skip, end - pos)
                self._skip -= take
                pos += take
                if self._skip:
                    return
            if pos >= end:
                return
            base = len(self._partial)
            head = (
                self._partial + data[pos : pos + _MAX_HEAD] if base else data[pos : pos + _MAX_HEAD]
            )
            if len(head) < 2 or len(head) < _head_size(head):
                # All that is left of `data` is in `head` (a head is at most 14 bytes).
                self._partial = head
                return
            size = _head_size(head)
            length = _payload_length(head)
            if length > self.limit:
                raise FrameTooLarge(length, self.limit)
            self.frames += 1
            self._partial = b""
            pos += size - base
            self._skip = length
