"""`kubectl port-forward` (v1.31+: SPDY tunneled in WebSocket; and its plain SPDY fallback) and
the official Python client's `portforward` against the simulated cluster: real TCP connections
through the fake API server reach the pod's backend, which answers with its pod name.

One threaded fake (with the simulation) serves the module; each test uses its own objects.
kubectl tests are skipped only when kubectl is not installed.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from kubernetes.stream import portforward

from rxkube.fakes import (
    SimAnnotations,
    SimSettings,
    Store,
    ThreadedFakeApiServer,
    fake_apiserver_thread,
)

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
SETTINGS = SimSettings(schedule_delay=0.005, start_delay=0.01, ready_delay=0.005)
DEADLINE = 20.0
FORWARDING = re.compile(rb"^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)$")

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThreadedFakeApiServer]:
    with fake_apiserver_thread(simulate=SETTINGS) as server:
        yield server


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A HOME of its own, so kubectl's discovery cache starts empty and stays here."""
    return tmp_path_factory.mktemp("home")


def wait(server: ThreadedFakeApiServer, predicate: Callable[[Store], bool]) -> None:
    simulation = server.simulation
    assert simulation is not None

    async def until() -> None:
        with trio.fail_after(DEADLINE):
            await simulation.wait_until(predicate)

    server.call_async(until)


def running_pods(app: str, count: int = 1) -> Callable[[Store], bool]:
    def check(store: Store) -> bool:
        pods = store.list("pods", namespace="default", label_selector=f"app={app}").objects()
        return (
            sum(
                1
                for pod in pods
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in (pod.get("status") or {}).get("conditions") or ()
                )
            )
            >= count
        )

    return check


def create_deployment(server: ThreadedFakeApiServer, name: str) -> str:
    """A one-replica Deployment with container port 8080; the name of its running pod."""
    server.store.create(
        "deployments",
        {
            "metadata": {"name": name},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]}
                        ]
                    },
                },
            },
        },
        namespace="default",
    )
    wait(server, running_pods(name))
    pods = server.store.list("pods", namespace="default", label_selector=f"app={name}").objects()
    return str(pods[0]["metadata"]["name"])


class Forward:
    """A running `kubectl port-forward`, its output read by a thread (lines in queues)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.stdout: queue.Queue[bytes] = queue.Queue()
        self.stderr: queue.Queue[bytes] = queue.Queue()
        self.readers = [
            threading.Thread(target=self._read, args=(process.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(process.stderr, self.stderr), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(pipe: Any, lines: queue.Queue[bytes]) -> None:
        for line in pipe:
            lines.put(line)
        lines.put(b"")

    def local_port(self, remote: int) -> int:
        """The port of the first `Forwarding from 127.0.0.1:NNNNN -> remote` line."""
        while True:
            line = self.stdout.get(timeout=DEADLINE)
            assert line, f"kubectl ended: {self.drain(self.stderr)}"
            match = FORWARDING.match(line.rstrip())
            if match:
                assert int(match.group(2)) == remote
                return int(match.group(1))

    def drain(self, lines: queue.Queue[bytes]) -> str:
        out = []
        while True:
            try:
                line = lines.get(timeout=DEADLINE)
            except queue.Empty:
                break
            if not line:
                break
            out.append(line)
        return b"".join(out).decode()


@contextmanager
def port_forward(
    server: ThreadedFakeApiServer, home: Path, *args: str, websockets: bool = True
) -> Iterator[Forward]:
    assert KUBECTL is not None
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig_path), "HOME": str(home)}
    if not websockets:
        # kubectl's switch back to SPDY only (its fallback when the WebSocket upgrade fails).
        env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = "false"
    process = subprocess.Popen(
        [KUBECTL, "port-forward", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    forward = Forward(process)
    try:
        yield forward
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=DEADLINE)
        for reader in forward.readers:
            reader.join(timeout=DEADLINE)


def get(port: int, path: str, connection: http.client.HTTPConnection | None = None) -> Any:
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        if connection is None:
            conn.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@needs_kubectl
@pytest.mark.parametrize("websockets", [True, False], ids=["websocket-tunnel", "spdy"])
def test_kubectl_port_forward_pod_reaches_its_backend(
    cluster: ThreadedFakeApiServer, home: Path, websockets: bool
) -> None:
    name = "pf-ws" if websockets else "pf-spdy"
    pod = create_deployment(cluster, name)
    with port_forward(cluster, home, f"pod/{pod}", ":8080", websockets=websockets) as forward:
        local = forward.local_port(8080)
        # Two requests on one kept-alive connection.
        conn = http.client.HTTPConnection("127.0.0.1", local, timeout=DEADLINE)
        try:
            assert get(local, "/one", conn)["pod"] == pod
            second = get(local, "/two?x=1", conn)
            assert (second["pod"], second["path"], second["port"]) == (pod, "/two", 8080)
        finally:
            conn.close()
        # Two connections open at the same time, each answered.
        first = socket.create_connection(("127.0.0.1", local), timeout=DEADLINE)
        other = socket.create_connection(("127.0.0.1", local), timeout=DEADLINE)
        try:
            for index, sock in enumerate((first, other)):
                sock.sendall(f"GET /c{index} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            for index, sock in enumerate((other, first)):
                reply = http.client.HTTPResponse(sock)
                reply.begin()
                body = json.loads(reply.read())
                assert (body["pod"], body["path"]) == (pod, f"/c{1 - index}")
        finally:
            first.close()
            other.close()
        # A body larger than SPDY's 64 KiB window and a data frame, both ways.
        big = b"0123456789abcdef" * 20000
        conn = http.client.HTTPConnection("127.0.0.1", local, timeout=DEADLINE)
        try:
            conn.request("POST", "/upload", body=big)
            response = conn.getresponse()
            assert json.loads(response.read())["body"] == big.decode()
        finally:
            conn.close()
        # Concurrent clients (threads) all get through.
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: get(local, f"/t{i}")["path"], range(8)))
        assert answers == [f"/t{i}" for i in range(8)]
        assert forward.process.poll() is None


@needs_kubectl
def test_kubectl_port_forward_deployment_on_a_fixed_port(
    cluster: ThreadedFakeApiServer, home: Path
) -> None:
    pod = create_deployment(cluster, "pf-deploy")
    local = free_port()
    with port_forward(cluster, home, "deploy/pf-deploy", f"{local}:8080") as forward:
        assert forward.local_port(8080) == local
        assert get(local, "/")["pod"] == pod
        assert get(local, "/again")["pod"] == pod


@needs_kubectl
def test_kubectl_port_forward_service(cluster: ThreadedFakeApiServer, home: Path) -> None:
    """kubectl resolves `svc/NAME` to one of its pods and the service port to the target port
    on its side; the server sees an ordinary pod port-forward."""
    pod = create_deployment(cluster, "pf-svc")
    cluster.store.create(
        "services",
        {
            "metadata": {"name": "pf-svc"},
            "spec": {
                "selector": {"app": "pf-svc"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
        namespace="default",
    )
    with port_forward(cluster, home, "svc/pf-svc", ":80") as forward:
        local = forward.local_port(8080)
        assert get(local, "/via-service")["pod"] == pod


@needs_kubectl
def test_kubectl_port_forward_to_a_port_nothing_listens_on(
    cluster: ThreadedFakeApiServer, home: Path
) -> None:
    """kubectl prints the kubelet's error from the error stream. Since kubectl 1.23 it then
    ends the whole forward ("lost connection to pod", exit 1) rather than staying up."""
    pod = create_deployment(cluster, "pf-refused")
    with port_forward(cluster, home, f"pod/{pod}", ":9999") as forward:
        local = forward.local_port(9999)
        with socket.create_connection(("127.0.0.1", local), timeout=DEADLINE) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(1024) == b""  # closed without an answer
        assert forward.process.wait(timeout=DEADLINE) == 1
        errors = forward.drain(forward.stderr)
    assert f"an error occurred forwarding {local} -> 9999: error forwarding port 9999 to pod " in (
        errors
    )
    assert "dial tcp4 127.0.0.1:9999: connect: connection refused" in errors
    assert errors.rstrip().endswith("error: lost connection to pod")


@needs_kubectl
def test_kubectl_port_forward_to_a_pod_not_running(
    cluster: ThreadedFakeApiServer, home: Path
) -> None:
    cluster.store.create(
        "pods",
        {
            "metadata": {
                "name": "pf-pending",
                "annotations": {SimAnnotations.START_DELAY: "60s"},
            },
            "spec": {"containers": [{"name": "app", "image": "web:1"}]},
        },
        namespace="default",
    )
    try:
        with port_forward(cluster, home, "pod/pf-pending", ":8080") as forward:
            assert forward.process.wait(timeout=DEADLINE) == 1
            errors = forward.drain(forward.stderr)
        assert errors.strip() == (
            "error: unable to forward port because pod is not running. Current status=Pending"
        )
    finally:
        cluster.store.delete("pods", "default", "pf-pending")


@pytest.fixture
def kube(cluster: ThreadedFakeApiServer) -> Iterator[kube_client.ApiClient]:
    api_client = kube_config.new_client_from_config(str(cluster.kubeconfig_path))
    try:
        yield api_client
    finally:
        api_client.close()  # type: ignore[attr-defined]  # in kubernetes>=12, not in the stubs


def test_official_client_portforward(
    cluster: ThreadedFakeApiServer, kube: kube_client.ApiClient
) -> None:
    """`kubernetes.stream.portforward`: v4.channel.k8s.io, a data and an error channel per port."""
    pod = create_deployment(cluster, "pf-python")
    core = kube_client.CoreV1Api(kube)
    # The stubs type `portforward` as returning str; it returns a `PortForward` object.
    forward: Any = portforward(
        core.connect_get_namespaced_pod_portforward, pod, "default", ports="8080,9999"
    )
    try:
        sock = forward.socket(8080)
        sock.settimeout(DEADLINE)
        sock.sendall(b"GET /py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert json.loads(body)["pod"] == pod
        refused = forward.socket(9999)
        refused.settimeout(DEADLINE)
        assert refused.recv(1024) == b""
        error = forward.error(9999)
        assert error is not None
        assert "error forwarding port 9999 to pod" in error
        assert "connect: connection refused" in error
    finally:
        forward.close()
