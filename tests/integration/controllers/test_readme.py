"""The README stays true, live: the 5-minute tour, the embedding examples, the metrics table.

The tour runs as the README says, in two "terminals": `rxkube demo` with its flags as a process,
then every command of the second terminal while it runs, Ctrl-C, then the replays. Fixed
addresses are moved to free ports and /tmp to the test's folder; nothing else is changed. The
embedding examples run as programs against the fake API server (`$KUBECONFIG`). The metrics
table is compared with what `/metrics` serves (with leader election, so every family is there).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import trio

from rxkube.fakes import open_fake_apiserver
from rxkube.streams import LeasePolicy
from tests import readme
from tests.integration.controllers.conftest import (
    SIM,
    User,
    deployment,
    loopback,
    open_cluster,
    with_pods,
)

STARTUP = 45.0
"""Seconds a cold interpreter on a busy machine may take to print the demo's addresses."""
LIMIT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def localize(command: str, ports: dict[int, int], folder: Path) -> str:
    """The README's fixed addresses as free ports, /tmp as the test's folder."""
    for fixed, free in ports.items():
        command = command.replace(f"127.0.0.1:{fixed}", f"127.0.0.1:{free}")
    return readme.shell(command.replace("/tmp/", f"{folder}/"))


async def sh(command: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(LIMIT):
        return await trio.run_process(
            command, shell=True, cwd=readme.REPO, capture_stdout=True, capture_stderr=True,
            check=False,
        )  # fmt: skip


async def test_the_tour(tmp_path: Path) -> None:
    first, second, third = [b.commands for b in readme.blocks("A 5-minute tour")][:3]
    assert first[0] == "make install && source .venv/bin/activate"  # done: we run in it
    ports = {port: free_port() for port in (8080, 8081, 9090)}
    demo_command = localize(first[1], ports, tmp_path)
    assert demo_command.startswith(f"{readme.BIN}/rxkube demo ")
    demo = await trio.lowlevel.open_process(
        shlex.split(demo_command), cwd=readme.REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    out = ""
    try:
        assert demo.stdout is not None
        with trio.fail_after(STARTUP):
            while "kubeconfig:" not in out:
                chunk = await demo.stdout.receive_some(65536)
                assert chunk, out
                out += chunk.decode()
        ran: dict[str, str] = {}
        for command in second:
            tool = command.split()[0]
            if tool != "rxkube" and shutil.which(tool) is None:
                continue  # e.g. no kubectl on this machine: the others still run
            done = await sh(localize(command, ports, tmp_path))
            assert done.returncode == 0, (command, done.stderr.decode())
            ran[tool if tool != "curl" else command.split()[-1]] = done.stdout.decode()
        if "kubectl" in ran:
            assert re.search(r"^notebook-\S+ +1/1 +Running", ran["kubectl"], re.M), ran
        assert re.match(r"HTTP/1.1 (200|503) ", ran[f"http://127.0.0.1:{8080}/notebook/"])
        assert '"namespace": "default"' in ran["http://127.0.0.1:8081/status.json"]
        assert 'rxkube_app_users{application="notebook"}' in ran["http://127.0.0.1:9090/metrics"]
        assert "recorded " in ran["rxkube"]
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C in the first terminal: its process group
        with trio.fail_after(LIMIT):
            while chunk := await demo.stdout.receive_some(65536):
                out += chunk.decode()
            code = await demo.wait()
    finally:
        if demo.returncode is None:
            os.killpg(demo.pid, signal.SIGKILL)
            await demo.wait()
    assert code == 130, out
    assert out.rstrip().endswith("rxkube demo: stopped (SIGINT)")
    results = [await sh(localize(command, ports, tmp_path)) for command in third]
    for command, done in zip(third, results, strict=True):
        assert done.returncode == 0, (command, done.stderr.decode())
    plain, what_if, shipped = (r.stdout.decode() for r in results)
    assert "recorded replay" in plain
    assert "decisions: the same as recorded" in plain
    assert "simulated replay with *.pods.max=8" in what_if
    assert (tmp_path / "what-if.csv").read_text().startswith("t,app,users,free_tickets")
    assert "simulated replay with notebook.tickets.spare=4" in shipped


async def run_example(source: str, folder: Path, kubeconfig: Path, expected: str) -> str:
    """Run a README example as a program until it prints a line matching `expected`."""
    script = folder / "example.py"
    script.write_text(source)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    process = await trio.lowlevel.open_process(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    out = ""
    try:
        assert process.stdout is not None
        with trio.fail_after(STARTUP):
            while not re.search(expected, out, re.M):
                chunk = await process.stdout.receive_some(65536)
                if not chunk:
                    assert process.stderr is not None
                    err = (await process.stderr.receive_some(65536)).decode()
                    raise AssertionError(f"the example ended:\n{out}\n{err}")
                out += chunk.decode()
    finally:
        process.kill()
        await process.wait()
    return out


async def test_the_embedding_examples_run(tmp_path: Path) -> None:
    controller, pipeline = [b.text for b in readme.blocks("Embedding") if b.language == "python"]
    host = loopback()
    async with open_fake_apiserver(simulate=SIM) as server:
        server.store.create("namespaces", {"metadata": {"name": "lab"}})
        manifest = with_pods(deployment("lab", tickets_max="2", pods_max="0"), replicas=1)
        manifest["spec"]["template"]["metadata"]["labels"]["app"] = "lab"
        server.store.create("deployments", manifest)
        own = controller.replace("127.0.0.1", host)
        out = await run_example(own, tmp_path, server.kubeconfig_path, r"^serving \['lab'\] .*\n")
        assert f"at [('{host}', 8080)]" in out
        out = await run_example(pipeline, tmp_path, server.kubeconfig_path, r"^lab \['Running'\]\n")
        assert out.splitlines()[0].startswith("lab [")


def families(exposition: str) -> dict[str, str]:
    """Family name (counters with `_total`, as the README names them) -> type; without the
    `_created` gauges prometheus-client adds beside counters and histograms."""
    found = {}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", exposition, re.M):
        if kind == "counter" and not name.endswith("_total"):
            name += "_total"
        if not (kind == "gauge" and name.endswith("_created")):
            found[name] = kind
    return found


async def test_the_metrics_table_is_what_metrics_serves() -> None:
    policy = LeasePolicy(lease_duration=2.0, renew_deadline=1.0, retry_period=0.1)
    async with open_cluster(
        metrics_listen=(loopback(), 0), leader_election=policy, instance="replica-1"
    ) as c:
        c.apply(deployment("lab", tickets_max="1", pods_max="0"))
        await c.add_pod("lab", "lab-1")
        await c.wait(lambda s: s.leader and "lab" in s.apps and s.apps["lab"].ready_servers == 1)
        assert (await User().get(c.url + "/lab/echo")).status == 200
        address = c.controller.metrics_address
        assert address is not None
        async with c.http(f"http://{address[0]}:{address[1]}") as http:
            exposition = (await http.get("/metrics")).text
    served = {
        name: kind
        for name, kind in families(exposition).items()
        if name.startswith(("rxkube_", "k8sticket_"))
    }
    documented = {row[0]: row[1] for row in readme.table("Metrics", "series")}
    assert documented == served
