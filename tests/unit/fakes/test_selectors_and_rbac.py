"""Selector grammar details and RBAC rule matching, on the pure modules."""

from __future__ import annotations

import random
from typing import Any

import pytest

from rxkube.fakes import FieldSelector, LabelSelector, StatusError, Store
from rxkube.fakes._rbac import Attributes, Authenticator, Authorizer, UserInfo


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("a=", {"a": ""}, True),
        ("a=", {"a": "x"}, False),
        ("example.com/role=web", {"example.com/role": "web"}, True),
        ("n>5", {"n": "7"}, True),
        ("n<5", {"n": "7"}, False),
        ("n>5", {"n": "x"}, False),
        ("a in (x, y ,z)", {"a": "y"}, True),
        (" a = b , c != d ", {"a": "b", "c": "e"}, True),
    ],
)
def test_label_selector_details(text: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(text).matches(labels) is expected


def test_field_selector_escapes_and_negation() -> None:
    supported: dict[str, Any] = {"metadata.name": None, "reason": None}
    selector = FieldSelector.parse(r"reason=a\,b\=c,metadata.name!=x", supported)
    assert selector.matches({"reason": "a,b=c", "metadata.name": "y"})
    assert not selector.matches({"reason": "a,b=c", "metadata.name": "x"})
    assert selector.exact_name() is None
    assert FieldSelector.parse("metadata.name==web", supported).exact_name() == "web"
    with pytest.raises(StatusError) as raised:
        FieldSelector.parse("reason", supported)
    assert raised.value.code == 400
    with pytest.raises(StatusError):
        FieldSelector.parse(r"reason=a\x", supported)


def rbac_store(rules: list[dict[str, Any]], *, cluster: bool = False) -> Store:
    store = Store(now=lambda: 0.0, random=random.Random(3))
    kind = "clusterroles" if cluster else "roles"
    store.create(
        kind, {"metadata": {"name": "r"}, "rules": rules}, namespace=None if cluster else "default"
    )
    binding_kind = "clusterrolebindings" if cluster else "rolebindings"
    store.create(
        binding_kind,
        {
            "metadata": {"name": "b"},
            "subjects": [{"kind": "User", "name": "bob"}],
            "roleRef": {"kind": "ClusterRole" if cluster else "Role", "name": "r"},
        },
        namespace=None if cluster else "default",
    )
    return store


@pytest.mark.parametrize(
    ("rule", "attrs", "allowed"),
    [
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            Attributes("get", "", "pods", namespace="default"),
            True,
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            Attributes("list", "", "pods", namespace="default"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            Attributes("get", "", "pods", "log", "default"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            Attributes("get", "", "pods", "log", "default"),
            True,
        ),
        (
            {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]},
            Attributes("delete", "apps", "deployments", namespace="default"),
            True,
        ),
        (
            {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]},
            Attributes("delete", "", "pods", namespace="default"),
            False,
        ),
        (
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["a"],
                "verbs": ["get"],
            },
            Attributes("get", "", "configmaps", namespace="default", name="a"),
            True,
        ),
        (
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["a"],
                "verbs": ["get"],
            },
            Attributes("get", "", "configmaps", namespace="default", name="b"),
            False,
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
            Attributes("get", "", "pods", namespace="other"),
            False,
        ),
    ],
)
def test_role_rules(rule: dict[str, Any], attrs: Attributes, allowed: bool) -> None:
    authorizer = Authorizer(rbac_store([rule]), enabled=True)
    assert authorizer.allowed(UserInfo("bob"), attrs) is allowed
    assert not authorizer.allowed(UserInfo("eve"), attrs)


def test_cluster_roles_and_non_resource_urls() -> None:
    store = rbac_store(
        [{"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}], cluster=True
    )
    authorizer = Authorizer(store, enabled=True)
    assert authorizer.allowed(UserInfo("bob"), Attributes("get", path="/metrics"))
    assert authorizer.allowed(UserInfo("bob"), Attributes("get", path="/logs/kubelet"))
    assert not authorizer.allowed(UserInfo("bob"), Attributes("get", path="/debug"))
    assert authorizer.allowed(UserInfo("anyone"), Attributes("get", path="/apis/apps/v1"))
    with pytest.raises(StatusError) as raised:
        authorizer.check(UserInfo("bob"), Attributes("get", path="/debug"))
    assert raised.value.message == 'forbidden: User "bob" cannot get path "/debug"'


def test_authentication() -> None:
    off = Authenticator(None)
    assert off.authenticate(None).groups == ("system:masters",)
    on = Authenticator({"t": UserInfo("u")})
    assert on.authenticate("Bearer t").name == "u"
    for header in (None, "Bearer x", "Basic t", "t"):
        with pytest.raises(StatusError) as raised:
            on.authenticate(header)
        assert raised.value.code == 401
