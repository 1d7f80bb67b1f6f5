"""`kubectl cp` (the `tar` of the simulated shell over exec) and `kubectl top` (the
`metrics.k8s.io` API served from the simulation) with the real kubectl against the fake.

Skipped only when kubectl is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from kubernetes import client as kube_client
from kubernetes import config as kube_config

from rxkube.fakes import SimSettings, Store, ThreadedFakeApiServer, fake_apiserver_thread

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
SETTINGS = SimSettings(schedule_delay=0.005, start_delay=0.01, ready_delay=0.005)
DEADLINE = 20.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThreadedFakeApiServer]:
    with fake_apiserver_thread(simulate=SETTINGS) as server:
        yield server


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def kubectl(
    server: ThreadedFakeApiServer, home: Path, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    assert KUBECTL is not None
    env = {**os.environ, "KUBECONFIG": str(server.kubeconfig_path), "HOME": str(home)}
    return subprocess.run(
        [KUBECTL, "--request-timeout=20s", *args],
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=DEADLINE,
        check=False,
    )


def ok(server: ThreadedFakeApiServer, home: Path, *args: str, cwd: Path | None = None) -> str:
    done = kubectl(server, home, *args, cwd=cwd)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout.decode()


def wait(server: ThreadedFakeApiServer, predicate: Callable[[Store], bool]) -> None:
    simulation = server.simulation
    assert simulation is not None

    async def until() -> None:
        with trio.fail_after(DEADLINE):
            await simulation.wait_until(predicate)

    server.call_async(until)


def running(*names: str) -> Callable[[Store], bool]:
    def check(store: Store) -> bool:
        for name in names:
            try:
                pod = store.get("pods", "default", name)
            except Exception:
                return False
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            if not statuses or not all("running" in (c.get("state") or {}) for c in statuses):
                return False
        return True

    return check


def create_pod(
    server: ThreadedFakeApiServer, name: str, labels: dict[str, str], containers: list[str]
) -> None:
    server.store.create(
        "pods",
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "containers": [
                    {"name": c, "image": "web:1", "ports": [{"containerPort": 8080 + i}]}
                    for i, c in enumerate(containers)
                ]
            },
        },
        namespace="default",
    )


def test_kubectl_cp_files_and_trees_both_ways(
    cluster: ThreadedFakeApiServer, home: Path, tmp_path: Path
) -> None:
    create_pod(cluster, "copier", {"app": "copier"}, ["app", "sidecar"])
    wait(cluster, running("copier"))
    blob = bytes((i * 7919) % 251 for i in range(300_000))
    (tmp_path / "blob.bin").write_bytes(blob)
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "hello.txt").write_text("hello from the host\n")
    (tree / "sub" / "blob.bin").write_bytes(blob)
    (tree / "sub" / "deeper" / "empty").write_bytes(b"")

    # A file to the pod (kubectl runs `tar -xmf - -C /tmp`), checked with exec, and back.
    ok(cluster, home, "cp", str(tmp_path / "blob.bin"), "copier:/tmp/blob.bin", "-c", "app")
    assert ok(cluster, home, "exec", "copier", "-c", "app", "--", "wc", "-c", "/tmp/blob.bin") == (
        "300000 /tmp/blob.bin\n"
    )
    back = kubectl(
        cluster, home, "cp", "-c", "app", "copier:/tmp/blob.bin", "back.bin", cwd=tmp_path
    )
    assert back.returncode == 0, back.stderr
    # tar's warning on stderr may lose the race with the end of the archive on stdout (as
    # with a real kubelet: kubectl stops when the archive ends).
    assert back.stderr in (b"", b"tar: Removing leading `/' from member names\n")
    assert (tmp_path / "back.bin").read_bytes() == blob

    # A directory tree into the sidecar (another container: another filesystem).
    ok(cluster, home, "cp", str(tree), "copier:/tmp/tree", "-c", "sidecar")
    cat = ok(cluster, home, "exec", "copier", "-c", "sidecar", "--", "cat", "/tmp/tree/hello.txt")
    assert cat == "hello from the host\n"
    missing = kubectl(cluster, home, "exec", "copier", "-c", "app", "--", "ls", "/tmp/tree")
    assert missing.returncode == 2
    ok(cluster, home, "cp", "-c", "sidecar", "copier:/tmp/tree", "copy", cwd=tmp_path)
    copy = tmp_path / "copy"
    assert sorted(str(p.relative_to(copy)) for p in copy.rglob("*")) == [
        "hello.txt",
        "sub",
        "sub/blob.bin",
        "sub/deeper",
        "sub/deeper/empty",
    ]
    assert (copy / "sub" / "blob.bin").read_bytes() == blob
    assert (copy / "hello.txt").read_text() == "hello from the host\n"

    # Missing sources: kubectl's own check for local paths; for pod paths tar's messages,
    # and kubectl exits 0 as it does against a real cluster (kubernetes/kubectl#980).
    local = kubectl(cluster, home, "cp", "nope.txt", "copier:/tmp/", "-c", "app", cwd=tmp_path)
    assert (local.returncode, local.stderr) == (
        1,
        b"error: nope.txt doesn't exist in local filesystem\n",
    )
    remote = kubectl(cluster, home, "cp", "-c", "app", "copier:/nope", "x", cwd=tmp_path)
    # kubectl stops when the (empty) archive ends, so tar's stderr is cut at any point: as
    # much of it as arrived, in order.
    assert remote.returncode == 0
    assert (
        b"tar: Removing leading `/' from member names\n"
        b"tar: /nope: Cannot stat: No such file or directory\n"
        b"tar: Exiting with failure status due to previous errors\n"
    ).startswith(remote.stderr)
    assert not (tmp_path / "x").exists()


def test_kubectl_top_pods_and_nodes_from_what_the_backends_did(
    cluster: ThreadedFakeApiServer, home: Path
) -> None:
    create_pod(cluster, "top-web", {"app": "top-web"}, ["app", "sidecar"])
    create_pod(cluster, "top-db", {"app": "top-db"}, ["db"])
    wait(cluster, running("top-web", "top-db"))

    def row(text: str, *first: str) -> list[str]:
        return next(
            line.split() for line in text.splitlines() if line.split()[: len(first)] == list(first)
        )

    pods = ok(cluster, home, "top", "pods")
    assert pods.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    # Idle: 1m per container; memory 8Mi plus the log lines each container wrote.
    assert row(pods, "top-web")[:2] == ["top-web", "2m"]
    assert row(pods, "top-db")[:2] == ["top-db", "1m"]
    selected = ok(cluster, home, "top", "pods", "-l", "app=top-web")
    assert [line.split()[0] for line in selected.splitlines()[1:]] == ["top-web"]
    containers = ok(cluster, home, "top", "pods", "-l", "app=top-web", "--containers")
    assert containers.splitlines()[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert [line.split()[:3] for line in containers.splitlines()[1:]] == [
        ["top-web", "app", "1m"],
        ["top-web", "sidecar", "1m"],
    ]
    nodes = ok(cluster, home, "top", "nodes")
    assert nodes.splitlines()[0].split() == [
        "NAME",
        "CPU(cores)",
        "CPU(%)",
        "MEMORY(bytes)",
        "MEMORY(%)",
    ]
    assert row(nodes, "node-1")[0] == "node-1"
    missing = kubectl(cluster, home, "top", "pod", "nope")
    assert missing.stderr == (
        b'Error from server (NotFound): podmetrics.metrics.k8s.io "default/nope" not found\n'
    )

    # 75 requests to the app container's backend: 75 * 2 ms of CPU over the 15 s window.
    host, port = cluster.simulation.address("default", "top-web", 8080)  # type: ignore[union-attr]
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=DEADLINE) as backend:
        for _ in range(75):
            assert backend.get("/").status_code == 200
    busy = ok(cluster, home, "top", "pods", "top-web", "--containers")
    assert [line.split()[:3] for line in busy.splitlines()[1:]] == [
        ["top-web", "app", "11m"],
        ["top-web", "sidecar", "1m"],
    ]

    # The official client reads the same objects through CustomObjectsApi.
    api_client = kube_config.new_client_from_config(str(cluster.kubeconfig_path))
    try:
        custom = kube_client.CustomObjectsApi(api_client)
        listed: dict[str, Any] = custom.list_namespaced_custom_object(
            "metrics.k8s.io", "v1beta1", "default", "pods", label_selector="app=top-web"
        )
        assert listed["kind"] == "PodMetricsList"
        (item,) = listed["items"]
        assert item["window"] == "15s"
        assert item["timestamp"] == item["metadata"]["creationTimestamp"]
        usage = {c["name"]: c["usage"] for c in item["containers"]}
        assert usage["app"]["cpu"] == "11m"
        assert usage["app"]["memory"].endswith("Ki")
        node: dict[str, Any] = custom.get_cluster_custom_object(
            "metrics.k8s.io", "v1beta1", "nodes", "node-1"
        )
        assert node["kind"] == "NodeMetrics"
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node-1"
    finally:
        api_client.close()  # type: ignore[attr-defined]  # in kubernetes>=12, not in the stubs
