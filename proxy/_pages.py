"""The short HTML pages the proxy answers with itself (errors and the waiting room).

No I/O: functions that return complete HTTP/1.1 responses as bytes.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__: list[str] = []

REASONS = {
    200: b"OK",
    308: b"Permanent Redirect",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}


def response(
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"text/html; charset=utf-8",
    headers: Sequence[bytes] = (),
    close: bool = False,
) -> bytes:
    head = [
        b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Error")),
        b"Content-Type: %s\r\n" % content_type,
        b"Content-Length: %d\r\n" % len(body),
        b"Cache-Control: no-store\r\n",
    ]
    head.extend(h + b"\r\n" for h in headers)
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    return b"".join(head) + body


def error_page(
    status: int, message: str, *, headers: Sequence[bytes] = (), close: bool = False
) -> bytes:
    title = REASONS.get(status, b"Error").decode()
    body = (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{status} {title}</title></head><body><h1>{status} {title}</h1>"
        f"<p>{html.escape(message)}</p><hr><small>rxkube proxy</small></body></html>\n"
    ).encode()
    return response(status, body, headers=headers, close=close)


def waiting_page(app: str, *, position: int, queued: int, refresh: float, events_url: str) -> bytes:
    """503 with Retry-After, reloading itself; the SSE stream moves it on as soon as it can."""
    seconds = max(1, round(refresh))
    app_html = html.escape(app)
    body = f"""<!doctype html>
<html><head><meta charset=utf-8><meta http-equiv="refresh" content="{seconds}">
<title>Waiting for {app_html}</title></head>
<body><h1>All seats of {app_html} are taken</h1>
<p>You are number <b id="position">{position + 1}</b> of <span id="queued">{queued}</span> in
the queue. This page reloads by itself and lets you in as soon as a seat is free; keep it open.</p>
<script>
(function () {{
  if (!window.EventSource) return;
  var source = new EventSource({html.escape(repr(events_url))});
  source.addEventListener("position", function (e) {{
    var d = JSON.parse(e.data);
    document.getElementById("position").textContent = d.position + 1;
    document.getElementById("queued").textContent = d.queued;
  }});
  source.addEventListener("ready", function () {{ source.close(); location.reload(); }});
}})();
</script></body></html>
""".encode()
    return response(503, body, headers=[b"Retry-After: %d" % seconds])
