"""Clients we did not write against the simulated cluster: kubectl (rollout status, wait, logs,
logs -f, exec with exit codes and binary stdin over WebSockets) and the official Python
client's `stream(connect_get_namespaced_pod_exec, ...)` (v5 and v4 sub-protocols).

One threaded fake (with the simulation) serves the module; each test uses its own pods.
kubectl tests are skipped only when kubectl is not installed.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from kubernetes.stream import stream

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


def ready(name: str) -> Callable[[Store], bool]:
    def check(store: Store) -> bool:
        try:
            obj = store.get("pods", "default", name)
        except Exception:
            return False
        return any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (obj.get("status") or {}).get("conditions") or ()
        )

    return check


def create_pod(server: ThreadedFakeApiServer, name: str, **annotations: str) -> None:
    server.store.create(
        "pods",
        {
            "metadata": {"name": name, "annotations": annotations},
            "spec": {
                "containers": [
                    {"name": "app", "image": "web:1", "ports": [{"containerPort": 8080}]}
                ]
            },
        },
        namespace="default",
    )


def kubectl(
    server: ThreadedFakeApiServer, home: Path, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    assert KUBECTL is not None
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig_path), "HOME": str(home)}
    return subprocess.run(
        [KUBECTL, *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=DEADLINE,
        check=False,
    )


@needs_kubectl
def test_kubectl_rollout_status_and_wait(cluster: ThreadedFakeApiServer, home: Path) -> None:
    cluster.store.create(
        "deployments",
        {
            "metadata": {"name": "rolling"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "rolling"}},
                "template": {
                    "metadata": {"labels": {"app": "rolling"}},
                    "spec": {"containers": [{"name": "app", "image": "web:1"}]},
                },
            },
        },
        namespace="default",
    )
    rollout = kubectl(cluster, home, "rollout", "status", "deployment/rolling", "--timeout=20s")
    assert rollout.returncode == 0, rollout.stderr
    assert (
        rollout.stdout.decode().splitlines()[-1] == 'deployment "rolling" successfully rolled out'
    )
    # `kubectl wait` watches a pod that becomes Ready only later.
    create_pod(cluster, "later", **{SimAnnotations.START_DELAY: "300ms"})
    waited = kubectl(cluster, home, "wait", "--for=condition=Ready", "pod/later", "--timeout=20s")
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout == b"pod/later condition met\n"


@needs_kubectl
def test_kubectl_logs(cluster: ThreadedFakeApiServer, home: Path) -> None:
    create_pod(cluster, "logs")
    wait(cluster, ready("logs"))
    logs = kubectl(cluster, home, "logs", "logs")
    assert logs.returncode == 0, logs.stderr
    lines = logs.stdout.decode().splitlines()
    assert lines[0] == "rxkube simulated container app of pod default/logs started (image web:1)"
    tail = kubectl(cluster, home, "logs", "logs", "--tail=1")
    assert tail.stdout.decode() == lines[-1] + "\n"
    wrong = kubectl(cluster, home, "logs", "logs", "-c", "nope")
    assert wrong.returncode == 1
    assert wrong.stderr.decode().strip() == "error: container nope is not valid for pod logs"


@needs_kubectl
def test_kubectl_logs_follow_streams_until_the_container_stops(
    cluster: ThreadedFakeApiServer, home: Path
) -> None:
    assert KUBECTL is not None
    create_pod(cluster, "follow")
    wait(cluster, ready("follow"))
    simulation = cluster.simulation
    assert simulation is not None
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig_path), "HOME": str(home)}
    process = subprocess.Popen(
        [KUBECTL, "logs", "-f", "follow"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    lines: queue.Queue[bytes] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(b"")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert lines.get(timeout=DEADLINE).startswith(b"rxkube simulated container app")
        assert lines.get(timeout=DEADLINE).startswith(b"listening on http://")
        cluster.call(lambda: simulation.log("default", "follow").write("a line while following\n"))
        assert lines.get(timeout=DEADLINE) == b"a line while following\n"
        cluster.store.delete("pods", "default", "follow")
        assert lines.get(timeout=DEADLINE) == b"received SIGTERM, shutting down\n"
        assert lines.get(timeout=DEADLINE) == b""  # the stream ended with the container
        assert process.wait(timeout=DEADLINE) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=DEADLINE)


@needs_kubectl
def test_kubectl_exec_propagates_exit_codes_and_binary_stdin(
    cluster: ThreadedFakeApiServer, home: Path
) -> None:
    create_pod(cluster, "shell")
    wait(cluster, ready("shell"))
    failing = kubectl(
        cluster, home, "exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3"
    )
    assert failing.returncode == 3
    assert failing.stdout == b"out\n"
    assert failing.stderr.decode().splitlines() == ["err", "command terminated with exit code 3"]
    missing = kubectl(cluster, home, "exec", "shell", "--", "sh", "-c", "nosuch")
    assert missing.returncode == 127
    assert missing.stderr.decode().splitlines()[0] == "sh: 1: nosuch: not found"
    payload = bytes(range(256)) * 16
    wrote = kubectl(
        cluster, home, "exec", "-i", "shell", "--", "sh", "-c", "cat > /tmp/blob", stdin=payload
    )
    assert wrote.returncode == 0, wrote.stderr
    read = kubectl(cluster, home, "exec", "shell", "--", "cat", "/tmp/blob")
    assert read.returncode == 0
    assert read.stdout == payload
    listing = kubectl(cluster, home, "exec", "shell", "--", "ls", "/tmp")
    assert listing.stdout == b"blob\n"


def test_official_client_stream_exec_v5_and_v4(cluster: ThreadedFakeApiServer) -> None:
    create_pod(cluster, "official")
    wait(cluster, ready("official"))
    api_client = kube_config.new_client_from_config(str(cluster.kubeconfig_path))
    try:
        core = kube_client.CoreV1Api(api_client)
        text = stream(
            core.connect_get_namespaced_pod_exec,
            "official",
            "default",
            command=["sh", "-c", "echo hello; echo oops >&2"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
        )
        assert text == "hello\noops\n"
        # v5: stdin, then the close signal on channel 255 ends `cat`.
        v5: Any = stream(
            core.connect_get_namespaced_pod_exec,
            "official",
            "default",
            command=["sh", "-c", "cat; exit 5"],
            stderr=True,
            stdin=True,
            stdout=True,
            tty=False,
            _preload_content=False,
        )
        v5.write_stdin("from stdin\n")
        v5.close_channel(0)
        v5.run_forever(timeout=DEADLINE)
        assert (v5.subprotocol, v5.returncode) == ("v5.channel.k8s.io", 5)
        assert v5.read_stdout() == "from stdin\n"
        # v4, asked for explicitly: no half-close, the status still carries the exit code.
        v4: Any = stream(
            core.connect_get_namespaced_pod_exec,
            "official",
            "default",
            command=["sh", "-c", "echo v4; exit 6"],
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
            _headers={"sec-websocket-protocol": "v4.channel.k8s.io"},
        )
        v4.run_forever(timeout=DEADLINE)
        assert (v4.subprotocol, v4.returncode) == ("v4.channel.k8s.io", 6)
        assert v4.read_stdout() == "v4\n"
    finally:
        api_client.close()  # type: ignore[attr-defined]  # in kubernetes>=12, not in the stubs
