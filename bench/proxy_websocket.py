"""WebSocket echo through `rxkube proxy` versus direct: messages/s and p99 round trip.

20 concurrent clients (trio-websocket) each send a 1 KiB message and wait for its echo, for
`--duration` seconds, against an echo backend: once straight to the backend, once through
`rxkube proxy` (each client takes a ticket with its upgrade request). Median of `--runs` runs.
The proxy runs pinned to CPU 0, backend and clients to CPU 1 (like proxy-peers.sh).
Acceptance (issue 4): through the proxy >= 80 % of direct messages/s.

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


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


async def load(url: str, clients: int, duration: float) -> tuple[float, float]:
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
    return count / elapsed, rtts[int(len(rtts) * 0.99)] * 1000


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
        results: dict[str, list[tuple[float, float]]] = {"direct": [], "proxy": []}
        urls = {
            "direct": f"ws://127.0.0.1:{backend_port}/",
            "proxy": f"ws://127.0.0.1:{proxy_port}/ws/",
        }
        for i in range(args.runs):
            for name, url in urls.items():
                cpu0, wall0 = cpu_seconds(proxy.pid), time.monotonic()
                rate, p99 = trio.run(load, url, args.clients, args.duration)
                busy = (cpu_seconds(proxy.pid) - cpu0) / (time.monotonic() - wall0)
                results[name].append((rate, p99))
                print(
                    f"run {i + 1} {name:<7} {rate:10.0f} msg/s  p99 {p99:7.2f} ms"
                    f"  proxy cpu {100 * busy:4.0f}%",
                    file=sys.stderr,
                )
        med = {
            name: (statistics.median(r for r, _ in rs), statistics.median(p for _, p in rs))
            for name, rs in results.items()
        }
        print(
            f"WebSocket echo, {args.clients} clients, 1 KiB messages, "
            f"{args.duration:g} s, median of {args.runs}"
        )
        for name, (rate, p99) in med.items():
            print(f"{name:<8} {rate:10.0f} msg/s   p99 round trip {p99:7.2f} ms")
        ratio = med["proxy"][0] / med["direct"][0]
        print(f"proxy/direct: {ratio:.2f}x msg/s, {med['proxy'][1] / med['direct'][1]:.2f}x p99")
        print(f"acceptance (>= 0.80x direct): {'PASS' if ratio >= 0.8 else 'FAIL'}")
    finally:
        for process in (proxy, backend):
            os.killpg(process.pid, 15)
            process.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
