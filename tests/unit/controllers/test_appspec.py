"""The app-spec parser: k8sTicket's defaults, rxkube's settings, and every bad value one by one."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxkube.controllers import (
    ANNOTATIONS,
    APP_LABEL,
    AppSpec,
    ConfigError,
    ParserDefaults,
    PodTarget,
    is_app,
    parse_app_spec,
    parse_pod_target,
    template_hash,
)

EXAMPLES = Path(__file__).resolve().parents[3].parent / "shared" / "k8sticket-examples"
P = "ipb-halle.de/k8sticket."


def deployment(
    annotations: dict[str, Any] | None = None,
    *,
    name: str = "notebook",
    labels: dict[str, Any] | None = None,
    template_annotations: dict[str, Any] | None = None,
    template_labels: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "lab",
            "uid": f"uid-{name}",
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"ipb-halle.de/k8sticket": "true"} if labels is None else labels,
            "annotations": annotations or {},
        },
        "spec": {
            "template": {
                "metadata": {
                    "labels": {APP_LABEL: "notebook"}
                    if template_labels is None
                    else template_labels,
                    "annotations": template_annotations or {},
                },
                "spec": {"containers": [{"name": "app", "image": "jupyter"}]},
            }
        },
    }


def parse_ok(obj: dict[str, Any], defaults: ParserDefaults | None = None) -> AppSpec:
    result = parse_app_spec(obj, defaults)
    assert isinstance(result, AppSpec), result
    return result


def parse_errors(obj: dict[str, Any]) -> list[ConfigError]:
    result = parse_app_spec(obj)
    assert isinstance(result, list), result
    return result


def test_defaults_are_k8stickets() -> None:
    spec = parse_ok(deployment())
    assert spec.app == "notebook"  # k8sTicket: the Deployment's name when not annotated
    assert spec.port == 9001
    assert (spec.tickets_max, spec.tickets_spare, spec.pods_max) == (1, 2, 1)
    assert spec.pods_cooldown == 10.0
    assert spec.routing == "path"
    assert (spec.pod_port, spec.pod_path) == (80, "/")
    assert spec.strip_prefix is True
    assert (spec.namespace, spec.deployment, spec.deployment_uid) == (
        "lab",
        "notebook",
        "uid-notebook",
    )
    assert spec.created == "2024-05-01T10:00:00Z"
    assert spec.warnings == ()


def test_rxkube_defaults() -> None:
    spec = parse_ok(deployment())
    assert spec.ticket_idle_timeout == 60.0
    assert spec.ticket_hold_time == 30.0
    assert spec.pods_start_grace == 600.0
    assert spec.drain_deadline == 3600.0
    assert spec.host is None
    assert spec.path_prefix == "/notebook/"


def test_every_k8sticket_annotation_is_read() -> None:
    spec = parse_ok(
        deployment(
            {
                P + "deployment.app.name": "lab-app",
                P + "deployment.port": "9002",
                P + "deployment.tickets.max": "4",
                P + "deployment.tickets.spare": "0",
                P + "deployment.pods.max": "7",
                P + "deployment.pods.cooldown": "45",
            },
            template_annotations={P + "pod.port": "3838", P + "pod.path": "/shiny/"},
            template_labels={APP_LABEL: "lab-app"},
        )
    )
    assert spec.app == "lab-app"
    assert spec.port == 9002
    assert (spec.tickets_max, spec.tickets_spare, spec.pods_max) == (4, 0, 7)
    assert spec.pods_cooldown == 45.0
    assert (spec.pod_port, spec.pod_path) == (3838, "/shiny/")


def test_rxkube_settings_are_read() -> None:
    spec = parse_ok(
        deployment(
            {
                "rxkube.io/routing": "host",
                "rxkube.io/domain": "Apps.Example.org.",
                "rxkube.io/tickets.idle-timeout": "2m",
                "rxkube.io/tickets.hold-time": "90s",
                "rxkube.io/pods.start-grace": "1h30m",
                "rxkube.io/drain-deadline": "0",
                "rxkube.io/strip-prefix": "false",
            }
        )
    )
    assert spec.routing == "host"
    assert spec.domain == "apps.example.org"
    assert spec.host == "notebook.apps.example.org"
    assert spec.ticket_idle_timeout == 120.0
    assert spec.ticket_hold_time == 90.0
    assert spec.pods_start_grace == 5400.0
    assert spec.drain_deadline == 0.0
    assert spec.strip_prefix is False


def test_ingress_dns_selects_host_routing_with_the_cli_domain() -> None:
    spec = parse_ok(deployment({P + "ingress.dns": "true"}), ParserDefaults(domain="lab.example"))
    assert spec.routing == "host"
    assert spec.host == "notebook.lab.example"


def test_port_none_means_shared_listener_only() -> None:
    assert parse_ok(deployment({P + "deployment.port": "none"})).port is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10", 10.0), ("2.5", 2.5), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), (" 7 ", 7.0)],
)
def test_durations(text: str, seconds: float) -> None:
    spec = parse_ok(deployment({P + "deployment.pods.cooldown": text}))
    assert spec.pods_cooldown == seconds


# Every bad value, one by one: (annotations, template annotations, key, value, problem).
BAD: list[tuple[dict[str, Any], dict[str, Any], str, str | None, str]] = [
    ({P + "deployment.tickets.max": "-1"}, {}, P + "deployment.tickets.max", "-1", "at least 1"),
    ({P + "deployment.tickets.max": "0"}, {}, P + "deployment.tickets.max", "0", "at least 1"),
    (
        {P + "deployment.tickets.max": "two"},
        {},
        P + "deployment.tickets.max",
        "two",
        "whole number",
    ),
    (
        {P + "deployment.tickets.max": "1.5"},
        {},
        P + "deployment.tickets.max",
        "1.5",
        "whole number",
    ),
    ({P + "deployment.tickets.max": ""}, {}, P + "deployment.tickets.max", "", "whole number"),
    (
        {P + "deployment.tickets.max": "100001"},
        {},
        P + "deployment.tickets.max",
        "100001",
        "at most",
    ),
    (
        {P + "deployment.tickets.spare": "-2"},
        {},
        P + "deployment.tickets.spare",
        "-2",
        "at least 0",
    ),
    (
        {P + "deployment.tickets.spare": "x"},
        {},
        P + "deployment.tickets.spare",
        "x",
        "whole number",
    ),
    ({P + "deployment.pods.max": "-1"}, {}, P + "deployment.pods.max", "-1", "at least 0"),
    ({P + "deployment.pods.max": "1e3"}, {}, P + "deployment.pods.max", "1e3", "whole number"),
    (
        {P + "deployment.pods.cooldown": "0"},
        {},
        P + "deployment.pods.cooldown",
        "0",
        "more than zero",
    ),
    ({P + "deployment.pods.cooldown": "-5"}, {}, P + "deployment.pods.cooldown", "-5", "duration"),
    (
        {P + "deployment.pods.cooldown": "soon"},
        {},
        P + "deployment.pods.cooldown",
        "soon",
        "duration",
    ),
    ({P + "deployment.pods.cooldown": "5d"}, {}, P + "deployment.pods.cooldown", "5d", "duration"),
    (
        {P + "deployment.pods.cooldown": "999h"},
        {},
        P + "deployment.pods.cooldown",
        "999h",
        "at most",
    ),
    ({P + "deployment.port": "0"}, {}, P + "deployment.port", "0", "at least 1"),
    ({P + "deployment.port": "65536"}, {}, P + "deployment.port", "65536", "at most 65535"),
    ({P + "deployment.port": "-80"}, {}, P + "deployment.port", "-80", "at least 1"),
    ({P + "deployment.port": "http"}, {}, P + "deployment.port", "http", "whole number"),
    ({}, {P + "pod.port": "0"}, P + "pod.port", "0", "at least 1"),
    ({}, {P + "pod.port": "70000"}, P + "pod.port", "70000", "at most 65535"),
    ({}, {P + "pod.port": "shiny"}, P + "pod.port", "shiny", "whole number"),
    ({}, {P + "pod.path": "app/"}, P + "pod.path", "app/", "start with /"),
    ({}, {P + "pod.path": "/a b"}, P + "pod.path", "/a b", "whitespace"),
    ({P + "deployment.app.name": "My_App"}, {}, P + "deployment.app.name", "My_App", "DNS label"),
    ({P + "deployment.app.name": "-app"}, {}, P + "deployment.app.name", "-app", "DNS label"),
    ({P + "deployment.app.name": "a" * 64}, {}, P + "deployment.app.name", "a" * 64, "DNS label"),
    ({P + "deployment.app.name": ""}, {}, P + "deployment.app.name", "", "DNS label"),
    ({P + "deployment.app.name": "a.b"}, {}, P + "deployment.app.name", "a.b", "DNS label"),
    ({P + "ingress.dns": "yes"}, {}, P + "ingress.dns", "yes", '"true" nor "false"'),
    ({"rxkube.io/routing": "subdomain"}, {}, "rxkube.io/routing", "subdomain", '"path" nor "host"'),
    (
        {"rxkube.io/routing": "path", P + "ingress.dns": "true", "rxkube.io/domain": "x.org"},
        {},
        "rxkube.io/routing",
        "path",
        "contradicts",
    ),
    ({"rxkube.io/routing": "host"}, {}, "rxkube.io/domain", None, "required for host routing"),
    (
        {"rxkube.io/routing": "host", "rxkube.io/domain": "under_score.org"},
        {},
        "rxkube.io/domain",
        "under_score.org",
        "DNS name",
    ),
    ({"rxkube.io/tickets.idle-timeout": "0s"}, {}, "rxkube.io/tickets.idle-timeout", "0s", "more"),
    ({"rxkube.io/tickets.hold-time": "x"}, {}, "rxkube.io/tickets.hold-time", "x", "duration"),
    ({"rxkube.io/pods.start-grace": "-1"}, {}, "rxkube.io/pods.start-grace", "-1", "duration"),
    ({"rxkube.io/drain-deadline": "1 hour"}, {}, "rxkube.io/drain-deadline", "1 hour", "duration"),
    ({"rxkube.io/strip-prefix": "no"}, {}, "rxkube.io/strip-prefix", "no", '"true" nor "false"'),
    ({P + "deployment.tickets.max": 3}, {}, P + "deployment.tickets.max", "3", "not a string"),
]


@pytest.mark.parametrize(
    ("annotations", "template_annotations", "key", "value", "problem"),
    BAD,
    ids=[f"{b[2].rsplit('/', 1)[-1]}={b[3]!r}" for b in BAD],
)
def test_each_bad_value_is_one_clear_error(
    annotations: dict[str, Any],
    template_annotations: dict[str, Any],
    key: str,
    value: str | None,
    problem: str,
) -> None:
    errors = parse_errors(deployment(annotations, template_annotations=template_annotations))
    assert len(errors) == 1, errors
    (error,) = errors
    assert error.key == key
    assert error.value == value
    assert problem in error.problem
    assert error.allowed  # says what is allowed
    assert key in error.message
    assert "allowed:" in error.message


def test_the_error_message_reads_well() -> None:
    (error,) = parse_errors(deployment({P + "deployment.tickets.max": "0"}))
    assert error.message == (
        "ipb-halle.de/k8sticket.deployment.tickets.max='0': must be at least 1;"
        " allowed: an integer 1-100000"
    )


def test_all_errors_are_reported_at_once() -> None:
    errors = parse_errors(
        deployment(
            {P + "deployment.tickets.max": "0", P + "deployment.port": "99999"},
            template_annotations={P + "pod.port": "x"},
        )
    )
    assert sorted(e.key for e in errors) == [
        P + "deployment.port",
        P + "deployment.tickets.max",
        P + "pod.port",
    ]


def test_a_deployment_name_that_is_not_a_dns_label_needs_the_app_name_annotation() -> None:
    (error,) = parse_errors(deployment(name="web.v2", template_labels={}))
    assert error.key == P + "deployment.app.name"
    assert error.value is None
    assert "'web.v2'" in error.problem
    spec = parse_ok(
        deployment(
            {P + "deployment.app.name": "web"}, name="web.v2", template_labels={APP_LABEL: "web"}
        )
    )
    assert spec.app == "web"


def test_warnings_for_legacy_and_unknown_keys_do_not_reject() -> None:
    spec = parse_ok(
        deployment(
            {P + "deployment.maxTickets": "3", "rxkube.io/domian": "x.org"},
            template_annotations={"ipb-halle.de/k8sTicket.port": "8080"},
        )
    )
    assert spec.tickets_max == 1  # the legacy key is not read
    by_key = {w.key: w for w in spec.warnings}
    assert (
        "use ipb-halle.de/k8sticket.deployment.tickets.max"
        in by_key[P + "deployment.maxTickets"].problem
    )
    assert "not an rxkube setting" in by_key["rxkube.io/domian"].problem
    assert "use ipb-halle.de/k8sticket.pod.port" in by_key["ipb-halle.de/k8sTicket.port"].problem


def test_template_label_mismatch_is_a_warning() -> None:
    spec = parse_ok(deployment(template_labels={APP_LABEL: "other"}))
    (warning,) = spec.warnings
    assert warning.key == f"spec.template.metadata.labels[{APP_LABEL}]"
    assert warning.value == "other"
    assert "not served" in warning.problem


def test_metadata_only_object_parses_without_template() -> None:
    obj = deployment()
    del obj["spec"]
    spec = parse_ok(obj)
    assert spec.pod_template is None
    assert spec.template_hash is None


def test_template_hash_ignores_key_order_and_follows_content() -> None:
    spec = parse_ok(deployment())
    assert spec.pod_template is not None
    reordered = dict(reversed(list(copy.deepcopy(dict(spec.pod_template)).items())))
    assert template_hash(reordered) == spec.template_hash
    changed = deployment()
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "jupyter:2"
    assert parse_ok(changed).template_hash != spec.template_hash
    assert parse_ok(changed) != spec  # equality follows the template through its hash


def test_equal_parses_compare_equal() -> None:
    assert parse_ok(deployment()) == parse_ok(deployment())


def test_opt_in_label() -> None:
    assert is_app(deployment())
    assert not is_app(deployment(labels={}))
    assert not is_app(deployment(labels={"ipb-halle.de/k8sticket": "True"}))
    assert not is_app(deployment(labels={"ipb-halle.de/k8sticket": "false"}))
    assert not is_app({"metadata": "garbage"})


def test_pod_target() -> None:
    assert parse_pod_target({}) == PodTarget(80, "/")
    assert parse_pod_target({P + "pod.port": "3838", P + "pod.path": "/x/"}) == PodTarget(
        3838, "/x/"
    )
    assert parse_pod_target({}, default_port=8888, default_path="/lab") == PodTarget(8888, "/lab")
    errors = parse_pod_target({P + "pod.port": "0"})
    assert isinstance(errors, list)
    assert errors[0].key == P + "pod.port"


def test_the_annotation_table_documents_every_key_read() -> None:
    keys = {doc.key for doc in ANNOTATIONS}
    assert P + "deployment.tickets.spare" in keys
    assert all(doc.allowed and doc.default for doc in ANNOTATIONS)


def _example_deployments() -> list[tuple[str, dict[str, Any]]]:
    if not EXAMPLES.is_dir():
        return []
    found = []
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "Deployment":
                found.append((str(path.relative_to(EXAMPLES)), doc))
    return found


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="../shared/k8sticket-examples is absent")
def test_k8stickets_example_deployments_are_served_unchanged() -> None:
    apps = {
        where: parse_app_spec(doc, ParserDefaults())
        for where, doc in _example_deployments()
        if is_app(doc)
    }
    assert apps, "the examples hold annotated Deployments"
    for where, spec in apps.items():
        assert isinstance(spec, AppSpec), (where, spec)
        assert spec.warnings == (), (where, spec.warnings)
        assert spec.routing == "path"
        assert spec.pod_port == 3838
        assert spec.tickets_max == 1
        assert spec.tickets_spare == 2  # not annotated in the examples: k8sTicket's default
    by_app = {spec.app: spec for spec in apps.values() if isinstance(spec, AppSpec)}
    assert by_app["gmweb"].port == 9001
    assert by_app["gmweb"].pods_max == 2
    assert by_app["metfam"].port == 9002
    assert by_app["metfam"].pods_max == 3
    # The k8sTicket Deployment itself carries no opt-in label: it is not an app.
    assert any(not is_app(doc) for _, doc in _example_deployments())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)
known_keys = st.sampled_from([doc.key for doc in ANNOTATIONS] + ["rxkube.io/x", P + "x"])
annotation_values = st.one_of(
    st.text(max_size=12),
    st.integers(-70000, 70000).map(str),
    st.sampled_from(["none", "true", "false", "host", "path", "5m", "1.5", "1e9"]),
    json_values,
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    annotations=st.dictionaries(known_keys, annotation_values, max_size=6),
    template_annotations=st.dictionaries(known_keys, annotation_values, max_size=3),
    name=st.text(max_size=20),
)
def test_the_parser_never_raises_on_odd_annotations(
    annotations: dict[str, Any], template_annotations: dict[str, Any], name: str
) -> None:
    result = parse_app_spec(
        deployment(annotations, name=name, template_annotations=template_annotations)
    )
    if isinstance(result, AppSpec):
        assert result.tickets_max >= 1
        assert result.tickets_spare >= 0
        assert result.pods_max >= 0
        assert result.port is None or 1 <= result.port <= 65535
        assert result.pods_cooldown > 0
    else:
        assert result
        assert all(isinstance(e, ConfigError) and e.message for e in result)


@settings(max_examples=100)
@given(obj=st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_the_parser_never_raises_on_any_json(obj: dict[str, Any]) -> None:
    result = parse_app_spec(obj)
    assert isinstance(result, AppSpec | list)
    assert is_app(obj) in (True, False)


@settings(max_examples=60)
@given(metadata=json_values, spec=json_values)
def test_the_parser_never_raises_on_any_shape(metadata: object, spec: object) -> None:
    result = parse_app_spec({"metadata": metadata, "spec": spec})
    assert isinstance(result, AppSpec | list)
