"""join_deployments in virtual time: the metadata stream decides, the full stream adds spec."""

from __future__ import annotations

from typing import Any

from reactivex import Observable
from reactivex.notification import OnCompleted, OnError, OnNext
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.recorded import Recorded

from rxkube.controllers import AppServed, app_effects, join_deployments
from rxkube.streams import EventType, WatchEvent

on_next, on_completed, on_error = (
    ReactiveTest.on_next,
    ReactiveTest.on_completed,
    ReactiveTest.on_error,
)
OPT_IN = "ipb-halle.de/k8sticket"
TEMPLATE = {"metadata": {"labels": {"ipb-halle.de/k8sticket.deployment.app.name": "web"}}}


def metadata(
    name: str = "web",
    *,
    app: bool = True,
    uid: str = "u1",
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": {
            "name": name,
            "namespace": "lab",
            "uid": uid,
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {OPT_IN: "true" if app else "false"},
            "annotations": {
                "ipb-halle.de/k8sticket.deployment.port": "none",
                **(annotations or {}),
            },
        },
    }


def full(name: str = "web", *, uid: str = "u1", image: str = "a:1") -> dict[str, Any]:
    obj = metadata(name, uid=uid)
    template = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": image}]}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": obj["metadata"],
        "spec": {"replicas": 1, "template": template},
        "status": {"replicas": 1},
    }


def ev(kind: EventType, obj: dict[str, Any] | None = None, stream: str = "meta") -> WatchEvent:
    return WatchEvent(kind, obj, resource_version="1", stream=stream)


def run(
    meta_messages: list[Recorded[WatchEvent]], full_messages: list[Recorded[WatchEvent]]
) -> list[tuple[int, str]]:
    """(time, "TYPE name image") for each output; "S" for SYNCED, "C"/"E" for the end."""
    scheduler = TestScheduler()
    meta_source: Observable[WatchEvent] = scheduler.create_hot_observable(meta_messages)
    full_source: Observable[WatchEvent] = scheduler.create_hot_observable(full_messages)
    results = scheduler.start(lambda: meta_source.pipe(join_deployments(full_source)))
    out = []
    for message in results.messages:
        value = message.value
        if isinstance(value, OnNext):
            event: WatchEvent = value.value
            if event.type == "SYNCED":
                out.append((message.time, "S"))
                continue
            spec = event.object.get("spec") or {}
            containers = spec.get("template", {}).get("spec", {}).get("containers", [{}])
            image = containers[0].get("image", "-")
            out.append((message.time, f"{event.type} {event.meta.name} {image}"))
        elif isinstance(value, OnCompleted):
            out.append((message.time, "C"))
        elif isinstance(value, OnError):
            out.append((message.time, "E"))
    return out


def test_the_docstring_diagram() -> None:
    assert run(
        [
            on_next(210, ev("ADDED", metadata())),
            on_next(240, ev("ADDED", metadata("other", app=False, uid="u2"))),
            on_next(270, ev("SYNCED")),
            on_next(350, ev("MODIFIED", metadata(app=False))),
            on_completed(400),
        ],
        [
            on_next(230, ev("ADDED", full(), "full")),
            on_next(300, ev("SYNCED", stream="full")),
            on_completed(390),
        ],
    ) == [(230, "ADDED web a:1"), (300, "S"), (350, "MODIFIED web -"), (400, "C")]


def test_settings_come_from_metadata_and_template_from_the_full_stream() -> None:
    scheduler = TestScheduler()
    meta_source = scheduler.create_hot_observable(
        on_next(
            210,
            ev(
                "ADDED",
                metadata(annotations={"ipb-halle.de/k8sticket.deployment.tickets.max": "4"}),
            ),
        ),
        on_next(220, ev("SYNCED")),
    )
    full_source = scheduler.create_hot_observable(
        on_next(215, ev("ADDED", full(image="b:2"), "full")),
        on_next(225, ev("SYNCED", stream="full")),
    )
    results = scheduler.start(
        lambda: meta_source.pipe(join_deployments(full_source), app_effects())
    )
    (message,) = results.messages
    assert message.time == 225
    assert isinstance(message.value, OnNext)
    served = message.value.value
    assert isinstance(served, AppServed)
    assert served.spec.tickets_max == 4
    assert served.spec.template_hash is not None
    assert served.spec.pod_template is not None
    assert served.spec.pod_template["spec"]["containers"][0]["image"] == "b:2"


def test_an_app_waits_for_its_full_object_with_the_same_uid() -> None:
    assert run(
        [
            on_next(210, ev("ADDED", metadata(uid="new"))),
            on_next(240, ev("MODIFIED", metadata(uid="new", annotations={"x": "1"}))),
        ],
        [
            on_next(220, ev("ADDED", full(uid="old"), "full")),  # the previous object
            on_next(250, ev("MODIFIED", full(uid="new", image="n:1"), "full")),
            on_next(260, ev("MODIFIED", full(uid="new", image="n:2"), "full")),
        ],
    ) == [(250, "ADDED web n:1"), (260, "MODIFIED web n:2")]


def test_deletion_and_opt_out_come_from_the_metadata_stream_only() -> None:
    assert run(
        [
            on_next(210, ev("ADDED", metadata())),
            on_next(230, ev("MODIFIED", metadata(app=False))),
            on_next(240, ev("MODIFIED", metadata(app=False))),  # still no app: nothing new
            on_next(250, ev("MODIFIED", metadata())),  # opted in again
            on_next(270, ev("DELETED", metadata())),
            on_next(280, ev("DELETED", metadata("never-an-app", app=False, uid="u9"))),
        ],
        [
            on_next(215, ev("ADDED", full(), "full")),
            on_next(235, ev("DELETED", full(), "full")),  # label-selected watch lets go
            on_next(255, ev("ADDED", full(), "full")),
            on_next(265, ev("DELETED", full(), "full")),
        ],
    ) == [
        (215, "ADDED web a:1"),
        (230, "MODIFIED web -"),
        (255, "MODIFIED web a:1"),
        (270, "DELETED web -"),
    ]


def test_synced_once_both_have_listed_then_every_relist() -> None:
    assert run(
        [on_next(210, ev("SYNCED")), on_next(260, ev("SYNCED"))],
        [on_next(230, ev("SYNCED", stream="full")), on_next(270, ev("SYNCED", stream="full"))],
    ) == [(230, "S"), (260, "S"), (270, "S")]


def test_completes_when_both_complete_and_passes_errors() -> None:
    assert run([on_completed(210)], [on_completed(220)]) == [(220, "C")]
    assert run([], [on_error(230, RuntimeError("watch failed"))]) == [(230, "E")]
