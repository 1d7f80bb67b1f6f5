"""`rxkube proxy` against nginx, Go's httputil, configurable-http-proxy: median of three runs.

Runs `../shared/bench/proxy-peers.sh` (see its README) three times with `rxkube proxy` as the
candidate (path `/bench/`, every request carrying a real ticket cookie), reads each run's
`results.tsv`, and prints the median of every figure per target, then the candidate's ratios
against each peer and the issue-4 acceptance (>= 0.5x chp's req/s, p99 <= 2x chp's p99).

    python bench/proxy.py [--runs 3] [--duration 10] [--targets "direct nginx ..."]

All load is on 127.0.0.1 and bounded in time by the peers script.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO.parent / "shared" / "bench" / "proxy-peers.sh"
FIGURES = ["req_s", "p50_ms", "p99_ms", "http_err", "sock_err", "proxy_cpu_pct", "load_cpu_pct"]


def run_once(env: dict[str, str]) -> dict[str, dict[str, float]]:
    result = subprocess.run(
        ["bash", str(PEERS)], env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    sys.stderr.write(result.stdout[-3000:])
    match = re.search(r"raw results: (\S+results\.tsv)", result.stdout + result.stderr)
    if result.returncode != 0 or match is None:
        sys.stderr.write(result.stderr[-3000:])
        raise SystemExit(f"proxy-peers.sh failed (exit {result.returncode})")
    rows: dict[str, dict[str, float]] = {}
    with open(match.group(1), newline="") as tsv:
        for row in csv.DictReader(tsv, delimiter="\t"):
            if not row["req_s"]:
                continue  # SKIPPED
            rows[row["target"]] = {
                k: float(row[k]) if row[k] not in ("", "-", "?") else float("nan") for k in FIGURES
            }
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--targets", default="direct nginx go-httputil go-httputil-tuned chp")
    args = parser.parse_args()
    rxkube = Path(sys.executable).parent / "rxkube"
    env = {
        **os.environ,
        "DURATION": str(args.duration),
        "TARGETS": args.targets,
        "CANDIDATE_CMD": f"exec {rxkube} proxy --listen 127.0.0.1:{{port}} "
        "--app bench={upstream_url} --tickets-max 1",
        "CANDIDATE_NAME": "rxkube",
        "CANDIDATE_PATH": "/bench/",
        "CANDIDATE_COOKIE": "auto",
    }
    runs = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs} ...", file=sys.stderr, flush=True)
        runs.append(run_once(env))
    targets = [t for t in [*args.targets.split(), "rxkube"] if all(t in r for r in runs)]
    median = {t: {k: statistics.median(r[t][k] for r in runs) for k in FIGURES} for t in targets}
    print(f"median of {args.runs} runs, {args.duration} s each (proxy on one core)")
    print(f"{'target':<20}" + "".join(f"{k:>14}" for k in FIGURES))
    for target in targets:
        print(f"{target:<20}" + "".join(f"{median[target][k]:>14.2f}" for k in FIGURES))
    # On a shared machine a proxy often gets less than its core: requests per second of the
    # proxy's own CPU time is the steadier figure (median over runs of req/s / proxy_cpu).
    print("\nreq/s per busy proxy core (median of runs):")
    for target in targets:
        rates = [
            r[target]["req_s"] / (r[target]["proxy_cpu_pct"] / 100)
            for r in runs
            if r[target]["proxy_cpu_pct"] == r[target]["proxy_cpu_pct"]  # not NaN
            and r[target]["proxy_cpu_pct"] > 0
        ]
        if rates:
            print(f"{target:<20}{statistics.median(rates):>14.0f}")
    if "rxkube" in median:
        cand = median["rxkube"]
        print(f"\n{'rxkube vs':<20}{'req/s':>10}{'p50':>10}{'p99':>10}")
        for target in targets[:-1]:
            peer = median[target]
            print(
                f"{target:<20}{cand['req_s'] / peer['req_s']:>9.2f}x"
                f"{cand['p50_ms'] / peer['p50_ms']:>9.2f}x{cand['p99_ms'] / peer['p99_ms']:>9.2f}x"
            )
        if "chp" in median:
            chp = median["chp"]
            ok = cand["req_s"] >= 0.5 * chp["req_s"] and cand["p99_ms"] <= 2 * chp["p99_ms"]
            print(f"\nacceptance (>= 0.5x chp req/s, p99 <= 2x chp): {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
