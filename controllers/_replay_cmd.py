"""`rxkube replay TRACE`: the controllers on a recorded trace, in virtual time; what-if settings.

The argparse block lives in `_cli.py`; this module holds the work: load the trace, run
`replay_trace` (a progress bar with events/s on stderr), print the summary table, say whether a
plain replay made the recorded decisions, and write the timeline (`--timeline out.csv` or
`out.jsonl`). A trace without demand (from `rxkube record`) replays with no users, and says
so. Errors (a bad trace, a bad `--set`) are one line on stderr and exit code 1 (2 for usage).
Wall-clock time is read here only to show progress, never in a pipeline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from rxkube.controllers._replay import ReplayMode, parse_overrides, replay_trace
from rxkube.streams import Trace, TraceError, load_trace

__all__: list[str] = []


class Progress:
    """A one-line progress bar with events/s, redrawn in place on a terminal."""

    def __init__(self, out: TextIO, *, width: int = 30) -> None:
        self.out = out
        self.width = width
        self.started = time.perf_counter()
        self.tty = out.isatty()
        self.last_line = ""

    def __call__(self, done: int, total: int) -> None:
        elapsed = max(1e-9, time.perf_counter() - self.started)
        share = done / total if total else 1.0
        filled = int(share * self.width)
        line = (
            f"replaying [{'#' * filled}{'.' * (self.width - filled)}] {share:4.0%} "
            f"{done:,}/{total:,} events, {done / elapsed:,.0f} events/s"
        )
        self.last_line = line
        if self.tty:
            self.out.write("\r" + line)
            self.out.flush()

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")
        elif self.last_line:
            self.out.write(self.last_line + "\n")
        self.out.flush()


def _has_demand(trace: Trace) -> bool:
    return any(
        spec.get("kind") == "tickets" or sid.startswith("tickets/")
        for sid, spec in trace.header.streams.items()
    )


def run_replay(args: argparse.Namespace) -> int:
    """Replay `args.trace`; exit codes as `_cli.py` documents."""
    try:
        overrides = parse_overrides(args.set or [])
    except ValueError as error:
        print(f"rxkube replay: error: --set {error}", file=sys.stderr)
        return 2
    timeline_path: Path | None = args.timeline
    if timeline_path is not None and not timeline_path.name.endswith((".csv", ".jsonl")):
        print(
            f"rxkube replay: error: --timeline must end in .csv or .jsonl, got {timeline_path}",
            file=sys.stderr,
        )
        return 2
    try:
        trace = load_trace(args.trace)
    except TraceError as error:
        print(f"rxkube replay: error: {error}", file=sys.stderr)
        return 1
    mode: ReplayMode | None = args.mode
    progress = None if args.quiet else Progress(sys.stderr)
    try:
        timeline = replay_trace(
            trace, overrides=overrides, mode=mode, seed=args.seed, progress=progress
        )
    except (TraceError, ValueError) as error:
        if progress is not None:
            progress.finish()
        print(f"rxkube replay: error: {error}", file=sys.stderr)
        return 1
    if progress is not None:
        progress.finish()
    summary = timeline.summary()
    settings = ", ".join(
        f"{app}.{key}={value}" for app, values in overrides.items() for key, value in values.items()
    )
    hours = timeline.duration / 3600
    print(
        f"{args.trace}: {timeline.events:,} events over {hours:.2f} h, "
        f"{timeline.mode} replay" + (f" with {settings}" if settings else "")
    )
    if not _has_demand(trace):
        print(
            "note: this trace has no demand (no tickets/<namespace> stream: `rxkube record` "
            "writes the watches only): the replay sees the apps and pods, and no users"
        )
    print(summary.table())
    match = timeline.matches_recording
    if match is not None:
        print(
            "decisions: the same as recorded"
            if match
            else "decisions: NOT the same as recorded (see --timeline for the replay's)"
        )
    if timeline_path is not None:
        try:
            if timeline_path.name.endswith(".csv"):
                timeline.to_csv(timeline_path)
            else:
                timeline.to_jsonl(timeline_path)
        except OSError as error:
            print(f"rxkube replay: error: cannot write {timeline_path}: {error}", file=sys.stderr)
            return 1
        print(f"timeline: {len(timeline.rows):,} rows written to {timeline_path}")
    return 0
