"""The protobuf body decoder (fakes/_protobuf.py) on hand-built messages, no server.

The bodies are encoded here field by field as gogo protobuf writes them (every non-pointer
field, nil pointers left out), so each test says exactly which bytes the decoder sees.
"""

from __future__ import annotations

import pytest

from rxkube.fakes import Registry, StatusError, builtin_resources
from rxkube.fakes._protobuf import MAGIC, decode_body, decode_message


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def num(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def msg(number: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return varint(number << 3 | 2) + varint(len(body)) + body


def text(number: int, value: str) -> bytes:
    return msg(number, value.encode())


def service_backend(number: int, name: str, port: int) -> bytes:
    # IngressBackend.service (4) = IngressServiceBackend{name (1), port (2) {number (2)}}
    return msg(number, msg(4, text(1, name), msg(2, text(1, ""), num(2, port))))


def http_rule(host: str, path: str, path_type: str, service: str, port: int) -> bytes:
    """IngressRule: host (1) and the embedded IngressRuleValue (2) {http (1) {paths (1)}}."""
    path_msg = msg(1, text(1, path), service_backend(2, service, port), text(3, path_type))
    return text(1, host) + msg(2, msg(1, path_msg))


def test_an_embedded_message_puts_its_fields_on_the_parent() -> None:
    rule = decode_message("IngressRule", http_rule("foo.com", "/bar", "Exact", "svc", 8080))
    assert rule == {
        "host": "foo.com",
        "http": {
            "paths": [
                {
                    "path": "/bar",
                    "pathType": "Exact",
                    "backend": {"service": {"name": "svc", "port": {"number": 8080}}},
                }
            ]
        },
    }
    assert "ingressRuleValue" not in rule


def test_an_empty_embedded_message_adds_nothing() -> None:
    # gogo writes a non-pointer embedded struct even when empty: a host-only rule.
    assert decode_message("IngressRule", text(1, "foo.com") + msg(2)) == {"host": "foo.com"}


def test_an_embedded_field_is_still_checked_against_its_own_table() -> None:
    with pytest.raises(ValueError, match="field 9 of IngressRuleValue is not supported"):
        decode_message("IngressRule", msg(2, text(9, "x")))


def test_a_whole_ingress_body_decodes_as_its_json_twin() -> None:
    ingress = b"".join(
        (
            msg(1, text(1, "web"), msg(12, text(1, "a"), text(2, "b"))),
            msg(
                2,
                service_backend(1, "default", 80),
                msg(2, text(1, "foo.com"), text(2, "cert")),
                msg(3, http_rule("foo.com", "/", "Prefix", "web", 80)),
                text(4, "nginx"),
            ),
            msg(3),
        )
    )
    body = MAGIC + msg(1, text(1, "networking.k8s.io/v1"), text(2, "Ingress")) + msg(2, ingress)
    resource = Registry(builtin_resources()).get("ingresses")
    assert decode_body(body, resource) == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "annotations": {"a": "b"}},
        "spec": {
            "defaultBackend": {"service": {"name": "default", "port": {"number": 80}}},
            "tls": [{"hosts": ["foo.com"], "secretName": "cert"}],
            "rules": [
                {
                    "host": "foo.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "web", "port": {"number": 80}}},
                            }
                        ]
                    },
                }
            ],
            "ingressClassName": "nginx",
        },
        "status": {},
    }


def test_a_kind_outside_the_table_is_refused_with_415() -> None:
    body = MAGIC + msg(1, text(1, "v1"), text(2, "Pod")) + msg(2)
    with pytest.raises(StatusError) as refused:
        decode_body(body, Registry(builtin_resources()).get("pods"))
    assert refused.value.code == 415
