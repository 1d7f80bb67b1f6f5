"""WebSocket echo through `rxkube proxy` versus direct: messages/s, round trips, the proxy's cost.

20 concurrent clients (trio-websocket) each send a 1 KiB message and wait for its echo, for
`--duration` seconds, against an echo backend: straight to the backend, and through
`rxkube proxy` (each client takes a ticket with its upgrade request), interleaved run by run
(the order alternates, so drift and position effects fall on both). Median of `--runs` runs.
The proxy runs pinned to CPU 0, backend and clients to CPU 1 (like proxy-peers.sh).
Acceptance (issue 4): through the proxy >= 80 % of direct messages/s.

Reading it on a shared machine. The direct runs need only CPU 1 (where the clients and the
backend are the bottleneck); the proxied ones also need the proxy to get CPU 0 within
microseconds each time a message arrives, since every round trip waits on it twice. When other
processes keep CPU 0 busy, the proxied rate measures that wait, not the proxy. So each run also
prints:
- `proxy us/msg`: the proxy's own CPU time (user + system, from /proc) per echoed message,
  i.e. for relaying it both ways, and from it the proxy's capacity on one core;
- `cpu0 others`: how busy CPU 0 was with everything but the proxy (from /proc/stat), and
  `cpu1`: how busy the load core was. High `cpu0 others` during a proxied run explains a low
  ratio; a proxy capacity far above the direct rate says the proxy is not what limits it.

    python bench/proxy_websocket.py [--runs 3] [--duration 10] [--clients 20]

All traffic is on 127.0.0.1; every run is bounded in time.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import trio
from trio_websocket import WebSocketRequest, open_websocket_url, serve_websocket

MESSAGE = b"m" * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_echo(port: int) -> None:
    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        while True:
            try:
                await ws.send_message(await ws.get_message())
            except Exception:
                return

    async def main() -> None:
        await serve_websocket(handler, "127.0.0.1", port, ssl_context=None)

    trio.run(main)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to show whether the proxy is busy."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_busy() -> dict[int, tuple[float, float]]:
    """Per CPU: (busy, total) jiffies since boot (Linux /proc/stat)."""
    out: dict[int, tuple[float, float]] = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [float(v) for v in values]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0)  # idle + iowait
            out[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return out


def busy_share(
    before: dict[int, tuple[float, float]], after: dict[int, tuple[float, float]], cpu: int
) -> float:
    """Share (0-1) of `cpu`'s time that was busy between two `cpu_busy()` readings."""
    if cpu not in before or cpu not in after:
        return float("nan")
    busy = after[cpu][0] - before[cpu][0]
    total = after[cpu][1] - before[cpu][1]
    return busy / total if total > 0 else float("nan")


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


async def load(url: str, clients: int, duration: float) -> tuple[float, float, float]:
    rtts: list[float] = []
    count = 0

    async def client() -> None:
        nonlocal count
        async with open_websocket_url(url) as ws:
            end = trio.current_time() + duration
            while (now := trio.current_time()) < end:
                await ws.send_message(MESSAGE)
                await ws.get_message()
                rtts.append(trio.current_time() - now)
                count += 1

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(client)
    elapsed = trio.current_time() - start
    rtts.sort()
    return count / elapsed, rtts[len(rtts) // 2] * 1000, rtts[int(len(rtts) * 0.99)] * 1000


@dataclass(frozen=True)
class Run:
    rate: float
    p50: float
    p99: float
    proxy_busy: float
    """Share of one core the proxy used."""
    proxy_us_per_msg: float
    cpu0_others: float
    """Share of CPU 0 busy with anything but the proxy."""
    cpu1: float

    def line(self) -> str:
        return (
            f"{self.rate:10.0f} msg/s  p50 {self.p50:6.2f} ms  p99 {self.p99:7.2f} ms"
            f"  proxy cpu {100 * self.proxy_busy:3.0f}% ({self.proxy_us_per_msg:5.1f} us/msg)"
            f"  cpu0 others {100 * self.cpu0_others:3.0f}%  cpu1 {100 * self.cpu1:3.0f}%"
        )


def measure(url: str, clients: int, duration: float, proxy_pid: int) -> Run:
    cpu0, wall0, stat0 = cpu_seconds(proxy_pid), time.monotonic(), cpu_busy()
    rate, p50, p99 = trio.run(load, url, clients, duration)
    wall = time.monotonic() - wall0
    used, stat1 = cpu_seconds(proxy_pid) - cpu0, cpu_busy()
    busy = used / wall
    return Run(
        rate=rate,
        p50=p50,
        p99=p99,
        proxy_busy=busy,
        proxy_us_per_msg=1e6 * used / (rate * duration) if rate > 0 else float("nan"),
        cpu0_others=max(0.0, busy_share(stat0, stat1, 0) - busy),
        cpu1=busy_share(stat0, stat1, 1),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo(args.serve_echo)
        return 0
    backend_port, proxy_port = free_port(), free_port()
    rxkube = str(Path(sys.executable).parent / "rxkube")
    taskset = (
        ["taskset", "-c"]
        if subprocess.run(["which", "taskset"], capture_output=True).returncode == 0
        else []
    )
    backend = subprocess.Popen(
        [
            *([*taskset, "1"] if taskset else []),
            sys.executable,
            __file__,
            "--serve-echo",
            str(backend_port),
        ],
        start_new_session=True,
    )
    proxy = subprocess.Popen(
        [
            *([*taskset, "0"] if taskset else []),
            rxkube,
            "proxy",
            "--listen",
            f"127.0.0.1:{proxy_port}",
            "--app",
            f"ws=http://127.0.0.1:{backend_port}",
            "--tickets-max",
            str(args.clients * 4),
        ],
        start_new_session=True,
        stderr=subprocess.DEVNULL,
    )
    if taskset:
        os.sched_setaffinity(0, {1})
    try:
        wait_port(backend_port)
        wait_port(proxy_port)
        urls = {
            "direct": f"ws://127.0.0.1:{backend_port}/",
            "proxy": f"ws://127.0.0.1:{proxy_port}/ws/",
        }
        results: dict[str, list[Run]] = {"direct": [], "proxy": []}
        ratios: list[float] = []
        trio.run(load, urls["proxy"], args.clients, 1.0)  # warm-up: imports, first tickets
        for i in range(args.runs):
            order = list(urls) if i % 2 == 0 else list(reversed(urls))
            pair: dict[str, float] = {}
            for name in order:
                run = measure(urls[name], args.clients, args.duration, proxy.pid)
                results[name].append(run)
                pair[name] = run.rate
                print(f"run {i + 1} {name:<7} {run.line()}", file=sys.stderr)
            ratios.append(pair["proxy"] / pair["direct"])
        print(
            f"WebSocket echo, {args.clients} clients, 1 KiB messages, "
            f"{args.duration:g} s, median of {args.runs} interleaved runs"
        )
        med: dict[str, tuple[float, float, float]] = {}
        for name, runs in results.items():
            rate = statistics.median(r.rate for r in runs)
            p50 = statistics.median(r.p50 for r in runs)
            p99 = statistics.median(r.p99 for r in runs)
            med[name] = (rate, p50, p99)
            others = statistics.median(r.cpu0_others for r in runs)
            print(
                f"{name:<8} {rate:10.0f} msg/s   round trip p50 {p50:6.2f} ms  p99 {p99:7.2f} ms"
                f"   cpu0 others {100 * others:3.0f}%"
            )
        ratio = med["proxy"][0] / med["direct"][0]
        cost = statistics.median(r.proxy_us_per_msg for r in results["proxy"])
        capacity = 1e6 / cost if cost > 0 else float("inf")
        print(
            f"proxy/direct: {ratio:.2f}x msg/s (median of run pairs "
            f"{statistics.median(ratios):.2f}x), {med['proxy'][2] / med['direct'][2]:.2f}x p99"
        )
        print(
            f"proxy cost: {cost:.1f} us of CPU per echoed message (both directions) -> "
            f"{capacity:,.0f} msg/s on one core = "
            f"{capacity / med['direct'][0]:.1f}x the direct rate"
        )
        print(f"acceptance (>= 0.80x direct): {'PASS' if ratio >= 0.8 else 'FAIL'}")
    finally:
        for process in (proxy, backend):
            os.killpg(process.pid, 15)
            process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
