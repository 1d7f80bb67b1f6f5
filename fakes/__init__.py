"""rxkube.fakes: a fake Kubernetes API server that speaks the real protocol over HTTP.

For tests, the demo, notebooks and users' own tests. It may import `rxkube.streams` (shared
types and codecs) and nothing else of rxkube; library code never imports it (only the CLI).
What it reproduces is written down in `shared/reference/kubernetes-api-wire.md`.

Start it in-process (trio)::

    from rxkube.fakes import Fault, open_fake_apiserver

    async with open_fake_apiserver() as server:
        server.url               # "http://127.0.0.1:PORT"
        server.kubeconfig_path   # a kubeconfig for it (admin bearer token)
        server.store             # the objects: create/get/list/update/patch/delete/watch
        server.faults            # fault injection and counters
        server.api               # extension points, statistics()

Options: `auth=True` (bearer tokens, 401 without one; `server.add_user(name, groups)` returns a
token; `server.add_service_account(namespace, name)` one for the service account),
`rbac=True` (403 unless stored Roles/ClusterRoles and bindings allow the request),
`bookmark_interval=` (seconds between bookmarks on an idle watch), `history_limit=` (events kept
per resource before old resourceVersions get 410), `host=`, `port=`, `kubeconfig_path=`.
What each user asked and whether it was allowed is counted in `server.api.access` (a Counter
of `Access(user, verb, resource, allowed)`; also `statistics()["access"]`), e.g. to show that a
Role grants exactly what a controller uses. kubectl sends no credentials to a plain-HTTP server
(client-go reads a kubeconfig's user only for TLS), so with `auth=True` it gets 401.

kubectl works against it with validation on (issue 6): `/openapi/v3` and `/openapi/v2` (JSON)
documents, `fieldValidation=Strict|Warn|Ignore`, Table output for `kubectl get` (and `-w`),
the strategic merge patch of `kubectl apply`/`patch`, server-side apply with managedFields and
conflicts, and `deployments/scale`. The schemas are the Kubernetes 1.32 definitions shipped by
the `kubernetes-validate` package (custom resources get permissive ones), loaded on the first
request that needs them::

    kubectl --kubeconfig "$KUBECONFIG" apply -f deploy.yaml          # then change and re-apply
    kubectl --kubeconfig "$KUBECONFIG" apply --server-side -f deploy.yaml
    kubectl --kubeconfig "$KUBECONFIG" scale deploy/web --replicas=3

From synchronous code (the official `kubernetes` client, notebooks)::

    with fake_apiserver_thread() as server:
        api = kubernetes.config.new_client_from_config(str(server.kubeconfig_path))
        server.store.create("configmaps", {...}, namespace="default")  # in the server's thread
        server.faults.drop_watches()                                   # likewise

In virtual time, with no sockets (trio's MockClock; an httpx transport on the same handler)::

    api = ApiServer(Store(now=lambda: 0.0), bookmark_interval=60.0)
    async with httpx.AsyncClient(transport=ApiTransport(api), base_url="http://fake") as http:
        ...   # the same API; api.faults works too (httpx timeouts do not: use trio.fail_after)

From a shell: `rxkube fake-apiserver --listen 127.0.0.1:8080 [--kubeconfig-out PATH]` (with
the simulated cluster below; `--no-simulation` for objects only).

A simulated cluster in the server (`simulate=True`, or `SimSettings` for delays and choices):
Deployments roll out to ReplicaSets and Pods; a scheduler, nodes and a kubelet move pods to
Running and Ready; every container is a real HTTP/WebSocket echo backend on its container
ports at `status.podIP` (its own 127.x.y.z on Linux; see `pod_address`); `pods/log` and
`pods/exec` (WebSocket v5/v4) work for kubectl and the official client::

    async with open_fake_apiserver(simulate=SimSettings(start_delay=0.05)) as server:
        sim = server.simulation
        await sim.wait_until(lambda store: ...)         # re-checked after every change
        host, port = sim.address("default", pod_name, 8080)   # the pod's backend
        await sim.exec("default", pod_name, ["sh", "-c", "ls /tmp"])   # -> ExecResult
        sim.log("default", pod_name).write("a line for kubectl logs\n")
        sim.container("default", pod_name).fs.write_file("/data/x", b"...")

Failures on request, by pod annotation (`SimAnnotations`): `sim.rxkube.io/never-ready`,
`crash-after` + `exit-code`, `start-delay`, `ready-delay`, `image-pull-error`,
`unschedulable`, `ignore-sigterm`. What a browser gets, by pod annotation
`sim.rxkube.io/page`: `"html"` (a page naming the pod, for GETs accepting text/html) or
`"websocket"` (that page, which also keeps a WebSocket to the pod open and shows its
echoes). Without sockets, in virtual time (trio's MockClock), run
`open_simulation(store, SimSettings(backends=False))` on a `Store`.

An orchestrator `Cluster` on a simulated cluster, for tests of code that drives one::

    async with open_fake_cluster() as cluster:       # a rxkube.streams.orchestrator.Cluster
        await cluster.pods.create(CreatePod("web", [ContainerSpec("app", "nginx")]))
        await cluster.pods.wait("app=web", Condition.READY, timeout=10)
        cluster.server.simulation.log("default", "web").write("a line\n")

Reach the store directly (same semantics as over HTTP, no I/O, in the server's thread)::

    entry = server.store.create("pods", pod_dict, namespace="default")   # -> Entry
    server.store.get("pods", "default", "web")                           # -> dict
    server.store.list("pods", "default", label_selector="app=web").objects()
    server.store.subscribe(lambda change: ...)                            # every commit
    server.store.compact()                                                # history -> 410

Inject faults (each `inject` returns a `FaultRule`; `times=None` means every match)::

    rule = server.faults.inject(Fault.status(503, retry_after=2), verb="list", resource="pods")
    server.faults.inject(Fault.too_many_requests(retry_after=1), verb="watch")
    server.faults.inject(Fault.status(410), verb="list", times=2)
    server.faults.inject(Fault.status(500), path="/apis/apps/v1")
    server.faults.inject(Fault.delay(0.5), verb="get")
    server.faults.inject(Fault.stall(), verb="watch", resource="pods")
    server.faults.inject(Fault.drop(after_events=3), verb="watch")      # no terminating chunk
    server.faults.inject(Fault.truncate(after_events=1), verb="watch")  # half a line, then drop
    server.faults.inject(Fault.malformed(after_events=0), verb="watch") # a non-JSON line
    server.faults.inject(Fault.expire(after_events=2), verb="watch")    # in-band ERROR 410
    server.faults.drop_watches(resource="pods")    # open watches, now
    server.faults.expire_watches()                 # open watches get ERROR 410, now
    server.faults.compact()                        # history compacted, now

    rule.fired, rule.matched          # this rule's counters
    server.faults.fired("status")     # by kind: status delay stall drop truncate malformed
                                      # expire drop_watches expire_watches compact
"""

from rxkube.fakes._api import ApiServer, RequestContext
from rxkube.fakes._backends import pod_address
from rxkube.fakes._cluster import FakeCluster, open_fake_cluster
from rxkube.fakes._errors import StatusCause, StatusError
from rxkube.fakes._faults import Fault, FaultRule, Faults
from rxkube.fakes._http import AbortConnection, Request, Response, StreamResponse, Upgrade
from rxkube.fakes._kubelet import SimAnnotations, SimContainer
from rxkube.fakes._logs import ContainerLog
from rxkube.fakes._patch import PatchRequest, PatchTypes
from rxkube.fakes._rbac import Access, UserInfo
from rxkube.fakes._resources import Registry, ResourceType, Subresource, builtin_resources
from rxkube.fakes._selectors import FieldSelector, LabelSelector
from rxkube.fakes._server import (
    FakeApiServer,
    ThreadedFakeApiServer,
    fake_apiserver_thread,
    kubeconfig_yaml,
    open_fake_apiserver,
    run_fake_apiserver,
)
from rxkube.fakes._sim import SimSettings, Simulation, open_simulation
from rxkube.fakes._sim_fs import ContainerFS, FsError
from rxkube.fakes._sim_shell import ExecResult
from rxkube.fakes._store import (
    AdmissionRequest,
    Change,
    DeleteOptions,
    Entry,
    ListResult,
    Store,
    Watcher,
    WriteOptions,
)
from rxkube.fakes._transport import ApiTransport

__all__ = [
    "AbortConnection",
    "Access",
    "AdmissionRequest",
    "ApiServer",
    "ApiTransport",
    "Change",
    "ContainerFS",
    "ContainerLog",
    "DeleteOptions",
    "Entry",
    "ExecResult",
    "FakeApiServer",
    "FakeCluster",
    "Fault",
    "FaultRule",
    "Faults",
    "FieldSelector",
    "FsError",
    "LabelSelector",
    "ListResult",
    "PatchRequest",
    "PatchTypes",
    "Registry",
    "Request",
    "RequestContext",
    "ResourceType",
    "Response",
    "SimAnnotations",
    "SimContainer",
    "SimSettings",
    "Simulation",
    "StatusCause",
    "StatusError",
    "Store",
    "StreamResponse",
    "Subresource",
    "ThreadedFakeApiServer",
    "Upgrade",
    "UserInfo",
    "Watcher",
    "WriteOptions",
    "builtin_resources",
    "fake_apiserver_thread",
    "kubeconfig_yaml",
    "open_fake_apiserver",
    "open_fake_cluster",
    "open_simulation",
    "pod_address",
    "run_fake_apiserver",
]
