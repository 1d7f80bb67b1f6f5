"""How fast the ticket pipeline turns watch events into the proxy's desired state.

Feeds `ticket_pipeline` (join_deployments, app_effects, servers_by_app, serve_plan, event
commands: everything `rxkube run` runs between the informers and the proxy) with raw pod
events of 50 apps x 20 pods (readiness flapping, as a rolling restart does) and prints events
per second, against a baseline measured in the same run: the same events applied to a `Store`
(what the pod informer itself does with each one). Virtual time, no I/O; bounded in count.
Run: `.venv/bin/python bench/ticket_pipeline.py`.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from reactivex.scheduler import HistoricalScheduler
from reactivex.subject import Subject

from rxkube.controllers import ProxyApp, ticket_pipeline
from rxkube.proxy import Change
from rxkube.streams import EventType, PostEvent, Store, WatchEvent, decode_meta

APPS = 50
PODS = 20
ROUNDS = 20
APP = "ipb-halle.de/k8sticket.deployment.app.name"


def deployment(i: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"app-{i}",
            "namespace": "lab",
            "uid": f"uid-{i}",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"ipb-halle.de/k8sticket": "true"},
            "annotations": {"ipb-halle.de/k8sticket.deployment.port": "none"},
        },
        "spec": {"template": {"metadata": {"labels": {APP: f"app-{i}"}}, "spec": {}}},
    }


def pod_bytes(app: int, pod: int, ready: bool, rv: int) -> bytes:
    return orjson.dumps(
        {
            "metadata": {
                "name": f"app-{app}-{pod}",
                "namespace": "lab",
                "uid": f"uid-{app}-{pod}",
                "resourceVersion": str(rv),
                "labels": {APP: f"app-{app}"},
                "annotations": {"ipb-halle.de/k8sticket.pod.port": "8888"},
            },
            "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
            "status": {
                "phase": "Running",
                "podIP": f"10.{app}.0.{pod}",
                "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            },
        }
    )


def pod_events() -> list[WatchEvent]:
    events = []
    rv = 100
    for round_ in range(ROUNDS):
        for app in range(APPS):
            for pod in range(PODS):
                rv += 1
                raw = pod_bytes(app, pod, ready=round_ % 2 == 0, rv=rv)
                kind: EventType = "ADDED" if round_ == 0 else "MODIFIED"
                events.append(
                    WatchEvent(
                        kind,
                        raw=raw,
                        meta=decode_meta(raw),
                        resource_version=str(rv),
                        stream="pods",
                    )
                )
    return events


def run_pipeline(events: list[WatchEvent]) -> tuple[float, int, int]:
    scheduler = HistoricalScheduler()
    meta: Subject[WatchEvent] = Subject()
    full: Subject[WatchEvent] = Subject()
    pods: Subject[WatchEvent] = Subject()
    loads: Subject[Change] = Subject()
    pipeline = ticket_pipeline(
        deployment_metadata=meta, deployments=full, pods=pods, loads=loads, scheduler=scheduler
    )
    desired = [0]
    posted = [0]

    def on_plan(output: object) -> None:
        if isinstance(output, ProxyApp):
            desired[0] += 1

    def on_event(_: PostEvent) -> None:
        posted[0] += 1

    pipeline.plan.subscribe(on_plan)
    pipeline.events.subscribe(on_event)
    pipeline.connect()
    for i in range(APPS):
        meta.on_next(WatchEvent("ADDED", deployment(i), resource_version="1", stream="meta"))
        full.on_next(WatchEvent("ADDED", deployment(i), resource_version="1", stream="full"))
    meta.on_next(WatchEvent("SYNCED", resource_version="1", stream="meta"))
    full.on_next(WatchEvent("SYNCED", resource_version="1", stream="full"))
    started = time.perf_counter()
    for event in events:
        pods.on_next(event)
    return time.perf_counter() - started, desired[0], posted[0]


def run_store(events: list[WatchEvent]) -> float:
    store = Store()
    started = time.perf_counter()
    for event in events:
        store.apply(event)
    return time.perf_counter() - started


def main() -> None:
    events = pod_events()
    n = len(events)
    print(f"{n} pod events ({APPS} apps x {PODS} pods x {ROUNDS} rounds of readiness flaps)")
    best_store = min(run_store(pod_events()) for _ in range(3))
    results = [run_pipeline(pod_events()) for _ in range(3)]
    best = min(seconds for seconds, _, _ in results)
    _, desired, posted = results[0]
    print(f"  Store.apply (baseline)   {n / best_store:>10,.0f} events/s")
    print(
        f"  ticket_pipeline          {n / best:>10,.0f} events/s  ({best / n * 1e6:.1f} us/event)"
    )
    print(f"  ratio pipeline/baseline  {best / best_store:>10.1f}x the time")
    print(f"  desired states emitted   {desired:>10,}  Events to post {posted}")


if __name__ == "__main__":
    main()
