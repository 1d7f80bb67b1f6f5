"""NodePort allocation for Services (fakes/_defaults.py), on the store directly.

The allocator's state is the store: every other Service's node ports, in every namespace.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from rxkube.fakes import StatusError, Store


def make_store() -> Store:
    return Store(now=lambda: 1_700_000_000.0, random=random.Random(7))


def service(name: str, *ports: dict[str, Any], type_: str = "NodePort") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": type_, "selector": {"app": name}, "ports": list(ports)},
    }


def create(store: Store, obj: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
    return store.create("services", obj, namespace=namespace).object()


def update(store: Store, obj: dict[str, Any]) -> dict[str, Any]:
    return store.update("services", obj, namespace="default").object()


def node_ports(obj: dict[str, Any]) -> list[int | None]:
    return [port.get("nodePort") for port in obj["spec"]["ports"]]


def test_node_ports_are_allocated_in_range_and_unique_across_namespaces() -> None:
    store = make_store()
    store.create("namespaces", {"metadata": {"name": "other"}}, namespace="")
    seen: list[int] = []
    for index in range(20):
        created = create(
            store,
            service(f"s{index}", {"name": "a", "port": 80}, {"name": "b", "port": 81}),
            namespace="other" if index % 2 else "default",
        )
        ports = node_ports(created)
        assert all(isinstance(p, int) and 30000 <= p <= 32767 for p in ports)
        seen.extend(p for p in ports if p is not None)
        assert created["spec"]["externalTrafficPolicy"] == "Cluster"
    assert len(set(seen)) == len(seen) == 40


def test_load_balancers_get_node_ports_unless_told_not_to_and_cluster_ips_never() -> None:
    store = make_store()
    lb = create(store, service("lb", {"port": 443}, type_="LoadBalancer"))
    assert node_ports(lb)[0] is not None
    bare = service("bare", {"port": 443}, type_="LoadBalancer")
    bare["spec"]["allocateLoadBalancerNodePorts"] = False
    assert node_ports(create(store, bare)) == [None]
    plain = create(store, service("plain", {"port": 80}, type_="ClusterIP"))
    assert node_ports(plain) == [None]
    assert "externalTrafficPolicy" not in plain["spec"]


def test_a_given_node_port_is_kept_and_a_clash_is_422() -> None:
    store = make_store()
    store.create("namespaces", {"metadata": {"name": "other"}}, namespace="")
    first = create(store, service("first", {"port": 80, "nodePort": 30080}))
    assert node_ports(first) == [30080]
    with pytest.raises(StatusError) as clash:
        create(store, service("second", {"port": 80, "nodePort": 30080}), namespace="other")
    assert (clash.value.code, clash.value.reason) == (422, "Invalid")
    assert clash.value.message == (
        'Service "second" is invalid: spec.ports[0].nodePort: Invalid value: 30080: '
        "provided port is already allocated"
    )
    with pytest.raises(StatusError) as outside:
        create(store, service("third", {"port": 80, "nodePort": 8080}))
    assert outside.value.message == (
        'Service "third" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided '
        "port is not in the valid range. The range of valid ports is 30000-32767"
    )
    # One Service may share a node port between protocols, not within one.
    dns = create(
        store,
        service(
            "dns",
            {"name": "udp", "port": 53, "protocol": "UDP", "nodePort": 30053},
            {"name": "tcp", "port": 53, "protocol": "TCP", "nodePort": 30053},
        ),
    )
    assert node_ports(dns) == [30053, 30053]
    with pytest.raises(StatusError) as duplicate:
        create(
            store,
            service(
                "dup",
                {"name": "a", "port": 1, "nodePort": 30001},
                {"name": "b", "port": 2, "nodePort": 30001},
            ),
        )
    assert "spec.ports[1].nodePort: Duplicate value: 30001" in duplicate.value.message


def test_node_ports_are_kept_on_update_and_released_on_delete() -> None:
    store = make_store()
    created = create(store, service("web", {"name": "http", "port": 80}))
    (allocated,) = node_ports(created)
    # A PUT that leaves nodePort out (kubectl replace of the original manifest) keeps it.
    updated = update(store, service("web", {"name": "http", "port": 8080}))
    assert node_ports(updated) == [allocated]
    # A new port gets a new one; the old one stays with its name.
    grown = update(
        store, service("web", {"name": "http", "port": 8080}, {"name": "admin", "port": 9})
    )
    assert node_ports(grown)[0] == allocated
    assert node_ports(grown)[1] not in (None, allocated)
    # Turning it into a ClusterIP Service drops the node ports it had.
    plain = update(store, service("web", *grown["spec"]["ports"], type_="ClusterIP"))
    assert node_ports(plain) == [None, None]
    update(store, service("web", {"port": 80, "nodePort": 30080}))
    with pytest.raises(StatusError):
        create(store, service("late", {"port": 80, "nodePort": 30080}))
    store.delete("services", "default", "web")
    late = create(store, service("late", {"port": 80, "nodePort": 30080}))
    assert node_ports(late) == [30080]


def test_a_full_range_is_an_internal_error() -> None:
    store = make_store()
    create(store, service("big", *({"port": p} for p in range(1, 2769))))
    with pytest.raises(StatusError) as full:
        create(store, service("one-more", {"port": 80}))
    assert full.value.code == 500
    assert full.value.message == (
        "Internal error occurred: failed to allocate a nodePort: range is full"
    )
