"""What the orchestrator's sinks cost over the bare client: ConfigMap creates and deletes.

Against the fake API server on loopback (client-side rate limit off), the same N creates then
N deletes are sent three ways and timed: the client's verbs awaited one by one (the baseline),
the sink's awaited convenience methods (`await cluster.configurations.create(...)`), and a
burst sent to the sink as an Observer (`on_next`, queued, drained in order). Prints commands
per second and the ratio to the baseline of the same run (median of 3 rounds). Bounded: N = 300
commands per phase, loopback only. Run: `.venv/bin/python bench/orchestrator_sink.py`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

import trio

from rxkube.fakes import open_fake_apiserver
from rxkube.streams import CONFIGMAPS, load_kubeconfig, open_client
from rxkube.streams.orchestrator import CreateConfiguration, DeleteConfiguration, open_cluster

N = 300
ROUNDS = 3


async def main() -> None:
    async with (
        open_fake_apiserver() as server,
        open_client(load_kubeconfig(server.kubeconfig_path), rate_limit=None) as client,
        open_cluster(client) as cluster,
    ):
        sink = cluster.configurations

        async def baseline(prefix: str) -> None:
            for i in range(N):
                await client.create(CONFIGMAPS, CreateConfiguration(f"{prefix}-{i}").manifest())
            for i in range(N):
                await client.delete(CONFIGMAPS, f"{prefix}-{i}")

        async def awaited(prefix: str) -> None:
            for i in range(N):
                await sink.create(CreateConfiguration(f"{prefix}-{i}"))
            for i in range(N):
                await sink.delete(f"{prefix}-{i}")

        async def observer(prefix: str) -> None:
            for i in range(N):
                sink.on_next(CreateConfiguration(f"{prefix}-{i}"))
            for i in range(N):
                sink.on_next(DeleteConfiguration(f"{prefix}-{i}"))
            await sink.wait_idle()

        ways: dict[str, Callable[[str], Awaitable[None]]] = {
            "client": baseline,
            "awaited": awaited,
            "on-next": observer,
        }
        rates: dict[str, list[float]] = {name: [] for name in ways}
        for round_ in range(ROUNDS + 1):
            for name, run in ways.items():  # interleaved, so noise hits all alike
                start = time.perf_counter()
                await run(f"{name}-{round_}")
                if round_:  # round 0 warms connections and code paths
                    rates[name].append(2 * N / (time.perf_counter() - start))
        base = statistics.median(rates["client"])
        for name, measured in rates.items():
            rate = statistics.median(measured)
            print(f"{name:>8}: {rate:8.0f} commands/s  ({rate / base:.2f} x client)")
        stats = sink.statistics()
        print(f"sink outcomes: {stats.applied} applied, {stats.failed} failed")


if __name__ == "__main__":
    trio.run(main)
