"""Commands are checked when built and know their manifests (pure, no I/O)."""

from __future__ import annotations

import pytest

from rxkube.streams import Selector, parse_selector
from rxkube.streams.orchestrator import (
    ContainerSpec,
    CreateConfiguration,
    CreateNetworkPolicy,
    CreatePod,
    CreateService,
    DeleteConfigurations,
    DeletePods,
    IngressPath,
    PolicyRule,
    RemoveNetworkPolicies,
    RemovePaths,
    RemoveServices,
    ServicePort,
    UpdateConfiguration,
    UpsertPaths,
)
from rxkube.streams.orchestrator._commands import label_selector


def test_a_minimal_pod_manifest_has_nothing_extra() -> None:
    pod = CreatePod("web", [ContainerSpec("app", "nginx:1.25")])
    assert pod.manifest() == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
    }
    assert pod.namespace is None
    assert CreatePod("web", [ContainerSpec("a", "b")], namespace="lab").namespace == "lab"


def test_commands_copy_what_they_are_given() -> None:
    labels = {"app": "sim"}
    containers = [ContainerSpec("app", "sim:1")]
    pod = CreatePod("sim", containers, labels=labels)
    labels["app"] = "changed"
    containers.append(ContainerSpec("late", "x"))
    assert pod.labels == {"app": "sim"}
    assert pod.containers == (ContainerSpec("app", "sim:1"),)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: CreatePod("", [ContainerSpec("a", "b")]), "CreatePod.name"),
        (lambda: CreatePod("p", "abc"), "must be a sequence"),  # type: ignore[arg-type]
        (lambda: ContainerSpec("a", "b", env=["X=1"]), "must be a mapping"),  # type: ignore[arg-type]
        (lambda: CreatePod("p", [ContainerSpec("a", "b")], termination_grace_period=-1), ">= 0"),
        (lambda: DeletePods({}), "non-empty selector"),
        (lambda: DeletePods("app in (a"), "unable to parse"),
        (lambda: RemoveServices(""), "non-empty selector"),
        (lambda: RemoveNetworkPolicies(""), "non-empty selector"),
        (lambda: DeleteConfigurations(""), "non-empty selector"),
        (lambda: CreateService("s", {"a": "b"}, {}), "at least one port"),
        (lambda: ServicePort("http", 0), "port number"),
        (lambda: IngressPath("", "/", "svc"), "uid"),
        (
            lambda: UpsertPaths(
                "gw", "h", [IngressPath("u", "/a", "s"), IngressPath("u", "/b", "s")]
            ),
            "same uid twice",
        ),
        (lambda: CreateConfiguration("c", data={"k": b"bytes"}), "must be str"),  # type: ignore[dict-item]
        (lambda: CreateConfiguration("c", binary_data={"k": "text"}), "must be bytes"),  # type: ignore[dict-item]
        (lambda: PolicyRule(ports=[0]), "port number"),
    ],
)
def test_bad_input_is_refused_when_built(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_selectors_become_label_selectors() -> None:
    assert label_selector(parse_selector("a=1,b!=2,c in (x,y),d notin (z),e,!f")) == {
        "matchLabels": {"a": "1"},
        "matchExpressions": [
            {"key": "b", "operator": "NotIn", "values": ["2"]},
            {"key": "c", "operator": "In", "values": ["x", "y"]},
            {"key": "d", "operator": "NotIn", "values": ["z"]},
            {"key": "e", "operator": "Exists"},
            {"key": "f", "operator": "DoesNotExist"},
        ],
    }
    # The same key twice stays exact: the second equality becomes an In expression.
    assert label_selector(parse_selector("a=1,a=2")) == {
        "matchLabels": {"a": "1"},
        "matchExpressions": [{"key": "a", "operator": "In", "values": ["2"]}],
    }
    assert label_selector(Selector()) == {}
    with pytest.raises(ValueError, match="cannot say"):
        label_selector(parse_selector("replicas>3"))


def test_a_policy_without_rules_isolates_both_ways() -> None:
    spec = CreateNetworkPolicy("deny", {"app": "sim"}).manifest()["spec"]
    assert spec == {
        "podSelector": {"matchLabels": {"app": "sim"}},
        "ingress": [],
        "egress": [],
        "policyTypes": ["Ingress", "Egress"],
    }
    # A rule with ports and no peers opens those ports to everyone.
    assert PolicyRule(ports=[80]).manifest("from") == {"ports": [{"port": 80, "protocol": "TCP"}]}


def test_remove_paths_takes_uids_or_paths_and_update_configuration_replaces_data() -> None:
    command = RemovePaths("gw", "h", ["a", IngressPath("b", "/b", "svc", 80)])
    assert command.uids == ("a", "b")
    current = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "resourceVersion": "7", "labels": {"x": "1"}},
        "data": {"old": "1"},
        "binaryData": {"gone": "AA=="},
    }
    updated = UpdateConfiguration("c", data={"new": "2"}).apply_to(current)
    assert updated == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "resourceVersion": "7", "labels": {"x": "1"}},
        "data": {"new": "2"},
    }
    assert current["data"] == {"old": "1"}  # the read object is never changed
    relabeled = UpdateConfiguration("c", labels={"y": "2"}).apply_to(current)
    assert relabeled["metadata"]["labels"] == {"y": "2"}
    assert CreateConfiguration("c", binary_data={"k": b"\x00\xff"}).manifest()["binaryData"] == {
        "k": "AP8="
    }
