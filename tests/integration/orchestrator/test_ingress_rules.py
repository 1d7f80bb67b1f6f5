"""Ingress rules for both implementations (Kubernetes Ingress, Gloo VirtualService): get, upsert
and remove by uid, foreign paths kept in place, no-op writes skipped, and concurrent upserts
that lose nothing (optimistic concurrency with retry on 409)."""

from __future__ import annotations

from typing import Any, Literal, cast

import orjson
import pytest
import trio

from rxkube.fakes import FakeCluster, Fault, open_fake_cluster
from rxkube.streams import INGRESSES, VIRTUAL_SERVICES, NotFound, Resource
from rxkube.streams.orchestrator import (
    Applied,
    Cluster,
    GlooIngresses,
    GlooIngressRules,
    IngressPath,
    IngressRules,
    KubernetesIngressRules,
    RemovePaths,
    Rule,
    RuleNotFound,
    UpsertPaths,
)

HOST = "sims.example.org"
# The path that was there before: an Ingress path without a recorded uid has its path as uid.
WEB = {"kubernetes": "/web", "gloo": "web"}
OTHER = "other.example.org"


def k8s_ingress() -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "gateway"},
        "spec": {
            "rules": [
                {
                    "host": HOST,
                    "http": {
                        "paths": [
                            {
                                "path": "/web",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            },
                            {
                                "path": "/static",
                                "pathType": "Prefix",
                                "backend": {
                                    "resource": {
                                        "apiGroup": "k8s.example.com",
                                        "kind": "StorageBucket",
                                        "name": "static",
                                    }
                                },
                            },
                        ]
                    },
                },
                {"host": OTHER, "http": {"paths": []}},
            ]
        },
    }


def gloo_virtual_service() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.solo.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "gateway"},
        "spec": {
            "virtualHost": {
                "domains": [HOST, "www." + HOST],
                "routes": [
                    {
                        "name": "web",
                        "matchers": [{"regex": "/web/.*"}],
                        "routeAction": {
                            "single": {"upstream": {"name": "web-80", "namespace": "default"}}
                        },
                    },
                    {
                        "matchers": [{"prefix": "/team"}],
                        "delegateAction": {"ref": {"name": "team", "namespace": "default"}},
                    },
                ],
            }
        },
    }


FLAVOURS: dict[str, tuple[Resource, Any]] = {
    "kubernetes": (INGRESSES, k8s_ingress),
    "gloo": (VIRTUAL_SERVICES, gloo_virtual_service),
}


Flavour = Literal["kubernetes", "gloo"]


@pytest.fixture(params=["kubernetes", "gloo"])
def flavour(request: pytest.FixtureRequest) -> Flavour:
    return cast(Flavour, request.param)


def path(uid: str, flavour: Flavour, port: int = 8080) -> IngressPath:
    return IngressPath(uid, f"/{uid}/(.*)" if flavour == "gloo" else f"/{uid}", uid, port)


def expected(p: IngressPath, flavour: Flavour) -> IngressPath:
    # A Gloo route points at an Upstream, which carries the port itself.
    return IngressPath(p.uid, p.address, p.endpoint, None if flavour == "gloo" else p.port)


async def test_upsert_get_and_remove_by_uid(flavour: Flavour) -> None:
    resource, manifest = FLAVOURS[flavour]
    async with open_fake_cluster(ingress=flavour, simulate=False) as cluster:
        store = cluster.server.store
        store.create(resource.plural, manifest(), namespace="default")
        rules = cluster.ingress_rules
        assert isinstance(rules, GlooIngressRules if flavour == "gloo" else KubernetesIngressRules)
        before = await rules.get("gateway", HOST)
        assert [p.uid for p in before.paths] == [WEB[flavour]]

        a, b = path("sim-a", flavour), path("sim-b", flavour)
        rule = await rules.upsert("gateway", HOST, [a, b])
        assert rule == Rule(
            "gateway", HOST, (before.paths[0], expected(a, flavour), expected(b, flavour))
        )
        # Upsert by uid replaces in place (a new address and endpoint), keeps the order.
        moved = IngressPath("sim-a", a.address + "x", "sim-a-v2", 9090)
        rule = await rules.upsert("gateway", HOST, [moved])
        assert [p.uid for p in rule.paths] == [WEB[flavour], "sim-a", "sim-b"]
        assert rule.path("sim-a") == expected(moved, flavour)
        # Remove by uid (given as a uid or a path); unknown uids are ignored.
        rule = await rules.remove("gateway", HOST, ["sim-a", b, "never-there"])
        assert [p.uid for p in rule.paths] == [WEB[flavour]]

        # What the stored object looks like: foreign entries untouched and in place.
        stored = store.get(resource.plural, "default", "gateway")
        if flavour == "gloo":
            routes = stored["spec"]["virtualHost"]["routes"]
            assert routes == gloo_virtual_service()["spec"]["virtualHost"]["routes"]
        else:
            assert stored["spec"] == k8s_ingress()["spec"]
            assert "rxkube.io/ingress-path-uids" not in stored["metadata"].get("annotations", {})


async def test_the_stored_form_of_a_path(flavour: Flavour) -> None:
    resource, manifest = FLAVOURS[flavour]
    async with open_fake_cluster(ingress=flavour, simulate=False) as cluster:
        store = cluster.server.store
        store.create(resource.plural, manifest(), namespace="default")
        await cluster.ingress_rules.upsert(
            "gateway", HOST, [IngressPath("sim-42", "/sims/42", "sim-42", 8080)]
        )
        stored = store.get(resource.plural, "default", "gateway")
        if flavour == "gloo":
            assert stored["spec"]["virtualHost"]["routes"][-1] == {
                "name": "sim-42",
                "matchers": [{"regex": "/sims/42"}],
                "routeAction": {"single": {"upstream": {"name": "sim-42", "namespace": "default"}}},
            }
        else:
            assert stored["spec"]["rules"][0]["http"]["paths"][-1] == {
                "path": "/sims/42",
                "pathType": "Prefix",
                "backend": {"service": {"name": "sim-42", "port": {"number": 8080}}},
            }
            uids = orjson.loads(stored["metadata"]["annotations"]["rxkube.io/ingress-path-uids"])
            assert uids == {HOST: {"sim-42": "/sims/42"}}


async def test_missing_host_or_ingress(flavour: Flavour) -> None:
    resource, manifest = FLAVOURS[flavour]
    async with open_fake_cluster(ingress=flavour, simulate=False) as cluster:
        cluster.server.store.create(resource.plural, manifest(), namespace="default")
        with pytest.raises(RuleNotFound, match=r"no rule for host 'nowhere\.example\.org'"):
            await cluster.ingress_rules.get("gateway", "nowhere.example.org")
        with pytest.raises(RuleNotFound) as caught:
            await cluster.ingress_rules.upsert(
                "gateway", "nowhere.example.org", [path("x", flavour)]
            )
        assert caught.value.status["reason"] == "NotFound"
        with pytest.raises(NotFound):
            await cluster.ingress_rules.get("absent", HOST)
        # An upsert that changes nothing writes nothing.
        rv = cluster.server.store.get(resource.plural, "default", "gateway")["metadata"][
            "resourceVersion"
        ]
        before = await cluster.ingress_rules.get("gateway", HOST)
        if flavour == "kubernetes":  # (a Gloo path reads back without its port)
            await cluster.ingress_rules.upsert("gateway", HOST, [before.paths[0]])
        await cluster.ingress_rules.remove("gateway", HOST, ["not-there"])
        after = cluster.server.store.get(resource.plural, "default", "gateway")
        assert after["metadata"]["resourceVersion"] == rv


async def test_kubernetes_paths_need_a_port() -> None:
    async with open_fake_cluster(simulate=False) as cluster:
        cluster.server.store.create("ingresses", k8s_ingress(), namespace="default")
        with pytest.raises(ValueError, match="needs the Service port"):
            await cluster.ingress_rules.upsert("gateway", HOST, [IngressPath("p", "/p", "svc")])


async def test_concurrent_upserts_on_one_host_lose_nothing(flavour: Flavour) -> None:
    """Two orchestrators add different uids to one host at once. Both read the object; the
    first write to arrive is held back for 0.5 s, so the other's write lands first and the held
    one (computed from the old object) hits a 409 Conflict: it reads again and re-applies its
    change. Both paths are there at the end (Cloudsim's unconditional write lost one)."""
    resource, manifest = FLAVOURS[flavour]
    async with open_fake_cluster(ingress=flavour, simulate=False) as cluster:
        server = cluster.server
        server.store.create(resource.plural, manifest(), namespace="default")
        other = Cluster(cluster.client, ingress=flavour)
        held = server.faults.inject(Fault.delay(0.5), verb="update", times=1)
        outcomes: list[object] = []
        cluster.ingress_rules.outcomes.subscribe(outcomes.append)
        other.ingress_rules.outcomes.subscribe(outcomes.append)

        async def upsert(rules: IngressRules, uid: str) -> None:
            await rules.upsert("gateway", HOST, [path(uid, flavour)])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(upsert, cluster.ingress_rules, "a")
            nursery.start_soon(upsert, other.ingress_rules, "b")
        assert held.fired == 1
        # Two writes, one of them refused with 409 and redone after a fresh read.
        assert server.api.requests["update"] == 3
        assert server.api.requests["get"] == 3
        final = await cluster.ingress_rules.get("gateway", HOST)
        assert [p.uid for p in final.paths][1:] in (["a", "b"], ["b", "a"])
        assert len(outcomes) == 2
        assert all(isinstance(o, Applied) for o in outcomes)


async def test_commands_on_the_sink_are_applied_in_order(flavour: Flavour) -> None:
    resource, manifest = FLAVOURS[flavour]
    async with open_fake_cluster(ingress=flavour, simulate=False) as cluster:
        cluster.server.store.create(resource.plural, manifest(), namespace="default")
        rules: IngressRules = cluster.ingress_rules
        for uid in ("one", "two", "three"):
            rules.on_next(UpsertPaths("gateway", HOST, [path(uid, flavour)]))
        rules.on_next(RemovePaths("gateway", HOST, ["two"]))
        await cluster.wait_idle()
        final = await rules.get("gateway", HOST)
        assert [p.uid for p in final.paths] == [WEB[flavour], "one", "three"]
        assert rules.statistics().applied == 4


async def test_gloo_upstream_lookup() -> None:
    async with open_fake_cluster(ingress="gloo", simulate=False) as cluster:
        assert isinstance(cluster.ingresses, GlooIngresses)
        store = cluster.server.store
        for name, app in (("sim-8080", "sim"), ("web-80", "web"), ("web-81", "web")):
            store.create(
                "upstreams",
                {
                    "apiVersion": "gloo.solo.io/v1",
                    "kind": "Upstream",
                    "metadata": {"name": name, "labels": {"app": app}},
                    "spec": {"kube": {"serviceName": app, "servicePort": 8080}},
                },
                namespace="default",
            )
        store.create("virtualservices", gloo_virtual_service(), namespace="default")
        assert (await cluster.ingresses.upstream({"app": "sim"}))["metadata"]["name"] == "sim-8080"
        with pytest.raises(NotFound):
            await cluster.ingresses.upstream({"app": "none"})
        with pytest.raises(Exception, match="2 Gloo upstreams"):
            await cluster.ingresses.upstream({"app": "web"})
        vs = await cluster.ingresses.get("gateway")
        assert vs["kind"] == "VirtualService"
        assert len(await cluster.ingresses.list()) == 1


async def test_kubernetes_ingresses_get(cluster: FakeCluster) -> None:
    cluster.server.store.create("ingresses", k8s_ingress(), namespace="default")
    ingress = await cluster.ingresses.get("gateway")
    assert ingress["spec"]["rules"][0]["host"] == HOST
