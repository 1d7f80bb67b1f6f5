"""Soak: `rxkube demo` under generated load for minutes; its RSS and open files over time.

    python bench/soak.py [--minutes 10] [--warmup 2] [--users 30] [--visitors 6] [--interval 5]

Issue 10 item 5. The demo runs as a subprocess (`rxkube demo --users N`, no duration: its
simulated users arrive, browse or talk over a WebSocket, leave, and come back after a pause,
endlessly; at most N at a time). Besides them, `--visitors` bounded loops in this process churn
through the proxy from outside the demo: each visit is a new client (a new connection and a
new ticket, or the waiting room) that makes a few requests and leaves, and one loop scrapes
`/metrics` and the status page. So connections, tickets, autoscaled pods, watches and Events
keep coming and going for the whole run.

Every `--interval` seconds this samples the demo process from /proc: resident memory (VmRSS),
open file descriptors (/proc/PID/fd), threads, and its CPU share; it prints them over time,
then the growth after the warm-up (`--warmup` minutes): the median of the first minute after
it against the median of the last minute (`--window`), and the least-squares slope over every
sample after it, per hour. Flat means: RSS within 5 % or 10 MB and file descriptors within 10
of where the warm-up left them (the slopes show a slow trend). Nothing is asserted: it prints
figures and a verdict; exit 0 unless the demo died. All traffic is on 127.0.0.1; the run is
bounded by `--minutes`.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    t: float
    """Seconds since the demo started serving."""
    rss_mb: float
    fds: int
    threads: int
    cpu: float
    """Share of one core since the previous sample."""


def read_process(pid: int) -> tuple[float, int, int, float]:
    """(RSS in MB, open fds, threads, CPU seconds) of `pid`, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK
    return rss_kb / 1024, fds, threads, cpu


def slope_per_hour(samples: list[Sample], value: str) -> float:
    """Least-squares slope of `value` against time, per hour."""
    if len(samples) < 2:
        return 0.0
    ts = [s.t for s in samples]
    vs = [float(getattr(s, value)) for s in samples]
    mt, mv = statistics.fmean(ts), statistics.fmean(vs)
    den = sum((t - mt) ** 2 for t in ts)
    return (
        3600 * sum((t - mt) * (v - mv) for t, v in zip(ts, vs, strict=True)) / den if den else 0.0
    )


# -- load from outside the demo -------------------------------------------------------------------


@dataclass
class Load:
    visits: int = 0
    requests: int = 0
    admitted: int = 0
    waiting: int = 0
    errors: int = 0
    scrapes: int = 0
    objects: str = ""
    """Objects the demo's API server holds, by kind (to tell its store from a leak)."""


async def visitor(base: str, apps: list[str], load: Load, seed: int) -> None:
    """New client per visit, as a browser: the page (a ticket, or the waiting room, asked
    again every 2 s for up to 30 s), a few requests, then leave (the ticket idles out)."""
    import random

    rng = random.Random(seed)
    while True:
        app = rng.choice(apps)
        load.visits += 1
        async with httpx.AsyncClient(base_url=base, timeout=10.0, follow_redirects=True) as http:
            try:
                waited = False
                with trio.move_on_after(30.0):
                    while True:
                        response = await http.get(f"/{app}/", headers={"Accept": "text/html"})
                        load.requests += 1
                        if response.status_code != 503:
                            break
                        if not waited:
                            waited = True
                            load.waiting += 1
                        await trio.sleep(2.0)
                if response.status_code == 200:
                    load.admitted += 1
                    for step in range(rng.randint(1, 5)):
                        await trio.sleep(rng.uniform(0.2, 1.0))
                        await http.get(f"/{app}/api/step/{step}")
                        load.requests += 1
                elif response.status_code != 503:
                    load.errors += 1
            except httpx.HTTPError:
                load.errors += 1
        await trio.sleep(rng.uniform(0.5, 2.0))


async def scraper(urls: list[str], load: Load) -> None:
    async with httpx.AsyncClient(timeout=10.0) as http:
        while True:
            for url in urls:
                try:
                    await http.get(url)
                    load.scrapes += 1
                except httpx.HTTPError:
                    load.errors += 1
            await trio.sleep(5.0)


async def census(api: str, load: Load) -> None:
    """Count the objects the demo's fake API server keeps, every 30 s."""
    kinds = {
        "pods": "/api/v1/pods",
        "events": "/api/v1/events",
        "leases": "/apis/coordination.k8s.io/v1/leases",
    }
    async with httpx.AsyncClient(base_url=api, timeout=10.0) as http:
        while True:
            counts = []
            for kind, path in kinds.items():
                try:
                    response = await http.get(path)
                    counts.append(f"{kind} {len(response.json().get('items', []))}")
                except (httpx.HTTPError, ValueError):
                    counts.append(f"{kind} ?")
            load.objects = ", ".join(counts)
            await trio.sleep(30.0)


async def soak(
    args: argparse.Namespace, pid: int, urls: dict[str, str], apps: list[str]
) -> list[Sample]:
    load = Load()
    samples: list[Sample] = []
    start = trio.current_time()
    end = start + args.minutes * 60
    async with trio.open_nursery() as nursery:
        for i in range(args.visitors):
            nursery.start_soon(visitor, urls["proxy"], apps, load, i)
        nursery.start_soon(scraper, [urls["metrics"], urls["status"]], load)
        if "api" in urls:
            nursery.start_soon(census, urls["api"], load)
        last_cpu, last_t = None, start
        print(f"{'t (s)':>7} {'RSS MB':>8} {'fds':>5} {'threads':>7} {'cpu':>5}   outside load")
        while True:
            now = trio.current_time()
            try:
                rss, fds, threads, cpu = read_process(pid)
            except OSError:
                print("the demo process is gone", file=sys.stderr)
                break
            share = 0.0 if last_cpu is None else (cpu - last_cpu) / max(now - last_t, 1e-9)
            last_cpu, last_t = cpu, now
            sample = Sample(now - start, rss, fds, threads, share)
            samples.append(sample)
            print(
                f"{sample.t:7.0f} {rss:8.1f} {fds:5d} {threads:7d} {100 * share:4.0f}%"
                f"   visits {load.visits} requests {load.requests} admitted {load.admitted}"
                f" waiting {load.waiting} scrapes {load.scrapes} errors {load.errors}"
                f"{'; ' + load.objects if load.objects else ''}",
                flush=True,
            )
            if now >= end:
                break
            await trio.sleep(min(args.interval, max(0.0, end - trio.current_time())))
        nursery.cancel_scope.cancel()
    return samples


def report(samples: list[Sample], warmup: float, window: float) -> None:
    """Growth after the warm-up: the median of the first `window` seconds after it against
    the median of the last `window` seconds (single samples swing with the load), and the
    least-squares slope over every sample after it."""
    after = [s for s in samples if s.t >= warmup]
    if len(after) < 4:
        print(f"\nnot enough samples after the {warmup:.0f} s warm-up")
        return
    first = [s for s in after if s.t < after[0].t + window] or after[:1]
    last = [s for s in after if s.t > after[-1].t - window] or after[-1:]
    rss0, rss1 = (statistics.median(s.rss_mb for s in part) for part in (first, last))
    fds0, fds1 = (statistics.median(s.fds for s in part) for part in (first, last))
    span = after[-1].t - after[0].t
    print(
        f"\nafter the warm-up ({warmup:.0f} s): {len(after)} samples over {span:.0f} s; "
        f"medians of the first and the last {window:.0f} s"
    )
    print(
        f"  RSS   {rss0:.1f} -> {rss1:.1f} MB ({rss1 - rss0:+.1f} MB, "
        f"{100 * (rss1 - rss0) / rss0:+.1f} %; range {min(s.rss_mb for s in after):.1f}-"
        f"{max(s.rss_mb for s in after):.1f}); slope {slope_per_hour(after, 'rss_mb'):+.1f} MB/h"
    )
    print(
        f"  fds   {fds0:.0f} -> {fds1:.0f} ({fds1 - fds0:+.0f}; range "
        f"{min(s.fds for s in after)}-{max(s.fds for s in after)}); slope "
        f"{slope_per_hour(after, 'fds'):+.1f} /h"
    )
    print(
        f"  threads {after[0].threads} -> {after[-1].threads}; CPU mean "
        f"{100 * statistics.fmean(s.cpu for s in after):.0f} % of a core"
    )
    flat_rss = abs(rss1 - rss0) <= max(10.0, 0.05 * rss0)
    flat_fds = abs(fds1 - fds0) <= 10
    print(
        f"  verdict: RSS {'flat' if flat_rss else 'GROWS'}, "
        f"file descriptors {'flat' if flat_fds else 'GROW'} (flat: within 5 % or 10 MB, "
        "and within 10 descriptors)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes of warm-up")
    parser.add_argument("--users", type=int, default=30, help="the demo's simulated users")
    parser.add_argument("--visitors", type=int, default=6, help="outside visitor loops")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--window", type=float, default=60.0, help="seconds compared at each end (medians)"
    )
    args = parser.parse_args()
    rxkube = str(Path(sys.executable).parent / "rxkube")
    drain: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "demo.log"
        with open(log_path, "w") as log:
            demo = subprocess.Popen(
                [rxkube, "demo", "--users", str(args.users), "--log-level", "warning"],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        try:
            assert demo.stdout is not None
            urls: dict[str, str] = {}
            apps: list[str] = []
            deadline = time.monotonic() + 60
            for line in demo.stdout:
                if match := re.match(r"\s+(proxy|status page|metrics|api server):\s+(\S+)", line):
                    urls[match.group(1).split()[0]] = match.group(2)
                elif match := re.match(r"\s{4}(\w[\w-]*):\s+(http\S+)", line):
                    apps.append(match.group(1))
                if len(urls) == 4 and apps and not line.strip():
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("the demo did not print its URLs within 60 s")
            if len(urls) < 4 or not apps:
                raise SystemExit(f"the demo did not start (see {log_path}): {urls} {apps}")
            # Keep reading the demo's output (its status lines), so its pipe never fills.
            drain = subprocess.Popen(["cat"], stdin=demo.stdout, stdout=subprocess.DEVNULL)
            print(
                f"soak: rxkube demo (pid {demo.pid}, {args.users} users) + {args.visitors} outside "
                f"visitors and a scraper, {args.minutes:g} min, a sample every {args.interval:g} s"
            )
            samples = trio.run(soak, args, demo.pid, urls, apps)
            report(samples, args.warmup * 60, args.window)
            alive = demo.poll() is None
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGTERM)
                try:
                    demo.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(demo.pid, signal.SIGKILL)
                    demo.wait()
        if drain is not None:
            drain.wait(timeout=10)
        errors = log_path.read_text().count("ERROR")
        print(f"demo exit code {demo.returncode}; ERROR lines in its log: {errors}")
    return 0 if alive else 1


if __name__ == "__main__":
    sys.exit(main())
