"""Reports to Event commands (event_commands), and the structured log lines."""

from __future__ import annotations

import io
import json
import logging

from reactivex.notification import OnNext
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.recorded import Recorded

from rxkube.controllers import (
    AppNotice,
    ConfigError,
    ConfigProblem,
    ConfigResolved,
    DeploymentRef,
    PodProblem,
    configure_logging,
    event_commands,
    fields,
)
from rxkube.streams import ObjectReference, PostEvent

on_next = ReactiveTest.on_next
REF = DeploymentRef("lab", "web", "uid-web")
DEPLOYMENT = ObjectReference("Deployment", "web", "lab", "uid-web", "apps/v1")
ERROR = ConfigError(
    "ipb-halle.de/k8sticket.deployment.port", "x", "is not a whole number", "1-65535"
)


def test_reports_become_events_on_the_right_objects() -> None:
    problem = ConfigProblem(REF, "web", ERROR, "error", "InvalidConfiguration", None)
    resolved = ConfigResolved(REF, ("web",), withdrawn=False)
    gone = ConfigResolved(REF, ("web",), withdrawn=True)
    pod = ObjectReference("Pod", "web-1", "lab", "uid-p", "v1")
    pod_problem = PodProblem(pod, "web", (ERROR,))
    notice = AppNotice(REF, "web", "AppMoved", "moved", "Normal")
    scheduler = TestScheduler()
    messages: list[Recorded[object]] = [
        on_next(210, problem),
        on_next(220, resolved),
        on_next(230, gone),
        on_next(240, pod_problem),
        on_next(250, "something else"),
        on_next(260, notice),
    ]
    source = scheduler.create_hot_observable(messages)
    results = scheduler.start(lambda: source.pipe(event_commands()))
    events = [(m.time, m.value.value) for m in results.messages if isinstance(m.value, OnNext)]
    assert events == [
        (
            210,
            PostEvent(
                DEPLOYMENT,
                "InvalidConfiguration",
                "ipb-halle.de/k8sticket.deployment.port='x': is not a whole number; allowed: "
                "1-65535; the app is not served until this is fixed",
                "Warning",
            ),
        ),
        (
            220,
            PostEvent(
                DEPLOYMENT,
                "ConfigurationResolved",
                "the configuration problems reported before are fixed",
            ),
        ),
        (240, PostEvent(pod, "InvalidConfiguration", pod_problem.message, "Warning")),
        (260, PostEvent(DEPLOYMENT, "AppMoved", "moved", "Normal")),
    ]


def test_text_lines_are_key_value_pairs() -> None:
    stream = io.StringIO()
    handler = configure_logging(stream=stream, level="DEBUG")
    try:
        log = logging.getLogger("rxkube.controllers.test")
        log.info("app served", extra=fields(app="lab", port=9001, reason="has space"))
        log.warning("plain %s", "args")
    finally:
        logging.getLogger("rxkube").removeHandler(handler)
    first, second = stream.getvalue().splitlines()
    assert first.startswith("time=")
    assert first.endswith(
        ' level=info logger=rxkube.controllers.test msg="app served" app=lab port=9001 '
        'reason="has space"'
    )
    assert second.endswith('level=warning logger=rxkube.controllers.test msg="plain args"')


def test_json_lines_and_reconfiguring_replaces_only_our_handler() -> None:
    stream = io.StringIO()
    root = logging.getLogger("rxkube")
    other = logging.NullHandler()
    root.addHandler(other)
    configure_logging(stream=io.StringIO())
    handler = configure_logging(format="json", stream=stream)
    try:
        assert other in root.handlers
        assert sum(1 for h in root.handlers if h.get_name() == "rxkube-structured") == 1
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("rxkube.x").exception("failed", extra=fields(app="lab"))
    finally:
        root.removeHandler(handler)
        root.removeHandler(other)
    line = json.loads(stream.getvalue())
    assert (line["level"], line["logger"], line["msg"], line["app"]) == (
        "error",
        "rxkube.x",
        "failed",
        "lab",
    )
    assert "ValueError: boom" in line["error"]
