"""The live Events sink against the fake API server over loopback: POST, PATCH, 404, faults."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from rxkube.fakes import FakeApiServer, Fault, open_fake_apiserver
from rxkube.streams import (
    EventDropped,
    EventFailed,
    EventLimits,
    EventOutcome,
    EventPosted,
    KubeClient,
    ObjectReference,
    PostEvent,
    load_kubeconfig,
    open_client,
    open_event_sink,
)

WALL = 1_714_564_800.0  # 2024-05-01T12:00:00Z


@pytest.fixture
async def server() -> AsyncIterator[FakeApiServer]:
    async with open_fake_apiserver() as fake:
        fake.store.create("namespaces", {"metadata": {"name": "lab"}})
        yield fake


@pytest.fixture
async def client(server: FakeApiServer) -> AsyncIterator[KubeClient]:
    async with open_client(load_kubeconfig(server.kubeconfig_path), rate_limit=None) as c:
        yield c


def stored_events(server: FakeApiServer) -> list[dict[str, Any]]:
    return server.store.list("events", "lab").objects()


REF = ObjectReference("Deployment", "web", "lab", "uid-web", "apps/v1")


async def test_posts_then_patches_the_count(server: FakeApiServer, client: KubeClient) -> None:
    clock = [WALL]
    outcomes: list[EventOutcome] = []
    async with open_event_sink(client, instance="rxkube-0", wall_clock=lambda: clock[0]) as sink:
        sink.outcomes.subscribe(outcomes.append)
        sink.post(REF, "InvalidConfiguration", "port 'x' is not a number", "Warning")
        await sink.wait_idle()
        clock[0] += 30
        sink.post(REF, "InvalidConfiguration", "port 'x' is not a number", "Warning")
        sink.post(REF, "AppServed", "app 'web' is served")
        await sink.wait_idle()
    events = sorted(stored_events(server), key=lambda e: e["reason"])
    assert [(e["reason"], e["count"], e["type"]) for e in events] == [
        ("AppServed", 1, "Normal"),
        ("InvalidConfiguration", 2, "Warning"),
    ]
    bad = events[1]
    assert bad["involvedObject"]["name"] == "web"
    assert bad["involvedObject"]["kind"] == "Deployment"
    assert bad["firstTimestamp"] == "2024-05-01T12:00:00Z"
    assert bad["lastTimestamp"] == "2024-05-01T12:00:30Z"
    assert bad["source"] == {"component": "rxkube", "host": "rxkube-0"}
    assert [type(o).__name__ for o in outcomes] == ["EventPosted"] * 3
    assert [o.action for o in outcomes if isinstance(o, EventPosted)] == [
        "created",
        "patched",
        "created",
    ]
    assert sink.statistics().created == 2
    assert sink.statistics().patched == 1


async def test_a_patch_of_a_deleted_event_re_creates_it(
    server: FakeApiServer, client: KubeClient
) -> None:
    async with open_event_sink(client, wall_clock=lambda: WALL) as sink:
        sink.post(REF, "AppMoved", "moved to port 9002")
        await sink.wait_idle()
        (event,) = stored_events(server)
        server.store.delete("events", "lab", event["metadata"]["name"])
        sink.post(REF, "AppMoved", "moved to port 9002")
        await sink.wait_idle()
    (again,) = stored_events(server)
    assert again["metadata"]["name"] == event["metadata"]["name"]
    assert again["count"] == 2


async def test_spam_filter_drops_beyond_the_burst(
    server: FakeApiServer, client: KubeClient
) -> None:
    outcomes: list[EventOutcome] = []
    limits = EventLimits(burst=3, refill_seconds=3600)
    async with open_event_sink(client, limits=limits) as sink:
        sink.outcomes.subscribe(outcomes.append)
        for i in range(5):
            sink.post(REF, "Flapping", f"change {i}")
        await sink.wait_idle()
    assert len(stored_events(server)) == 3
    dropped = [o for o in outcomes if isinstance(o, EventDropped)]
    assert [o.reason for o in dropped] == ["rate-limited", "rate-limited"]


async def test_server_errors_are_retried_and_a_403_is_not(
    server: FakeApiServer, client: KubeClient
) -> None:
    outcomes: list[EventOutcome] = []
    limits = EventLimits(retries=3, retry_delay=0.01)
    unavailable = server.faults.inject(Fault.status(503), verb="create", resource="events", times=2)
    async with open_event_sink(client, limits=limits, rng=random.Random(1)) as sink:
        sink.outcomes.subscribe(outcomes.append)
        sink.post(REF, "AppServed", "served")
        await sink.wait_idle()
        assert unavailable.fired == 2
        assert len(stored_events(server)) == 1
        server.faults.inject(Fault.status(403), verb="create", resource="events")
        sink.post(REF, "AppWithdrawn", "withdrawn")
        await sink.wait_idle()
    failed = [o for o in outcomes if isinstance(o, EventFailed)]
    assert len(failed) == 1
    assert failed[0].status == 403
    assert failed[0].attempts == 1
    assert "create" in failed[0].error
    assert "events" in failed[0].error
    assert len(stored_events(server)) == 1


async def test_gives_up_after_the_retries(server: FakeApiServer, client: KubeClient) -> None:
    outcomes: list[EventOutcome] = []
    server.faults.inject(Fault.status(500), verb="create", resource="events", times=None)
    limits = EventLimits(retries=2, retry_delay=0.01)
    async with open_event_sink(client, limits=limits) as sink:
        sink.outcomes.subscribe(outcomes.append)
        sink.post(REF, "AppServed", "served")
        await sink.wait_idle()
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], EventFailed)
    assert (outcomes[0].status, outcomes[0].attempts) == (500, 3)


async def test_a_full_queue_drops_new_commands(server: FakeApiServer, client: KubeClient) -> None:
    outcomes: list[EventOutcome] = []
    stall = server.faults.inject(Fault.delay(0.2), verb="create", resource="events")
    limits = EventLimits(queue_size=2, burst=100)
    async with open_event_sink(client, limits=limits) as sink:
        sink.outcomes.subscribe(outcomes.append)
        sink.post(REF, "E", "0")
        await trio.testing.wait_all_tasks_blocked()  # the worker took "0" and waits on the API
        for i in range(1, 5):
            sink.post(REF, "E", str(i))
        await sink.wait_idle()
    assert stall.fired == 1
    assert sorted(e["message"] for e in stored_events(server)) == ["0", "1", "2"]
    assert [o.command.message for o in outcomes if isinstance(o, EventDropped)] == ["3", "4"]
    assert sink.statistics().dropped == {"queue-full": 2}


async def test_leaving_the_block_flushes_what_is_queued(
    server: FakeApiServer, client: KubeClient
) -> None:
    async with open_event_sink(client) as sink:
        for i in range(3):
            sink.on_next(PostEvent(REF, "E", str(i)))
    assert len(stored_events(server)) == 3


async def test_replicas_count_up_one_event_instead_of_adding_their_own(
    server: FakeApiServer, client: KubeClient
) -> None:
    """A new leader (or a restarted replica) posts a problem another replica posted already:
    it finds that Event by name and counts it up; a former leader posting again re-reads the
    count it missed (409 on its stale resourceVersion): one Event, counted by all."""
    text = "tickets.max 'x' is not a number"
    outcomes: list[EventOutcome] = []
    async with (
        open_event_sink(client, instance="r1", wall_clock=lambda: WALL) as r1,
        open_event_sink(client, instance="r2", wall_clock=lambda: WALL + 60) as r2,
    ):
        for sink in (r1, r2):
            sink.outcomes.subscribe(outcomes.append)
        r1.post(REF, "InvalidConfiguration", text, "Warning")
        await r1.wait_idle()
        r2.post(REF, "InvalidConfiguration", text, "Warning")
        await r2.wait_idle()
        r1.post(REF, "InvalidConfiguration", text, "Warning")
        await r1.wait_idle()
    async with open_event_sink(client, instance="r1", wall_clock=lambda: WALL + 120) as restarted:
        restarted.outcomes.subscribe(outcomes.append)
        restarted.post(REF, "InvalidConfiguration", text, "Warning")
        await restarted.wait_idle()
    (event,) = stored_events(server)
    assert event["count"] == 4
    assert event["firstTimestamp"] == "2024-05-01T12:00:00Z"
    assert event["lastTimestamp"] == "2024-05-01T12:02:00Z"
    assert event["source"] == {"component": "rxkube", "host": "r1"}  # the first poster
    posted = [(o.action, o.count) for o in outcomes if isinstance(o, EventPosted)]
    assert posted == [("created", 1), ("patched", 2), ("patched", 3), ("patched", 4)]
