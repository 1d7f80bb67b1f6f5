"""Every per-app metric rxkube exports, defined in one place on an injected registry.

What this module is for: DESIGN section 4 ("Metrics") and issue 8 item 2. `AppMetrics` registers
its collectors on the `CollectorRegistry` it is given (never the process-global one, so tests and
embedders each get their own) and offers one method per thing that happens. It may import
`prometheus_client` and the standard library; it reads no clock (histograms are fed durations
that the caller measured on its scheduler).

Series (label `application` on all; extra labels in brackets):

    rxkube_app_users                      gauge      users holding a ticket
    rxkube_app_free_tickets               gauge      free tickets on ready servers
    rxkube_app_waiting_users              gauge      users in the waiting room
    rxkube_app_autoscaled_pods            gauge      [state=starting|ready]
    rxkube_tickets_issued_total           counter    tickets issued
    rxkube_ticket_wait_seconds            histogram  time from request to ticket
    rxkube_scale_actions_total            counter    [direction=up|down, outcome=applied|failed]
    rxkube_config_errors_total            counter    configuration errors found
    rxkube_proxy_request_duration_seconds histogram  proxied request latency
    rxkube_upstream_errors_total          counter    [reason] failed upstream requests

k8sTicket's series, under its exact names, types and label (internal/pkg/k8sfunctions/metric.go)
so existing dashboards keep working:

    k8sticket_current_users_total         gauge      = rxkube_app_users
    k8sticket_current_free_tickets_total  gauge      = rxkube_app_free_tickets
    k8sticket_users_total                 counter    = rxkube_tickets_issued_total
    k8sticket_scaled_pods_total           gauge      autoscaled pods, starting and ready

(prometheus_client also exposes a `_created` sample beside each counter and histogram.)
`remove_app` removes every series of an app, whatever labels it was recorded with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Final, Literal, TypeAlias

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["AppMetrics"]

WAIT_BUCKETS: Final = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

_Metric: TypeAlias = Gauge | Counter | Histogram


class AppMetrics:
    """The per-app metrics of the ticket proxy and the autoscaler, on `registry`."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        k8sticket_series: bool = True,
        wait_buckets: Sequence[float] = WAIT_BUCKETS,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        app = ["application"]
        r = registry
        self.users = Gauge("rxkube_app_users", "Users holding a ticket.", app, registry=r)
        self.free_tickets = Gauge(
            "rxkube_app_free_tickets", "Free tickets on ready servers.", app, registry=r
        )
        self.waiting_users = Gauge(
            "rxkube_app_waiting_users", "Users in the waiting room.", app, registry=r
        )
        self.autoscaled_pods = Gauge(
            "rxkube_app_autoscaled_pods",
            "Autoscaled pods by state (starting: created, not yet a ready server).",
            [*app, "state"],
            registry=r,
        )
        self.tickets_issued = Counter(
            "rxkube_tickets_issued_total", "Tickets issued.", app, registry=r
        )
        self.ticket_wait = Histogram(
            "rxkube_ticket_wait_seconds",
            "Time from a user's request to their ticket.",
            app,
            buckets=tuple(wait_buckets),
            registry=r,
        )
        self.scale_actions = Counter(
            "rxkube_scale_actions_total",
            "Pod creations (up) and deletions (down) by the autoscaler, by outcome.",
            [*app, "direction", "outcome"],
            registry=r,
        )
        self.config_errors = Counter(
            "rxkube_config_errors_total",
            "Configuration errors found in the app's Deployment.",
            app,
            registry=r,
        )
        self.request_duration = Histogram(
            "rxkube_proxy_request_duration_seconds",
            "Latency of requests proxied to the app (until the response head).",
            app,
            buckets=tuple(latency_buckets),
            registry=r,
        )
        self.upstream_errors = Counter(
            "rxkube_upstream_errors_total",
            "Requests to the app's pods that failed, by reason.",
            [*app, "reason"],
            registry=r,
        )
        self.k8sticket: tuple[Gauge, Gauge, Counter, Gauge] | None = None
        if k8sticket_series:
            # Names, types, help texts and label exactly as k8sTicket's metric.go.
            self.k8sticket = (
                Gauge(
                    "k8sticket_current_users_total",
                    "The total number of current users",
                    app,
                    registry=r,
                ),
                Gauge(
                    "k8sticket_current_free_tickets_total",
                    "The number of slots than can be used for client connections",
                    app,
                    registry=r,
                ),
                Counter(
                    "k8sticket_users_total",
                    "The total number of users served (total number of made out tickets)",
                    app,
                    registry=r,
                ),
                Gauge(
                    "k8sticket_scaled_pods_total",
                    "The number of pods autoscaled by k8sticket",
                    app,
                    registry=r,
                ),
            )
        self._series: dict[str, set[tuple[_Metric, tuple[str, ...]]]] = {}

    def _child(self, metric: _Metric, app: str, *labels: str) -> _Metric:
        self._series.setdefault(app, set()).add((metric, (app, *labels)))
        return metric.labels(app, *labels)

    @property
    def apps(self) -> frozenset[str]:
        """The apps that have series now."""
        return frozenset(self._series)

    def set_load(self, app: str, *, users: int, free_tickets: int, waiting: int) -> None:
        """The app's ticket table changed: users, free tickets and waiting room now."""
        self._gauge(self.users, app).set(users)
        self._gauge(self.free_tickets, app).set(free_tickets)
        self._gauge(self.waiting_users, app).set(waiting)
        if self.k8sticket is not None:
            self._gauge(self.k8sticket[0], app).set(users)
            self._gauge(self.k8sticket[1], app).set(free_tickets)

    def set_autoscaled_pods(self, app: str, *, starting: int, ready: int) -> None:
        self._gauge(self.autoscaled_pods, app, "starting").set(starting)
        self._gauge(self.autoscaled_pods, app, "ready").set(ready)
        if self.k8sticket is not None:
            self._gauge(self.k8sticket[3], app).set(starting + ready)

    def ticket_issued(self, app: str, *, waited: float) -> None:
        """A ticket was issued after `waited` seconds (0 when one was free at once)."""
        self._counter(self.tickets_issued, app).inc()
        self._histogram(self.ticket_wait, app).observe(max(0.0, waited))
        if self.k8sticket is not None:
            self._counter(self.k8sticket[2], app).inc()

    def scale_action(
        self,
        app: str,
        *,
        direction: Literal["up", "down"],
        outcome: Literal["applied", "failed"],
        count: int = 1,
    ) -> None:
        self._counter(self.scale_actions, app, direction, outcome).inc(count)

    def config_error(self, app: str, *, count: int = 1) -> None:
        self._counter(self.config_errors, app).inc(count)

    def proxy_request(self, app: str, *, seconds: float) -> None:
        self._histogram(self.request_duration, app).observe(max(0.0, seconds))

    def upstream_error(self, app: str, *, reason: str) -> None:
        """A request to one of the app's pods failed (reason: connect, timeout, reset, ...)."""
        self._counter(self.upstream_errors, app, reason).inc()

    def remove_app(self, app: str) -> None:
        """Remove every series of `app` (it is no longer served)."""
        for metric, labels in self._series.pop(app, set()):
            with contextlib.suppress(KeyError):  # already gone: removing is idempotent
                metric.remove(*labels)

    def _gauge(self, metric: Gauge, app: str, *labels: str) -> Gauge:
        child = self._child(metric, app, *labels)
        assert isinstance(child, Gauge)
        return child

    def _counter(self, metric: Counter, app: str, *labels: str) -> Counter:
        child = self._child(metric, app, *labels)
        assert isinstance(child, Counter)
        return child

    def _histogram(self, metric: Histogram, app: str, *labels: str) -> Histogram:
        child = self._child(metric, app, *labels)
        assert isinstance(child, Histogram)
        return child
