"""Pure parts: how ingress rules are read and rewritten (both flavours), the exec channel
protocol's status decoding, the WebSocket accept key, and the wait conditions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from rxkube.streams import KubeClient
from rxkube.streams.orchestrator import (
    Condition,
    GlooIngressRules,
    IngressPath,
    KubernetesIngressRules,
    RemovePaths,
    Rule,
    RuleNotFound,
    UpsertPaths,
)
from rxkube.streams.orchestrator._exec import exit_code_of, parse_status
from rxkube.streams.orchestrator._websocket import accept_key

# The rule logic is pure; the client is never used by these tests.
NO_CLIENT: KubeClient = None  # type: ignore[assignment]


def changed(
    rules: KubernetesIngressRules | GlooIngressRules,
    command: UpsertPaths | RemovePaths,
    obj: dict[str, Any],
) -> dict[str, Any]:
    """The object after the command's change (which must change something)."""
    result = rules._change(command, "ns")(obj)
    assert result is not None
    return result


def ingress(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "gw", "namespace": "ns", "annotations": annotations or {}},
        "spec": {
            "rules": [
                {
                    "host": "h",
                    "http": {
                        "paths": [
                            {
                                "path": "/a",
                                "pathType": "Exact",
                                "backend": {"service": {"name": "a", "port": {"number": 1}}},
                            },
                            {
                                "path": "/r",
                                "backend": {"resource": {"kind": "Bucket", "name": "r"}},
                            },
                        ]
                    },
                },
                {"host": "bare"},
            ]
        },
    }


def test_kubernetes_rules_read_uids_from_the_annotation_or_the_path() -> None:
    rules = KubernetesIngressRules(NO_CLIENT, namespace="ns")
    assert rules.rule_of(ingress(), "h") == Rule("gw", "h", (IngressPath("/a", "/a", "a", 1),))
    named = ingress({"rxkube.io/ingress-path-uids": orjson.dumps({"h": {"sim-a": "/a"}}).decode()})
    assert rules.rule_of(named, "h").paths[0].uid == "sim-a"
    broken = ingress({"rxkube.io/ingress-path-uids": "{not json"})
    assert rules.rule_of(broken, "h").paths[0].uid == "/a"
    assert rules.rule_of(ingress(), "bare") == Rule("gw", "bare", ())
    with pytest.raises(RuleNotFound):
        rules.rule_of(ingress(), "absent")


def test_kubernetes_upsert_keeps_path_type_and_foreign_backends() -> None:
    rules = KubernetesIngressRules(NO_CLIENT, namespace="ns", path_type="ImplementationSpecific")
    updated = changed(
        rules,
        UpsertPaths("gw", "h", [IngressPath("/a", "/a", "a2", 2), IngressPath("n", "/n", "n", 3)]),
        ingress(),
    )
    paths = updated["spec"]["rules"][0]["http"]["paths"]
    assert paths[0] == {
        "path": "/a",
        "pathType": "Exact",  # kept from the path it replaced
        "backend": {"service": {"name": "a2", "port": {"number": 2}}},
    }
    assert paths[1] == ingress()["spec"]["rules"][0]["http"]["paths"][1]
    assert paths[2]["pathType"] == "ImplementationSpecific"
    uids = orjson.loads(updated["metadata"]["annotations"]["rxkube.io/ingress-path-uids"])
    assert uids == {"h": {"n": "/n"}}
    # A path added to a rule without `http` gets one.
    bare = changed(rules, UpsertPaths("gw", "bare", [IngressPath("x", "/x", "x", 1)]), ingress())
    assert bare["spec"]["rules"][1]["http"]["paths"][0]["path"] == "/x"
    # Removing what is not there changes nothing: no write.
    assert rules._change(RemovePaths("gw", "h", ["zzz"]), "ns")(ingress()) is None


def test_gloo_rules_read_and_write_named_routes() -> None:
    rules = GlooIngressRules(NO_CLIENT, namespace="ns", upstream_namespace="gloo-system")
    vs: dict[str, Any] = {
        "metadata": {"name": "gw", "namespace": "ns"},
        "spec": {
            "virtualHost": {
                "domains": ["h"],
                "routes": [
                    {
                        "matchers": [{"prefix": "/old"}],
                        "routeAction": {"single": {"upstream": {"name": "old"}}},
                        "options": {"timeout": "5s"},
                    },
                    {"matchers": [{"prefix": "/d"}], "delegateAction": {"ref": {"name": "d"}}},
                ],
            }
        },
    }
    assert rules.rule_of(vs, "h").paths == (IngressPath("/old", "/old", "old"),)
    updated = changed(rules, UpsertPaths("gw", "h", [IngressPath("/old", "/new", "up")]), vs)
    routes = updated["spec"]["virtualHost"]["routes"]
    assert routes[0] == {
        "name": "/old",
        "matchers": [{"regex": "/new"}],
        "routeAction": {"single": {"upstream": {"name": "up", "namespace": "gloo-system"}}},
        "options": {"timeout": "5s"},  # what the route had besides is kept
    }
    assert routes[1] == vs["spec"]["virtualHost"]["routes"][1]
    assert vs["spec"]["virtualHost"]["routes"][0]["matchers"] == [{"prefix": "/old"}]
    removed = changed(rules, RemovePaths("gw", "h", ["/old"]), vs)
    assert removed["spec"]["virtualHost"]["routes"] == [vs["spec"]["virtualHost"]["routes"][1]]
    with pytest.raises(RuleNotFound):
        rules._change(RemovePaths("gw", "elsewhere", ["x"]), "ns")(vs)


def test_exec_status_decoding() -> None:
    assert exit_code_of(parse_status(b'{"metadata":{},"status":"Success"}')) == 0
    failure = parse_status(
        b'{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit '
        b'code","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode",'
        b'"message":"3"}]}}'
    )
    assert exit_code_of(failure) == 3
    internal = parse_status(
        b'{"metadata":{},"status":"Failure","message":"Internal error occurred",'
        b'"reason":"InternalError","code":500}'
    )
    assert exit_code_of(internal) is None
    # v1-v3 servers send plain text on the error channel.
    text = parse_status(b"command not found\n")
    assert text == {"status": "Failure", "message": "command not found", "reason": "InternalError"}
    assert exit_code_of(text) is None
    bad_code = {
        "status": "Failure",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": "x"}]},
    }
    assert exit_code_of(bad_code) is None  # type: ignore[arg-type]


def test_websocket_accept_key_is_rfc_6455s() -> None:
    # The example of RFC 6455 section 1.3.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_wait_conditions() -> None:
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    done = {"status": {"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert Condition.READY.satisfied_by(ready)
    assert not Condition.READY.satisfied_by(done)
    assert Condition.SUCCEEDED.satisfied_by(done)
    assert not Condition.FAILED.satisfied_by(done)
    assert not Condition.HAS_IP.satisfied_by(ready)
    assert Condition.HAS_IP.satisfied_by({"status": {"podIP": "10.0.0.1"}})
    assert not Condition.READY.satisfied_by({})
