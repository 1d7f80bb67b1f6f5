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

import pytest
import trio

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
