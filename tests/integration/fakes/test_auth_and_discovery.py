"""Bearer tokens (401), RBAC from stored roles (403, then allowed), and discovery documents."""

from __future__ import annotations

import httpx

from rxkube.fakes import FakeApiServer, open_fake_apiserver

PODS = "/api/v1/namespaces/apps/pods"


async def test_authentication_and_rbac() -> None:
    async with open_fake_apiserver(rbac=True) as server:
        server.store.create("namespaces", {"metadata": {"name": "apps"}})
        token = server.add_service_account("apps", "rxkube")
        async with httpx.AsyncClient(base_url=server.url) as http:
            anonymous = await http.get(PODS)
            assert anonymous.status_code == 401
            assert anonymous.json() == {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Unauthorized",
                "reason": "Unauthorized",
                "code": 401,
            }
            forged = await http.get(PODS, headers={"authorization": "Bearer forged"})
            assert forged.status_code == 401

            headers = {"authorization": f"Bearer {token}"}
            denied = await http.get(PODS, headers=headers)
            assert denied.status_code == 403
            assert denied.json()["message"] == (
                'pods is forbidden: User "system:serviceaccount:apps:rxkube" cannot list '
                'resource "pods" in API group "" in the namespace "apps"'
            )
            assert denied.json()["details"] == {"kind": "pods"}
            named = await http.get(f"{PODS}/web/status", headers=headers)
            assert named.json()["message"].startswith('pods "web" is forbidden: User')
            assert 'cannot get resource "pods/status"' in named.json()["message"]
            # Discovery is open to every authenticated user.
            assert (await http.get("/api/v1", headers=headers)).status_code == 200

            # The install race: the Role arrives after the controller started.
            server.store.create(
                "roles",
                {
                    "metadata": {"name": "pod-reader"},
                    "rules": [
                        {
                            "apiGroups": [""],
                            "resources": ["pods"],
                            "verbs": ["get", "list", "watch"],
                        }
                    ],
                },
                namespace="apps",
            )
            server.store.create(
                "rolebindings",
                {
                    "metadata": {"name": "rxkube-reads-pods"},
                    "subjects": [{"kind": "ServiceAccount", "name": "rxkube", "namespace": "apps"}],
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": "pod-reader",
                    },
                },
                namespace="apps",
            )
            allowed = await http.get(PODS, headers=headers)
            assert allowed.status_code == 200
            create = await http.post(PODS, json={"metadata": {"name": "x"}}, headers=headers)
            assert create.status_code == 403
            assert 'cannot create resource "pods"' in create.json()["message"]
            other_ns = await http.get("/api/v1/namespaces/default/pods", headers=headers)
            assert other_ns.status_code == 403
            cluster = await http.get("/api/v1/nodes", headers=headers)
            assert cluster.json()["message"].endswith("at the cluster scope")

            admin = {"authorization": f"Bearer {server.admin_token}"}
            assert (await http.get("/api/v1/nodes", headers=admin)).status_code == 200


async def test_cluster_role_bound_to_a_group() -> None:
    async with open_fake_apiserver(rbac=True) as server:
        token = server.add_user("alice", ("devs",))
        server.store.create(
            "clusterroles",
            {
                "metadata": {"name": "node-viewer"},
                "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["list"]}],
            },
        )
        server.store.create(
            "clusterrolebindings",
            {
                "metadata": {"name": "devs-view"},
                "subjects": [
                    {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}
                ],
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "node-viewer",
                },
            },
        )
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {token}"}
        ) as http:
            assert (await http.get("/api/v1/nodes")).status_code == 200
            assert (await http.get("/apis/apps/v1/deployments")).status_code == 200
            assert (await http.get("/api/v1/namespaces/default")).status_code == 403


async def test_legacy_discovery(client: httpx.AsyncClient) -> None:
    api = (await client.get("/api")).json()
    assert api["kind"] == "APIVersions"
    assert api["versions"] == ["v1"]
    core = (await client.get("/api/v1")).json()
    assert core["kind"] == "APIResourceList"
    assert core["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["pods"]["shortNames"] == ["po"]
    assert by_name["pods"]["verbs"] == [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]
    assert by_name["pods/status"]["verbs"] == ["get", "patch", "update"]
    assert by_name["nodes"]["namespaced"] is False
    groups = (await client.get("/apis")).json()
    names = [g["name"] for g in groups["groups"]]
    assert names == [
        "apps",
        "batch",
        "networking.k8s.io",
        "policy",
        "scheduling.k8s.io",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
        "gateway.solo.io",
        "gloo.solo.io",
        "authorization.k8s.io",
        "authentication.k8s.io",
    ]
    reviews = (await client.get("/apis/authorization.k8s.io/v1")).json()
    review = next(r for r in reviews["resources"] if r["name"] == "selfsubjectaccessreviews")
    assert (review["kind"], review["namespaced"], review["verbs"]) == (
        "SelfSubjectAccessReview",
        False,
        ["create"],
    )
    apps = (await client.get("/apis/apps/v1")).json()
    assert {r["name"] for r in apps["resources"]} >= {
        "deployments",
        "deployments/status",
        "replicasets",
    }
    group = (await client.get("/apis/apps")).json()
    assert group["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    assert (await client.get("/apis/apps/v2")).status_code == 404
    version = (await client.get("/version")).json()
    assert version["major"] == "1"
    assert version["gitVersion"].startswith("v1.")


async def test_aggregated_discovery(client: httpx.AsyncClient) -> None:
    accept = (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
    )
    response = await client.get("/apis", headers={"accept": accept})
    assert response.headers["content-type"] == (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    body = response.json()
    assert body["kind"] == "APIGroupDiscoveryList"
    apps = next(item for item in body["items"] if item["metadata"]["name"] == "apps")
    deployments = next(
        r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments"
    )
    assert deployments["scope"] == "Namespaced"
    assert deployments["responseKind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    core = (await client.get("/api", headers={"accept": accept})).json()
    assert "name" not in core["items"][0]["metadata"]


async def test_health_and_unknown_paths(server: FakeApiServer, client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).text == "ok"
    missing = await client.get("/nothing/here")
    assert missing.status_code == 404
    assert missing.json()["message"] == "the server could not find the requested resource"
    # A cluster-scoped kind under /namespaces/{ns}/ does not exist.
    assert (await client.get("/api/v1/namespaces/default/nodes")).status_code == 404
