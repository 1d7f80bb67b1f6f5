"""`rxkube record` against the fake API server: in-process and as a process.

The recording goes through the real client and informers over loopback; the fake serves a
namespace with an annotated Deployment, one that is not opted in, an app pod and a pod of
nothing. Waits are on conditions: the fake's open watches, the recorder's record count.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from rxkube.controllers._record_cmd import record_namespace
from rxkube.fakes import FakeApiServer, open_fake_apiserver
from rxkube.streams import StreamEvent, WatchEvent, load_kubeconfig, load_trace, open_client
from tests.integration.controllers.conftest import LIMIT, deployment

APP = "ipb-halle.de/k8sticket.deployment.app.name"
STREAMS = [
    "deployments.apps/lab?meta",
    "deployments.apps/lab?labelSelector=ipb-halle.de%2Fk8sticket%3Dtrue",
    "pods/lab?labelSelector=ipb-halle.de%2Fk8sticket.deployment.app.name",
]
STARTUP = 45.0
"""Seconds a cold interpreter on a busy machine may take to open its watches."""


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "lab", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
    }


def populate(server: FakeApiServer) -> None:
    store = server.store
    store.create("namespaces", {"metadata": {"name": "lab"}})
    store.create("deployments", deployment("lab"))
    other = deployment("plain")
    del other["metadata"]["labels"]  # not opted in: only in the metadata watch
    store.create("deployments", other)
    store.create("pods", pod("lab-1", {APP: "lab"}))
    store.create("pods", pod("stray", {"run": "x"}))  # no app label: not watched


def change(server: FakeApiServer) -> None:
    """What happens while recording: a pod comes, a pod goes, an annotation changes."""
    store = server.store
    store.create("pods", pod("lab-2", {APP: "lab"}))
    store.delete("pods", "lab", "lab-1")
    store.patch(
        "deployments",
        "lab",
        "lab",
        {"metadata": {"annotations": {"ipb-halle.de/k8sticket.deployment.tickets.max": "3"}}},
    )


def events(path: Path) -> list[tuple[str, str, str]]:
    """(stream, type, name) of every record; SYNCED has no name."""
    trace = load_trace(path)
    out: list[tuple[str, str, str]] = []
    for record in trace.records:
        event = record.event
        assert isinstance(event, WatchEvent)  # no demand in such a trace
        name = "" if event.type == "SYNCED" else event.meta.name
        out.append((event.stream, event.type, name))
    return out


def check_trace(path: Path, *, changed: bool) -> None:
    trace = load_trace(path)
    assert list(trace.header.streams) == STREAMS
    assert trace.header.source.startswith("rxkube record, ")
    assert trace.header.source.endswith(", namespace lab")
    seen = events(path)
    meta, labelled, pods = STREAMS
    # The first list of every watch, then SYNCED.
    assert {(s, t, n) for s, t, n in seen if t == "SYNCED"} == {(s, "SYNCED", "") for s in STREAMS}
    assert (meta, "ADDED", "plain") in seen
    assert (labelled, "ADDED", "lab") in seen
    assert not any(s == labelled and n == "plain" for s, _, n in seen)
    assert (pods, "ADDED", "lab-1") in seen
    assert not any(n == "stray" for _, _, n in seen)
    if changed:
        assert (pods, "ADDED", "lab-2") in seen
        assert (pods, "DELETED", "lab-1") in seen
        assert (labelled, "MODIFIED", "lab") in seen
        assert (meta, "MODIFIED", "lab") in seen
    times = [r.t for r in trace.records]
    assert times == sorted(times)


async def test_record_namespace_writes_the_controllers_watches(tmp_path: Path) -> None:
    path = tmp_path / "lab.jsonl.gz"
    async with open_fake_apiserver() as server:
        populate(server)
        client_config = load_kubeconfig(server.kubeconfig_path)
        async with open_client(client_config) as client, trio.open_nursery() as nursery:
            stop = trio.Event()
            reports: list[tuple[float, int, float, str]] = []
            progressed = trio.lowlevel.ParkingLot()

            def progress(elapsed: float, records: int, rate: float, problems: str) -> None:
                reports.append((elapsed, records, rate, problems))
                progressed.unpark_all()

            async def run() -> None:
                recorded = await record_namespace(
                    client,
                    namespace="lab",
                    path=path,
                    source="rxkube record, test, namespace lab",
                    progress=progress,
                    interval=0.05,
                    stop=stop,
                )
                results.append(recorded)

            results: list[Any] = []
            nursery.start_soon(run)
            with trio.fail_after(LIMIT):
                await server.api.wait_open_watches(3)
                listed = 3 + 2 + 2  # SYNCED x3; plain and lab (metadata); lab; lab-1
                while not reports or reports[-1][1] < listed:
                    await progressed.park()
                change(server)
                while reports[-1][1] < listed + 4:
                    await progressed.park()
                stop.set()
    (recorded,) = results
    assert recorded.records == listed + 4
    assert recorded.streams == 3
    assert recorded.bytes == path.stat().st_size > 0
    assert any(rate > 0 for _, _, rate, _ in reports)
    check_trace(path, changed=True)


async def start(*args: str) -> trio.Process:
    return await trio.lowlevel.open_process(
        [sys.executable, "-m", "rxkube.controllers", "record", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


async def finish(process: trio.Process) -> tuple[int, str, str]:
    assert process.stdout is not None
    assert process.stderr is not None
    out = err = b""
    with trio.fail_after(LIMIT):
        while chunk := await process.stdout.receive_some(65536):
            out += chunk
        while chunk := await process.stderr.receive_some(65536):
            err += chunk
        code = await process.wait()
    return code, out.decode(), err.decode()


async def test_the_command_records_until_its_duration_then_replays(tmp_path: Path) -> None:
    path = tmp_path / "lab.jsonl.gz"
    async with open_fake_apiserver() as server:
        populate(server)
        process = await start(
            "--kubeconfig", str(server.kubeconfig_path), "--namespace=lab", f"--out={path}",
            "--duration=3",
        )  # fmt: skip
        try:
            with trio.fail_after(STARTUP):
                await server.api.wait_open_watches(3)
            change(server)  # delivered within milliseconds; the recording lasts 3 s
            code, out, err = await finish(process)
        finally:
            if process.returncode is None:
                process.kill()
    assert code == 0, err
    assert out.splitlines()[0] == f"rxkube record: namespace lab to {path}"
    assert f"events of 3 streams in 3.0 s to {path}" in out
    assert "note: no demand in this trace" in out
    assert "events/s" in err  # the progress line
    assert "Traceback" not in err
    check_trace(path, changed=True)

    with trio.fail_after(STARTUP):
        replayed = await trio.run_process(
            [sys.executable, "-m", "rxkube.controllers", "replay", "--quiet", str(path)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert replayed.returncode == 0, replayed.stderr
    text = replayed.stdout.decode()
    assert "recorded replay" in text
    assert "note: this trace has no demand" in text
    assert any(line.split()[:3] == ["lab", "0", "0"] for line in text.splitlines())


async def test_ctrl_c_ends_a_recording_with_a_complete_trace(tmp_path: Path) -> None:
    path = tmp_path / "lab.jsonl.gz"
    async with open_fake_apiserver() as server:
        populate(server)
        process = await start("--kubeconfig", str(server.kubeconfig_path), f"--out={path}")
        try:
            with trio.fail_after(STARTUP):
                await server.api.wait_open_watches(3)
            # The first list is written before its watch opens: the trace holds it now.
            process.send_signal(signal.SIGINT)
            code, out, err = await finish(process)
        finally:
            if process.returncode is None:
                process.kill()
    assert code == 130, err
    assert "Traceback" not in err
    assert f"rxkube record: namespace default to {path}" in out  # the context's namespace
    trace = load_trace(path)  # complete: gzip finalized, every line whole
    assert all(not isinstance(r.event, StreamEvent) for r in trace.records)
    synced = {e for e in events(path) if e[1] == "SYNCED"}
    assert synced == {(s.replace("/lab", "/default"), "SYNCED", "") for s in STREAMS}
