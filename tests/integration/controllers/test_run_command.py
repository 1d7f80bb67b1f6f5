"""`rxkube run` as a process: against the fake API server, serving, probed, stopped by SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from typing import Any

import httpx
import trio

from rxkube.fakes import open_fake_apiserver
from tests.integration.controllers.conftest import (
    KEY,
    LIMIT,
    User,
    deployment,
    loopback,
)
from tests.integration.proxy.backend import Backend


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


async def test_run_serves_until_sigterm_then_drains_and_exits_0(tmp_path: Any) -> None:
    host = loopback()
    pod_ip = loopback()
    metrics_port = free_port(host)
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY + b"\n")
    backend = Backend("lab-1")
    backend.port = 8080
    async with open_fake_apiserver() as server, trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(8080, host=pod_ip)
        nursery.start_soon(trio.serve_listeners, backend._serve, listeners)
        store = server.store
        store.create("namespaces", {"metadata": {"name": "lab"}})
        store.create("deployments", deployment("lab"))
        store.create(
            "pods",
            {
                "metadata": {
                    "name": "lab-1",
                    "namespace": "lab",
                    "labels": {"ipb-halle.de/k8sticket.deployment.app.name": "lab"},
                    "annotations": {"ipb-halle.de/k8sticket.pod.port": "8080"},
                },
                "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
            },
        )
        status = {
            "phase": "Running",
            "podIP": pod_ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        }
        store.patch("pods", "lab", "lab-1", {"status": status}, subresource="status")
        command = [
            sys.executable,
            "-m",
            "rxkube.controllers",
            "run",
            f"--kubeconfig={server.kubeconfig_path}",
            "--namespace=lab",
            f"--listen={host}:0",
            f"--metrics={host}:{metrics_port}",
            f"--ticket-key-file={key_file}",
            "--leader-election",
            "--drain-deadline=2s",
            "--log-format=json",
        ]
        process = await trio.lowlevel.open_process(command, stderr=subprocess.PIPE)
        assert process.stderr is not None
        lines: list[dict[str, Any]] = []
        buffer = b""

        async def read_until(message: str) -> dict[str, Any]:
            nonlocal buffer
            assert process.stderr is not None
            while True:
                for line in lines:
                    if line.get("msg") == message:
                        return line
                chunk = await process.stderr.receive_some(65536)
                assert chunk, f"rxkube run ended before logging {message!r}: {lines}"
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                lines.extend(json.loads(raw) for raw in complete if raw.strip())

        try:
            with trio.fail_after(30):  # a cold interpreter start on a busy machine
                started = await read_until("started")
                await read_until("ready")
            proxy_url = "http://" + started["listen"]
            with trio.fail_after(LIMIT):
                reply = await User().get(proxy_url + "/lab/echo")
                assert (reply.status, reply.backend) == (200, "lab-1")
                async with httpx.AsyncClient(timeout=LIMIT) as http:
                    ready = await http.get(f"http://{host}:{metrics_port}/readyz")
                    metrics = await http.get(f"http://{host}:{metrics_port}/metrics")
                assert ready.status_code == 200
                assert 'rxkube_app_users{application="lab"} 1.0' in metrics.text
                assert "process_cpu_seconds_total" in metrics.text
                process.send_signal(signal.SIGTERM)
                stopping = await read_until("stopping")
                assert stopping["signal"] == "SIGTERM"
                while chunk := await process.stderr.receive_some(65536):
                    buffer += chunk
                lines.extend(json.loads(raw) for raw in buffer.split(b"\n") if raw.strip())
                code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert code == 0
        assert any(line["msg"].endswith("became leader of lease lab/rxkube") for line in lines)
        assert any(line["msg"].endswith("released lease lab/rxkube") for line in lines)
        assert any(line["msg"] == "app served" and line["app"] == "lab" for line in lines)
        nursery.cancel_scope.cancel()
