"""Watch throughput: rxkube's `watch()` + `Store` against the official client, same server.

What it measures (issue 11): a minimal HTTP server, in its own process, answers a LIST with an
empty PodList and a WATCH by streaming N pre-encoded pod events (about 7 KB each, with
managedFields, as a real API server writes them) over loopback, chunked, as fast as the socket
takes them. The server only copies recorded bytes, so the client is what is measured.

In the same run, against the same server:
- rxkube: `open_informer()` (watch + Store, managedFields dropped, as controllers run it) and
  plain `watch()` into a `Store(transform=None)`; the time from subscribing to the N-th event;
- the official client: `kubernetes.watch.Watch().stream(CoreV1Api.list_namespaced_pod, ...)`,
  the time to the N-th event.
Each is run 3 times, interleaved (one round runs each contender once, so load from other
processes hits all alike); the medians and ratios are printed per wall-clock second and per
CPU second of this process (the server is another process, so CPU time is the client's own
work, the steadier figure on a shared machine). Then the memory a Store holds for 10,000 such
pods (tracemalloc, after the run), and optionally a profile (`--profile`).

Bounded: N events per run (default 20,000), loopback only, a 120 s cap per run.

    python bench/watch_throughput.py [--events 20000] [--runs 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import orjson
import trio

from rxkube.streams import (
    PODS,
    KubeConfig,
    Store,
    TrioScheduler,
    WatchEvent,
    open_client,
    open_informer,
    watch,
)

NAMESPACE = "bench"
CAP_SECONDS = 120.0


def make_pod(i: int) -> dict[str, Any]:
    """A pod as a real cluster shows it: ~7 KB with managedFields, env, probes, status."""
    name = f"web-{i:06d}"
    env = [{"name": f"SETTING_{k}", "value": f"value-{k}-" + "x" * 24} for k in range(48)]
    container = {
        "name": "app",
        "image": "registry.example.org/team/webapp:1.24.3",
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "env": env,
        "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
        "volumeMounts": [
            {"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "token"}
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"6b1f5c2e-0000-4000-8000-{i:012d}",
            "resourceVersion": str(100 + i),
            "creationTimestamp": "2024-05-01T12:00:00Z",
            "labels": {
                "app": "web",
                "pod-template-hash": "5d8f7c9b6",
                "ipb-halle.de/k8sticket.deployment.app.name": "web",
            },
            "annotations": {"ipb-halle.de/k8sticket.pod.port": "8080"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web-5d8f7c9b6",
                    "uid": "0c3d1f00-1111-4222-8333-444455556666",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
            "managedFields": [
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2024-05-01T12:00:00Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {"f:labels": {"f:app": {}, "f:pod-template-hash": {}}},
                        "f:spec": {
                            "f:containers": {'k:{"name":"app"}': {"f:env": {}, "f:image": {}}}
                        },
                    },
                },
                {
                    "manager": "kubelet",
                    "operation": "Update",
                    "apiVersion": "v1",
                    "time": "2024-05-01T12:00:05Z",
                    "fieldsType": "FieldsV1",
                    "subresource": "status",
                    "fieldsV1": {"f:status": {"f:conditions": {}, "f:podIP": {}}},
                },
            ],
        },
        "spec": {
            "containers": [container, {**container, "name": "sidecar", "env": env[:8]}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeName": f"node-{i % 7}",
            "schedulerName": "default-scheduler",
            "volumes": [
                {
                    "name": "token",
                    "projected": {
                        "sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}
                        ]
                    },
                }
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.244.{i // 250 % 250}.{i % 250}",
            "hostIP": "192.168.1.10",
            "startTime": "2024-05-01T12:00:01Z",
            "qosClass": "Burstable",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2024-05-01T12:00:04Z"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": True,
                    "restartCount": 0,
                    "image": "registry.example.org/team/webapp:1.24.3",
                    "imageID": "registry.example.org/team/webapp@sha256:" + "ab" * 32,
                    "containerID": "containerd://" + "cd" * 32,
                    "state": {"running": {"startedAt": "2024-05-01T12:00:03Z"}},
                    "started": True,
                }
            ],
        },
    }


# -- the server (its own process) ----------------------------------------------------------


def serve(events: int) -> None:
    """Serve LIST (empty) and WATCH (the recorded events, then a clean end) on loopback."""
    lines = [orjson.dumps({"type": "ADDED", "object": make_pod(i)}) + b"\n" for i in range(events)]
    body = b"".join(lines)
    chunk = 1 << 16
    # Pre-framed HTTP/1.1 chunks, as the API server flushes them.
    framed = b"".join(
        b"%x\r\n%s\r\n" % (len(body[o : o + chunk]), body[o : o + chunk])
        for o in range(0, len(body), chunk)
    )
    watch_head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    list_body = orjson.dumps(
        {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}
    )
    list_response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(list_body), list_body)
    )

    async def handle(conn: trio.SocketStream) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await conn.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                target = head.split(b" ", 2)[1]
                if b"watch=true" in target or b"watch=1" in target:
                    await conn.send_all(watch_head)
                    view = memoryview(framed)
                    for o in range(0, len(view), 1 << 20):
                        await conn.send_all(view[o : o + (1 << 20)])
                    await conn.send_all(b"0\r\n\r\n")
                else:
                    await conn.send_all(list_response)
        except trio.BrokenResourceError:
            return

    async def main() -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        print(port, flush=True)
        await trio.serve_listeners(handle, listeners)

    trio.run(main)


# -- the clients ----------------------------------------------------------------------------


class Clock:
    """Wall-clock and this process's CPU time since start. The server runs in another
    process, so CPU time is the client's own work: a figure that other load on a shared
    machine disturbs much less than wall-clock time."""

    def __init__(self) -> None:
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


Timing = tuple[float, float, int]
"""(wall seconds, CPU seconds, objects held)"""


async def _rxkube_informer(url: str, events: int) -> Timing:
    config = KubeConfig(server=url, namespace=NAMESPACE)
    seen = 0
    done = trio.Event()

    def on_event(event: WatchEvent) -> None:
        nonlocal seen
        if event.type != "SYNCED":
            seen += 1
            if seen == events:
                done.set()

    with trio.fail_after(CAP_SECONDS):
        async with open_client(config, rate_limit=None) as client:
            clock = Clock()
            async with open_informer(client, PODS, namespace=NAMESPACE) as informer:
                informer.events.subscribe(on_event)
                await done.wait()
                wall, cpu = clock.stop()
                held = len(informer.store)
    return wall, cpu, held


async def _rxkube_watch_store(url: str, events: int) -> Timing:
    config = KubeConfig(server=url, namespace=NAMESPACE)
    store = Store(transform=None)
    seen = 0
    done = trio.Event()

    def on_event(event: WatchEvent) -> None:
        nonlocal seen
        store.apply(event)
        if event.type != "SYNCED":
            seen += 1
            if seen == events:
                done.set()

    with trio.fail_after(CAP_SECONDS):
        async with open_client(config, rate_limit=None) as client, trio.open_nursery() as nursery:
            clock = Clock()
            subscription = watch(client, PODS, namespace=NAMESPACE).subscribe(
                on_event, scheduler=TrioScheduler(nursery)
            )
            await done.wait()
            wall, cpu = clock.stop()
            subscription.dispose()
    return wall, cpu, len(store)


def _official(url: str, events: int) -> Timing:
    from kubernetes import client as k8s
    from kubernetes import watch as k8s_watch

    configuration = k8s.Configuration()
    configuration.host = url
    api = k8s.CoreV1Api(k8s.ApiClient(configuration))
    seen = 0
    clock = Clock()
    stream: Any = k8s_watch.Watch()  # the stubs lack stop()
    for _event in stream.stream(
        api.list_namespaced_pod, NAMESPACE, resource_version="1", _request_timeout=int(CAP_SECONDS)
    ):
        seen += 1
        if seen == events:
            stream.stop()
            break
    wall, cpu = clock.stop()
    return wall, cpu, seen


Runner = Callable[[], Timing]


def _interleaved_medians(
    runners: list[tuple[str, Runner, int]], runs: int
) -> list[tuple[float, float]]:
    """Run each contender once per round, `runs` rounds (so machine noise hits all alike);
    print every run; return each contender's median rates (per wall second, per CPU second)."""
    rates: list[list[tuple[float, float]]] = [[] for _ in runners]
    for round_ in range(1, runs + 1):
        for i, (label, run, events) in enumerate(runners):
            gc.collect()
            wall, cpu, held = run()
            rates[i].append((events / wall, events / cpu))
            print(
                f"  run {round_}  {label:<38} {events / wall:>8,.0f}/s wall"
                f" {events / cpu:>8,.0f}/s CPU  ({wall:.2f} s, holding {held:,})"
            )
    return [(statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for r in rates]


def _store_memory(url: str, pods: int) -> tuple[float, int]:
    """MB Python holds for an informer's store of `pods` pods (tracemalloc, store alive)."""
    result: dict[str, float] = {}

    async def run() -> None:
        config = KubeConfig(server=url, namespace=NAMESPACE)
        done = trio.Event()
        seen = 0

        def on_event(event: WatchEvent) -> None:
            nonlocal seen
            if event.type != "SYNCED":
                seen += 1
                if seen == pods:
                    done.set()

        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        async with (
            open_client(config, rate_limit=None) as client,
            open_informer(client, PODS, namespace=NAMESPACE) as informer,
        ):
            informer.events.subscribe(on_event)
            await done.wait()
            gc.collect()
            result["mb"] = (tracemalloc.get_traced_memory()[0] - before) / 1e6
            result["raw"] = informer.statistics().raw_bytes
        tracemalloc.stop()

    trio.run(run)
    return result["mb"], int(result["raw"])


def _start_server(events: int) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--events", str(events)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    return server, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--official-events", type=int, default=None, help="fewer for the baseline")
    parser.add_argument("--memory-pods", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true", help="profile one informer run")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.events)
        return

    size = len(orjson.dumps(make_pod(1)))
    print(f"watch throughput: {args.events:,} pod events of {size:,} bytes, {args.runs} runs")
    server, url = _start_server(args.events)
    try:
        official_events = args.official_events or args.events
        informer, plain, official = _interleaved_medians(
            [
                (
                    "rxkube open_informer (watch+Store)",
                    lambda: trio.run(_rxkube_informer, url, args.events),
                    args.events,
                ),
                (
                    "rxkube watch() + Store(transform=None)",
                    lambda: trio.run(_rxkube_watch_store, url, args.events),
                    args.events,
                ),
                (
                    "official Watch().stream",
                    lambda: _official(url, official_events),
                    official_events,
                ),
            ],
            args.runs,
        )
        for i, what in enumerate(("wall", "CPU")):
            print(
                f"median per {what} second: informer {informer[i]:,.0f}/s, "
                f"watch()+Store {plain[i]:,.0f}/s, official {official[i]:,.0f}/s; "
                f"ratios {informer[i] / official[i]:.1f}x and {plain[i] / official[i]:.1f}x"
            )
        mb, raw = _store_memory(url, min(args.memory_pods, args.events))
        print(
            f"memory: {min(args.memory_pods, args.events):,} pods held by an informer: {mb:.1f} MB "
            f"traced ({raw / 1e6:.1f} MB of JSON after dropping managedFields)"
        )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            trio.run(_rxkube_informer, url, args.events)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
            print(out.getvalue())
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
