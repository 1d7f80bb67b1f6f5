"""Replay throughput: a trace of realistic pod events through decode -> Store, against a dict store.

    python bench/replay_throughput.py [--events 200000] [--pods 10000] [--trace PATH]

Generates (once; reused if `--trace` exists) a gzip trace of `--events` pod events of about 7 KB
each: a namespace of `--pods` pods, listed, then churning (scheduled, started, ready, restarted,
terminating, deleted, replaced by a new pod), with realistic shapes (bench/kube_objects.py). Then,
in this process, one after the other, it measures events per second for:

  read           the trace reader alone (gunzip, one msgspec pass per line, raw bytes kept)
  store          read -> Store.apply (metadata view, drop managedFields, namespace + app indexes)
  replay+store   the same through `replay()` on a HistoricalScheduler (virtual time), the way a
                 recorded incident is replayed into pipelines
  dict           read -> {key: orjson.loads(raw)}: the naive cache the Store replaces (baseline)
  dict, gc off   the same with the cyclic collector disabled (what the GC costs the baseline)

Each run is bounded by `--max-seconds`; rates are over the events actually processed. Figures
are noisy on a shared machine: compare the ratios, measured in the same run.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kube_objects import APP_LABEL, pod
from reactivex.scheduler import HistoricalScheduler, ImmediateScheduler

from rxkube.streams import (
    Store,
    TraceRecord,
    WatchEvent,
    label_indexer,
    open_trace,
    open_trace_writer,
    replay,
)

NAMESPACE = "load"
STREAM = "pods/load"
STAGES = ("pending", "scheduled", "starting", "ready")


class _Stop(Exception):
    """The time budget of a run is spent."""


def generate(path: Path, *, events: int, pods: int, seed: int = 1) -> None:
    """Write `events` pod events: a list of `pods` pods, then lifecycle churn, 0.05 s apart."""
    rng = random.Random(seed)
    apps = [f"app-{i:02d}" for i in range(20)]
    rv = 10_000
    serial = 0
    # name -> [app, stage index, created, restarts, ip]
    live: dict[str, list[Any]] = {}
    names: list[str] = []

    def new_pod(t: float) -> str:
        nonlocal serial
        serial += 1
        name = f"{rng.choice(apps)}-{serial:07d}"
        live[name] = [
            name.rsplit("-", 1)[0],
            0,
            t,
            0,
            f"10.{serial // 65536 % 256}.{serial // 256 % 256}.{serial % 256}",
        ]
        names.append(name)
        return name

    def render(name: str, t: float, *, deleting: bool = False) -> bytes:
        nonlocal rv
        rv += 1
        app, stage, created, restarts, ip = live[name]
        obj = pod(
            app,
            name,
            namespace=NAMESPACE,
            rv=rv,
            t=t,
            created=created % 3600,
            stage=STAGES[stage],
            image=f"registry.example.org/{app}:1.{serial % 7}",
            container_port=8080,
            node=f"node-{hash(name) % 50:02d}",
            ip=ip,
            deleting_at=t if deleting else None,
            restarts=restarts,
            size="large",
        )
        return orjson.dumps(obj)

    with open_trace_writer(
        path,
        streams={STREAM: {"resource": "pods", "version": "v1", "namespace": NAMESPACE}},
        scheduler=ImmediateScheduler(),
        source=f"generated: bench/replay_throughput.py (seed {seed})",
        started=datetime(2024, 5, 1, tzinfo=UTC),
        compresslevel=1,
    ) as writer:
        written = 0
        t = 0.0
        for _ in range(min(pods, events)):
            name = new_pod(t)
            live[name][1] = 3  # listed pods are running and ready
            raw = render(name, t)
            writer.write(WatchEvent("ADDED", raw=raw, resource_version=str(rv), stream=STREAM), t=t)
            written += 1
        writer.write(WatchEvent("SYNCED", resource_version=str(rv), stream=STREAM), t=t)
        terminating: set[str] = set()
        while written < events:
            t += 0.05
            name = names[rng.randrange(len(names))]
            state = live[name]
            if name in terminating:
                raw = render(name, t, deleting=True)
                kind = "DELETED"
                terminating.discard(name)
                del live[name]
                names[names.index(name)] = names[-1]
                names.pop()
            elif state[1] < 3:
                state[1] += 1
                kind, raw = "MODIFIED", render(name, t)
            elif rng.random() < 0.3:
                terminating.add(name)
                kind, raw = "MODIFIED", render(name, t, deleting=True)
            else:
                state[3] += 1  # a restart: not ready, then ready again
                state[1] = 2
                kind, raw = "MODIFIED", render(name, t)
            writer.write(WatchEvent(kind, raw=raw, resource_version=str(rv), stream=STREAM), t=t)  # type: ignore[arg-type]
            written += 1
            if kind == "DELETED":
                replacement = new_pod(t)
                raw = render(replacement, t)
                writer.write(
                    WatchEvent("ADDED", raw=raw, resource_version=str(rv), stream=STREAM), t=t
                )
                written += 1


def bounded(records: Iterator[TraceRecord], deadline: float) -> Iterator[TraceRecord]:
    for count, record in enumerate(records):
        if count % 1000 == 0 and time.perf_counter() > deadline:
            return
        yield record


def measure(
    name: str, path: Path, budget: float, run: Callable[[Iterator[TraceRecord]], int]
) -> float:
    gc.collect()
    started = time.perf_counter()
    with open_trace(path) as trace:
        count = run(bounded(iter(trace), started + budget))
    elapsed = time.perf_counter() - started
    rate = count / elapsed
    print(f"  {name:<14} {count:>8} events in {elapsed:6.2f} s  {rate:>9,.0f} events/s")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--trace", type=Path, default=None, help="reuse or create this trace")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="time budget per run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        path = args.trace or Path(scratch) / "pods.jsonl.gz"
        if not path.exists():
            started = time.perf_counter()
            generate(path, events=args.events, pods=args.pods)
            print(f"generated {path} in {time.perf_counter() - started:.1f} s")
        with open_trace(path) as trace:
            sizes = [
                len(r.event.raw)
                for r, _ in zip(trace, range(2000), strict=False)
                if isinstance(r.event, WatchEvent) and r.event.type != "SYNCED"
            ]
        total = sum(1 for _ in open_trace(path))
        print(
            f"trace: {total} records, {path.stat().st_size / 1e6:.0f} MB gzip, "
            f"objects {sum(sizes) / len(sizes) / 1024:.1f} KiB on average (first {len(sizes)})"
        )
        print(f"python {sys.version.split()[0]}, budget {args.max_seconds:.0f} s per run")

        def read_only(records: Iterator[TraceRecord]) -> int:
            return sum(1 for _ in records)

        def into_store(records: Iterator[TraceRecord]) -> int:
            store = Store(indexers={"app": label_indexer(APP_LABEL)})
            count = 0
            for record in records:
                event = record.event
                assert isinstance(event, WatchEvent)
                store.apply(event)
                count += 1
            stats = store.statistics()
            kept = stats.raw_bytes / 1e6
            tracked = len(gc.get_objects())
            print(f"    store: {stats.objects} pods, {kept:.0f} MB of JSON, gc tracks {tracked:,}")
            return count

        def replay_into_store(records: Iterator[TraceRecord]) -> int:
            store = Store(indexers={"app": label_indexer(APP_LABEL)})
            scheduler = HistoricalScheduler()
            counted = [0]

            def on_next(event: object) -> None:
                assert isinstance(event, WatchEvent)
                store.apply(event)
                counted[0] += 1

            replay(lambda: records, scheduler=scheduler).subscribe(on_next)
            scheduler.start()
            return counted[0]

        def into_dict(records: Iterator[TraceRecord]) -> int:
            cache: dict[str, dict[str, Any]] = {}
            count = 0
            for record in records:
                event = record.event
                assert isinstance(event, WatchEvent)
                count += 1
                if event.type == "SYNCED":
                    continue
                obj = orjson.loads(event.raw)
                meta = obj["metadata"]
                key = f"{meta['namespace']}/{meta['name']}"
                if event.type == "DELETED":
                    cache.pop(key, None)
                else:
                    meta.pop("managedFields", None)
                    cache[key] = obj
            print(f"    dict: {len(cache)} pods, gc tracks {len(gc.get_objects()):,}")
            return count

        def into_dict_gc_off(records: Iterator[TraceRecord]) -> int:
            gc.disable()
            try:
                return into_dict(records)
            finally:
                gc.enable()

        print("events/s (higher is better):")
        budget = args.max_seconds
        read = measure("read", path, budget, read_only)
        store = measure("store", path, budget, into_store)
        replayed = measure("replay+store", path, budget, replay_into_store)
        naive = measure("dict", path, budget, into_dict)
        naive_no_gc = measure("dict, gc off", path, budget, into_dict_gc_off)
        print("ratios:")
        print(f"  store / dict          {store / naive:5.1f}x")
        print(f"  store / dict, gc off  {store / naive_no_gc:5.1f}x")
        print(f"  replay+store / store  {replayed / store:5.2f}")
        print(f"  store / read          {store / read:5.2f}  (the reader's rate the Store keeps)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
