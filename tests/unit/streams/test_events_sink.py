"""The Events sink's correlation and spam filter, and the dry-run sink in virtual time."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from reactivex.testing import TestScheduler

from rxkube.streams import (
    DryRunEventSink,
    EventDropped,
    EventLimits,
    EventOutcome,
    EventPosted,
    ObjectReference,
    PostEvent,
)
from rxkube.streams._events_sink import CreateEvent, DropEvent, EventCorrelator, PatchEvent

DEPLOYMENT = ObjectReference("Deployment", "web", "lab", "uid-1", "apps/v1")
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def warning(message: str = "bad port", ref: ObjectReference = DEPLOYMENT) -> PostEvent:
    return PostEvent(ref, "InvalidConfiguration", message, "Warning")


def test_first_occurrence_is_created_with_client_go_fields() -> None:
    correlator = EventCorrelator(component="rxkube", instance="rxkube-0")
    decision = correlator.decide(warning(), now=0.0, wall=T0)
    assert isinstance(decision, CreateEvent)
    body = decision.body
    name = body["metadata"]["name"]
    assert body["metadata"] == {"name": name, "namespace": "lab"}
    assert re.fullmatch(r"web\.[0-9a-f]{16}", name), name
    assert body["involvedObject"] == {
        "kind": "Deployment",
        "namespace": "lab",
        "name": "web",
        "uid": "uid-1",
        "apiVersion": "apps/v1",
    }
    assert body["count"] == 1
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2024-05-01T12:00:00Z"
    assert body["source"] == {"component": "rxkube", "host": "rxkube-0"}
    assert (body["reportingComponent"], body["reportingInstance"]) == ("rxkube", "rxkube-0")
    assert body["type"] == "Warning"
    assert body["eventTime"] is None


def test_the_same_event_again_patches_count_and_last_timestamp() -> None:
    correlator = EventCorrelator()
    first = correlator.decide(warning(), now=0.0, wall=T0)
    second = correlator.decide(warning(), now=5.0, wall=T0 + 5)
    third = correlator.decide(warning(), now=9.0, wall=T0 + 9)
    assert isinstance(first, CreateEvent)
    assert isinstance(second, PatchEvent)
    assert isinstance(third, PatchEvent)
    assert second.name == third.name == first.body["metadata"]["name"]
    assert second.patch == {
        "count": 2,
        "lastTimestamp": "2024-05-01T12:00:05Z",
        "message": "bad port",
    }
    assert third.patch["count"] == 3
    # On a 404 the body re-creates it under the same name, first timestamp and count kept.
    assert third.body["firstTimestamp"] == "2024-05-01T12:00:00Z"
    assert third.body["count"] == 3


def test_the_same_event_has_the_same_name_in_every_replica_and_at_any_time() -> None:
    """So a replica that did not post it finds the Event another one (or its own earlier run)
    posted, by name (the live sink then counts it up instead of creating another)."""
    first = EventCorrelator(instance="rxkube-0").decide(warning(), now=0.0, wall=T0)
    later = EventCorrelator(instance="rxkube-1").decide(warning(), now=50.0, wall=T0 + 3600)
    assert isinstance(first, CreateEvent)
    assert isinstance(later, CreateEvent)
    assert first.body["metadata"]["name"] == later.body["metadata"]["name"]
    assert later.body["source"] == {"component": "rxkube", "host": "rxkube-1"}
    # Another component, or another object under the same name (a new uid), is another Event.
    other = EventCorrelator(component="other").decide(warning(), now=0.0, wall=T0)
    recreated = ObjectReference("Deployment", "web", "lab", "uid-2", "apps/v1")
    again = EventCorrelator().decide(warning(ref=recreated), now=0.0, wall=T0)
    assert isinstance(other, CreateEvent)
    assert isinstance(again, CreateEvent)
    names = {d.body["metadata"]["name"] for d in (first, other, again)}
    assert len(names) == 3
    # A long object name is cut so that the Event's name stays a DNS subdomain.
    long = ObjectReference("Deployment", "x" * 253, "lab", "u", "apps/v1")
    cut = EventCorrelator().decide(warning(ref=long), now=0.0, wall=T0)
    assert isinstance(cut, CreateEvent)
    assert len(cut.body["metadata"]["name"]) == 253


def test_a_write_read_back_sets_the_count_and_the_version_the_next_patch_expects() -> None:
    correlator = EventCorrelator()
    first = correlator.decide(warning(), now=0.0, wall=T0)
    assert isinstance(first, CreateEvent)
    # Another replica had counted it to 4: this one read it back and wrote 5 at version "77".
    correlator.stored(first.key, count=5, resource_version="77")
    second = correlator.decide(warning(), now=1.0, wall=T0 + 1)
    assert isinstance(second, PatchEvent)
    assert second.patch == {
        "count": 6,
        "lastTimestamp": "2024-05-01T12:00:01Z",
        "message": "bad port",
        "metadata": {"resourceVersion": "77"},
    }


def test_a_different_message_or_object_is_a_different_event() -> None:
    correlator = EventCorrelator()
    a = correlator.decide(warning("one"), now=0.0, wall=T0)
    b = correlator.decide(warning("two"), now=0.0, wall=T0)
    other = ObjectReference("Deployment", "api", "lab", "uid-2", "apps/v1")
    c = correlator.decide(warning("one", other), now=0.0, wall=T0)
    assert isinstance(a, CreateEvent)
    assert isinstance(b, CreateEvent)
    assert isinstance(c, CreateEvent)
    names = {d.body["metadata"]["name"] for d in (a, b, c)}
    assert len(names) == 3


def test_spam_filter_allows_a_burst_then_one_per_refill_period() -> None:
    correlator = EventCorrelator(EventLimits(burst=3, refill_seconds=10.0))
    decisions = [correlator.decide(warning(f"m{i}"), now=0.0, wall=T0) for i in range(5)]
    assert [type(d).__name__ for d in decisions] == [
        "CreateEvent",
        "CreateEvent",
        "CreateEvent",
        "DropEvent",
        "DropEvent",
    ]
    assert correlator.decide(warning("later"), now=9.9, wall=T0) == DropEvent("rate-limited")
    assert isinstance(correlator.decide(warning("later"), now=10.0 + 9.9, wall=T0), CreateEvent)
    assert isinstance(correlator.decide(warning("x"), now=20.0, wall=T0), DropEvent)
    # Another object has a bucket of its own.
    other = ObjectReference("Pod", "web-1", "lab", "uid-p")
    assert isinstance(correlator.decide(warning("m0", other), now=20.0, wall=T0), CreateEvent)


def test_invalid_commands_are_dropped_and_long_messages_cut() -> None:
    correlator = EventCorrelator()
    nameless = ObjectReference("Deployment", "", "lab")
    assert correlator.decide(warning(ref=nameless), now=0, wall=T0) == DropEvent("invalid")
    bad_type = PostEvent(DEPLOYMENT, "X", "m", "Error")  # type: ignore[arg-type]
    assert correlator.decide(bad_type, now=0, wall=T0) == DropEvent("invalid")
    assert correlator.decide(PostEvent(DEPLOYMENT, "", "m"), now=0, wall=T0) == DropEvent("invalid")
    long = correlator.decide(warning("é" * 2000), now=0, wall=T0)
    assert isinstance(long, CreateEvent)
    assert len(long.body["message"].encode()) <= 1024
    assert long.body["message"].endswith("...")


def test_forget_starts_a_new_event_next_time() -> None:
    correlator = EventCorrelator()
    first = correlator.decide(warning(), now=0, wall=T0)
    assert isinstance(first, CreateEvent)
    correlator.forget(first.key)
    assert isinstance(correlator.decide(warning(), now=1, wall=T0 + 1), CreateEvent)


def test_the_cache_forgets_the_least_recently_used() -> None:
    correlator = EventCorrelator(EventLimits(cache_size=2, burst=100))
    correlator.decide(warning("a"), now=0, wall=T0)
    correlator.decide(warning("b"), now=0, wall=T0)
    correlator.decide(warning("a"), now=0, wall=T0)  # a is now the most recent
    correlator.decide(warning("c"), now=0, wall=T0)  # b falls out
    assert isinstance(correlator.decide(warning("a"), now=0, wall=T0), PatchEvent)
    assert isinstance(correlator.decide(warning("b"), now=0, wall=T0), CreateEvent)


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="burst"):
        EventLimits(burst=0)
    with pytest.raises(ValueError, match="refill_seconds"):
        EventLimits(refill_seconds=0)


def test_dry_run_sink_records_what_it_would_post_in_virtual_time() -> None:
    scheduler = TestScheduler()
    sink = DryRunEventSink(scheduler, limits=EventLimits(burst=2, refill_seconds=100))
    outcomes: list[tuple[float, EventOutcome]] = []
    sink.outcomes.subscribe(lambda o: outcomes.append((scheduler.clock, o)))
    scheduler.schedule_absolute(10.0, lambda *_: sink.on_next(warning()))
    scheduler.schedule_absolute(20.0, lambda *_: sink.on_next(warning()))
    scheduler.schedule_absolute(30.0, lambda *_: sink.on_next(warning()))
    scheduler.start()
    assert [(t, type(o).__name__) for t, o in outcomes] == [
        (10.0, "EventPosted"),
        (20.0, "EventPosted"),
        (30.0, "EventDropped"),
    ]
    first, second = outcomes[0][1], outcomes[1][1]
    assert isinstance(first, EventPosted)
    assert isinstance(second, EventPosted)
    assert first.dry_run
    assert (first.action, first.count, second.action, second.count) == (
        "created",
        1,
        "patched",
        2,
    )
    assert isinstance(outcomes[2][1], EventDropped)
    # The recorded bodies carry virtual timestamps (seconds since the epoch on the scheduler).
    assert [e["lastTimestamp"] for e in sink.events] == [
        "1970-01-01T00:00:10Z",
        "1970-01-01T00:00:20Z",
    ]
    stats = sink.statistics()
    assert (stats.created, stats.patched, stats.dropped, stats.failed) == (
        1,
        1,
        {"rate-limited": 1},
        0,
    )


def test_object_reference_of_an_object() -> None:
    obj = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "lab", "uid": "u", "resourceVersion": "7"},
    }
    ref = ObjectReference.of(obj)
    assert ref == ObjectReference("Deployment", "web", "lab", "u", "apps/v1", "7")
    assert ObjectReference.of({}) == ObjectReference("", "")
