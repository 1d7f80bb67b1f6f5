"""`rxkube fake-apiserver` from a shell, and a kubectl smoke test against it."""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

KUBECTL = shutil.which("kubectl")


@pytest.fixture
def cli_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The CLI in a subprocess: yields (url, kubeconfig path); stops it with Ctrl-C."""
    with serve_cli(tmp_path) as served:
        yield served


@contextlib.contextmanager
def serve_cli(tmp_path: Path, *options: str) -> Iterator[tuple[str, Path]]:
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rxkube.controllers",
            "fake-apiserver",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig-out",
            str(kubeconfig),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed: list[str] = []
        for line in process.stdout:
            printed.append(line)
            if line.startswith("current-context"):
                break
        config = yaml.safe_load("".join(printed))
        url = config["clusters"][0]["cluster"]["server"]
        assert printed[0] == f"# rxkube fake API server listening on {url}\n"
        assert yaml.safe_load(kubeconfig.read_text()) == config
        yield url, kubeconfig
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        assert code == 130, process.stderr.read() if process.stderr else ""


def test_cli_serves_and_prints_a_kubeconfig(cli_server: tuple[str, Path]) -> None:
    url, _ = cli_server
    version = httpx.get(f"{url}/version", timeout=10)
    assert version.status_code == 200
    assert version.json()["major"] == "1"


def test_cli_reports_an_address_in_use(cli_server: tuple[str, Path]) -> None:
    url, _ = cli_server
    port = url.rsplit(":", 1)[1]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rxkube.controllers",
            "fake-apiserver",
            "--listen",
            f"127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"rxkube fake-apiserver: error: cannot listen on 127.0.0.1:{port}"
    )


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_create_get_and_delete(cli_server: tuple[str, Path], tmp_path: Path) -> None:
    _, kubeconfig = cli_server
    assert KUBECTL is not None

    def kubectl(*args: str) -> str:
        result = subprocess.run(
            [
                KUBECTL,
                "--kubeconfig",
                str(kubeconfig),
                "--cache-dir",
                str(tmp_path / "cache"),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    manifest = tmp_path / "objects.yaml"
    manifest.write_text(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "settings"},
                    "data": {"a": "1"},
                },
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": "web",
                        "labels": {"app": "web"},
                        # The CLI simulates a cluster: keep this pod Pending for the test.
                        "annotations": {"sim.rxkube.io/start-delay": "1h"},
                    },
                    "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
                },
            ]
        )
    )
    created = kubectl("create", "--validate=false", "-f", str(manifest))
    assert "configmap/settings created" in created
    assert "pod/web created" in created
    pods = json.loads(kubectl("get", "pods", "-o", "json"))
    assert [p["metadata"]["name"] for p in pods["items"]] == ["web"]
    assert pods["items"][0]["status"]["phase"] == "Pending"
    selected = json.loads(kubectl("get", "pods", "-l", "app=db", "-o", "json"))
    assert selected["items"] == []
    table = kubectl("get", "configmaps")
    assert "settings" in table
    assert "deleted" in kubectl("delete", "configmap", "settings")
    assert json.loads(kubectl("get", "configmaps", "-o", "json"))["items"] == []


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_against_the_simulated_cluster_of_the_cli(
    cli_server: tuple[str, Path], tmp_path: Path
) -> None:
    """`rxkube fake-apiserver` simulates by default: deployments roll out, pods run."""
    _, kubeconfig = cli_server
    assert KUBECTL is not None

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "c"), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    created = kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2")
    assert created.returncode == 0, created.stderr
    rollout = kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert rollout.returncode == 0, rollout.stderr
    assert rollout.stdout.splitlines()[-1] == 'deployment "web" successfully rolled out'
    pods = json.loads(kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    names = {p["metadata"]["name"] for p in pods}
    assert len(names) == 2
    assert all(p["status"]["phase"] == "Running" for p in pods)
    hostname = kubectl("exec", "deployment/web", "--", "hostname")
    assert hostname.returncode == 0, hostname.stderr
    assert hostname.stdout.strip() in names
    logs = kubectl("logs", "deployment/web")
    assert logs.stdout.startswith("rxkube simulated container nginx of pod default/web-")
    scaled = kubectl("scale", "deployment/web", "--replicas=1")
    assert scaled.returncode == 0, scaled.stderr
    assert kubectl("rollout", "status", "deployment/web", "--timeout=30s").returncode == 0
    replicas = kubectl("get", "deployment", "web", "-o", "jsonpath={.status.replicas}")
    assert replicas.stdout == "1"


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_cli_with_tls_and_auth_serves_kubectl_with_its_token(tmp_path: Path) -> None:
    """`--tls`: HTTPS with the CA in the printed kubeconfig, so kubectl sends the admin token
    that `--auth` requires (over plain HTTP it would send none and get 401)."""
    assert KUBECTL is not None
    with serve_cli(tmp_path, "--tls", "--auth", "--no-simulation") as (url, kubeconfig):
        assert url.startswith("https://127.0.0.1:")
        cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        context = ssl.create_default_context(cadata=ca)
        assert httpx.get(f"{url}/api", verify=context, timeout=10).status_code == 401
        config = ["--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "c")]
        result = subprocess.run(
            [KUBECTL, *config, "create", "configmap", "over-tls", "--from-literal=a=1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (result.returncode, result.stdout) == (0, "configmap/over-tls created\n"), (
            result.stderr
        )
