"""The official `kubernetes` client, a client we did not write, against the fake over loopback."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client, watch

from rxkube.fakes import ThreadedFakeApiServer

from .conftest import pod


def _watch() -> Any:
    # The official client's stubs type events narrowly; these tests read raw fields too.
    return watch.Watch()


def test_core_v1_crud(kube: client.ApiClient) -> None:
    v1: Any = client.CoreV1Api(kube)
    names = [n.metadata.name for n in v1.list_namespace().items]
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team")))
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"a": "1"})
    created = v1.create_namespaced_config_map("team", body)
    assert created.metadata.uid
    assert created.metadata.resource_version
    created.data["a"] = "2"
    replaced = v1.replace_namespaced_config_map("settings", "team", created)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    patched = v1.patch_namespaced_config_map("settings", "team", {"data": {"b": "3"}})
    assert patched.data == {"a": "2", "b": "3"}
    with pytest.raises(client.ApiException) as conflict:
        v1.replace_namespaced_config_map("settings", "team", created)
    assert conflict.value.status == 409
    status = v1.delete_namespaced_config_map("settings", "team")
    # kubernetes 37 types this response as a plain object (dict): a Status of success.
    assert status["status"] == "Success"
    assert status["details"]["kind"] == "configmaps"
    with pytest.raises(client.ApiException) as missing:
        v1.read_namespaced_config_map("settings", "team")
    assert missing.value.status == 404

    created_pod = v1.create_namespaced_pod("team", pod("web", {"app": "web"}))
    assert created_pod.status.phase == "Pending"
    assert created_pod.spec.restart_policy == "Always"
    listed = v1.list_namespaced_pod("team", label_selector="app=web")
    assert [p.metadata.name for p in listed.items] == ["web"]
    deleted = v1.delete_namespaced_pod("web", "team")
    assert deleted.metadata.name == "web"  # pods answer DELETE with the object


def test_apps_v1_deployment_and_garbage_collection(kube: client.ApiClient) -> None:
    apps: Any = client.AppsV1Api(kube)
    v1: Any = client.CoreV1Api(kube)
    manifest: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "web:1"}]},
            },
        },
    }
    created = apps.create_namespaced_deployment("default", manifest)
    assert created.metadata.generation == 1
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    owned = pod("web-abc", {"app": "web"})
    owned["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "uid": created.metadata.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    v1.create_namespaced_pod("default", owned)
    scaled = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    apps.delete_namespaced_deployment("web", "default")
    assert v1.list_namespaced_pod("default").items == []


def test_custom_objects(kube: client.ApiClient) -> None:
    custom: Any = client.CustomObjectsApi(kube)
    body = {
        "apiVersion": "gateway.solo.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "apps"},
        "spec": {"virtualHost": {"domains": ["*"], "routes": []}},
    }
    created = custom.create_namespaced_custom_object(
        "gateway.solo.io", "v1", "default", "virtualservices", body
    )
    assert created["metadata"]["generation"] == 1
    listed = custom.list_namespaced_custom_object(
        "gateway.solo.io", "v1", "default", "virtualservices"
    )
    # Custom resource list items keep kind and apiVersion (reference 3.2).
    assert listed["items"][0]["kind"] == "VirtualService"
    patched = custom.patch_namespaced_custom_object(
        "gateway.solo.io",
        "v1",
        "default",
        "virtualservices",
        "apps",
        {"spec": {"virtualHost": {"domains": ["a.example"]}}},
    )
    assert patched["metadata"]["generation"] == 2
    custom.delete_namespaced_custom_object(
        "gateway.solo.io", "v1", "default", "virtualservices", "apps"
    )
    upstream = {
        "apiVersion": "gloo.solo.io/v1",
        "kind": "Upstream",
        "metadata": {"name": "u"},
        "spec": {},
    }
    custom.create_namespaced_custom_object("gloo.solo.io", "v1", "default", "upstreams", upstream)
    assert len(custom.list_cluster_custom_object("gloo.solo.io", "v1", "upstreams")["items"]) == 1


def test_watch_stream_resumes_and_reports_410(
    threaded: ThreadedFakeApiServer, kube: client.ApiClient
) -> None:
    v1: Any = client.CoreV1Api(kube)
    start = v1.list_namespaced_config_map("default").metadata.resource_version
    for name in ("a", "b"):
        v1.create_namespaced_config_map("default", {"metadata": {"name": name}})
    seen = [
        (event["type"], event["object"].metadata.name)
        for event in _watch().stream(
            v1.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=1
        )
    ]
    assert seen == [("ADDED", "a"), ("ADDED", "b")]
    bookmarks = [
        event
        for event in _watch().stream(
            v1.list_namespaced_config_map,
            "default",
            resource_version=start,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        )
        if event["type"] == "BOOKMARK"
    ]
    assert bookmarks
    threaded.store.compact()  # runs in the server's thread
    with pytest.raises(client.ApiException) as expired:
        list(
            _watch().stream(
                v1.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=1
            )
        )
    assert expired.value.status == 410


def test_errors_carry_the_real_status(kube: client.ApiClient) -> None:
    v1: Any = client.CoreV1Api(kube)
    with pytest.raises(client.ApiException) as missing_ns:
        v1.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert missing_ns.value.status == 404
    assert '"message":"namespaces \\"nowhere\\" not found"' in str(missing_ns.value.body)
    with pytest.raises(client.ApiException) as invalid:
        v1.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {"containers": []}})
    assert invalid.value.status == 422
    assert "spec.containers: Required value" in str(invalid.value.body)
