"""`rxkube record`: a trace of the streams the ticket controller watches, from any cluster.

The argparse block lives in `_cli.py`; this module holds the work: the Kubernetes
configuration (kubeconfig and context, or the in-cluster service account), the controller's
three informers (`WATCHES` of `_runner.py`: the same watches, selectors and transforms as
`rxkube run`) teed into a trace writer, a progress line with events/s on stderr, and a clean
stop after `--duration`, on Ctrl-C (exit 130) or SIGTERM (exit 0). The trace is complete
(gzip finalized) whichever way it stops.

What such a trace lacks: demand. Users' tickets exist only inside a proxy, so the
`tickets/<namespace>` stream is written by `rxkube run --record` and `rxkube demo --record`
only; a trace from `rxkube record` has the watches alone, and `rxkube replay` of it sees
every app and pod but no users (the autoscaler keeps spare tickets for nobody).

Wall-clock time is read here only to show progress and bound the run, never in a pipeline:
the trace's times come from the scheduler (`TrioScheduler`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import trio

from rxkube.controllers._runner import WATCHES, watch_streams
from rxkube.streams import (
    Informer,
    KubeClient,
    TraceWriter,
    TrioScheduler,
    load_config,
    open_client,
    open_informer,
    open_trace_writer,
)

__all__: list[str] = []


@dataclass(frozen=True, slots=True)
class Recorded:
    """What a recording wrote."""

    path: Path
    records: int
    seconds: float
    streams: int
    bytes: int


class RecordProgress:
    """One progress line on stderr: elapsed time, records, events/s, errors. Redrawn in
    place on a terminal; a plain line every `plain_every` seconds otherwise."""

    def __init__(self, out: TextIO, *, plain_every: float = 10.0) -> None:
        self.out = out
        self.tty = out.isatty()
        self.plain_every = plain_every
        self.last_line = ""
        self._last_plain = -plain_every

    def __call__(self, elapsed: float, records: int, rate: float, problems: str) -> None:
        minutes, seconds = divmod(int(elapsed), 60)
        line = f"recording [{minutes}:{seconds:02d}] {records:,} events, {rate:,.0f} events/s"
        if problems:
            line += f"; {problems}"
        if self.tty:
            self.out.write("\r" + line.ljust(len(self.last_line)))
            self.out.flush()
        elif elapsed - self._last_plain >= self.plain_every:
            self._last_plain = elapsed
            self.out.write(line + "\n")
            self.out.flush()
        self.last_line = line

    def finish(self) -> None:
        self.out.write("\n" if self.tty else self.last_line + "\n")
        self.out.flush()


def _problems(informers: dict[str, Informer]) -> str:
    """What keeps a watch from working now (a 403 names the RBAC to grant), or ""."""
    out = []
    for role, informer in informers.items():
        stats = informer.statistics()
        if stats.last_error and not stats.synced:
            out.append(f"{role}: {stats.last_error}")
    return "; ".join(out)


async def record_namespace(
    client: KubeClient,
    *,
    namespace: str,
    path: Path,
    source: str,
    progress: Callable[[float, int, float, str], None] | None = None,
    interval: float = 0.5,
    stop: trio.Event | None = None,
) -> Recorded:
    """Record the controller's watches of `namespace` to `path` until cancelled or `stop` is
    set; call `progress(elapsed, records, events/s, problems)` every `interval` seconds."""
    started = trio.current_time()
    async with AsyncExitStack() as stack:
        nursery = await stack.enter_async_context(trio.open_nursery())
        stack.callback(nursery.cancel_scope.cancel)
        writer: TraceWriter = stack.enter_context(
            open_trace_writer(
                path,
                streams=watch_streams(namespace),
                scheduler=TrioScheduler(nursery),
                source=source,
            )
        )
        informers: dict[str, Informer] = {}
        for role, watched in WATCHES.items():
            informers[role] = await stack.enter_async_context(
                open_informer(
                    client,
                    watched.resource,
                    namespace=namespace,
                    label_selector=watched.label_selector,
                    metadata_only=watched.metadata_only,
                    record=writer,
                )
            )
        last_records, last_time = 0, started
        try:
            while stop is None or not stop.is_set():
                with trio.move_on_after(interval):
                    if stop is not None:
                        await stop.wait()
                    else:
                        await trio.sleep_forever()
                now = trio.current_time()
                rate = (writer.records - last_records) / max(1e-9, now - last_time)
                last_records, last_time = writer.records, now
                if progress is not None:
                    progress(now - started, writer.records, rate, _problems(informers))
        finally:
            records = writer.records
            elapsed = trio.current_time() - started
            if progress is not None:
                total_rate = records / max(1e-9, elapsed)
                progress(elapsed, records, total_rate, _problems(informers))
    size = (await trio.Path(path).stat()).st_size
    return Recorded(path, records, elapsed, len(writer.header.streams), size)


async def _record(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    config = load_config(kubeconfig=args.kubeconfig, context=args.context)
    progress = None if args.quiet else RecordProgress(err)
    stopped_by: list[signal.Signals] = []
    async with open_client(config) as client:
        namespace = args.namespace or client.namespace
        stop = trio.Event()
        async with trio.open_nursery() as nursery:

            async def on_signals() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for received in signals:
                        stopped_by.append(signal.Signals(received))
                        stop.set()
                        return

            nursery.start_soon(on_signals)
            if args.duration is not None:
                nursery.start_soon(_set_after, stop, args.duration)
            out.write(f"rxkube record: namespace {namespace} to {args.out}\n")
            out.flush()
            recorded = await record_namespace(
                client,
                namespace=namespace,
                path=args.out,
                source=f"rxkube record, {config.context or config.source}, namespace {namespace}",
                progress=progress,
                stop=stop,
            )
            nursery.cancel_scope.cancel()
    if progress is not None:
        progress.finish()
    out.write(
        f"recorded {recorded.records:,} events of {recorded.streams} streams in "
        f"{recorded.seconds:.1f} s to {recorded.path} ({recorded.bytes:,} bytes)\n"
        "note: no demand in this trace (users' tickets are recorded by `rxkube run --record` "
        "and `rxkube demo --record` only); `rxkube replay` of it sees the apps and pods, and "
        "no users\n"
    )
    out.flush()
    return 130 if stopped_by and stopped_by[0] == signal.SIGINT else 0


async def _set_after(event: trio.Event, seconds: float) -> None:
    await trio.sleep(seconds)
    event.set()


def run_record(args: argparse.Namespace) -> int:
    """`rxkube record`; exit codes as `_cli.py` documents (its `main` turns the expected
    failures, a kubeconfig that cannot be loaded or a file that cannot be written, into one
    line)."""
    return trio.run(_record, args, sys.stdout, sys.stderr)
