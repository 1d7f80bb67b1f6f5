"""The demo's pure parts: the users' plan, the example apps' Deployments, the terminal view."""

from __future__ import annotations

import io
import itertools

import pytest

from rxkube.controllers import (
    Activity,
    AppBoard,
    AppSpec,
    ServerBoard,
    StatusSnapshot,
    parse_app_spec,
)
from rxkube.controllers._demo import DemoSettings, example_apps
from rxkube.controllers._demo_view import TerminalView, plain_lines, render_view
from rxkube.controllers._users import UserApp, UserStatistics, plan_visits

APPS = [UserApp("notebook", 1.0), UserApp("chat", 1.0, websocket=True)]


def test_the_plan_is_the_same_for_a_seed_and_fits_in_the_duration() -> None:
    first = list(plan_visits(30, APPS, seed=7, duration=60.0))
    assert first == list(plan_visits(30, APPS, seed=7, duration=60.0))
    assert first != list(plan_visits(30, APPS, seed=8, duration=60.0))
    assert len(first) == 30
    assert sorted(v.user for v in first) == list(range(30))
    assert [v.arrive for v in first] == sorted(v.arrive for v in first)
    for visit in first:
        assert 0.0 <= visit.arrive <= 0.3 * 60.0
        assert visit.stay >= 0.2 * 60.0 - 1e-9
        assert visit.arrive + visit.stay <= 0.6 * 60.0 + 1e-3
    assert {v.app.name for v in first} == {"notebook", "chat"}


def test_without_a_duration_users_come_back() -> None:
    visits = list(itertools.islice(plan_visits(3, APPS, seed=1, duration=None), 12))
    assert [v.arrive for v in visits] == sorted(v.arrive for v in visits)
    by_user: dict[int, list[tuple[float, float]]] = {}
    for visit in visits:
        by_user.setdefault(visit.user, []).append((visit.arrive, visit.stay))
    assert set(by_user) == {0, 1, 2}
    for spans in by_user.values():
        for (arrive, stay), (next_arrive, _) in itertools.pairwise(spans):
            assert next_arrive >= arrive + stay  # a user is never in two places at once


def test_no_apps_no_visits() -> None:
    assert list(plan_visits(5, [], seed=1, duration=10.0)) == []


def test_the_example_apps_parse_as_k8sticket_apps() -> None:
    apps = example_apps(cooldown="2s", idle_timeout="3s")
    assert [(a.name, a.page) for a in apps] == [("notebook", "html"), ("chat", "websocket")]
    for app in apps:
        spec = parse_app_spec(app.deployment("demo"))
        assert isinstance(spec, AppSpec), spec
        assert (spec.app, spec.namespace, spec.port) == (app.name, "demo", None)
        assert (spec.tickets_max, spec.tickets_spare, spec.pods_max) == (
            app.tickets_max,
            app.tickets_spare,
            app.pods_max,
        )
        assert (spec.pods_cooldown, spec.ticket_idle_timeout) == (2.0, 3.0)
        assert spec.pod_port == app.container_port
        assert spec.warnings == ()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("users", -1, "users must be >= 0, got -1"),
        ("duration", 0.0, "duration must be > 0 seconds, got 0.0"),
        ("duration", float("inf"), "duration must be > 0 seconds, got inf"),
        ("pod_start_delay", -1.0, "pod start delay must be >= 0 seconds, got -1.0"),
    ],
)
def test_demo_settings_refuse_bad_values(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.") + "$"):
        DemoSettings(**{field: value})  # type: ignore[arg-type]


def _snapshot(activity: tuple[Activity, ...] = ()) -> StatusSnapshot:
    servers = (
        ServerBoard("notebook-7d-a", "127.9.0.2", "Running", True, False, 2, 2, True),
        ServerBoard("notebook-k8sticket-x", "", "Pending", False, True, 0, None, False),
    )
    app = AppBoard(
        app="notebook",
        deployment="notebook",
        routing="path",
        own_port=None,
        draining=False,
        users=2,
        free=0,
        queued=3,
        requests=41,
        waiting_pages=5,
        upstream_errors=0,
        tickets_max=2,
        tickets_spare=2,
        pods_max=4,
        servers=servers,
    )
    return StatusSnapshot(
        at=130.0,
        namespace="default",
        ready=True,
        draining=False,
        leader=True,
        apps=(app,),
        problems=(),
        activity=activity,
        connections=4,
        config_errors=0,
        events_posted=2,
        events_failed=0,
        scale_ups=1,
        scale_downs=0,
    )


UP = Activity(125.0, "scale-up", "notebook", "autoscaled pod notebook-k8sticket-x created")
EVENT = Activity(124.0, "event", "", "Event AppServed on Deployment notebook: ...")


def test_the_view_shows_apps_pods_tickets_queue_and_scale_actions() -> None:
    users = UserStatistics(arrived=5, waiting=3, using=2, requests=41, messages=7)
    lines = render_view(_snapshot((UP, EVENT)), users, elapsed=12.0, duration=60.0, records=99)
    assert lines == [
        "rxkube demo  0:12 / 1:00  ready  scale actions: 1 up, 0 down  trace: 99 records"
        "  (Ctrl-C stops)",
        "users: 5 arrived, 2 using an app, 3 waiting, 0 left (0 gave up waiting); 41 requests, "
        "7 WebSocket echoes, 0 errors",
        "",
        "APP         PODS                       USERS  FREE  WAITING  REQUESTS",
        "notebook    1/2 ready, 1 autoscaled        2     0        3        41   tickets.max 2,"
        " spare 2, pods.max 4",
        "  notebook-7d-a                           Running     ready  2/2 users",
        "  notebook-k8sticket-x                    Pending     -      0 users     autoscaled",
        "",
        "recent:",
        # Events repeat what the lines above say: the terminal leaves them to the status page.
        "    0:07  scale-up   notebook: autoscaled pod notebook-k8sticket-x created",
    ]


def test_plain_output_prints_each_activity_once_and_periodic_lines() -> None:
    out = io.StringIO()
    view = TerminalView(out, tty=False, plain_interval=5.0)
    view.update(_snapshot(), None, elapsed=10.0, duration=None)
    view.update(_snapshot((UP,)), None, elapsed=12.0, duration=None)
    view.update(_snapshot((UP,)), None, elapsed=13.0, duration=None)
    view.update(_snapshot((UP,)), None, elapsed=15.5, duration=None)
    summary = "app notebook: pods 1/2 ready, 1 autoscaled; users 2, free 0, waiting 3, requests 41"
    assert out.getvalue().splitlines() == [
        f"[0:10] {summary}",
        "[0:07] scale-up   notebook: autoscaled pod notebook-k8sticket-x created",
        f"[0:15] {summary}",
    ]
    assert "\x1b" not in out.getvalue()
    assert plain_lines(_snapshot(), UserStatistics(arrived=1), elapsed=0.0)[-1] == (
        "[0:00] users: 1 arrived, 0 using, 0 waiting, 0 left, 0 errors"
    )


def test_a_terminal_redraws_in_place() -> None:
    out = io.StringIO()
    view = TerminalView(out, tty=True)
    view.update(_snapshot(), None, elapsed=1.0, duration=None)
    first = out.getvalue()
    assert first.startswith("\x1b[J")
    drawn = first.count("\n")
    view.update(_snapshot(), None, elapsed=2.0, duration=None)
    assert out.getvalue()[len(first) :].startswith(f"\x1b[{drawn}A\r\x1b[J")
