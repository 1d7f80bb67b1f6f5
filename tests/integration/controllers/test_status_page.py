"""The admin listener's status page and `record=`, end to end on the fake cluster.

The fake API server, pods with real local backends, the real client, informers, pipelines,
proxy and Events sink, as in the other acceptance tests; users are HTTP clients with cookies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

from rxkube.streams import StreamEvent, WatchEvent, load_trace
from tests.integration.controllers.conftest import (
    LIMIT,
    Cluster,
    User,
    deployment,
    loopback,
    open_cluster,
)


async def status_json(c: Cluster) -> dict[str, Any]:
    address = c.controller.admin_address
    assert address is not None
    async with httpx.AsyncClient(timeout=LIMIT) as http:
        response = await http.get(f"http://{address[0]}:{address[1]}/status.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    data: dict[str, Any] = response.json()
    return data


async def next_status(lines: Any) -> dict[str, Any]:
    """The next `status` event of a server-sent event stream."""
    event = ""
    async for line in lines:
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: ") and event == "status":
            data: dict[str, Any] = orjson.loads(line[len("data: ") :])
            return data
    raise AssertionError("the stream ended")


async def test_the_status_page_shows_apps_servers_users_queue_and_problems() -> None:
    async with open_cluster(admin_listen=(loopback(), 0)) as c:
        assert c.controller.admin_address is not None
        host, port = c.controller.admin_address
        base = f"http://{host}:{port}"
        c.apply(deployment("lab", tickets_max="1", pods_max="0"))
        await c.add_pod("lab", "lab-1")
        await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].ready_servers == 1)

        alice, bob = User(), User()
        assert (await alice.get(c.url + "/lab/echo")).status == 200
        assert (await bob.get(c.url + "/lab/")).status == 503  # the waiting room

        data = await status_json(c)
        assert data["namespace"] == "lab"
        assert data["ready"] is True
        (app,) = data["apps"]
        assert (app["app"], app["users"], app["free"], app["queued"]) == ("lab", 1, 0, 1)
        assert (app["tickets_max"], app["waiting_pages"]) == (1, 1)
        (server,) = app["servers"]
        assert (server["pod"], server["users"], server["capacity"]) == ("lab-1", 1, 1)
        assert (server["phase"], server["ready"], server["serving"]) == ("Running", True, True)
        assert server["address"].startswith("127.")

        async with (
            httpx.AsyncClient(base_url=base, timeout=LIMIT) as http,
            http.stream("GET", "/status/events") as events,
        ):
            assert events.headers["content-type"] == "text/event-stream"
            lines = events.aiter_lines()
            with trio.fail_after(LIMIT):
                first = await next_status(lines)
                assert [s["pod"] for s in first["apps"][0]["servers"]] == ["lab-1"]
                # A change is pushed: a second pod, then a bad annotation.
                await c.add_pod("lab", "lab-2")
                while len((await next_status(lines))["apps"][0]["servers"]) < 2:
                    pass
                c.annotate("lab", tickets_max="many")
                while not (pushed := await next_status(lines))["problems"]:
                    pass
        (problem,) = pushed["problems"]
        assert problem["level"] == "error"
        assert "tickets.max='many'" in problem["message"]
        kinds = {a["kind"] for a in pushed["activity"]}
        assert {"app", "problem", "event"} <= kinds

        async with httpx.AsyncClient(base_url=base, timeout=LIMIT) as http:
            page = await http.get("/")
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert "<title>rxkube status</title>" in page.text
            assert "new EventSource(" in page.text
            assert "http" not in page.text.split("<script>")[0].split("<style>")[1]  # offline
            assert (await http.get("/nope")).status_code == 404
            assert (await http.post("/status.json")).status_code == 405
            assert (await http.head("/status.json")).status_code == 200


async def test_record_writes_the_watches_and_the_demand(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl.gz"
    async with open_cluster(record=path, record_source="a test") as c:
        c.apply(deployment("lab", tickets_max="1", pods_max="0"))
        await c.add_pod("lab", "lab-1")
        await c.wait(lambda s: "lab" in s.apps and s.apps["lab"].ready_servers == 1)
        assert (await User().get(c.url + "/lab/echo")).status == 200
        assert (await User().get(c.url + "/lab/")).status == 503
        assert c.controller.recorder is not None
        c.controller.recorder.flush()
    trace = load_trace(path)
    assert trace.header.source == "a test"
    assert list(trace.header.streams) == [
        "deployments.apps/lab?meta",
        "deployments.apps/lab?labelSelector=ipb-halle.de%2Fk8sticket%3Dtrue",
        "pods/lab?labelSelector=ipb-halle.de%2Fk8sticket.deployment.app.name",
        "tickets/lab",
        "autoscaler/lab",
    ]
    assert trace.header.streams["tickets/lab"] == {"kind": "tickets", "namespace": "lab"}
    streams = {record.event.stream for record in trace.records}
    assert streams == set(trace.header.streams) - {"autoscaler/lab"}  # pods.max 0: no commands
    demand = [
        (e.type, e.data["app"], e.data.get("server"))
        for e in (r.event for r in trace.records)
        if isinstance(e, StreamEvent)
    ]
    assert demand == [("issued", "lab", "lab-1"), ("queued", "lab", None)]
    pods = {
        e.meta.name
        for e in (r.event for r in trace.records)
        if isinstance(e, WatchEvent) and e.stream.startswith("pods/") and e.type == "ADDED"
    }
    assert pods == {"lab-1"}
    times = [r.t for r in trace.records]
    assert times == sorted(times)
