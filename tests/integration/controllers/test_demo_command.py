"""`rxkube demo` as a process: it prints its URLs, serves through the proxy, stops cleanly.

What a person does with it, done by a program: start it, read the URLs it prints, reach a pod
backend through the proxy with a ticket cookie, read the status page, the metrics and (with
kubectl, when installed) the pods, and see it end by itself (`--duration`, exit 0) or on
Ctrl-C (exit 130), leaving no process behind.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from rxkube.controllers import open_ticket_controller, replay_trace
from rxkube.streams import StreamEvent, load_trace

STARTUP = 45.0
"""Seconds the demo may take to print its URLs (a cold interpreter on a busy machine)."""
LIMIT = 10.0


class Demo:
    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.out = ""
        self.urls: dict[str, str] = {}

    async def read_until(self, pattern: str) -> re.Match[str]:
        assert self.process.stdout is not None
        while (match := re.search(pattern, self.out, re.M)) is None:
            chunk = await self.process.stdout.receive_some(65536)
            assert chunk, f"rxkube demo ended before printing {pattern!r}:\n{self.out}"
            self.out += chunk.decode()
        return match

    async def read_urls(self) -> None:
        with trio.fail_after(STARTUP):
            await self.read_until(r"^  kubeconfig:\s+(\S+)$")
        for name in ("proxy", "status page", "metrics", "kubeconfig", "api server"):
            found = re.search(rf"^  {name}:\s+(\S+)$", self.out, re.M)
            assert found is not None, self.out
            self.urls[name] = found.group(1)

    async def read_rest(self) -> None:
        assert self.process.stdout is not None
        while chunk := await self.process.stdout.receive_some(65536):
            self.out += chunk.decode()


async def start_demo(*flags: str) -> Demo:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "rxkube.controllers", "demo", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: what is left of it can be seen
    )
    return Demo(process)


def assert_nothing_left(process: trio.Process) -> None:
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pid, 0)


async def stop(process: trio.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


async def test_the_demo_serves_through_the_proxy_and_ends_by_itself(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    trace = tmp_path / "demo.jsonl.gz"
    demo = await start_demo(
        "--duration=10",
        "--users=4",
        "--seed=3",
        "--pod-start-delay=0.3",
        f"--record={trace}",
        f"--kubeconfig-out={kubeconfig}",
    )
    try:
        await demo.read_urls()
        proxy = demo.urls["proxy"].rstrip("/")
        assert demo.urls["kubeconfig"] == str(kubeconfig)
        with trio.fail_after(LIMIT):
            async with httpx.AsyncClient(timeout=LIMIT) as user:
                first = await user.get(f"{proxy}/notebook/hello")
                assert first.status_code == 200, first.text
                assert "rxkube-ticket-notebook" in user.cookies  # the ticket cookie
                pod = first.json()["pod"]  # the pod backend's echo names the pod
                assert pod.startswith("notebook-")
                assert first.json()["path"] == "/hello"
                again = await user.get(f"{proxy}/notebook/again")
                assert again.headers["x-rxkube-pod"] == pod  # the same ticket, the same pod
                page = await user.get(f"{proxy}/notebook/", headers={"Accept": "text/html"})
                assert f"<code id=pod>{pod}</code>" in page.text  # what a browser gets
            async with httpx.AsyncClient(timeout=LIMIT) as http:
                status = (await http.get(demo.urls["status page"] + "status.json")).json()
                assert {a["app"] for a in status["apps"]} == {"notebook", "chat"}
                metrics = await http.get(demo.urls["metrics"])
                assert 'rxkube_app_servers{application="chat",ready="true"}' in metrics.text
        if shutil.which("kubectl"):
            listed = await trio.run_process(
                ["kubectl", "--kubeconfig", str(kubeconfig), "get", "pods", "-o", "name"],
                capture_stdout=True,
            )
            names = listed.stdout.decode().split()
            assert any(n.startswith("pod/notebook-") for n in names), names
            assert any(n.startswith("pod/chat-") for n in names), names
        with trio.fail_after(10 + 15):
            await demo.read_rest()
            code = await demo.process.wait()
    finally:
        await stop(demo.process)
    assert demo.process.stderr is not None
    err = (await demo.process.stderr.receive_some(65536)).decode()
    assert code == 0, err
    assert "Traceback" not in err
    assert demo.out.rstrip().endswith("rxkube demo: done")
    assert re.search(r"^\[\d:\d\d\] users: 4 arrived, .* 0 errors$", demo.out, re.M), demo.out
    assert re.search(r"^summary: ran 1\d s; 4 users, \d got a ticket", demo.out, re.M), demo.out
    assert_nothing_left(demo.process)
    assert not kubeconfig.exists() or kubeconfig.stat().st_size > 0
    records = load_trace(trace)
    issued = [
        r.event
        for r in records.records
        if isinstance(r.event, StreamEvent) and r.event.type == "issued"
    ]
    assert len(issued) >= 1


async def test_ctrl_c_stops_the_demo_cleanly_with_exit_130() -> None:
    demo = await start_demo("--pod-start-delay=0.3")
    try:
        await demo.read_urls()
        demo.process.send_signal(signal.SIGINT)
        with trio.fail_after(LIMIT):
            await demo.read_rest()
            code = await demo.process.wait()
    finally:
        await stop(demo.process)
    assert demo.process.stderr is not None
    err = (await demo.process.stderr.receive_some(65536)).decode()
    assert code == 130, err
    assert "Traceback" not in err
    assert demo.out.rstrip().endswith("rxkube demo: stopped (SIGINT)")
    assert_nothing_left(demo.process)


async def test_a_port_in_use_is_one_line_and_nothing_is_left() -> None:
    with trio.socket.socket() as holder:
        await holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        demo = await start_demo(f"--admin=127.0.0.1:{port}", "--pod-start-delay=0")
        try:
            with trio.fail_after(STARTUP):
                await demo.read_rest()
                code = await demo.process.wait()
        finally:
            await stop(demo.process)
    assert demo.process.stderr is not None
    err = (await demo.process.stderr.receive_some(65536)).decode()
    assert code == 1
    assert err == f"rxkube demo: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert_nothing_left(demo.process)


AUTOSCALER = "autoscaling" in inspect.signature(open_ticket_controller).parameters
"""Whether the runner scales (issue 8's wiring, on h/autoscaler until it lands)."""


@pytest.mark.skipif(
    not AUTOSCALER, reason="the autoscaler is not wired into open_ticket_controller yet (issue 8)"
)
async def test_users_arriving_then_leaving_scale_pods_up_then_down(tmp_path: Path) -> None:
    # The short version of bench/demo_autoscaling.py (30 users, 60 s): 8 users in 12 s.
    trace = tmp_path / "demo.jsonl.gz"
    demo = await start_demo(
        "--duration=12",
        "--users=8",
        "--seed=2",
        "--pod-start-delay=0.5",
        "--cooldown=1",
        "--idle-timeout=1",
        f"--record={trace}",
    )
    try:
        await demo.read_urls()
        with trio.fail_after(12 + 20):
            await demo.read_rest()
            code = await demo.process.wait()
    finally:
        await stop(demo.process)
    assert code == 0, demo.out
    ups = re.findall(
        r"^\[(\d:\d\d)\] scale-up +(\w+): autoscaled pod (\S+) created$", demo.out, re.M
    )
    downs = re.findall(
        r"^\[(\d:\d\d)\] scale-down +(\w+): autoscaled pod (\S+) (?:terminating|deleted)$",
        demo.out,
        re.M,
    )
    assert ups, demo.out
    assert {pod for _, _, pod in downs} == {pod for _, _, pod in ups}, demo.out  # all went
    summary = re.search(
        r"^summary: .* autoscaled pods: (\d+) created, (\d+) removed", demo.out, re.M
    )
    assert summary is not None, demo.out
    assert int(summary.group(1)) == len(ups) == int(summary.group(2))
    # At the end every app is back to its Deployment's one pod.
    finals = re.findall(r"^\[0:1\d\] app (\w+): pods (.*?); users", demo.out, re.M)
    last = dict(finals)
    assert last == {"chat": "1/1 ready", "notebook": "1/1 ready"}, demo.out
    assert_nothing_left(demo.process)

    # The runner recorded it (`rxkube run --record`'s contents): a plain replay makes the
    # recorded decisions, the same on every run.
    recorded = load_trace(trace)
    assert list(recorded.header.streams)[-2:] == ["tickets/default", "autoscaler/default"]
    assert recorded.header.source.startswith("rxkube demo (seed 2, 8 users")
    replayed = replay_trace(recorded)
    assert replayed.matches_recording is True, (replayed.commands, replayed.recorded)
    assert len(replayed.commands) == 2 * len(ups)  # every pod created and deleted
    assert replay_trace(recorded) == replayed
