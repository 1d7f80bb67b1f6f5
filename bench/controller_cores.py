"""How fast the controllers' pure cores run: parse, apps fold, autoscale step.

Prints events (or steps) per second for each, and the fold's rate against a baseline measured
in the same run (a dict copy per event, the floor any immutable fold pays). Bounded: a fixed
number of iterations each, no I/O. Run: `.venv/bin/python bench/controller_cores.py`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from rxkube.controllers import (
    AppSpec,
    AppsState,
    LoadSummary,
    ReconcileState,
    ServerLoad,
    apply_deployment_event,
    autoscale,
    parse_app_spec,
    seeded_suffixes,
)
from rxkube.streams import WatchEvent

APPS = 50
P = "ipb-halle.de/k8sticket."


def deployment(i: int, generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"app-{i}",
            "namespace": "lab",
            "uid": f"uid-{i}",
            "creationTimestamp": f"2024-01-01T00:00:{i % 60:02d}Z",
            "generation": generation,
            "labels": {"ipb-halle.de/k8sticket": "true"},
            "annotations": {
                P + "deployment.port": str(9000 + i),
                P + "deployment.tickets.max": "2",
                P + "deployment.pods.max": "5",
            },
        },
        "spec": {
            "template": {
                "metadata": {"labels": {P + "deployment.app.name": f"app-{i}"}},
                "spec": {"containers": [{"name": "c", "image": "img", "env": [{"name": "A"}] * 8}]},
            }
        },
        "status": {"observedGeneration": generation, "replicas": 1},
    }


def rate(label: str, count: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    elapsed = time.perf_counter() - start
    per_second = count / elapsed
    print(f"{label:<44} {per_second:>12,.0f} /s  ({count} in {elapsed:.3f} s)")
    return per_second


def main() -> None:
    objs = [deployment(i) for i in range(APPS)]
    n = 20_000

    rate("parse_app_spec", n, lambda: [parse_app_spec(objs[i % APPS]) for i in range(n)])

    events = [WatchEvent("ADDED", o, resource_version="1", stream="d") for o in objs]
    events.append(WatchEvent("SYNCED", resource_version="1", stream="d"))
    status_updates = [
        WatchEvent("MODIFIED", deployment(i % APPS, 2), resource_version="2", stream="d")
        for i in range(n)
    ]

    def fold() -> None:
        state = AppsState()
        for e in events:
            state, _ = apply_deployment_event(state, e)
        for e in status_updates:
            state, _ = apply_deployment_event(state, e)

    fold_rate = rate(f"apply_deployment_event, status ({APPS} apps)", n + len(events), fold)

    changes = []
    for i in range(n // 4):
        changed = deployment(i % APPS, 2)
        changed["metadata"]["annotations"][P + "deployment.tickets.max"] = str(1 + i % 3)
        changes.append(WatchEvent("MODIFIED", changed, resource_version="3", stream="d"))

    def fold_changes() -> None:
        state = AppsState()
        for e in events:
            state, _ = apply_deployment_event(state, e)
        for e in changes:
            state, _ = apply_deployment_event(state, e)

    rate(f"apply_deployment_event, changes ({APPS} apps)", len(changes) + len(events), fold_changes)
    table = {i: copy.deepcopy(objs[i]) for i in range(APPS)}
    base = rate("baseline: dict copy per event", n, lambda: [dict(table) for _ in range(n)])
    print(f"{'fold / baseline':<44} {fold_rate / base:>12.2f}")

    parsed = parse_app_spec(objs[0])
    assert isinstance(parsed, AppSpec)
    spec: AppSpec = parsed
    load = LoadSummary(tuple(ServerLoad(f"s{i}", 2, i % 3, True, 0.0) for i in range(6)), 1)
    suffixes = seeded_suffixes(0)

    def steps() -> None:
        state = ReconcileState()
        for i in range(n):
            state = autoscale(state, spec, load, [], now=float(i), new_suffix=suffixes).state

    rate("autoscale step (6 servers)", n, steps)


if __name__ == "__main__":
    main()
