"""Bridges between trio and reactivex: async iterables in, receive channels out.

What this module is for: the two crossings every rxkube edge needs. `from_async_iterable` turns
trio code that yields items (a receive channel, an async generator reading a socket) into a cold
Observable; `to_receive_channel` turns an Observable into a trio `ReceiveChannel` that trio code
consumes with `async for`. It may import trio, reactivex and `_scheduler`; no I/O of its own.

Back-pressure. Rx's `on_next` cannot wait, so `to_receive_channel` has a bounded buffer and an
explicit policy for when it is full (`Overflow`): a producer on another thread waits ("block");
a producer on trio's thread cannot wait, so "block" then fails like "error"; or items are
dropped and counted ("drop_newest", "drop_oldest"). The buffer never grows past `max_buffer`.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeAlias, TypeVar

import reactivex
import trio
from reactivex import Observable, abc
from reactivex.disposable import SingleAssignmentDisposable

from rxkube.streams._scheduler import TrioScheduler, as_trio_scheduler

__all__ = [
    "ChannelOverflowError",
    "ChannelStatistics",
    "ObservableReceiveChannel",
    "Overflow",
    "from_async_iterable",
    "to_receive_channel",
]

_T = TypeVar("_T")

Overflow: TypeAlias = Literal["block", "error", "drop_newest", "drop_oldest"]
"""What `to_receive_channel` does with an item that arrives when its buffer is full.

- "block": a producer on another thread waits for room. A producer on trio's thread cannot
  wait (it would deadlock the consumer), so there it behaves as "error".
- "error": the subscription is cancelled and the consumer, after the buffered items, gets a
  `ChannelOverflowError` naming the limit.
- "drop_newest": the new item is dropped; `statistics().dropped` counts it.
- "drop_oldest": the oldest buffered item is dropped for the new one; counted likewise.
"""

_OVERFLOWS: Final = frozenset({"block", "error", "drop_newest", "drop_oldest"})


def from_async_iterable(
    source: AsyncIterable[_T] | Callable[[], AsyncIterable[_T]],
    *,
    scheduler: TrioScheduler | None = None,
) -> Observable[_T]:
    """An Observable emitting what an async iterable yields, pumped by a trio task.

    ::

        send, receive = trio.open_memory_channel[int](10)
        numbers = from_async_iterable(receive)
        numbers.subscribe(print, scheduler=TrioScheduler(nursery))

    Subscribing starts a task in the nursery of the TrioScheduler passed at subscribe time
    (or of `scheduler`, if none is passed); disposing the subscription cancels that task.
    The end of the iteration completes the Observable; an exception raised by the iterator
    goes to `on_error`. An exception raised by the observer itself is not the source's error:
    it propagates into the nursery.

    `source` is an async iterable (consumed once: a receive channel has one reader, so share
    the Observable with `ops.share()` for several subscribers) or a function returning one,
    called per subscription (a cold Observable). An iterator this function creates is closed
    (`aclose`) when the subscription ends; one it is given belongs to the caller.
    """

    def subscribe(
        observer: abc.ObserverBase[_T], given: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        trio_scheduler = as_trio_scheduler(given or scheduler, what="from_async_iterable")

        async def pump() -> None:
            owned = callable(source)
            iterable = source() if callable(source) else source
            iterator = aiter(iterable)
            try:
                while True:
                    try:
                        item = await anext(iterator)
                    except StopAsyncIteration:
                        break
                    except Exception as error:
                        observer.on_error(error)
                        return
                    observer.on_next(item)
                observer.on_completed()
            finally:
                if owned:
                    await _aclose(iterator)

        return trio_scheduler.start_task(pump, name="from_async_iterable")

    return reactivex.create(subscribe)


async def _aclose(iterator: AsyncIterator[object]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with trio.CancelScope(shield=True):
            await aclose()


class ChannelOverflowError(Exception):
    """An Observable outran its receive channel (policy "error", or "block" on trio's thread)."""


@dataclass(frozen=True, slots=True)
class ChannelStatistics:
    """What `ObservableReceiveChannel.statistics()` reports."""

    buffered: int
    max_buffer: int
    overflow: Overflow
    dropped: int
    """Items dropped by the "drop_newest" or "drop_oldest" policy."""
    blocked_producers: int
    """Producer threads waiting for room ("block")."""


_DONE: Final = object()


class ObservableReceiveChannel(trio.abc.ReceiveChannel[_T], Generic[_T]):
    """A trio receive channel fed by an Observable subscription (see `to_receive_channel`).

    `receive()` returns the items in order, then raises `trio.EndOfChannel` when the
    Observable completes, or re-raises its error, or `ChannelOverflowError`. `aclose()` (or
    leaving `async with`) disposes the subscription and releases blocked producers.
    """

    def __init__(self, *, max_buffer: int, overflow: Overflow) -> None:
        if max_buffer < 1:
            raise ValueError(f"max_buffer must be at least 1, got {max_buffer}")
        if overflow not in _OVERFLOWS:
            raise ValueError(f"overflow must be one of {sorted(_OVERFLOWS)}, got {overflow!r}")
        self._max = max_buffer
        self._overflow: Overflow = overflow
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.get_ident()
        # One lock for the buffer: producers may be on other threads; trio's side never
        # blocks on it for longer than a deque operation.
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._buffer: deque[_T] = deque()
        self._end: object = None  # _DONE, or the exception to raise after the buffer
        self._closed = False
        self._dropped = 0
        self._blocked = 0
        self._waiter: trio.Event | None = None
        self._subscription = SingleAssignmentDisposable()

    # -- the consumer's side (trio) -------------------------------------------------------

    async def receive(self) -> _T:
        await trio.lowlevel.checkpoint()
        while True:
            with self._lock:
                if self._closed:
                    raise trio.ClosedResourceError("this channel was closed")
                if self._buffer:
                    item = self._buffer.popleft()
                    if self._blocked:
                        self._room.notify()
                    return item
                end = self._end
                if end is None:
                    waiter = self._waiter = trio.Event()
            if end is _DONE:
                raise trio.EndOfChannel
            if isinstance(end, BaseException):
                raise end
            await waiter.wait()

    async def aclose(self) -> None:
        self.close()
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        """Dispose the subscription and release blocked producers (synchronous `aclose`)."""
        with self._lock:
            self._closed = True
            self._buffer.clear()
            self._room.notify_all()
        self._subscription.dispose()

    def statistics(self) -> ChannelStatistics:
        with self._lock:
            return ChannelStatistics(
                buffered=len(self._buffer),
                max_buffer=self._max,
                overflow=self._overflow,
                dropped=self._dropped,
                blocked_producers=self._blocked,
            )

    # -- the producer's side (any thread) ---------------------------------------------------

    def _wake(self, foreign: bool) -> None:
        # Called with the lock held.
        waiter, self._waiter = self._waiter, None
        if waiter is None:
            return
        if foreign:
            # After the run ended there is nobody left to wake.
            with contextlib.suppress(trio.RunFinishedError):
                self._token.run_sync_soon(waiter.set)
        else:
            waiter.set()

    def _on_next(self, item: _T) -> None:
        foreign = threading.get_ident() != self._thread
        overflowed = False
        with self._lock:
            if self._closed or self._end is not None:
                return
            buffer = self._buffer
            if len(buffer) >= self._max:
                policy = self._overflow
                if policy == "block" and foreign:
                    self._blocked += 1
                    try:
                        while len(buffer) >= self._max and self._is_open():
                            self._room.wait()
                    finally:
                        self._blocked -= 1
                    if not self._is_open():
                        return
                elif policy == "drop_newest":
                    self._dropped += 1
                    return
                elif policy == "drop_oldest":
                    buffer.popleft()
                    self._dropped += 1
                else:
                    where = "on trio's thread, which cannot wait" if policy == "block" else ""
                    self._end = ChannelOverflowError(
                        f"the Observable emitted more than max_buffer={self._max} items the "
                        f"consumer had not received yet (overflow={policy!r}{', ' if where else ''}"
                        f"{where}); raise max_buffer, consume faster, or choose a drop policy"
                    )
                    overflowed = True
            if not overflowed:
                buffer.append(item)
            self._wake(foreign)
        if overflowed:
            self._subscription.dispose()

    def _is_open(self) -> bool:
        # A method, not `self._closed` inline: another thread changes it while we wait.
        return not self._closed

    def _finish(self, end: object) -> None:
        foreign = threading.get_ident() != self._thread
        with self._lock:
            if self._end is None:
                self._end = end
            self._wake(foreign)

    def _on_error(self, error: Exception) -> None:
        self._finish(error)

    def _on_completed(self) -> None:
        self._finish(_DONE)


def to_receive_channel(
    source: Observable[_T],
    *,
    scheduler: TrioScheduler,
    max_buffer: int,
    overflow: Overflow,
) -> ObservableReceiveChannel[_T]:
    """Subscribe to `source` (on `scheduler`) and receive its items from a trio channel.

    ::

        async with to_receive_channel(
            events, scheduler=scheduler, max_buffer=1000, overflow="block"
        ) as channel:
            async for event in channel:
                ...

    Call it from trio's thread. The subscription starts now; closing the channel disposes it.
    `max_buffer` and `overflow` are required: see `Overflow` for what each policy does.
    """
    channel: ObservableReceiveChannel[_T] = ObservableReceiveChannel(
        max_buffer=max_buffer, overflow=overflow
    )
    subscription = source.subscribe(
        channel._on_next, channel._on_error, channel._on_completed, scheduler=scheduler
    )
    channel._subscription.disposable = subscription
    return channel
