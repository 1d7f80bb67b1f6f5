"""The `pods/log` subresource's body, driven directly (no sockets): what a follower receives."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from rxkube.fakes import ContainerLog
from rxkube.fakes._http import StreamResponse
from rxkube.fakes._logs import serve_pod_log

CONTAINER_ID = "containerd://0123"


class Source:
    def __init__(self, log: ContainerLog) -> None:
        self.log = log

    def log_for(self, container_id: str) -> ContainerLog | None:
        return self.log if container_id == CONTAINER_ID else None


def running_pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "web:1"}]},
        "status": {
            "containerStatuses": [
                {"name": "app", "containerID": CONTAINER_ID, "state": {"running": {}}}
            ]
        },
    }


async def test_a_line_written_while_the_first_chunk_is_on_its_way_is_followed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The first chunk is what the log held when the request came; a follower then gets every
    line written after that, including one written before the server asked for the next chunk
    (the client may well have the first chunk by then: kubectl logs -f, under load)."""
    log = ContainerLog(now=lambda: 1_700_000_000.0)
    log.write("started\nlistening\n")
    response = await serve_pod_log(
        running_pod(), {"follow": "true"}, Source(log), now=1_700_000_000.0
    )
    assert isinstance(response, StreamResponse)
    body = response.body
    with trio.fail_after(1):  # virtual time: a line never followed fails at once
        assert await anext(body) == b"started\nlistening\n"
        log.write("a line while following\n")  # before the body is asked for more
        assert await anext(body) == b"a line while following\n"
        log.write("then another\n")
        assert await anext(body) == b"then another\n"
        log.close()
        assert [chunk async for chunk in body] == []
