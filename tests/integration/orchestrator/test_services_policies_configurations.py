"""Services, network policies and configurations (ConfigMaps) against the fake API server."""

from __future__ import annotations

import base64

import pytest
import trio

from rxkube.fakes import FakeCluster, Fault
from rxkube.streams import AlreadyExists, NotFound
from rxkube.streams.orchestrator import (
    Cluster,
    CreateConfiguration,
    CreateNetworkPolicy,
    CreateService,
    Failed,
    IPBlock,
    PodPeer,
    PolicyPort,
    PolicyRule,
    ServicePort,
    UpdateConfiguration,
)
from tests.integration.orchestrator.conftest import Harness


async def test_services_create_get_list_remove(harness: Harness) -> None:
    cluster = harness.cluster
    await cluster.services.create(
        CreateService("sim", {"app": "sim"}, {"http": 8080, "metrics": 9090}, labels={"run": "1"})
    )
    await cluster.services.create(
        CreateService(
            "bridge",
            {"app": "bridge"},
            [ServicePort("ws", 80, target_port="ws-port"), ServicePort("dns", 53, protocol="UDP")],
            type="NodePort",
            labels={"run": "1"},
        )
    )
    await cluster.services.create(CreateService("keep", {"app": "x"}, {"http": 80}))
    sim = await cluster.services.get("sim")
    assert sim["spec"]["selector"] == {"app": "sim"}
    assert [(p["name"], p["port"]) for p in sim["spec"]["ports"]] == [
        ("http", 8080),
        ("metrics", 9090),
    ]
    bridge = cluster.server.store.get("services", "default", "bridge")
    assert bridge["spec"]["type"] == "NodePort"
    assert bridge["spec"]["ports"][0]["targetPort"] == "ws-port"
    assert bridge["spec"]["ports"][1]["protocol"] == "UDP"
    assert [s["metadata"]["name"] for s in await cluster.services.list("run=1")] == [
        "bridge",
        "sim",
    ]
    with pytest.raises(AlreadyExists):
        await cluster.services.create(CreateService("sim", {"app": "sim"}, {"http": 1}))
    removed = await cluster.services.remove_all("run=1")
    assert removed is not None
    assert len(removed["items"]) == 2
    await cluster.services.remove("keep")
    assert await cluster.services.list() == ()
    with pytest.raises(NotFound):
        await cluster.services.remove("keep")


async def test_network_policy_rules_pair_peers_with_ports(harness: Harness) -> None:
    cluster = harness.cluster
    policy = CreateNetworkPolicy(
        "sim",
        {"app": "sim", "run": "42"},
        ingress=[
            # The bridge may reach the simulator on 9090 only.
            PolicyRule(peers=[PodPeer({"app": "bridge"})], ports=[9090]),
            # Anyone in 10.0.0.0/8 but 10.1.0.0/16 may reach 8080/TCP and a UDP range.
            PolicyRule(
                peers=[IPBlock("10.0.0.0/8", except_=["10.1.0.0/16"])],
                ports=[8080, PolicyPort(30000, "UDP", end_port=30100)],
            ),
        ],
        egress=[PolicyRule(peers=[PodPeer("app in (bridge, fields)", namespace_selector={})])],
        allow_all_outbound=True,
        labels={"run": "42"},
    )
    await cluster.network_policies.create(policy)
    stored = cluster.server.store.get("networkpolicies", "default", "sim")
    spec = stored["spec"]
    assert spec["podSelector"] == {"matchLabels": {"app": "sim", "run": "42"}}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"][0] == {
        "from": [{"podSelector": {"matchLabels": {"app": "bridge"}}}],
        "ports": [{"port": 9090, "protocol": "TCP"}],
    }
    assert spec["ingress"][1] == {
        "from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
        "ports": [
            {"port": 8080, "protocol": "TCP"},
            {"port": 30000, "protocol": "UDP", "endPort": 30100},
        ],
    }
    assert spec["egress"] == [
        {
            "to": [
                {
                    "podSelector": {
                        "matchExpressions": [
                            {"key": "app", "operator": "In", "values": ["bridge", "fields"]}
                        ]
                    },
                    "namespaceSelector": {},
                }
            ]
        },
        {},  # allow all outbound
    ]
    assert (await cluster.network_policies.get("sim"))["metadata"]["labels"] == {"run": "42"}
    await cluster.network_policies.create(CreateNetworkPolicy("other", {"app": "x"}))
    assert len(await cluster.network_policies.list()) == 2
    await cluster.network_policies.remove_all("run=42")
    assert [p["metadata"]["name"] for p in await cluster.network_policies.list()] == ["other"]
    await cluster.network_policies.remove("other")
    with pytest.raises(NotFound):
        await cluster.network_policies.get("other")


def test_selectors_a_label_selector_cannot_say_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot say"):
        CreateNetworkPolicy("p", "replicas>3").manifest()
    with pytest.raises(ValueError, match="CIDR"):
        IPBlock("10.0.0.1")


async def test_configurations_with_text_and_binary_data(harness: Harness) -> None:
    cluster = harness.cluster
    blob = bytes(range(256))
    await cluster.configurations.create(
        CreateConfiguration(
            "sim-config",
            data={"world": "tunnel"},
            binary_data={"map.bin": blob},
            labels={"run": "42"},
        )
    )
    stored = cluster.server.store.get("configmaps", "default", "sim-config")
    assert stored["binaryData"] == {"map.bin": base64.b64encode(blob).decode()}
    config = await cluster.configurations.get("sim-config")
    assert config.data == {"world": "tunnel"}
    assert config.binary_data == {"map.bin": blob}
    assert config.labels == {"run": "42"}
    updated = await cluster.configurations.update(
        UpdateConfiguration("sim-config", data={"world": "urban"}, binary_data={"b": b"\x00"})
    )
    assert updated is not None
    config = await cluster.configurations.get("sim-config")
    assert config.data == {"world": "urban"}
    assert config.binary_data == {"b": b"\x00"}
    assert config.labels == {"run": "42"}  # labels=None keeps them
    assert [c.name for c in await cluster.configurations.list("run=42")] == ["sim-config"]
    await cluster.configurations.delete_all("run=42")
    with pytest.raises(NotFound):
        await cluster.configurations.get("sim-config")
    with pytest.raises(NotFound):
        await cluster.configurations.update(UpdateConfiguration("sim-config"))
    with pytest.raises(ValueError, match="both data and binary_data"):
        CreateConfiguration("x", data={"k": "v"}, binary_data={"k": b"v"})
    await cluster.configurations.create(CreateConfiguration("gone"))
    await cluster.configurations.delete("gone")
    outcomes = await harness.wait_outcomes(6)
    assert [type(o.command).__name__ for o in outcomes] == [
        "CreateConfiguration",
        "UpdateConfiguration",
        "DeleteConfigurations",
        "UpdateConfiguration",
        "CreateConfiguration",
        "DeleteConfiguration",
    ]
    assert isinstance(outcomes[3], Failed)
    assert outcomes[3].reason == "NotFound"


async def test_concurrent_configuration_updates_retry_on_conflict(cluster: FakeCluster) -> None:
    await cluster.configurations.create(CreateConfiguration("shared", data={"v": "0"}))
    other = Cluster(cluster.client)
    held = cluster.server.faults.inject(Fault.delay(0.5), verb="update", times=1)

    async def update(target: Cluster, value: str) -> None:
        await target.configurations.update(UpdateConfiguration("shared", data={"v": value}))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(update, cluster, "1")
        nursery.start_soon(update, other, "2")
    assert held.fired == 1
    # The held write was refused (409) and redone from a fresh read: three writes in all.
    assert cluster.server.api.requests["update"] == 3
    assert (await cluster.configurations.get("shared")).data["v"] in ("1", "2")
