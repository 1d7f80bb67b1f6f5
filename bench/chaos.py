"""Chaos campaign for the watch layer (issue 10): many seeded schedules, figures by fault kind.

What it does: runs `--schedules N` schedules of the chaos harness (`tests/chaos/_harness.py`),
seeds S, S+1, ..., each against twin fake API servers on loopback through the real client, with
the informers of the harness's views, a Store folded from each and the ticket controller's
pipeline as consumers under test (see `tests/chaos/test_watch_chaos.py` for what is checked).
It prints one line per schedule (the whole report of a failed one), then schedules run and
passed, faults planned and taken effect by kind, the informers' errors by kind and their
relists, reconnects and synthesized deletions. It exits 1 if any schedule failed, 0 otherwise.

Bounded: N schedules (each 2-4 s of wall time, about 0.4 CPU seconds), `--jobs` at once (each
its own pair of servers), stopped early at `--time-limit` seconds (what ran is reported);
loopback only.

    python bench/chaos.py --schedules 300 --seed 0 [--jobs 4] [--no-settle] [--quiet]

`--no-settle` drops the settling writes at the end of each history (see
`_Generator.settle`): the controller's history-dependent rules (last good configuration, a pod
that was ready stays listed while not ready) then make some faulted runs end unlike the
fault-free one, by design rather than by a bug; use it to see those cases.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import trio

# The harness is test support code; it lives under tests/ and is imported from the repository.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.chaos._consumers import ticket_pipeline_consumer
from tests.chaos._harness import (
    VIEWS,
    ScheduleReport,
    format_campaign,
    generate_schedule,
    run_schedule,
    store_consumer,
    trace_consumer,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--schedules", type=int, default=100, help="how many (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--jobs", type=int, default=2, help="schedules run at once (default 2)")
    parser.add_argument("--writes", type=int, default=70, help="writes per schedule")
    parser.add_argument("--faults", type=int, default=14, help="faults per schedule")
    parser.add_argument("--duration", type=float, default=1.0, help="seconds of writes")
    parser.add_argument("--no-settle", action="store_true", help="no settling writes")
    parser.add_argument("--time-limit", type=float, default=3600.0, help="stop after (s)")
    parser.add_argument("--quiet", action="store_true", help="print failures only")
    args = parser.parse_args(argv)
    if args.schedules < 1 or args.jobs < 1:
        parser.error("--schedules and --jobs must be at least 1")
    return args


async def campaign(args: argparse.Namespace) -> list[ScheduleReport]:
    reports: list[ScheduleReport] = []
    seeds = iter(range(args.seed, args.seed + args.schedules))
    deadline = trio.current_time() + args.time_limit

    async def worker() -> None:
        for seed in seeds:
            if trio.current_time() > deadline:
                return
            schedule = generate_schedule(
                seed,
                writes=args.writes,
                faults=args.faults,
                duration=args.duration,
                settle=not args.no_settle,
            )
            consumers = [
                ticket_pipeline_consumer(),
                trace_consumer(),
                *(store_consumer(v.name) for v in VIEWS),
            ]
            report = await run_schedule(schedule, consumers=consumers)
            reports.append(report)
            if not report.passed:
                print(report.describe(), flush=True)
            elif not args.quiet:
                print(report.summary(), flush=True)

    async with trio.open_nursery() as nursery:
        for _ in range(args.jobs):
            nursery.start_soon(worker)
    return reports


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, cpu = time.perf_counter(), time.process_time()
    reports = trio.run(campaign, args)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print()
    print(format_campaign(reports))
    elapsed = [r.elapsed for r in reports]
    print(
        f"wall {wall:.1f}s for {len(reports)} schedules ({args.jobs} at once), CPU {cpu:.1f}s; "
        f"per schedule: median {statistics.median(elapsed):.2f}s, max {max(elapsed):.2f}s"
    )
    if len(reports) < args.schedules:
        print(f"stopped at the time limit: {len(reports)} of {args.schedules} schedules run")
    failed = [r.seed for r in reports if not r.passed]
    if failed:
        print(f"FAILED seeds: {sorted(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
