"""The sink contract through the real client: commands as an Observer or an Observable,
applied in order, every outcome published, bounded queues with a clear overflow error, and
bad input that gets a clear error and loses nothing."""

from __future__ import annotations

import pytest
import reactivex
import trio
from reactivex.subject import Subject

from rxkube.fakes import open_fake_cluster
from rxkube.streams import TrioScheduler
from rxkube.streams.orchestrator import (
    Applied,
    Cluster,
    ContainerSpec,
    CreateConfiguration,
    CreatePod,
    DeletePod,
    Failed,
    Outcome,
    SinkOverflow,
    UpsertPaths,
)
from tests.integration.orchestrator.conftest import Harness


def pod(name: str) -> CreatePod:
    return CreatePod(name, [ContainerSpec("app", "sim:1")], labels={"app": "sim"})


async def test_observer_commands_are_applied_in_order(harness: Harness) -> None:
    cluster = harness.cluster
    commands: Subject[CreatePod | DeletePod] = Subject()
    commands.subscribe(cluster.pods)
    for name in ("a", "b", "c"):
        commands.on_next(pod(name))
    commands.on_next(DeletePod("b", grace_period=0))
    commands.on_next(DeletePod("b"))  # gone by now: NotFound, and the sink goes on
    commands.on_next(pod("d"))
    outcomes = await harness.wait_outcomes(6)
    assert [(type(o).__name__, type(o.command).__name__) for o in outcomes] == [
        ("Applied", "CreatePod"),
        ("Applied", "CreatePod"),
        ("Applied", "CreatePod"),
        ("Applied", "DeletePod"),
        ("Failed", "DeletePod"),
        ("Applied", "CreatePod"),
    ]
    failed = outcomes[4]
    assert isinstance(failed, Failed)
    assert failed.reason == "NotFound"
    assert failed.error.status["code"] == 404  # type: ignore[attr-defined]
    assert [p["metadata"]["name"] for p in await cluster.pods.list()] == ["a", "c", "d"]
    stats = cluster.pods.statistics()
    assert (stats.applied, stats.failed, stats.queued, stats.applying) == (5, 1, 0, False)


async def test_apply_an_observable_emits_the_outcomes_then_completes(harness: Harness) -> None:
    cluster = harness.cluster
    seen: list[Outcome] = []
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        cluster.pods.apply(reactivex.of(pod("x"), pod("x"), DeletePod("x"))).subscribe(
            seen.append, lambda e: done.set(), done.set, scheduler=TrioScheduler(nursery)
        )
        await done.wait()
    assert [o.ok for o in seen] == [True, False, True]
    assert seen == harness.outcomes  # also on the shared outcomes stream


async def test_apply_an_async_iterable_pulls_one_command_at_a_time(harness: Harness) -> None:
    cluster = harness.cluster
    send, receive = trio.open_memory_channel[CreatePod](0)
    seen: list[Outcome] = []
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        cluster.pods.apply(receive).subscribe(
            seen.append, lambda e: done.set(), done.set, scheduler=TrioScheduler(nursery)
        )
        async with send:
            for name in ("p1", "p2", "p3"):
                # An unbuffered channel: each send waits until the sink has taken the command.
                await send.send(pod(name))
        await done.wait()
    assert [o.command.name for o in seen] == ["p1", "p2", "p3"]  # type: ignore[attr-defined]


async def test_observer_overflow_is_a_clear_error_and_an_outcome() -> None:
    async with open_fake_cluster(simulate=False) as fake:
        async with trio.open_nursery() as nursery:
            cluster = Cluster(fake.client, scheduler=TrioScheduler(nursery), max_pending=2)
            outcomes: list[Outcome] = []
            cluster.outcomes.subscribe(outcomes.append)
            cluster.pods.on_next(pod("a"))
            cluster.pods.on_next(pod("b"))
            with pytest.raises(SinkOverflow, match="max_pending=2"):
                cluster.pods.on_next(pod("c"))
            await cluster.wait_idle()
        assert [(o.ok, o.command.name) for o in outcomes] == [  # type: ignore[attr-defined]
            (False, "c"),
            (True, "a"),
            (True, "b"),
        ]
        assert cluster.pods.statistics().overflows == 1


async def test_a_command_for_another_part_is_refused_clearly(harness: Harness) -> None:
    cluster = harness.cluster
    with pytest.raises(TypeError, match="pods does not accept UpsertPaths"):
        cluster.pods.on_next(UpsertPaths("gw", "h", []))  # type: ignore[arg-type]
    (outcome,) = await harness.wait_outcomes(1)
    assert isinstance(outcome, Failed)
    assert outcome.reason == "TypeError"


async def test_cluster_apply_routes_mixed_commands_in_order(harness: Harness) -> None:
    cluster = harness.cluster
    seen: list[Outcome] = []
    done = trio.Event()
    commands = reactivex.of(
        CreateConfiguration("cfg", data={"a": "b"}),
        pod("p"),
        "not a command",
        DeletePod("p", grace_period=0),
    )
    async with trio.open_nursery() as nursery:
        cluster.apply(commands).subscribe(  # type: ignore[arg-type]
            seen.append, lambda e: done.set(), done.set, scheduler=TrioScheduler(nursery)
        )
        await done.wait()
    assert [(o.sink, o.ok) for o in seen] == [
        ("configurations", True),
        ("pods", True),
        ("cluster", False),
        ("pods", True),
    ]
    assert isinstance(seen[0], Applied)
    assert harness.outcomes == seen  # the refused one is on cluster.outcomes too


async def test_on_next_without_a_scheduler_says_how_to_get_one(harness: Harness) -> None:
    bare = Cluster(harness.cluster.client)
    with pytest.raises(RuntimeError, match="open_cluster"):
        bare.pods.on_next(pod("a"))
    # Awaiting needs no scheduler.
    created = await bare.pods.create(pod("a"))
    assert created is not None
