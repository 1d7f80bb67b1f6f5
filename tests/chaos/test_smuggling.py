"""Request smuggling and malformed framing: refused, or re-framed so no backend can be desynced.

Each attack hides a request (`GET /smuggled`) where a proxy that framed the body differently
from a backend would pass it on as a request of its own.
The proxy either refuses the request (a 4xx/5xx of its own, nothing forwarded) or forwards it
with framing it wrote itself (de-chunked and re-chunked, a Content-Length it re-serialized), so
the smuggled request arrives as body bytes; no backend ever sees a target containing "smuggled"
(`Arena.check`). llhttp also refuses bytes after a request that asked to close the connection.
"""

from __future__ import annotations

import json

from tests.chaos.arena import TRIED, open_arena
from tests.integration.proxy.conftest import parse_reply, raw

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
N = len(SMUGGLED)
HEAD = b"POST /lab/echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
CLTE_BODY = b"0\r\n\r\n" + SMUGGLED
"""What a CL.TE attack sends: chunked, the body ends at once; by length, it goes on."""
CHUNKED_BODY = b"%x\r\n%s\r\n0\r\n\r\n" % (N, SMUGGLED)
"""A proper chunked body that carries the smuggled request as data."""
CL = b"Content-Length: %d\r\n" % len(CLTE_BODY)
TE = b"Transfer-Encoding: chunked\r\n"


def post(headers: bytes, body: bytes = CLTE_BODY) -> bytes:
    return HEAD + headers + b"\r\n" + body


def get_with(extra: bytes, *, close: bool = True) -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return b"GET /lab/echo HTTP/1.1\r\nHost: a\r\n" + connection + extra + b"\r\n"


# (name, kind, request bytes, the status the client gets, body bytes the backend got)
CASES: list[tuple[str, str, bytes, int, int | None]] = [
    # Content-Length against Transfer-Encoding (CL.TE, TE.CL)
    ("CL then TE", "cl-te", post(CL + TE), 400, None),
    ("TE then CL", "cl-te", post(TE + CL), 400, None),
    ("CL and TE list", "cl-te", post(CL + b"Transfer-Encoding: chunked, identity\r\n"), 400, None),
    ("CL and xchunked", "cl-te", post(CL + b"Transfer-Encoding: xchunked\r\n"), 400, None),
    ("CL in trailer", "cl-te", post(TE, b"3\r\nabc\r\n0\r\nContent-Length: 99\r\n\r\n"), 400, None),
    # Transfer-Encoding variants
    (
        "TE chunked, identity",
        "te-variant",
        post(b"Transfer-Encoding: chunked, identity\r\n"),
        400,
        None,
    ),
    (
        "TE identity, chunked",
        "te-variant",
        post(b"Transfer-Encoding: identity, chunked\r\n", CHUNKED_BODY),
        501,
        None,
    ),
    (
        "TE gzip, chunked",
        "te-variant",
        post(b"Transfer-Encoding: gzip, chunked\r\n", CHUNKED_BODY),
        501,
        None,
    ),
    ("TE xchunked", "te-variant", post(b"Transfer-Encoding: xchunked\r\n"), 400, None),
    ("TE chunkedx", "te-variant", post(b"Transfer-Encoding: chunkedx\r\n"), 400, None),
    ("TE quoted", "te-variant", post(b'Transfer-Encoding: "chunked"\r\n'), 400, None),
    ("TE twice", "te-variant", post(TE + b"Transfer-Encoding: identity\r\n"), 400, None),
    ("TE space before colon", "te-variant", post(b"Transfer-Encoding : chunked\r\n"), 400, None),
    ("TE vertical tab", "te-variant", post(b"Transfer-Encoding:\x0bchunked\r\n"), 400, None),
    ("TE empty", "te-variant", post(b"Transfer-Encoding: \r\n"), 400, None),
    ("TE in HTTP/1.0", "te-variant", post(TE).replace(b"HTTP/1.1", b"HTTP/1.0", 1), 400, None),
    (
        "TE Chunked (case)",
        "te-variant",
        post(b"Transfer-Encoding: Chunked\r\n", CHUNKED_BODY),
        200,
        N,
    ),
    (
        "TE tab before value",
        "te-variant",
        post(b"Transfer-Encoding:\tchunked\r\n", CHUNKED_BODY),
        200,
        N,
    ),
    # Content-Length variants
    ("CL twice, same", "cl-variant", post(CL + CL), 400, None),
    ("CL twice, case", "cl-variant", post(CL + CL.replace(b"Length", b"length")), 400, None),
    ("CL twice, differ", "cl-variant", post(CL + b"Content-Length: 5\r\n"), 400, None),
    ("CL list", "cl-variant", post(b"Content-Length: 41, 41\r\n"), 400, None),
    ("CL plus", "cl-variant", post(b"Content-Length: +41\r\n"), 400, None),
    ("CL negative", "cl-variant", post(b"Content-Length: -1\r\n"), 400, None),
    ("CL hex", "cl-variant", post(b"Content-Length: 0x29\r\n"), 400, None),
    ("CL overflow", "cl-variant", post(b"Content-Length: 99999999999999999999999\r\n"), 400, None),
    ("CL empty", "cl-variant", post(b"Content-Length: \r\n"), 400, None),
    ("CL space before colon", "cl-variant", post(b"Content-Length : 41\r\n"), 400, None),
    ("CL spaces around", "cl-variant", post(b"Content-Length:  %d \r\n" % N, SMUGGLED), 200, N),
    # Line folding and line endings
    ("folded TE", "folding", post(b"Transfer-Encoding:\r\n chunked\r\n"), 400, None),
    ("folded header", "folding", get_with(b"X-A: a\r\n  b\r\n"), 400, None),
    ("bare LF request line", "line-ending", b"GET /lab/echo HTTP/1.1\nHost: a\n\n", 400, None),
    (
        "bare LF header",
        "line-ending",
        get_with(b"X-A: a\nTransfer-Encoding: chunked\r\n"),
        400,
        None,
    ),
    ("bare CR", "line-ending", b"GET /lab/echo HTTP/1.1\rHost: a\r\r", 400, None),
    ("bare LF chunk size", "line-ending", post(TE, b"3\nabc\n0\n\n"), 400, None),
    # Chunk syntax
    ("chunk size 0x", "chunks", post(TE, b"0x3\r\nabc\r\n0\r\n\r\n"), 400, None),
    ("chunk size overflow", "chunks", post(TE, b"f" * 20 + b"\r\nabc\r\n"), 400, None),
    ("chunk size space", "chunks", post(TE, b"3 \r\nabc\r\n0\r\n\r\n"), 400, None),
    ("chunk data overrun", "chunks", post(TE, b"3\r\nabcXX0\r\n\r\n"), 400, None),
    ("chunk extension", "chunks", post(TE, b"3;x=y\r\nabc\r\n0\r\n\r\n"), 200, 3),
    # Header syntax
    ("NUL in value", "header-syntax", get_with(b"X-A: a\x00b\r\n"), 400, None),
    ("space in name", "header-syntax", get_with(b"X A: b\r\n"), 400, None),
    ("no colon", "header-syntax", get_with(b"X-A\r\n"), 400, None),
    ("bad token in name", "header-syntax", get_with(b"X(A): b\r\n"), 400, None),
    ("underscore TE", "header-syntax", post(b"Transfer_Encoding: chunked\r\n", b""), 200, 0),
    (
        "hop-by-hop CL",
        "header-syntax",
        post(b"Connection: content-length\r\n" + b"Content-Length: %d\r\n" % N, SMUGGLED),
        200,
        N,
    ),
    # Request lines and versions
    ("data after close", "request-line", get_with(b"") + SMUGGLED, 400, None),
    ("HTTP/2.0 in text", "request-line", b"GET /lab/echo HTTP/2.0\r\nHost: a\r\n\r\n", 505, None),
    ("HTTP/0.9", "request-line", b"GET /lab/echo\r\n\r\n", 505, None),
    ("HTTP/9.9", "request-line", b"GET /lab/echo HTTP/9.9\r\nHost: a\r\n\r\n", 400, None),
    ("h2 preface", "request-line", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, None),
    ("lowercase method", "request-line", b"get /lab/echo HTTP/1.1\r\nHost: a\r\n\r\n", 400, None),
    (
        "control in target",
        "request-line",
        b"GET /lab/e\x01cho HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        None,
    ),
    ("space in target", "request-line", b"GET /lab/e cho HTTP/1.1\r\nHost: a\r\n\r\n", 400, None),
    (
        "absolute form",
        "request-line",
        b"GET http://other/other/echo HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        None,
    ),
    (
        "authority form",
        "request-line",
        b"CONNECT other:80 HTTP/1.1\r\nHost: other:80\r\n\r\n",
        405,
        None,
    ),
    ("asterisk form", "request-line", b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 400, None),
    (
        "two Hosts",
        "request-line",
        b"GET /lab/echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
        None,
    ),
    ("Host with path", "request-line", b"GET /lab/echo HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, None),
    ("no Host", "request-line", b"GET /lab/echo HTTP/1.1\r\n\r\n", 400, None),
    # Upgrades the backend does not take: the bytes after them are never relayed
    (
        "upgrade refused",
        "upgrade",
        get_with(b"Upgrade: websocket\r\nConnection: Upgrade\r\n", close=False) + SMUGGLED,
        200,
        0,
    ),
    (
        "h2c upgrade",
        "upgrade",
        get_with(
            b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"HTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n",
            close=False,
        )
        + SMUGGLED,
        200,
        0,
    ),
]


async def test_smuggling_attempts_are_refused_or_reframed() -> None:
    async with open_arena() as arena:
        for name, kind, request, status, body in CASES:
            TRIED[f"smuggling/{kind}"] += 1
            before = len(arena.lab_targets())
            reply = parse_reply(await raw(arena.port, request))
            assert reply.status == status, name
            forwarded = arena.lab_targets()[before:]
            if status == 200:
                assert forwarded == ["/echo"], name
                seen = json.loads(reply.body)
                assert "transfer_encoding" not in seen["headers"], name
                # The body as the proxy framed it: a smuggled request stays body bytes.
                assert seen["body"] == body, name
            else:
                assert forwarded == [], name
                assert b"rxkube proxy" in reply.body, name
        refused = sum(1 for case in CASES if case[3] != 200)
        assert arena.proxy.statistics().bad_requests == refused
