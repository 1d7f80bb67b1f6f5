"""rxkube.proxy: the data plane.

The ticket table (a pure state machine, no I/O) and the HTTP/WebSocket reverse proxy on trio.
It knows nothing of Kubernetes: whoever embeds it feeds it apps and server lists. It imports
none of rxkube's other packages (checked by import-linter).
"""

__all__: list[str] = []
