"""`metrics.k8s.io/v1beta1` from the simulation: what `kubectl top pods|nodes` reads.

What this module is for: metrics-server's API (`PodMetrics` at
`/apis/metrics.k8s.io/v1beta1/namespaces/NS/pods[/NAME]` and `/pods` across namespaces,
`NodeMetrics` at `/apis/metrics.k8s.io/v1beta1/nodes[/NAME]`; get and list with
`labelSelector` and `fieldSelector`; the group listed in discovery as metrics-server's
APIService makes it appear), computed from what each simulated container really did.

The model (deterministic given the store's clock `now`; a window of `WINDOW` = 15 s, the
kubelet's default resolution, ending at `now`):

- CPU of a running container = `IDLE_NANOCORES` (1m) + `REQUEST_CPU_SECONDS` (2 ms) of CPU
  for each request its backend served in the window, spread over the window. So 75 requests
  in the last 15 s read as 1m + 10m = 11m.
- Memory (working set) of a running container = `BASE_MEMORY` (8 MiB, a small server's
  resident set) + the bytes its log keeps + the bytes of the regular files in its filesystem
  (written files stay in the page cache, which the working set counts), rounded up to whole
  4 KiB pages. So `kubectl cp` of a 300 KB file into a pod shows in `kubectl top`.
- A node = `NODE_CPU_NANOCORES` (50m) and `NODE_MEMORY` (512 MiB) for the system daemons +
  the sum of the containers of the pods running on it.

Only pods whose phase is `Running` and whose containers run appear, as with metrics-server
(a pod without metrics answers 404 `podmetrics.metrics.k8s.io "NS/NAME" not found`).
`timestamp` is the end of the window (whole seconds, RFC 3339), `window` a Go duration
(`15s`); quantities are written as metrics-server writes them (`1234567n`, `8192Ki`).

It may import the store, selectors, errors and the API's extension points; it reads the
kubelet's containers and never changes them (the backends record requests in a
`RequestMeter` each container owns).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson

from rxkube.fakes._api import ApiServer, RequestContext
from rxkube.fakes._errors import StatusError
from rxkube.fakes._http import AnyResponse, Response
from rxkube.fakes._resources import ResourceType
from rxkube.fakes._selectors import FieldSelector, LabelSelector
from rxkube.fakes._sim_fs import File
from rxkube.fakes._store import Store, rfc3339

if TYPE_CHECKING:
    from rxkube.fakes._kubelet import Kubelet, SimContainer

__all__: list[str] = []

GROUP: Final = "metrics.k8s.io"
VERSION: Final = "v1beta1"
WINDOW: Final = 15.0
IDLE_NANOCORES: Final = 1_000_000
REQUEST_CPU_SECONDS: Final = 0.002
BASE_MEMORY: Final = 8 * 1024 * 1024
PAGE: Final = 4096
NODE_CPU_NANOCORES: Final = 50_000_000
NODE_MEMORY: Final = 512 * 1024 * 1024
_GET_LIST: Final = ("get", "list")


class RequestMeter:
    """When a container's backend served requests (on the store's clock), for the last window."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.times: deque[float] = deque()
        self.total = 0

    def record(self) -> None:
        stamp = self.now()
        self.times.append(stamp)
        self.total += 1
        self._forget(stamp)

    def count(self, end: float) -> int:
        """Requests served in the window (end - WINDOW, end]."""
        self._forget(end)
        return sum(1 for t in self.times if end - WINDOW < t <= end)

    def _forget(self, end: float) -> None:
        # Older requests never count again: memory stays bounded by one window's requests.
        while self.times and self.times[0] <= end - WINDOW:
            self.times.popleft()


def metrics_resources() -> list[ResourceType]:
    return [
        ResourceType(GROUP, VERSION, "pods", "PodMetrics", True, verbs=_GET_LIST),
        ResourceType(GROUP, VERSION, "nodes", "NodeMetrics", False, verbs=_GET_LIST),
    ]


def container_usage(container: SimContainer, now: float) -> tuple[int, int]:
    """(CPU in nanocores, working set in bytes) of a running container (see the docstring)."""
    served = container.requests.count(now)
    cpu = IDLE_NANOCORES + round(served * REQUEST_CPU_SECONDS / WINDOW * 1e9)
    logged = sum(len(line) for _, line in container.log.entries)
    files = sum(len(node.data) for _, node in container.fs.walk("/") if isinstance(node, File))
    memory = math.ceil((BASE_MEMORY + logged + files) / PAGE) * PAGE
    return cpu, memory


def cpu_quantity(nanocores: int) -> str:
    """A `resource.Quantity` in DecimalSI canonical form (`0`, `5m`, `1234567n`)."""
    for suffix, scale in (("", 10**9), ("m", 10**6), ("u", 10**3)):
        if nanocores % scale == 0:
            return f"{nanocores // scale}{suffix}"
    return f"{nanocores}n"


def memory_quantity(size: int) -> str:
    """A `resource.Quantity` in BinarySI canonical form (`8192Ki`, `512Mi`)."""
    for suffix, scale in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size and size % scale == 0:
            return f"{size // scale}{suffix}"
    return str(size)


class MetricsApi:
    """The handlers of the two kinds, reading the kubelet's containers."""

    def __init__(self, store: Store, kubelet: Kubelet) -> None:
        self.store = store
        self.kubelet = kubelet

    def _running(self) -> Iterable[tuple[Mapping[str, Any], list[SimContainer]]]:
        for worker in list(self.kubelet.workers.values()):
            try:
                pod = self.store.get("pods", worker.namespace, worker.name)
            except StatusError:
                continue
            if (pod.get("status") or {}).get("phase") != "Running":
                continue
            containers = [c for c in worker.containers.values() if c.running]
            if containers:
                yield pod, containers

    def _envelope(self, kind: str, meta: Mapping[str, Any], now: float) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": meta["name"]}
        if meta.get("namespace"):
            metadata["namespace"] = meta["namespace"]
        metadata["creationTimestamp"] = rfc3339(now)
        if meta.get("labels"):
            metadata["labels"] = dict(meta["labels"])
        return {
            "kind": kind,
            "apiVersion": f"{GROUP}/{VERSION}",
            "metadata": metadata,
            "timestamp": rfc3339(now),
            "window": f"{WINDOW:g}s",
        }

    def pod_metrics(self, now: float) -> list[dict[str, Any]]:
        items = []
        for pod, containers in self._running():
            item = self._envelope("PodMetrics", pod["metadata"], now)
            item["containers"] = []
            for container in containers:
                cpu, memory = container_usage(container, now)
                item["containers"].append(
                    {
                        "name": container.name,
                        "usage": {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)},
                    }
                )
            items.append(item)
        return items

    def node_metrics(self, now: float) -> list[dict[str, Any]]:
        usage: dict[str, list[int]] = {}
        for pod, containers in self._running():
            node_name = str((pod.get("spec") or {}).get("nodeName") or "")
            total = usage.setdefault(node_name, [NODE_CPU_NANOCORES, NODE_MEMORY])
            for container in containers:
                cpu, memory = container_usage(container, now)
                total[0] += cpu
                total[1] += memory
        items = []
        for node in self.store.list("nodes").objects():
            meta = node["metadata"]
            cpu, memory = usage.get(str(meta["name"]), [NODE_CPU_NANOCORES, NODE_MEMORY])
            item = self._envelope("NodeMetrics", meta, now)
            item["usage"] = {"cpu": cpu_quantity(cpu), "memory": memory_quantity(memory)}
            items.append(item)
        return items

    async def handle(self, ctx: RequestContext) -> AnyResponse:
        if ctx.verb not in _GET_LIST:
            raise StatusError.method_not_allowed(ctx.request.method, ctx.resource.plural)
        now = self.store.now()
        pods = ctx.resource.kind == "PodMetrics"
        items = self.pod_metrics(now) if pods else self.node_metrics(now)
        if ctx.namespace:
            items = [i for i in items if i["metadata"].get("namespace") == ctx.namespace]
        if ctx.name:
            for item in items:
                if item["metadata"]["name"] == ctx.name:
                    return Response(200, orjson.dumps(item))
            shown = f"{ctx.namespace}/{ctx.name}" if pods else ctx.name
            raise StatusError.not_found("podmetrics" if pods else "nodemetrics", GROUP, shown)
        query = ctx.request.query
        labels = LabelSelector.parse(query.get("labelSelector"))
        fields = FieldSelector.parse(query.get("fieldSelector"), ctx.resource.field_selectors)
        selected = [
            item
            for item in items
            if labels.matches(item["metadata"].get("labels") or {})
            and fields.matches(
                {
                    "metadata.name": item["metadata"]["name"],
                    "metadata.namespace": item["metadata"].get("namespace", ""),
                }
            )
        ]
        body = {
            "kind": f"{ctx.resource.kind}List",
            "apiVersion": f"{GROUP}/{VERSION}",
            "metadata": {},
            "items": selected,
        }
        return Response(200, orjson.dumps(body))


def install_metrics_api(api: ApiServer, store: Store, kubelet: Kubelet) -> None:
    """Serve `metrics.k8s.io/v1beta1` pods and nodes on `api` (and list them in discovery)."""
    metrics = MetricsApi(store, kubelet)
    for resource in metrics_resources():
        api.add_collection(resource, metrics.handle)
