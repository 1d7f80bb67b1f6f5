"""Exec, scripts, files and logs through the real client and the WebSocket channel protocol,
against the simulated cluster's containers; protocol edge cases (a server that speaks only v4,
a runtime that cannot start a command) against the stand-in `StubKubelet`."""

from __future__ import annotations

import pytest
import trio

from rxkube.fakes import FakeCluster
from rxkube.streams import BadRequest, KubeError, NotFound, TrioScheduler
from rxkube.streams.orchestrator import (
    Condition,
    ContainerSpec,
    CreatePod,
    ExecExit,
    ExecFailed,
    ExecOutput,
    ExecResult,
    TimedOut,
)
from tests.integration.orchestrator.conftest import Harness
from tests.integration.orchestrator.stub_kubelet import V4, StubKubelet

BINARY = bytes(range(256)) * 3 + b"\r\n\x00\xff"


async def make_pod(cluster: FakeCluster, name: str = "sim-0", *containers: str) -> None:
    specs = [ContainerSpec(c, "sim:1") for c in containers or ("app",)]
    await cluster.pods.create(CreatePod(name, specs, labels={"pod": name}))
    if cluster.server.simulation is not None:
        await cluster.pods.wait({"pod": name}, Condition.READY, timeout=10)


async def test_exec_streams_stdout_and_stderr_and_ends_with_the_exit_status(
    cluster: FakeCluster,
) -> None:
    await make_pod(cluster)
    events = [
        event
        async for event in cluster.pods.exec_script(
            "sim-0", "echo hello world; echo oops >&2; for i in 1 2 3; do echo $i; done"
        )
    ]
    stdout = b"".join(e.data for e in events if isinstance(e, ExecOutput) and e.channel == "stdout")
    stderr = b"".join(e.data for e in events if isinstance(e, ExecOutput) and e.channel == "stderr")
    assert stdout == b"hello world\n1\n2\n3\n"
    assert stderr == b"oops\n"
    assert isinstance(events[-1], ExecExit)
    assert events[-1].exit_code == 0
    assert events[-1].status["status"] == "Success"


async def test_awaiting_exec_gives_the_result(cluster: FakeCluster) -> None:
    await make_pod(cluster)
    result = await cluster.pods.exec("sim-0", ["echo", "hi", "there"])
    assert result == ExecResult(b"hi there\n", b"", 0)
    assert result.text == "hi there\n"


async def test_a_script_that_writes_then_reads_a_result_file(cluster: FakeCluster) -> None:
    await make_pod(cluster)
    await cluster.pods.exec_script("sim-0", "mkdir -p /data && echo 42 > /data/result.txt")
    assert await cluster.pods.read_file("sim-0", "/data/result.txt") == b"42\n"
    listing = await cluster.pods.exec("sim-0", ["ls", "/data"])
    assert listing.text == "result.txt\n"


async def test_non_zero_exit_is_exec_failed_with_status_and_stderr(cluster: FakeCluster) -> None:
    await make_pod(cluster)
    with pytest.raises(ExecFailed) as caught:
        await cluster.pods.exec_script("sim-0", "echo partial; cat /missing; exit 3")
    failed = caught.value
    assert failed.exit_code == 3
    assert failed.stdout == b"partial\n"
    assert failed.stderr == b"cat: /missing: No such file or directory\n"
    assert failed.status["reason"] == "NonZeroExitCode"
    assert "exited with status 3" in str(failed)
    assert "No such file" in str(failed)
    # check=False: the exit status is data, not an error.
    result = await cluster.pods.exec_script("sim-0", "exit 7", check=False)
    assert result.exit_code == 7
    unknown = await cluster.pods.exec_script("sim-0", "frobnicate", check=False)
    assert unknown.exit_code == 127
    assert b"frobnicate: not found" in unknown.stderr


async def test_read_file_is_binary_safe_both_ways(cluster: FakeCluster) -> None:
    await make_pod(cluster)
    # stdin (v5 closes it with FF 00) carries the bytes in; `cat` carries them out.
    await cluster.pods.exec("sim-0", ["sh", "-c", "cat > /tmp/world.bin"], stdin=BINARY)
    assert await cluster.pods.read_file("sim-0", "/tmp/world.bin") == BINARY
    with pytest.raises(ExecFailed, match="No such file"):
        await cluster.pods.read_file("sim-0", "/tmp/absent.bin")


async def test_exec_errors_before_the_upgrade_are_the_apis(cluster: FakeCluster) -> None:
    with pytest.raises(NotFound):
        await cluster.pods.exec("absent", ["true"])
    await make_pod(cluster, "two", "app", "sidecar")
    with pytest.raises(BadRequest, match="a container name must be specified"):
        await cluster.pods.exec("two", ["true"])
    result = await cluster.pods.exec("two", ["echo", "ok"], container="sidecar")
    assert result.stdout == b"ok\n"


async def test_exec_as_an_observable_and_cancelled_by_a_deadline(cluster: FakeCluster) -> None:
    await make_pod(cluster)
    seen: list[object] = []
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        cluster.pods.exec("sim-0", ["echo", "rx"]).subscribe(
            seen.append, seen.append, done.set, scheduler=TrioScheduler(nursery)
        )
        await done.wait()
    assert seen[0] == ExecOutput("stdout", b"rx\n")
    assert isinstance(seen[-1], ExecExit)
    with pytest.raises(trio.TooSlowError), trio.fail_after(0.3):
        # The command runs for a long time: the caller's deadline cancels the exec.
        await cluster.pods.exec("sim-0", ["sleep", "600"])


async def test_logs_with_tail(harness: Harness) -> None:
    cluster = harness.cluster
    await make_pod(cluster)
    log = harness.simulation.log("default", "sim-0")
    for i in range(10):
        log.write(f"line {i}\n")
    lines = await cluster.pods.logs("sim-0")
    assert lines[-10:] == [f"line {i}" for i in range(10)]
    assert len(lines) > 10  # the container's own startup lines come first
    assert await cluster.pods.logs("sim-0", tail=3) == ["line 7", "line 8", "line 9"]
    assert await cluster.pods.logs("sim-0", tail=0) == []


async def test_logs_follow_streams_new_lines_as_they_are_written(harness: Harness) -> None:
    cluster = harness.cluster
    await make_pod(cluster)
    log = harness.simulation.log("default", "sim-0")
    log.write("ready\n")
    lines: list[str] = []
    async for line in cluster.pods.logs("sim-0", follow=True, tail=1):
        lines.append(line)
        if line == "ready":
            # What a command writes to the container's stdout is in its log too.
            await cluster.pods.exec_script("sim-0", "echo lap 1 > /proc/1/fd/1")
        elif line == "lap 1":
            log.write("lap 2\n")
        elif line == "lap 2":
            break
    assert lines == ["ready", "lap 1", "lap 2"]


async def test_logs_follow_ends_when_the_container_stops(harness: Harness) -> None:
    cluster = harness.cluster
    await make_pod(cluster)
    harness.simulation.log("default", "sim-0").write("bye\n")
    lines: list[str] = []
    first_line = trio.Event()

    def on_line(line: str) -> None:
        lines.append(line)
        first_line.set()

    async with trio.open_nursery() as nursery:
        done = trio.Event()
        cluster.pods.logs("sim-0", follow=True, tail=1).subscribe(
            on_line, on_completed=done.set, scheduler=TrioScheduler(nursery)
        )
        # Delete only once the follow is under way: deleting first races the request, and the
        # tail would then be the container's shutdown line instead of "bye".
        await first_line.wait()
        await cluster.pods.delete("sim-0", grace_period=1)
        await done.wait()
    assert lines[0] == "bye"
    assert len(lines) > 1, "the follow should have streamed the shutdown lines too"


async def test_logs_as_an_observable_disposed_mid_follow(harness: Harness) -> None:
    cluster = harness.cluster
    await make_pod(cluster)
    harness.simulation.log("default", "sim-0").write("one\n")
    got_one = trio.Event()
    seen: list[str] = []

    def on_next(line: str) -> None:
        seen.append(line)
        got_one.set()

    async with trio.open_nursery() as nursery:
        subscription = cluster.pods.logs("sim-0", follow=True, tail=1).subscribe(
            on_next, scheduler=TrioScheduler(nursery)
        )
        await got_one.wait()
        subscription.dispose()
    assert seen == ["one"]


# -- protocol edge cases, against the stand-in kubelet ----------------------------------------


async def test_v4_is_the_fallback_and_refuses_stdin(
    bare: tuple[FakeCluster, StubKubelet],
) -> None:
    cluster, kubelet = bare
    kubelet.protocols = (V4,)  # a server that speaks v4 only picks it from our offer
    await make_pod(cluster)
    result = await cluster.pods.exec("sim-0", ["echo", "over", "v4"])
    assert result.stdout == b"over v4\n"
    assert kubelet.execs[-1][2] == V4
    with pytest.raises(KubeError, match="stdin needs v5"):
        await cluster.pods.exec("sim-0", ["cat"], stdin=b"x")


async def test_a_command_the_runtime_cannot_start_has_no_exit_code(
    bare: tuple[FakeCluster, StubKubelet],
) -> None:
    cluster, _ = bare
    await make_pod(cluster)
    with pytest.raises(ExecFailed) as caught:
        await cluster.pods.exec("sim-0", ["/no/such/binary"], check=False)
    assert caught.value.exit_code is None
    assert caught.value.status["reason"] == "InternalError"
    assert "executable file not found" in str(caught.value)


async def test_output_arrives_in_many_messages_and_a_cancelled_exec_hangs_up(
    bare: tuple[FakeCluster, StubKubelet],
) -> None:
    cluster, kubelet = bare
    await make_pod(cluster)
    kubelet.container("sim-0").files["/data/world.bin"] = BINARY
    events = [e async for e in cluster.pods.exec("sim-0", ["cat", "/data/world.bin"])]
    # The stub sends stdout in 7-byte messages: each arrives as its own event.
    assert sum(isinstance(e, ExecOutput) for e in events) == -(-len(BINARY) // 7)
    with pytest.raises(trio.TooSlowError), trio.fail_after(0.3):
        await cluster.pods.exec("sim-0", ["sleep", "infinity"])
    await kubelet.hung_up.wait()  # the server saw the connection close


async def test_an_exec_timeout_is_a_typed_error_and_hangs_up(
    bare: tuple[FakeCluster, StubKubelet],
) -> None:
    cluster, kubelet = bare
    await make_pod(cluster)
    with pytest.raises(TimedOut, match=r"timed out after 0.3 s running \['sleep', 'infinity'\]"):
        await cluster.pods.exec("sim-0", ["sleep", "infinity"], timeout=0.3)
    await kubelet.hung_up.wait()  # the server saw the connection close
    # A command that ends in time is unaffected by its timeout.
    assert (await cluster.pods.exec("sim-0", ["echo", "quick"], timeout=5)).stdout == b"quick\n"
