"""The sink machinery on trio's MockClock: order across the three ways in, outcomes for every
command, shielded commands, bounded queues, and wait_idle. The sink under test applies its
commands by sleeping (virtual time) and recording, so times are exact."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import reactivex
import trio
import trio.testing
from reactivex.subject import Subject

from rxkube.streams import KubeObject, TrioScheduler
from rxkube.streams.orchestrator import Applied, Command, Failed, Outcome, Sink, SinkOverflow

Clock = trio.testing.MockClock


@dataclass(frozen=True, slots=True)
class Step(Command):
    name: str
    seconds: float = 1.0
    fail: bool = False


@dataclass(frozen=True, slots=True)
class Other(Command):
    name: str


class Recording(Sink[Step]):
    """A sink whose commands take `seconds` of virtual time each; it records start and end."""

    name = "recording"
    commands = (Step,)

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.log: list[tuple[float, str, str]] = []

    async def _execute(self, command: Step) -> KubeObject | None:
        self.log.append((trio.current_time(), "start", command.name))
        await trio.sleep(command.seconds)
        self.log.append((trio.current_time(), "end", command.name))
        if command.fail:
            raise RuntimeError(f"{command.name} failed")
        return {"name": command.name}


def names(outcomes: list[Outcome]) -> list[str]:
    return [o.command.name for o in outcomes]  # type: ignore[attr-defined]


async def test_observer_queue_applies_one_at_a_time_in_order(autojump_clock: Clock) -> None:
    async with trio.open_nursery() as nursery:
        sink = Recording(scheduler=TrioScheduler(nursery))
        outcomes: list[Outcome] = []
        sink.outcomes.subscribe(outcomes.append)
        start = trio.current_time()
        for name in "abc":
            sink.on_next(Step(name))
        assert sink.statistics().queued == 3
        await sink.wait_idle()
        assert trio.current_time() - start == 3.0
    assert names(outcomes) == ["a", "b", "c"]
    assert [(t - start, what, n) for t, what, n in sink.log] == [
        (0.0, "start", "a"),
        (1.0, "end", "a"),
        (1.0, "start", "b"),
        (2.0, "end", "b"),
        (2.0, "start", "c"),
        (3.0, "end", "c"),
    ]
    assert outcomes[0] == Applied("recording", Step("a"), {"name": "a"})


async def test_a_failing_command_is_a_failed_outcome_and_the_rest_go_on(
    autojump_clock: Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        sink = Recording(scheduler=TrioScheduler(nursery))
        outcomes: list[Outcome] = []
        sink.outcomes.subscribe(outcomes.append)
        sink.on_next(Step("a", fail=True))
        sink.on_next(Step("b"))
        await sink.wait_idle()
    assert [o.ok for o in outcomes] == [False, True]
    failed = outcomes[0]
    assert isinstance(failed, Failed)
    assert failed.reason == "RuntimeError"
    assert str(failed.error) == "a failed"
    assert sink.statistics().failed == 1


async def test_awaited_and_queued_commands_share_one_order(autojump_clock: Clock) -> None:
    async with trio.open_nursery() as nursery:
        sink = Recording(scheduler=TrioScheduler(nursery))
        sink.on_next(Step("queued-1"))
        sink.on_next(Step("queued-2"))
        await trio.sleep(0.5)  # queued-1 is being applied
        assert sink.statistics().applying
        result = await sink._call(Step("awaited"), what="step")
        assert result == {"name": "awaited"}
        await sink.wait_idle()
    assert [n for _, what, n in sink.log if what == "start"] == [
        "queued-1",
        "queued-2",
        "awaited",
    ]


async def test_an_awaited_command_that_fails_raises_its_error(autojump_clock: Clock) -> None:
    sink = Recording()
    with pytest.raises(RuntimeError, match="x failed"):
        await sink._call(Step("x", fail=True), what="step")
    assert sink.statistics().failed == 1


async def test_apply_emits_outcomes_in_order_then_completes(autojump_clock: Clock) -> None:
    sink = Recording()
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        done = trio.Event()
        sink.apply(reactivex.of(Step("a"), Step("b", fail=True), Step("c"))).subscribe(
            seen.append, seen.append, done.set, scheduler=TrioScheduler(nursery)
        )
        await done.wait()
    assert [type(o).__name__ for o in seen] == ["Applied", "Failed", "Applied"]


async def test_disposing_apply_finishes_the_started_command_and_drops_the_rest(
    autojump_clock: Clock,
) -> None:
    sink = Recording()
    published: list[Outcome] = []
    sink.outcomes.subscribe(published.append)
    commands: Subject[Step] = Subject()
    async with trio.open_nursery() as nursery:
        subscription = sink.apply(commands).subscribe(scheduler=TrioScheduler(nursery))
        await trio.testing.wait_all_tasks_blocked()  # the pump has subscribed
        commands.on_next(Step("a", seconds=2))
        commands.on_next(Step("b"))
        await trio.sleep(1)
        subscription.dispose()  # a is half done: shielded, it ends and is published
    assert names(published) == ["a"]
    assert [what for _, what, _ in sink.log] == ["start", "end"]


async def test_a_cancelled_drain_leaves_queued_commands_for_the_next(autojump_clock: Clock) -> None:
    sink = Recording()
    async with trio.open_nursery() as first:
        sink.scheduler = TrioScheduler(first)
        sink.on_next(Step("a"))
        sink.on_next(Step("b"))
        await trio.sleep(0.5)
        first.cancel_scope.cancel()  # a finishes (shielded); b stays queued
    assert sink.statistics().queued == 1
    async with trio.open_nursery() as second:
        sink.scheduler = TrioScheduler(second)
        sink.on_next(Step("c"))
        await sink.wait_idle()
    assert [n for _, what, n in sink.log if what == "end"] == ["a", "b", "c"]


async def test_a_full_queue_refuses_with_an_error_and_an_outcome(autojump_clock: Clock) -> None:
    async with trio.open_nursery() as nursery:
        sink = Recording(scheduler=TrioScheduler(nursery), max_pending=2)
        outcomes: list[Outcome] = []
        sink.outcomes.subscribe(outcomes.append)
        sink.on_next(Step("a"))
        sink.on_next(Step("b"))
        with pytest.raises(SinkOverflow, match="max_pending=2"):
            sink.on_next(Step("c"))
        await sink.wait_idle()
        sink.on_next(Step("d"))  # room again
        await sink.wait_idle()
    assert [(n, o.ok) for n, o in zip(names(outcomes), outcomes, strict=True)] == [
        ("c", False),
        ("a", True),
        ("b", True),
        ("d", True),
    ]
    assert sink.statistics().overflows == 1


async def test_apply_from_trio_thread_that_outruns_the_bound_fails_loudly(
    autojump_clock: Clock,
) -> None:
    sink = Recording(max_pending=2)
    errors: list[Exception] = []
    async with trio.open_nursery() as nursery:
        done = trio.Event()

        def failed(error: Exception) -> None:
            errors.append(error)
            done.set()

        commands: Subject[Step] = Subject()
        sink.apply(commands).subscribe(
            on_error=failed, on_completed=done.set, scheduler=TrioScheduler(nursery)
        )
        await trio.testing.wait_all_tasks_blocked()
        for name in "abcd":
            commands.on_next(Step(name))
        await done.wait()
    assert "max_buffer=2" in str(errors[0])
    assert [n for _, what, n in sink.log if what == "end"] == ["a", "b"]


async def test_wrong_commands_and_missing_scheduler_are_clear_errors(
    autojump_clock: Clock,
) -> None:
    sink = Recording()
    outcomes: list[Outcome] = []
    sink.outcomes.subscribe(outcomes.append)
    with pytest.raises(TypeError, match="recording does not accept Other"):
        sink.on_next(Other("x"))  # type: ignore[arg-type]
    assert isinstance(outcomes[0], Failed)
    with pytest.raises(RuntimeError, match="no scheduler"):
        sink.on_next(Step("a"))
    with pytest.raises(ValueError, match="max_pending"):
        Recording(max_pending=0)
    sink.on_error(RuntimeError("source died"))
    assert sink.statistics().source_errors == 1


async def test_on_next_from_another_thread_is_refused(autojump_clock: Clock) -> None:
    async with trio.open_nursery() as nursery:
        sink = Recording(scheduler=TrioScheduler(nursery))
        with pytest.raises(RuntimeError, match="outside trio's thread"):
            await trio.to_thread.run_sync(sink.on_next, Step("a"))
    assert sink.statistics().queued == 0


async def test_a_thread_producer_waits_for_room_through_apply() -> None:
    """Real clock: a producer thread emits more commands than the bound; it waits, and
    every command is applied, in order."""
    sink = Recording(max_pending=2)
    seen: list[Outcome] = []
    commands: Subject[Step] = Subject()
    async with trio.open_nursery() as nursery:
        done = trio.Event()
        sink.apply(commands).subscribe(
            seen.append, on_completed=done.set, scheduler=TrioScheduler(nursery)
        )
        await trio.testing.wait_all_tasks_blocked()

        def produce() -> None:
            for i in range(6):
                commands.on_next(Step(str(i), seconds=0.01))
            commands.on_completed()

        await trio.to_thread.run_sync(produce)
        await done.wait()
    assert names(seen) == [str(i) for i in range(6)]
