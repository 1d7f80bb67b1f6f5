"""The simulated cluster over loopback: pods whose backends answer HTTP and WebSocket on their
pod IP, scaling and cascading deletion, failure annotations, `pods/log` and `pods/exec`.

The API is reached with httpx over HTTP (the fake's real code path); waiting is on conditions
(`simulation.wait_until`, re-checked at every store change) under a `fail_after` bound, never
on sleeps. Delays are tens of milliseconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from rxkube.fakes import (
    FakeApiServer,
    SimAnnotations,
    SimSettings,
    Simulation,
    Store,
    open_fake_apiserver,
    pod_address,
)

FAST = SimSettings(
    schedule_delay=0.005,
    start_delay=0.01,
    ready_delay=0.005,
    terminate_delay=0.005,
    crash_backoff=0.05,
    crash_backoff_max=0.2,
    image_pull_backoff=0.05,
)
DEADLINE = 10


@pytest.fixture
async def cluster() -> AsyncIterator[FakeApiServer]:
    async with open_fake_apiserver(simulate=FAST) as server:
        yield server


@pytest.fixture
async def api(cluster: FakeApiServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cluster.url, timeout=DEADLINE) as http:
        yield http


def sim_of(server: FakeApiServer) -> Simulation:
    assert server.simulation is not None
    return server.simulation


async def wait(server: FakeApiServer, predicate: Callable[[Store], bool]) -> None:
    with trio.fail_after(DEADLINE):
        await sim_of(server).wait_until(predicate)


def deployment(name: str = "web", replicas: int = 3, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {
                    "containers": [
                        {"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]}
                    ]
                },
            },
        },
    }


def pod(
    name: str,
    *,
    containers: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "containers": containers
            or [{"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]}]
        },
    }


def ready_pods(store: Store, label: str = "app=web") -> list[dict[str, Any]]:
    out = []
    for obj in store.list("pods", "default", label_selector=label).objects():
        conditions = (obj.get("status") or {}).get("conditions") or ()
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            out.append(obj)
    return out


def is_ready(name: str) -> Callable[[Store], bool]:
    def check(store: Store) -> bool:
        try:
            obj = store.get("pods", "default", name)
        except Exception:
            return False
        conditions = (obj.get("status") or {}).get("conditions") or ()
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    return check


async def test_three_replicas_serve_http_and_websocket_on_their_pod_ips(
    cluster: FakeApiServer, api: httpx.AsyncClient
) -> None:
    created = await api.post("/apis/apps/v1/namespaces/default/deployments", json=deployment())
    assert created.status_code == 201
    await wait(cluster, lambda s: len(ready_pods(s)) == 3)
    listed = (
        await api.get("/api/v1/namespaces/default/pods", params={"labelSelector": "app=web"})
    ).json()
    pods = listed["items"]
    assert len(pods) == 3
    ips = {p["status"]["podIP"] for p in pods}
    if sim_of(cluster).network_mode == "loopback":
        assert len(ips) == 3  # one address per pod, all on container port 8080
    answered = set()
    async with httpx.AsyncClient(timeout=DEADLINE) as backends:
        for item in pods:
            host, port = pod_address(item, 8080)
            reply = await backends.get(f"http://{host}:{port}/hello?x=1", headers={"x-test": "1"})
            assert reply.status_code == 200
            assert reply.headers["x-rxkube-pod"] == item["metadata"]["name"]
            body = reply.json()
            assert body["pod"] == item["metadata"]["name"]
            assert (body["path"], body["query"], body["port"]) == ("/hello", "x=1", 8080)
            assert body["headers"]["x-test"] == "1"
            assert body["podIP"] == item["status"]["podIP"]
            answered.add(body["pod"])
            failing = await backends.post(f"http://{host}:{port}/x?status=503", content=b"payload")
            assert failing.status_code == 503
            assert failing.json()["body"] == "payload"
            async with open_websocket_url(f"ws://{host}:{port}/socket") as ws:
                await ws.send_message("text message")
                assert await ws.get_message() == "text message"
                await ws.send_message(b"\x00binary\xff")
                assert await ws.get_message() == b"\x00binary\xff"
    assert answered == {p["metadata"]["name"] for p in pods}


async def test_scaling_to_one_leaves_one_and_deleting_removes_everything(
    cluster: FakeApiServer, api: httpx.AsyncClient
) -> None:
    await api.post("/apis/apps/v1/namespaces/default/deployments", json=deployment())
    await wait(cluster, lambda s: len(ready_pods(s)) == 3)
    before = {p["metadata"]["name"]: pod_address(p, 8080) for p in ready_pods(cluster.store)}
    scaled = await api.patch(
        "/apis/apps/v1/namespaces/default/deployments/web",
        json={"spec": {"replicas": 1}},
        headers={"content-type": "application/merge-patch+json"},
    )
    assert scaled.status_code == 200
    await wait(cluster, lambda s: len(s.list("pods", "default").items) == 1)
    [survivor] = cluster.store.list("pods", "default").objects()
    status = (await api.get("/apis/apps/v1/namespaces/default/deployments/web")).json()["status"]
    assert (status["replicas"], status["availableReplicas"]) == (1, 1)
    async with httpx.AsyncClient(timeout=DEADLINE) as backends:
        for name, (host, port) in before.items():
            if name == survivor["metadata"]["name"]:
                reply = await backends.get(f"http://{host}:{port}/")
                assert reply.json()["pod"] == name
            else:
                with pytest.raises(httpx.ConnectError):
                    await backends.get(f"http://{host}:{port}/")
        deleted = await api.request(
            "DELETE",
            "/apis/apps/v1/namespaces/default/deployments/web",
            json={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"},
        )
        assert deleted.status_code == 200
        await wait(cluster, lambda s: not s.list("pods", "default").items)
        assert cluster.store.list("replicasets", "default").items == []
        host, port = before[survivor["metadata"]["name"]]
        with pytest.raises(httpx.ConnectError):
            await backends.get(f"http://{host}:{port}/")


async def test_failure_annotations_show_as_a_kubelet_shows_them(
    cluster: FakeApiServer, api: httpx.AsyncClient
) -> None:
    store = cluster.store
    specs = {
        "crash": {SimAnnotations.CRASH_AFTER: "20ms", SimAnnotations.EXIT_CODE: "7"},
        "unready": {SimAnnotations.NEVER_READY: "true"},
        "pull": {SimAnnotations.IMAGE_PULL_ERROR: "true"},
        "nowhere": {SimAnnotations.UNSCHEDULABLE: "true"},
    }
    for name, wanted in specs.items():
        created = await api.post(
            "/api/v1/namespaces/default/pods", json=pod(name, annotations=wanted)
        )
        assert created.status_code == 201

    def state(name: str) -> dict[str, Any]:
        statuses = (store.get("pods", "default", name).get("status") or {}).get(
            "containerStatuses"
        ) or [{}]
        return dict(statuses[0])

    def settled(s: Store) -> bool:
        crash = state("crash")
        return (
            crash.get("restartCount", 0) >= 2
            and "CrashLoopBackOff" in json.dumps(crash.get("state"))
            and "ImagePullBackOff" in json.dumps(state("pull").get("state"))
            and "running" in state("unready").get("state", {})
            and "Unschedulable" in json.dumps(s.get("pods", "default", "nowhere")["status"])
        )

    await wait(cluster, settled)
    crash = (await api.get("/api/v1/namespaces/default/pods/crash")).json()
    assert crash["status"]["phase"] == "Running"
    last = crash["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (7, "Error")
    unready = (await api.get("/api/v1/namespaces/default/pods/unready")).json()
    ready = next(c for c in unready["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")
    # A pod that is not ready still serves on its IP (only Services would skip it).
    async with httpx.AsyncClient(timeout=DEADLINE) as backends:
        host, port = pod_address(unready, 8080)
        assert (await backends.get(f"http://{host}:{port}/")).json()["pod"] == "unready"
    pulled = (await api.get("/api/v1/namespaces/default/pods/pull")).json()
    assert pulled["status"]["phase"] == "Pending"


async def test_shared_network_mode_remaps_ports_in_an_annotation() -> None:
    settings = SimSettings(
        schedule_delay=0, start_delay=0.01, ready_delay=0, network="shared", seed=1
    )
    async with open_fake_apiserver(simulate=settings) as server:
        server.store.create("pods", pod("one"), namespace="default")
        server.store.create("pods", pod("two"), namespace="default")
        await wait(server, lambda s: is_ready("one")(s) and is_ready("two")(s))
        async with httpx.AsyncClient(timeout=DEADLINE) as backends:
            for name in ("one", "two"):
                obj = server.store.get("pods", "default", name)
                assert obj["status"]["podIP"] == "127.0.0.1"
                remapped = json.loads(obj["metadata"]["annotations"][SimAnnotations.PORTS])
                host, port = pod_address(obj, 8080)
                assert (host, port) == ("127.0.0.1", remapped["8080"])
                assert sim_of(server).address("default", name, 8080) == (host, port)
                assert (await backends.get(f"http://{host}:{port}/")).json()["pod"] == name


# -- logs ---------------------------------------------------------------------------------


async def test_logs_tail_timestamps_limit_and_errors(
    cluster: FakeApiServer, api: httpx.AsyncClient
) -> None:
    containers: list[dict[str, Any]] = [
        {"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]},
        {"name": "sidecar", "image": "busybox"},
    ]
    await api.post("/api/v1/namespaces/default/pods", json=pod("web", containers=containers))
    slow = pod("slow", annotations={SimAnnotations.START_DELAY: "1m"})
    await api.post("/api/v1/namespaces/default/pods", json=slow)
    await wait(cluster, is_ready("web"))
    obj = cluster.store.get("pods", "default", "web")
    host, port = pod_address(obj, 8080)
    async with httpx.AsyncClient(timeout=DEADLINE) as backends:
        await backends.get(f"http://{host}:{port}/first", headers={"user-agent": "test/1"})
    path = "/api/v1/namespaces/default/pods/web/log"
    full = await api.get(path, params={"container": "app"})
    assert full.status_code == 200
    assert full.headers["content-type"] == "text/plain"
    lines = full.text.splitlines()
    assert lines[0] == "rxkube simulated container app of pod default/web started (image web:1)"
    assert lines[1] == f"listening on http://{host}:{port}"
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /first HTTP/1\.1" 200 '
        r'\d+ "-" "test/1"',
        lines[2],
    )
    tail = await api.get(path, params={"container": "app", "tailLines": "1"})
    assert tail.text == lines[2] + "\n"
    stamped = await api.get(path, params={"container": "app", "timestamps": "true"})
    first = stamped.text.splitlines()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z " + re.escape(lines[0]), first)
    limited = await api.get(path, params={"container": "app", "limitBytes": "10"})
    assert limited.text == lines[0][:10]
    future = await api.get(path, params={"container": "app", "sinceTime": "2999-01-01T00:00:00Z"})
    assert (future.status_code, future.text) == (200, "")
    recent = await api.get(path, params={"container": "app", "sinceSeconds": "3600"})
    assert recent.text == full.text

    async def error(params: dict[str, str], name: str = "web") -> tuple[int, str]:
        reply = await api.get(f"/api/v1/namespaces/default/pods/{name}/log", params=params)
        body = reply.json()
        assert body["kind"] == "Status"
        return reply.status_code, body["message"]

    assert await error({}) == (
        400,
        "a container name must be specified for pod web, choose one of: [app sidecar]",
    )
    assert await error({"container": "nope"}) == (400, "container nope is not valid for pod web")
    assert await error({"container": "app", "previous": "true"}) == (
        400,
        'previous terminated container "app" in pod "web" not found',
    )
    assert await error({"container": "app", "tailLines": "-1"}) == (
        422,
        'PodLogOptions "web" is invalid: tailLines: Invalid value: -1: must be greater than or '
        "equal to 0",
    )
    assert (await error({"container": "app", "follow": "maybe"}))[0] == 400
    assert await error({"container": "app", "sinceSeconds": "5", "sinceTime": "x"}) == (
        422,
        'PodLogOptions "web" is invalid: Forbidden: at most one of `sinceTime` or '
        "`sinceSeconds` may be specified",
    )
    await wait(cluster, lambda s: "ContainerCreating" in str(s.get("pods", "default", "slow")))
    assert await error({}, "slow") == (
        400,
        'container "app" in pod "slow" is waiting to start: ContainerCreating',
    )
    missing = await api.get("/api/v1/namespaces/default/pods/ghost/log")
    assert (missing.status_code, missing.json()["message"]) == (404, 'pods "ghost" not found')


async def test_follow_streams_new_lines_until_the_container_stops(
    cluster: FakeApiServer, api: httpx.AsyncClient
) -> None:
    await api.post("/api/v1/namespaces/default/pods", json=pod("web"))
    await wait(cluster, is_ready("web"))
    host, port = pod_address(cluster.store.get("pods", "default", "web"), 8080)
    received: list[str] = []
    with trio.fail_after(DEADLINE):
        async with (
            httpx.AsyncClient(timeout=DEADLINE) as backends,
            api.stream(
                "GET", "/api/v1/namespaces/default/pods/web/log", params={"follow": "true"}
            ) as stream,
        ):
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            received.append(await anext(lines))
            received.append(await anext(lines))
            await backends.get(f"http://{host}:{port}/while-following")
            received.append(await anext(lines))
            sim_of(cluster).container("default", "web").log.write("written by the test\n")
            received.append(await anext(lines))
            # Deleting the pod stops the container: the stream ends.
            await api.delete("/api/v1/namespaces/default/pods/web")
            received.extend([line async for line in lines])
    assert received[0].startswith("rxkube simulated container app")
    assert "/while-following" in received[2]
    assert received[3] == "written by the test"
    assert received[4:] == ["received SIGTERM, shutting down"]


async def test_logs_of_a_crashed_container_and_its_previous_run(
    cluster: FakeApiServer, api: httpx.AsyncClient
) -> None:
    annotations = {SimAnnotations.CRASH_AFTER: "20ms", SimAnnotations.EXIT_CODE: "2"}
    await api.post("/api/v1/namespaces/default/pods", json=pod("crash", annotations=annotations))

    def restarted(s: Store) -> bool:
        statuses = s.get("pods", "default", "crash")["status"].get("containerStatuses") or [{}]
        return int(statuses[0].get("restartCount", 0)) >= 1

    await wait(cluster, restarted)
    previous = await api.get(
        "/api/v1/namespaces/default/pods/crash/log", params={"previous": "true"}
    )
    assert previous.status_code == 200
    assert previous.text.splitlines()[-1] == "exiting with code 2"


# -- exec ---------------------------------------------------------------------------------


async def run_exec(
    server: FakeApiServer,
    name: str,
    command: list[str],
    *,
    protocol: str = "v5.channel.k8s.io",
    stdin: bytes | None = None,
    close_stdin: bool = True,
    tty: bool = False,
) -> tuple[str, dict[int, bytes], list[int]]:
    """Exec over a raw WebSocket: (protocol chosen, bytes per channel, channel order)."""
    query: list[tuple[str, str | int | float | bool | None]] = [
        ("command", part) for part in command
    ]
    query += [("stdout", "true"), ("stderr", "true")]
    if stdin is not None:
        query.append(("stdin", "true"))
    if tty:
        query.append(("tty", "true"))
    url = httpx.URL(
        server.url.replace("http", "ws") + f"/api/v1/namespaces/default/pods/{name}/exec",
        params=query,
    )
    channels: dict[int, bytes] = {}
    order: list[int] = []
    encoded = "base64" in protocol
    with trio.fail_after(DEADLINE):
        async with open_websocket_url(str(url), subprotocols=[protocol]) as ws:
            chosen = ws.subprotocol or ""
            if stdin is not None:
                if encoded:
                    await ws.send_message("0" + __import__("base64").b64encode(stdin).decode())
                else:
                    await ws.send_message(b"\x00" + stdin)
                if close_stdin and chosen.startswith("v5"):
                    await ws.send_message(b"\xff\x00")
            while True:
                try:
                    message = await ws.get_message()
                except ConnectionClosed:
                    break
                if isinstance(message, str):
                    channel = int(message[0])
                    payload = __import__("base64").b64decode(message[1:])
                else:
                    channel, payload = message[0], message[1:]
                order.append(channel)
                channels[channel] = channels.get(channel, b"") + payload
    return chosen, channels, order


@pytest.fixture
async def running(cluster: FakeApiServer, api: httpx.AsyncClient) -> str:
    await api.post("/api/v1/namespaces/default/pods", json=pod("web"))
    await wait(cluster, is_ready("web"))
    return "web"


async def test_exec_v5_streams_channels_and_reports_the_exit_code(
    cluster: FakeApiServer, running: str
) -> None:
    chosen, channels, order = await run_exec(
        cluster, running, ["sh", "-c", "echo out; echo err >&2; exit 3"]
    )
    assert chosen == "v5.channel.k8s.io"
    assert order[0] == 1  # the empty ready message on the lowest writable channel
    assert channels[1] == b"out\n"
    assert channels[2] == b"err\n"
    assert orjson.loads(channels[3]) == {
        "metadata": {},
        "status": "Failure",
        "message": "command terminated with non-zero exit code: error executing command "
        "[sh -c echo out; echo err >&2; exit 3], exit code 3",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
    }
    assert order[-1] == 3
    _, ok, _ = await run_exec(cluster, running, ["hostname"])
    assert ok[1] == b"web\n"
    assert orjson.loads(ok[3]) == {"metadata": {}, "status": "Success"}
    _, missing, _ = await run_exec(cluster, running, ["sh", "-c", "nosuch"])
    assert missing[2] == b"sh: 1: nosuch: not found\n"
    assert orjson.loads(missing[3])["details"]["causes"][0]["message"] == "127"


async def test_exec_stdin_is_binary_safe_and_ends_with_the_v5_close_signal(
    cluster: FakeApiServer, running: str
) -> None:
    payload = bytes(range(256))
    _, wrote, _ = await run_exec(cluster, running, ["sh", "-c", "cat > /tmp/blob"], stdin=payload)
    assert orjson.loads(wrote[3])["status"] == "Success"
    _, read, _ = await run_exec(cluster, running, ["cat", "/tmp/blob"])
    assert read[1] == payload
    files = sim_of(cluster).container("default", running).fs
    assert files.read_file("/tmp/blob") == payload


@pytest.mark.parametrize(
    "protocol",
    ["v4.channel.k8s.io", "channel.k8s.io", "v5.base64.channel.k8s.io", "v4.base64.channel.k8s.io"],
)
async def test_exec_older_and_base64_protocols(
    cluster: FakeApiServer, running: str, protocol: str
) -> None:
    chosen, channels, _ = await run_exec(
        cluster, running, ["sh", "-c", "echo hi; exit 4"], protocol=protocol
    )
    assert chosen == protocol
    assert channels[1] == b"hi\n"
    if protocol.startswith(("v4", "v5")):
        assert orjson.loads(channels[3])["details"]["causes"] == [
            {"reason": "ExitCode", "message": "4"}
        ]
    else:
        assert channels[3] == (
            b"command terminated with non-zero exit code: error executing command "
            b"[sh -c echo hi; exit 4], exit code 4"
        )


async def test_exec_with_a_tty_merges_stderr_and_translates_newlines(
    cluster: FakeApiServer, running: str
) -> None:
    _, channels, _ = await run_exec(cluster, running, ["sh", "-c", "echo a; echo b >&2"], tty=True)
    assert channels[1] == b"a\r\nb\r\n"
    assert 2 not in channels


async def test_exec_bad_requests_get_the_real_errors(
    cluster: FakeApiServer, api: httpx.AsyncClient, running: str
) -> None:
    base = "/api/v1/namespaces/default/pods"
    websocket = {
        "connection": "Upgrade",
        "upgrade": "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    }

    async def answer(
        path: str, params: list[tuple[str, str | int | float | bool | None]], **headers: str
    ) -> tuple[int, str]:
        reply = await api.get(path, params=params, headers={**websocket, **headers})
        return reply.status_code, reply.json()["message"]

    exec_path = f"{base}/{running}/exec"
    assert await answer(exec_path, [("stdout", "true")]) == (
        400,
        "you must specify at least one command for the container",
    )
    assert await answer(exec_path, [("command", "ls")]) == (
        400,
        "you must specify at least 1 of stdin, stdout, stderr",
    )
    assert await answer(exec_path, [("command", "ls"), ("stdout", "true"), ("container", "x")]) == (
        400,
        "container x is not valid for pod web",
    )
    status, message = await answer(
        exec_path,
        [("command", "ls"), ("stdout", "true")],
        **{"sec-websocket-protocol": "v9.channel.k8s.io"},
    )
    assert status == 400
    assert message.startswith("requested protocol(s) are not supported: [v9.channel.k8s.io]")
    plain = await api.post(exec_path, params=[("command", "ls"), ("stdout", "true")])
    assert (plain.status_code, plain.json()["message"]) == (400, "Upgrade request required")
    spdy = await api.post(
        exec_path,
        params=[("command", "ls"), ("stdout", "true")],
        headers={"connection": "Upgrade", "upgrade": "SPDY/3.1"},
    )
    assert spdy.status_code == 400
    assert "does not speak SPDY" in spdy.json()["message"]
    assert (await api.get(f"{base}/ghost/exec", params=[("command", "ls")])).status_code == 404
    await api.post(base, json=pod("later", annotations={SimAnnotations.UNSCHEDULABLE: "true"}))
    assert await answer(f"{base}/later/exec", [("command", "ls"), ("stdout", "true")]) == (
        400,
        "pod later does not have a host assigned",
    )


async def test_discovery_lists_log_and_exec(api: httpx.AsyncClient) -> None:
    resources = (await api.get("/api/v1")).json()["resources"]
    by_name = {r["name"]: r for r in resources}
    assert by_name["pods/log"] == {
        "name": "pods/log",
        "singularName": "",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["get"],
    }
    assert by_name["pods/exec"]["kind"] == "PodExecOptions"
    assert by_name["pods/exec"]["verbs"] == ["create", "get"]
