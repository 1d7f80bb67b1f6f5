"""Sustained watch throughput of the fake API server (issue 3).

Pods are created and deleted while watchers stream `/api/v1/namespaces/bench/pods?watch=true`
over loopback; the figure is events delivered per second, summed over the watchers. The
baseline, measured in the same run, is the same load with one watcher, so the ratio says how
well delivery scales to 10 watchers on one trio loop. Server, writer and watchers share one
process and one core (the GIL), so the figures are conservative. The load is bounded in count
(`--pods`) and time (`--max-seconds`).

    python bench/fake_apiserver.py [--pods 2000] [--watchers 10] [--via-http]
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import httpx
import orjson
import trio

from rxkube.fakes import FakeApiServer, open_fake_apiserver

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "generateName": "web-",
        "labels": {"app": "web", "pod-template-hash": "7c5ddbdf54", "tier": "frontend"},
        "annotations": {"ipb-halle.de/k8sticket.pod.port": "8080", "note": "x" * 400},
    },
    "spec": {
        "containers": [
            {
                "name": "app",
                "image": "registry.example/web:1.2.3",
                "ports": [{"containerPort": 8080, "name": "http"}],
                "env": [{"name": f"VAR_{i}", "value": f"value-{i}"} for i in range(10)],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            }
        ]
    },
}


async def watcher(url: str, rv: str, expected: int, counts: list[int], index: int) -> None:
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as http,
        http.stream(
            "GET",
            "/api/v1/namespaces/bench/pods",
            params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "600"},
        ) as response,
    ):
        tail = b""
        async for chunk in response.aiter_raw():
            counts[index] += chunk.count(b"\n")
            tail = (tail + chunk)[-65536:]
            if counts[index] >= expected:
                break
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    assert orjson.loads(last)["type"] == "DELETED"


async def writer(server: FakeApiServer, pods: int, via_http: bool) -> None:
    if via_http:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            names = []
            for _ in range(pods):
                response = await http.post("/api/v1/namespaces/bench/pods", json=POD)
                names.append(response.json()["metadata"]["name"])
            for name in names:
                await http.delete(f"/api/v1/namespaces/bench/pods/{name}")
        return
    batch = 50
    created = []
    for i in range(pods):
        created.append(server.store.create("pods", copy.deepcopy(POD), namespace="bench").name)
        if i % batch == 0:
            await trio.lowlevel.checkpoint()  # let watchers drain, as requests would
    for i, name in enumerate(created):
        server.store.delete("pods", "bench", name)
        if i % batch == 0:
            await trio.lowlevel.checkpoint()


async def run(pods: int, watchers: int, via_http: bool, max_seconds: float) -> tuple[float, int]:
    async with open_fake_apiserver(history_limit=4 * pods + 10) as server:
        server.store.create("namespaces", {"metadata": {"name": "bench"}})
        rv = str(server.store.resource_version)
        counts = [0] * watchers
        expected = 2 * pods
        with trio.move_on_after(max_seconds):
            async with trio.open_nursery() as nursery:
                for i in range(watchers):
                    nursery.start_soon(watcher, server.url, rv, expected, counts, i)
                await server.api.wait_open_watches(watchers)
                start = trio.current_time()
                await writer(server, pods, via_http)
        elapsed = trio.current_time() - start
        return elapsed, sum(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument("--via-http", action="store_true", help="create/delete over HTTP too")
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args()
    size = len(orjson.dumps(POD))
    print(f"pods: {args.pods} created then deleted ({2 * args.pods} events per watcher)")
    print(f"pod manifest ~{size} bytes; writes {'over HTTP' if args.via_http else 'to the store'}")
    base_t, base_n = trio.run(run, args.pods, 1, args.via_http, args.max_seconds)
    base_rate = base_n / base_t
    print(
        f"baseline, 1 watcher:   {base_n:7d} events in {base_t:6.2f} s = {base_rate:9.0f} events/s"
    )
    t, n = trio.run(run, args.pods, args.watchers, args.via_http, args.max_seconds)
    rate = n / t
    print(
        f"{args.watchers} watchers:           {n:7d} events in {t:6.2f} s = {rate:9.0f} events/s "
        f"({rate / args.watchers:.0f} per watcher)"
    )
    print(
        f"ratio {args.watchers} watchers / 1 watcher (aggregate events/s): {rate / base_rate:.2f}"
    )


if __name__ == "__main__":
    main()
