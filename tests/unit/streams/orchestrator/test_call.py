"""`Call` and `Stream`: cold Observables that trio code can await (virtual time)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from rxkube.streams import TrioScheduler
from rxkube.streams.orchestrator import Call, Stream

Clock = trio.testing.MockClock


async def test_a_call_runs_once_per_await_or_subscription(autojump_clock: Clock) -> None:
    runs: list[float] = []

    async def run() -> int:
        runs.append(trio.current_time())
        await trio.sleep(2)
        return len(runs)

    call = Call(run, name="answer")
    assert runs == []  # cold: nothing before it is awaited or subscribed
    assert await call == 1
    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        done = trio.Event()
        call.subscribe(seen.append, seen.append, done.set, scheduler=TrioScheduler(nursery))
        await done.wait()
    assert seen == [2]
    assert runs[1] - runs[0] == 2.0
    assert repr(call) == "<Call answer>"


async def test_disposing_a_call_cancels_it_and_errors_go_to_on_error(
    autojump_clock: Clock,
) -> None:
    cancelled = trio.Event()

    async def forever() -> int:
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    async def broken() -> int:
        raise KeyError("boom")

    seen: list[object] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        subscription = Call(forever, name="f").subscribe(seen.append, scheduler=scheduler)
        await trio.sleep(1)
        subscription.dispose()
        await cancelled.wait()
        Call(broken, name="b").subscribe(seen.append, seen.append, scheduler=scheduler)
    assert len(seen) == 1
    assert isinstance(seen[0], KeyError)
    with pytest.raises(KeyError):
        await Call(broken, name="b")


async def test_a_stream_iterates_subscribes_and_collects(autojump_clock: Clock) -> None:
    closed: list[bool] = []

    async def items() -> AsyncIterator[int]:
        try:
            for i in range(3):
                await trio.sleep(1)
                yield i
        finally:
            closed.append(True)

    async def total(source: AsyncIterator[int]) -> int:
        return sum([i async for i in source])

    stream: Stream[int, int] = Stream(items, total, name="numbers")
    assert [i async for i in stream] == [0, 1, 2]
    assert await stream == 3
    seen: list[int] = []
    async with trio.open_nursery() as nursery:
        done = trio.Event()
        stream.subscribe(seen.append, on_completed=done.set, scheduler=TrioScheduler(nursery))
        await done.wait()
    assert seen == [0, 1, 2]
    assert closed == [True, True, True]
    # Without a trio scheduler the subscriber gets a clear error, not a hang.
    errors: list[Exception] = []
    stream.subscribe(on_error=errors.append)
    assert "TrioScheduler" in str(errors[0])
