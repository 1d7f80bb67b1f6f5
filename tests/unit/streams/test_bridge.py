"""Bridges: async iterables into Observables, Observables into bounded receive channels."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import pytest
import reactivex
import trio
import trio.testing
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.subject import Subject

from rxkube.streams import (
    ChannelOverflowError,
    ObservableReceiveChannel,
    TrioScheduler,
    TrioThreadSafeScheduler,
    from_async_iterable,
    to_receive_channel,
)

Clock = trio.testing.MockClock


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[object, float]] = []
        self.error: Exception | None = None
        self.completed_at: float | None = None
        self.done = trio.Event()

    def on_next(self, item: object) -> None:
        self.items.append((item, trio.current_time()))

    def on_error(self, error: Exception) -> None:
        self.error = error
        self.done.set()

    def on_completed(self) -> None:
        self.completed_at = trio.current_time()
        self.done.set()

    def subscribe(self, source: Observable[object], scheduler: TrioScheduler) -> object:
        return source.subscribe(self.on_next, self.on_error, self.on_completed, scheduler=scheduler)


async def test_a_receive_channel_becomes_an_observable(autojump_clock: Clock) -> None:
    send, receive = trio.open_memory_channel[int](0)
    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()
        recorder.subscribe(from_async_iterable(receive), scheduler)
        async with send:
            for value in (1, 2, 3):
                await trio.sleep(1)
                await send.send(value)
        await recorder.done.wait()
    assert recorder.items == [(1, start + 1), (2, start + 2), (3, start + 3)]
    assert recorder.completed_at == start + 3


async def test_the_scheduler_can_be_given_to_the_bridge(autojump_clock: Clock) -> None:
    async def numbers() -> AsyncIterator[int]:
        for value in range(3):
            yield value

    seen: list[int] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        from_async_iterable(numbers, scheduler=scheduler).subscribe(seen.append)
    assert seen == [0, 1, 2]


async def test_an_iterator_error_goes_to_on_error(autojump_clock: Clock) -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        await trio.sleep(1)
        raise ConnectionResetError("peer went away")

    recorder = Recorder()
    async with trio.open_nursery() as nursery:
        recorder.subscribe(from_async_iterable(failing), TrioScheduler(nursery))
    assert [item for item, _ in recorder.items] == [1]
    assert isinstance(recorder.error, ConnectionResetError)


async def test_disposing_cancels_the_task_and_closes_an_owned_iterator(
    autojump_clock: Clock,
) -> None:
    log: list[str] = []

    async def ticking() -> AsyncIterator[int]:
        try:
            for value in range(100):
                await trio.sleep(1)
                yield value
        finally:
            log.append(f"closed at {trio.current_time() - start}")

    seen: list[int] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()
        subscription = from_async_iterable(ticking).subscribe(seen.append, scheduler=scheduler)
        await trio.sleep(3.5)
        subscription.dispose()
    assert seen == [0, 1, 2]
    assert log == ["closed at 3.5"]
    assert trio.current_time() == start + 3.5


async def test_each_subscription_calls_the_factory_again(autojump_clock: Clock) -> None:
    calls = 0

    async def numbers() -> AsyncIterator[int]:
        nonlocal calls
        calls += 1
        yield calls

    seen: list[int] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        cold = from_async_iterable(numbers)
        cold.subscribe(seen.append, scheduler=scheduler)
        cold.subscribe(seen.append, scheduler=scheduler)
    assert sorted(seen) == [1, 2]


async def test_without_a_trio_scheduler_the_subscriber_gets_a_clear_error() -> None:
    _, receive = trio.open_memory_channel[int](0)
    errors: list[Exception] = []
    from_async_iterable(receive).subscribe(on_error=errors.append)
    assert len(errors) == 1
    assert "needs a TrioScheduler, got no scheduler" in str(errors[0])


async def test_an_observer_that_raises_crashes_the_nursery_not_the_stream(
    autojump_clock: Clock,
) -> None:
    async def numbers() -> AsyncIterator[int]:
        yield 1

    def bad_observer(value: int) -> None:
        raise ZeroDivisionError("observer bug")

    errors: list[Exception] = []
    with pytest.RaisesGroup(ZeroDivisionError):
        async with trio.open_nursery() as nursery:
            from_async_iterable(numbers).subscribe(
                bad_observer, errors.append, scheduler=TrioScheduler(nursery)
            )
    assert errors == []


# -- Observable -> receive channel ---------------------------------------------------------


async def test_channel_receives_in_order_then_ends(autojump_clock: Clock) -> None:
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        source = reactivex.interval(1.0).pipe(ops.take(4))
        start = trio.current_time()
        received: list[tuple[int, float]] = []
        async with to_receive_channel(
            source, scheduler=scheduler, max_buffer=10, overflow="error"
        ) as channel:
            async for value in channel:
                received.append((value, trio.current_time() - start))
    assert received == [(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)]


async def test_channel_reraises_the_observables_error_after_the_items(
    autojump_clock: Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        source: Observable[int] = reactivex.concat(
            reactivex.of(1, 2), reactivex.throw(LookupError("upstream failed"))
        )
        channel = to_receive_channel(
            source, scheduler=TrioScheduler(nursery), max_buffer=5, overflow="error"
        )
        assert await channel.receive() == 1
        assert await channel.receive() == 2
        with pytest.raises(LookupError, match="upstream failed"):
            await channel.receive()
        await channel.aclose()


async def test_drop_newest_and_drop_oldest_count_what_they_drop(autojump_clock: Clock) -> None:
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        subject: Subject[int] = Subject()
        newest = to_receive_channel(
            subject, scheduler=scheduler, max_buffer=3, overflow="drop_newest"
        )
        oldest = to_receive_channel(
            subject, scheduler=scheduler, max_buffer=3, overflow="drop_oldest"
        )
        for value in range(10):
            subject.on_next(value)
        subject.on_completed()
        assert [value async for value in newest] == [0, 1, 2]
        assert newest.statistics().dropped == 7
        assert oldest.statistics().buffered == 3
        assert [value async for value in oldest] == [7, 8, 9]
        assert oldest.statistics().dropped == 7


async def test_error_policy_delivers_the_buffer_then_fails_and_unsubscribes(
    autojump_clock: Clock,
) -> None:
    disposed: list[bool] = []
    subject: Subject[int] = Subject()

    def subscribe(observer: abc.ObserverBase[int], scheduler: object = None) -> Disposable:
        inner = subject.subscribe(observer)

        def dispose() -> None:
            disposed.append(True)
            inner.dispose()

        return Disposable(dispose)

    async with trio.open_nursery() as nursery:
        channel = to_receive_channel(
            reactivex.create(subscribe),
            scheduler=TrioScheduler(nursery),
            max_buffer=2,
            overflow="error",
        )
        for value in range(5):
            subject.on_next(value)
        assert disposed == [True]
        assert await channel.receive() == 0
        assert await channel.receive() == 1
        with pytest.raises(ChannelOverflowError, match=r"max_buffer=2 .*overflow='error'"):
            await channel.receive()


async def test_block_on_trios_thread_cannot_wait_so_it_fails_loudly(
    autojump_clock: Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        subject: Subject[int] = Subject()
        channel = to_receive_channel(
            subject, scheduler=TrioScheduler(nursery), max_buffer=1, overflow="block"
        )
        subject.on_next(0)
        subject.on_next(1)
        assert await channel.receive() == 0
        with pytest.raises(ChannelOverflowError, match="on trio's thread, which cannot wait"):
            await channel.receive()


async def _until_a_producer_blocks(channel: ObservableReceiveChannel[int]) -> None:
    # The producer is a real thread: its state can only be observed, so poll, boundedly.
    for _ in range(5000):
        if channel.statistics().blocked_producers:
            return
        await trio.sleep(0.001)
    raise AssertionError("the producer thread never blocked on the full buffer")


async def test_block_makes_a_producer_thread_wait_and_loses_nothing() -> None:
    subject: Subject[int] = Subject()
    most_blocked = 0

    def produce() -> None:
        for value in range(200):
            subject.on_next(value)
        subject.on_completed()

    async with trio.open_nursery() as nursery:
        scheduler = TrioThreadSafeScheduler(nursery)
        channel = to_receive_channel(subject, scheduler=scheduler, max_buffer=4, overflow="block")
        thread = threading.Thread(target=produce)
        thread.start()
        received = []
        async with channel:
            async for value in channel:
                received.append(value)
                stats = channel.statistics()
                assert stats.buffered <= 4
                most_blocked = max(most_blocked, stats.blocked_producers)
                if value % 50 == 0:
                    # Give the producer time to fill the buffer and block on it.
                    if value < 196:
                        await _until_a_producer_blocks(channel)
                    most_blocked = max(most_blocked, channel.statistics().blocked_producers)
        await trio.to_thread.run_sync(thread.join)
    assert received == list(range(200))
    assert most_blocked == 1


async def test_closing_the_channel_releases_a_blocked_producer() -> None:
    subject: Subject[int] = Subject()
    finished = threading.Event()

    def produce() -> None:
        for value in range(10):
            subject.on_next(value)
        finished.set()

    async with trio.open_nursery() as nursery:
        channel = to_receive_channel(
            subject, scheduler=TrioThreadSafeScheduler(nursery), max_buffer=2, overflow="block"
        )
        thread = threading.Thread(target=produce)
        thread.start()
        await _until_a_producer_blocks(channel)
        await channel.aclose()
        await trio.to_thread.run_sync(thread.join)
    assert finished.is_set()
    assert not subject.observers  # the subscription was disposed
    with pytest.raises(trio.ClosedResourceError):
        await channel.receive()


async def test_a_round_trip_through_both_bridges(autojump_clock: Clock) -> None:
    send, receive = trio.open_memory_channel[str](0)
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        upper = from_async_iterable(receive).pipe(ops.map(str.upper))
        async with to_receive_channel(
            upper, scheduler=scheduler, max_buffer=8, overflow="error"
        ) as out:
            async with send:
                for word in ("watch", "store", "replay"):
                    await send.send(word)
            assert [word async for word in out] == ["WATCH", "STORE", "REPLAY"]


async def test_bad_channel_settings_are_refused(autojump_clock: Clock) -> None:
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        with pytest.raises(ValueError, match="max_buffer must be at least 1"):
            to_receive_channel(
                reactivex.empty(), scheduler=scheduler, max_buffer=0, overflow="error"
            )
        with pytest.raises(ValueError, match="overflow must be one of"):
            to_receive_channel(
                reactivex.empty(),
                scheduler=scheduler,
                max_buffer=1,
                overflow="grow",  # type: ignore[arg-type]
            )
