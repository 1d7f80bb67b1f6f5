"""The demo's acceptance run: `rxkube demo --users 30 --duration 60`, watched from outside.

    python bench/demo_autoscaling.py [--users 30] [--duration 60] [--seed 1]

Starts the demo as a process (its own process group), reads the URLs it prints, polls its
status page once a second for the pods of each app (ready, autoscaled) and the users, and at the
end prints a timeline and figures: the time to the URLs, the most autoscaled pods per app, when
they were created and removed, the users served and those who gave up, the exit code, and
whether any process was left behind. Bounded: it stops the demo after duration + 30 s.

It asserts nothing (benchmarks print figures); the integration suite has a short version of
this run (tests/integration/controllers/test_demo_command.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    command = [
        sys.executable,
        "-m",
        "rxkube.controllers",
        "demo",
        f"--users={args.users}",
        f"--duration={args.duration}",
        f"--seed={args.seed}",
    ]
    started = time.monotonic()
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    urls: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            found = re.match(r"^  (proxy|status page|metrics|kubeconfig):\s+(\S+)$", line)
            if found:
                urls[found.group(1)] = found.group(2)
                if found.group(1) == "kubeconfig":
                    ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    if not ready.wait(60):
        process.kill()
        print("the demo printed no URLs within 60 s")
        print("\n".join(lines[-20:]))
        return 1
    to_urls = time.monotonic() - started
    samples: list[tuple[float, dict[str, Any]]] = []
    deadline = started + args.duration + 30
    while process.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urls["status page"] + "status.json", timeout=2) as reply:
                samples.append((time.monotonic() - started, json.loads(reply.read())))
        except OSError:
            pass  # the demo is stopping
        time.sleep(1.0)
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    code = process.wait(timeout=30)
    reader.join(timeout=5)
    try:
        os.killpg(process.pid, 0)
        left = "yes (a process of the demo's group is still running)"
    except ProcessLookupError:
        left = "no"

    print(f"rxkube demo --users {args.users} --duration {args.duration:g} --seed {args.seed}")
    print(f"  URLs printed after       {to_urls:6.1f} s (interpreter start included)")
    print(f"  exit code                {code}")
    print(f"  processes left behind    {left}")
    print()
    print("  t (s)  app        pods ready/all  autoscaled  users  waiting")
    previous: dict[str, tuple[int, int, int, int, int]] = {}
    peak: dict[str, int] = {}
    for t, status in samples:
        for app in status["apps"]:
            servers = [s for s in app["servers"] if s["phase"] != "Terminating"]
            row = (
                sum(1 for s in servers if s["ready"]),
                len(servers),
                sum(1 for s in servers if s["autoscaled"]),
                app["users"],
                app["queued"],
            )
            peak[app["app"]] = max(peak.get(app["app"], 0), row[2])
            if previous.get(app["app"]) != row:
                previous[app["app"]] = row
                print(
                    f"  {t:5.0f}  {app['app']:<10} {row[0]:>4}/{row[1]:<10} {row[2]:>10}"
                    f"  {row[3]:>5}  {row[4]:>7}"
                )
    print()
    if samples:
        last = samples[-1][1]
        print(
            f"  scale actions            {last['scale_ups']} pods created, "
            f"{last['scale_downs']} removed"
        )
    for app, most in sorted(peak.items()):
        print(f"  most autoscaled pods     {app}: {most}")
    for line in lines:
        if line.startswith("summary:"):
            print(f"  {line}")
    err = process.stderr.read() if process.stderr is not None else ""
    if err.strip():
        print("\nstderr:\n" + err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
