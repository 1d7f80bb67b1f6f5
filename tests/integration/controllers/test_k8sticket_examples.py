"""k8sTicket's own example manifests are served unchanged (read from ../shared, never copied).

The Deployments of `simple_example` and `advanced_example` are applied as they are (their
`extensions/v1beta1` Ingress is skipped: modern clusters do not serve it). Pods are made from
each Deployment's pod template (its labels and annotations, as a ReplicaSet would), each with a
real backend on its own loopback address at the template's `pod.port` (3838).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import SHARED
from tests.integration.controllers.conftest import Cluster, User, open_cluster

EXAMPLES = SHARED / "k8sticket-examples"
pytestmark = pytest.mark.skipif(
    not EXAMPLES.is_dir(), reason=f"k8sTicket's examples are not at {EXAMPLES}"
)


def manifests(folder: str) -> list[dict[str, Any]]:
    found = []
    for path in sorted((EXAMPLES / folder).glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("apiVersion") != "extensions/v1beta1":
                found.append(document)
    return found


async def apply_all(c: Cluster, documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deployments = []
    plural = {
        "ServiceAccount": "serviceaccounts",
        "Role": "roles",
        "RoleBinding": "rolebindings",
        "Service": "services",
        "Deployment": "deployments",
    }
    for document in documents:
        c.server.store.create(plural[document["kind"]], document)
        if document["kind"] == "Deployment":
            deployments.append(document)
    return deployments


async def pods_from_templates(c: Cluster, deployments: list[dict[str, Any]]) -> None:
    for d in deployments:
        template = d["spec"]["template"]["metadata"]
        if d["metadata"].get("labels", {}).get("ipb-halle.de/k8sticket") != "true":
            continue
        app = template["labels"]["ipb-halle.de/k8sticket.deployment.app.name"]
        port = int(template["annotations"]["ipb-halle.de/k8sticket.pod.port"])
        for i in range(d["spec"]["replicas"]):
            await c.add_pod(
                app,
                f"{d['metadata']['name']}-{i}",
                port=port,
                labels=dict(template["labels"]),
                annotations=dict(template["annotations"]),
            )


@pytest.mark.parametrize("folder", ["simple_example", "advanced_example"])
async def test_the_examples_are_served_unchanged(folder: str) -> None:
    documents = manifests(folder)
    apps = {
        d["metadata"]["annotations"]["ipb-halle.de/k8sticket.deployment.app.name"]: d
        for d in documents
        if d["kind"] == "Deployment" and "annotations" in d["metadata"]
    }
    assert apps  # the examples have apps to serve
    async with open_cluster(namespace="example") as c:
        deployments = await apply_all(c, documents)
        await pods_from_templates(c, deployments)
        await c.wait(
            lambda s: (
                set(s.apps) == set(apps) and all(s.apps[a].ready_servers == 2 for a in apps)
            )  # replicas: 2 each
        )
        for app, d in apps.items():
            annotations = d["metadata"]["annotations"]
            own_port = int(annotations["ipb-halle.de/k8sticket.deployment.port"])
            spec = c.controller.apps[app]
            assert spec.deployment == d["metadata"]["name"]
            assert spec.tickets_max == int(
                annotations["ipb-halle.de/k8sticket.deployment.tickets.max"]
            )
            assert spec.pods_max == int(annotations["ipb-halle.de/k8sticket.deployment.pods.max"])
            assert c.controller.app_address(app) == (c.proxy_host, own_port)
            # tickets.max 1, two pods: one user by path, one on the app's own port, a third waits.
            first, second, third = User(), User(), User()
            a = await first.get(f"{c.url}/{app}/echo")
            b = await second.get(f"http://{c.proxy_host}:{own_port}/echo")
            assert (a.status, b.status) == (200, 200)
            assert {a.backend, b.backend} == {
                f"{d['metadata']['name']}-0",
                f"{d['metadata']['name']}-1",
            }
            assert (await third.get(f"{c.url}/{app}/")).status == 503
        # Nothing in the examples is an error, and k8sTicket itself is not an app. (Events
        # are posted in order: once AppServed is there, any earlier warning would be too.)
        for d in apps.values():
            await c.wait_event("Deployment", d["metadata"]["name"], "AppServed")
        assert c.controller.statistics().config_errors == 0
        for d in deployments:
            warnings = [
                e for e in c.events("Deployment", d["metadata"]["name"]) if e["type"] == "Warning"
            ]
            assert warnings == []
