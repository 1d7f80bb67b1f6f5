"""The fake API server over TLS (`tls=True`): the clients we wrote and the ones we did not.

With TLS the kubeconfig carries the fake's CA (`certificate-authority-data`) and an https
server, so kubectl sends its bearer token (it sends none over plain HTTP) and authentication
and RBAC can be shown with kubectl: 403 for a user without a Role, success once a RoleBinding
grants it, 401 for an unknown token. Watches (`kubectl get -w`, our informer, the official
client's watch) and exec WebSocket upgrades (kubectl, our orchestrator) run over the TLS
stream. kubectl tests are skipped only when kubectl is not installed.
"""

from __future__ import annotations

import os
import queue
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import trio
import yaml
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from kubernetes import watch as kube_watch

from rxkube.fakes import (
    SimSettings,
    ThreadedFakeApiServer,
    fake_apiserver_thread,
    open_fake_cluster,
)
from rxkube.streams import CONFIGMAPS, open_informer
from rxkube.streams.orchestrator import Condition, ContainerSpec, CreatePod, ExecResult

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
SIM = SimSettings(backends=False, schedule_delay=0.005, start_delay=0.01, ready_delay=0.005)
DEADLINE = 20.0


async def test_our_client_lists_watches_and_execs_over_tls_with_a_token() -> None:
    async with open_fake_cluster(tls=True, rbac=True, simulate=SIM) as cluster:
        server = cluster.server
        assert server.url.startswith("https://127.0.0.1:")
        assert server.ca_pem is not None
        [entry] = yaml.safe_load(server.kubeconfig_path.read_text())["clusters"]
        assert entry["cluster"]["server"] == server.url
        assert "certificate-authority-data" in entry["cluster"]

        # A watch: the informer lists, then sees a change made afterwards.
        async with open_informer(cluster.client, CONFIGMAPS, namespace="default") as configmaps:
            with trio.fail_after(DEADLINE):
                await configmaps.wait_synced()
                server.store.create(
                    "configmaps", {"metadata": {"name": "later", "namespace": "default"}}
                )
                await configmaps.wait_until(lambda s: s.events >= 1)
            assert configmaps.store.keys() == ["default/later"]

        # exec: the WebSocket upgrade on the TLS connection.
        shell = CreatePod("shell", [ContainerSpec("app", "sim:1")], labels={"pod": "shell"})
        await cluster.pods.create(shell)
        await cluster.pods.wait({"pod": "shell"}, Condition.READY, timeout=DEADLINE)
        result = await cluster.pods.exec("shell", ["sh", "-c", "echo over tls; echo e >&2"])
        assert result == ExecResult(b"over tls\n", b"e\n", 0)

        # Without the token: 401; without trusting the fake's CA: no connection at all.
        async with httpx.AsyncClient(verify=server.ssl_context(), timeout=DEADLINE) as http:
            answer = await http.get(f"{server.url}/api/v1/namespaces")
            assert (answer.status_code, answer.json()["reason"]) == (401, "Unauthorized")
        async with httpx.AsyncClient(timeout=DEADLINE) as http:
            with pytest.raises(httpx.ConnectError) as refused:
                await http.get(f"{server.url}/version")
        causes = []
        error: BaseException | None = refused.value
        while error is not None:
            causes.append(error)
            error = error.__cause__ or error.__context__
        assert any(isinstance(c, ssl.SSLCertVerificationError) for c in causes), causes


@pytest.fixture(scope="module")
def tls_server() -> Iterator[ThreadedFakeApiServer]:
    with fake_apiserver_thread(tls=True, rbac=True, simulate=SIM) as server:
        yield server


def test_the_official_client_over_tls(tls_server: ThreadedFakeApiServer) -> None:
    api_client = kube_config.new_client_from_config(str(tls_server.kubeconfig_path))
    try:
        # The official client's stubs type events and bodies narrowly; plain dicts are read here.
        core: Any = kube_client.CoreV1Api(api_client)
        names = [n.metadata.name for n in core.list_namespace().items]
        assert "default" in names
        created = core.create_namespaced_config_map(
            "default", {"metadata": {"name": "official"}, "data": {"a": "1"}}
        )
        seen: list[tuple[str, str]] = []
        watcher: Any = kube_watch.Watch()
        for event in watcher.stream(
            core.list_namespaced_config_map,
            "default",
            resource_version="0",
            timeout_seconds=5,
        ):
            seen.append((event["type"], event["object"].metadata.name))
            if ("ADDED", "official") in seen:
                break
        assert ("ADDED", "official") in seen
        assert created.metadata.name == "official"
    finally:
        api_client.close()  # type: ignore[attr-defined]  # in kubernetes>=12, not in the stubs


class Kubectl:
    """kubectl with a kubeconfig of its own (a user's token) and its own cache."""

    def __init__(self, server: ThreadedFakeApiServer, home: Path, token: str | None) -> None:
        home.mkdir()
        self.config = server.write_kubeconfig(home / "kubeconfig", token=token)
        self.env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(self.config)}

    def __call__(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        return subprocess.run(
            [KUBECTL, "--request-timeout=20s", *args],
            input=None if stdin is None else stdin.decode(),
            capture_output=True,
            text=True,
            env=self.env,
            timeout=DEADLINE * 2,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        assert KUBECTL is not None
        return subprocess.Popen(
            [KUBECTL, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )


def _lines(stream: IO[str] | None) -> queue.Queue[str]:
    assert stream is not None
    out: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            out.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return out


GRANT = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: default}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: alice-reads, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}
"""


@needs_kubectl
def test_kubectl_sends_the_token_over_tls_and_rbac_decides(
    tls_server: ThreadedFakeApiServer, tmp_path: Path
) -> None:
    admin = Kubectl(tls_server, tmp_path / "admin", None)
    alice = Kubectl(tls_server, tmp_path / "alice", tls_server.add_user("alice"))
    stranger = Kubectl(tls_server, tmp_path / "stranger", "not-a-token")

    refused = stranger("get", "pods")
    assert refused.returncode == 1
    assert "error: You must be logged in to the server" in refused.stderr

    # Authenticated, but no Role: 403 with the API server's message.
    forbidden = alice("get", "pods")
    assert forbidden.returncode == 1
    assert forbidden.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource '
        '"pods" in API group "" in the namespace "default"'
    )

    # The admin grants it with kubectl; then alice lists and watches pods.
    granted = admin("apply", "-f", "-", stdin=GRANT.encode())
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.split("\n")[:2] == [
        "role.rbac.authorization.k8s.io/pod-reader created",
        "rolebinding.rbac.authorization.k8s.io/alice-reads created",
    ]
    assert alice("get", "pods").returncode == 0

    watch = alice.start("get", "pods", "-w", "--request-timeout=30s")
    lines = _lines(watch.stdout)
    try:
        created = admin("run", "watched", "--image=sim:1", "--restart=Never")
        assert created.returncode == 0, created.stderr
        header = lines.get(timeout=DEADLINE)
        assert header.split()[:3] == ["NAME", "READY", "STATUS"]
        assert lines.get(timeout=DEADLINE).split()[0] == "watched"
        # exec, as the admin (alice may not): a WebSocket upgrade on the TLS connection.
        waited = admin("wait", "--for=condition=Ready", "pod/watched", "--timeout=20s")
        assert waited.returncode == 0, waited.stderr
        shell = admin("exec", "-i", "watched", "--", "sh", "-c", "cat; exit 3", stdin=b"hi\n")
        assert (shell.returncode, shell.stdout) == (3, "hi\n")
        denied = alice("exec", "watched", "--", "true")
        assert denied.returncode == 1
        assert 'cannot create resource "pods/exec"' in denied.stderr
        # port-forward's upgrade (WebSocket, then the SPDY fallback) is `create` on
        # pods/portforward, which alice lacks too.
        unforwarded = alice("port-forward", "pod/watched", ":8080")
        assert unforwarded.returncode == 1
        assert 'cannot create resource "pods/portforward"' in unforwarded.stderr
    finally:
        watch.kill()
        watch.communicate()


def test_the_kubeconfig_of_a_tls_server_names_its_ca(tls_server: ThreadedFakeApiServer) -> None:
    config: dict[str, Any] = yaml.safe_load(tls_server.kubeconfig_path.read_text())
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == tls_server.url == f"https://127.0.0.1:{tls_server.port}"
    assert tls_server.ca_pem is not None
    assert tls_server.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    with httpx.Client(verify=tls_server.ssl_context(), timeout=DEADLINE) as http:
        assert http.get(f"{tls_server.url}/version").status_code == 401  # rbac implies auth
