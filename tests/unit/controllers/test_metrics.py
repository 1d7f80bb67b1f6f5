"""Metrics: an injected registry, k8sTicket's series under their names, clean removal."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from rxkube.controllers import AppMetrics


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_load_gauges_and_k8sticket_twins(registry: CollectorRegistry) -> None:
    metrics = AppMetrics(registry)
    metrics.set_load("nb", users=3, free_tickets=2, waiting=1)
    assert value(registry, "rxkube_app_users", application="nb") == 3
    assert value(registry, "rxkube_app_free_tickets", application="nb") == 2
    assert value(registry, "rxkube_app_waiting_users", application="nb") == 1
    assert value(registry, "k8sticket_current_users_total", application="nb") == 3
    assert value(registry, "k8sticket_current_free_tickets_total", application="nb") == 2
    metrics.set_load("nb", users=0, free_tickets=5, waiting=0)
    assert value(registry, "k8sticket_current_users_total", application="nb") == 0


def test_tickets_issued_and_waiting_time(registry: CollectorRegistry) -> None:
    metrics = AppMetrics(registry)
    metrics.ticket_issued("nb", waited=0.0)
    metrics.ticket_issued("nb", waited=7.0)
    assert value(registry, "rxkube_tickets_issued_total", application="nb") == 2
    assert value(registry, "k8sticket_users_total", application="nb") == 2
    assert value(registry, "rxkube_ticket_wait_seconds_count", application="nb") == 2
    assert value(registry, "rxkube_ticket_wait_seconds_sum", application="nb") == 7.0
    assert value(registry, "rxkube_ticket_wait_seconds_bucket", application="nb", le="5.0") == 1
    assert value(registry, "rxkube_ticket_wait_seconds_bucket", application="nb", le="10.0") == 2


def test_autoscaled_pods_by_state(registry: CollectorRegistry) -> None:
    metrics = AppMetrics(registry)
    metrics.set_autoscaled_pods("nb", starting=2, ready=3)
    assert value(registry, "rxkube_app_autoscaled_pods", application="nb", state="starting") == 2
    assert value(registry, "rxkube_app_autoscaled_pods", application="nb", state="ready") == 3
    assert value(registry, "k8sticket_scaled_pods_total", application="nb") == 5


def test_scale_actions_config_errors_latency_upstream(registry: CollectorRegistry) -> None:
    metrics = AppMetrics(registry)
    metrics.scale_action("nb", direction="up", outcome="applied", count=2)
    metrics.scale_action("nb", direction="down", outcome="failed")
    metrics.config_error("nb")
    metrics.proxy_request("nb", seconds=0.02)
    metrics.upstream_error("nb", reason="connect")
    metrics.upstream_error("nb", reason="connect")
    labels = {"application": "nb"}
    assert (
        registry.get_sample_value(
            "rxkube_scale_actions_total", {**labels, "direction": "up", "outcome": "applied"}
        )
        == 2
    )
    assert (
        registry.get_sample_value(
            "rxkube_scale_actions_total", {**labels, "direction": "down", "outcome": "failed"}
        )
        == 1
    )
    assert value(registry, "rxkube_config_errors_total", application="nb") == 1
    assert value(registry, "rxkube_proxy_request_duration_seconds_count", application="nb") == 1
    assert (
        value(
            registry, "rxkube_proxy_request_duration_seconds_bucket", application="nb", le="0.025"
        )
        == 1
    )
    assert value(registry, "rxkube_upstream_errors_total", application="nb", reason="connect") == 2


def test_removing_an_app_removes_all_its_series_and_only_its(registry: CollectorRegistry) -> None:
    metrics = AppMetrics(registry)
    for app in ("nb", "shiny"):
        metrics.set_load(app, users=1, free_tickets=1, waiting=0)
        metrics.set_autoscaled_pods(app, starting=1, ready=1)
        metrics.ticket_issued(app, waited=1.0)
        metrics.scale_action(app, direction="up", outcome="applied")
        metrics.config_error(app)
        metrics.proxy_request(app, seconds=0.1)
        metrics.upstream_error(app, reason="timeout")
    assert metrics.apps == {"nb", "shiny"}
    metrics.remove_app("nb")
    metrics.remove_app("nb")  # idempotent
    text = generate_latest(registry).decode()
    assert 'application="nb"' not in text
    assert 'application="shiny"' in text
    assert metrics.apps == {"shiny"}
    assert value(registry, "k8sticket_users_total", application="shiny") == 1


def test_text_exposition_has_k8stickets_names_and_types(registry: CollectorRegistry) -> None:
    metrics = AppMetrics(registry)
    metrics.set_load("gmweb", users=1, free_tickets=0, waiting=2)
    metrics.ticket_issued("gmweb", waited=3.0)
    metrics.set_autoscaled_pods("gmweb", starting=0, ready=1)
    text = generate_latest(registry).decode()
    for line in (
        "# TYPE k8sticket_current_users_total gauge",
        "# TYPE k8sticket_current_free_tickets_total gauge",
        "# TYPE k8sticket_users_total counter",
        "# TYPE k8sticket_scaled_pods_total gauge",
        'k8sticket_current_users_total{application="gmweb"} 1.0',
        'k8sticket_current_free_tickets_total{application="gmweb"} 0.0',
        'k8sticket_users_total{application="gmweb"} 1.0',
        'k8sticket_scaled_pods_total{application="gmweb"} 1.0',
        'rxkube_app_waiting_users{application="gmweb"} 2.0',
        "# TYPE rxkube_ticket_wait_seconds histogram",
    ):
        assert line in text, line


def test_registries_are_independent_and_the_global_one_is_untouched() -> None:
    one, two = CollectorRegistry(), CollectorRegistry()
    AppMetrics(one).set_load("nb", users=1, free_tickets=0, waiting=0)
    AppMetrics(two)  # a second instance on its own registry: no duplicate-name error
    assert one.get_sample_value("rxkube_app_users", {"application": "nb"}) == 1
    assert two.get_sample_value("rxkube_app_users", {"application": "nb"}) is None
    assert REGISTRY.get_sample_value("rxkube_app_users", {"application": "nb"}) is None


def test_k8sticket_series_can_be_left_out(registry: CollectorRegistry) -> None:
    metrics = AppMetrics(registry, k8sticket_series=False)
    metrics.set_load("nb", users=1, free_tickets=1, waiting=0)
    assert "k8sticket_" not in generate_latest(registry).decode()
