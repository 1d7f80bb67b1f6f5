"""`TrioScheduler`: a reactivex scheduler that runs its actions in a trio nursery.

What this module is for: the live clock of DESIGN section 4 ("Time"). `reactivex` ships no trio
scheduler, so rxkube has one. It may import trio and reactivex; it does no I/O of its own.

How it works. The scheduler is given a nursery it does not own. Scheduled actions wait in one
heap ordered by (due time, order of scheduling); a single driver task, started in the nursery on
demand, sleeps until the earliest due time, runs every action due by then, checkpoints, and
exits when nothing is pending (so an idle scheduler never keeps its nursery open). Equal due
times run in the order they were scheduled, which keeps replays deterministic.

Time. `now` is `trio.current_time()` (through the run's clock) as a UTC datetime counted from
the epoch, so trio's `MockClock` drives it in tests. It is NOT wall-clock time: an absolute due
time must be computed from `scheduler.now` (e.g. `scheduler.now + timedelta(seconds=5)`), not
from `datetime.now()`. A float absolute due time is read as seconds on trio's clock.

Errors. An action runs inside the driver task, like any trio code: if it raises, the exception
propagates into the nursery, which cancels its other tasks and re-raises it (in an
ExceptionGroup) from its `async with` block. That is the right place: the nursery's owner owns
the pipeline. Rx operators route their own errors to `on_error`, so an exception reaches the
nursery only from a bug or from an observer without `on_error` (reactivex's default raises).
After that the scheduler is dead: its nursery is cancelled, and new actions never run.

Cancellation. Disposing what `schedule*` returns cancels the action if it has not run (and
disposes whatever the action returned if it has). Cancelling the nursery cancels everything.

Threads. `TrioScheduler` must only be called from the trio thread (it checks, and says to use
`TrioThreadSafeScheduler` otherwise). `TrioThreadSafeScheduler` may be called from any thread:
calls from other threads are passed to the trio thread through the run's `TrioToken`.

Sources that do I/O (the convention for every cold Observable in rxkube): they take their
nursery from the scheduler passed at subscribe time, `obs.subscribe(observer,
scheduler=trio_scheduler)`, and run their trio code with `scheduler.start_task(fn, ...)`, which
returns a disposable that cancels the task. `as_trio_scheduler(scheduler, what=...)` turns a
missing or foreign scheduler into a clear error.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeVar

import trio
from reactivex import abc, typing
from reactivex.disposable import Disposable, MultipleAssignmentDisposable
from reactivex.internal.constants import UTC_ZERO
from reactivex.scheduler.periodicscheduler import PeriodicScheduler

__all__ = [
    "SchedulerStatistics",
    "TrioScheduler",
    "TrioThreadSafeScheduler",
    "as_trio_scheduler",
]

_TState = TypeVar("_TState")

# Cancelled timers stay in the heap until they come due (disposing is O(1)); like asyncio's
# loop, rebuild the heap when they are more than half of it, so a pattern such as
# "schedule a timeout per event, cancel it on the next" keeps memory bounded.
_MIN_COMPACT: Final = 64


@dataclass(frozen=True, slots=True)
class SchedulerStatistics:
    """What `TrioScheduler.statistics()` reports (trio's naming convention)."""

    pending: int
    """Actions scheduled and neither run nor disposed."""
    heap_size: int
    """Entries in the timer heap, disposed ones included (bounded by compaction)."""
    driver_running: bool
    """Whether the driver task is alive in the nursery."""


class _Item(abc.DisposableBase):
    """One scheduled action; disposing it cancels the action or disposes its result."""

    __slots__ = ("_result", "action", "cancelled", "done", "scheduler", "state")

    def __init__(
        self,
        scheduler: TrioScheduler,
        action: typing.ScheduledAction[Any],
        state: Any,
    ) -> None:
        self.scheduler = scheduler
        self.action: typing.ScheduledAction[Any] | None = action
        self.state = state
        self.cancelled = False
        self.done = False
        self._result: abc.DisposableBase | None = None

    def run(self) -> None:
        action, state = self.action, self.state
        # Drop the references before running: a finished item may be held by a disposable
        # for a long time, and should not keep the action's closure alive.
        self.action = self.state = None
        self.done = True
        assert action is not None
        result = action(self.scheduler, state)
        if isinstance(result, abc.DisposableBase):
            if self.cancelled:
                result.dispose()
            else:
                self._result = result

    def dispose(self) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        if self.done:
            result, self._result = self._result, None
            if result is not None:
                result.dispose()
        else:
            self.action = self.state = None
            self.scheduler._cancelled_one()


class TrioScheduler(PeriodicScheduler):
    """A reactivex scheduler whose actions run in a trio nursery it is given.

    Build it inside `trio.run` (it reads the run's clock)::

        async with trio.open_nursery() as nursery:
            scheduler = TrioScheduler(nursery)
            reactivex.interval(1.0).subscribe(print, scheduler=scheduler)

    See the module docstring for time, errors, cancellation and threads.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        super().__init__()
        self._nursery = nursery
        # The clock object rather than trio.current_time(): readable from any thread, which the
        # thread-safe variant needs to stamp relative due times when they are requested.
        self._clock = trio.lowlevel.current_clock()
        self._thread = threading.get_ident()
        self._heap: list[tuple[float, int, _Item]] = []
        self._order = itertools.count()
        self._pending = 0
        self._cancelled_in_heap = 0
        self._driver_running = False
        self._wake: trio.CancelScope | None = None

    # -- time ------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """trio's clock as a datetime (UTC, counted from the epoch; not wall-clock time)."""
        return UTC_ZERO + timedelta(seconds=self._clock.current_time())

    def current_time(self) -> float:
        """trio's clock in seconds (the same instant as `now`, as a float)."""
        return self._clock.current_time()

    # -- the reactivex scheduler interface ---------------------------------------------------

    def schedule(
        self, action: typing.ScheduledAction[_TState], state: _TState | None = None
    ) -> abc.DisposableBase:
        """Run `action(scheduler, state)` soon, after the actions already due."""
        return self._push(self._clock.current_time(), action, state)

    def schedule_relative(
        self,
        duetime: typing.RelativeTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run `action` after `duetime` (seconds or a timedelta; negative means now)."""
        seconds = max(0.0, self.to_seconds(duetime))
        return self._push(self._clock.current_time() + seconds, action, state)

    def schedule_absolute(
        self,
        duetime: typing.AbsoluteTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run `action` at `duetime`, a time on this scheduler's clock (see `now`)."""
        return self._push(self.to_seconds(duetime), action, state)

    def schedule_periodic(
        self,
        period: typing.RelativeTime,
        action: typing.ScheduledPeriodicAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        """Run `state = action(state)` every `period`, first one `period` from now.

        Ticks are at `start + k * period` exactly (no drift). If an action overruns, the
        missed ticks are skipped rather than run back to back. An exception in the action
        stops the timer and propagates into the nursery.
        """
        seconds = self.to_seconds(period)
        if not seconds > 0:
            raise ValueError(f"a periodic action needs a positive period, got {period!r}")
        start = self._clock.current_time()
        disposable = MultipleAssignmentDisposable()
        holder: list[Any] = [state]
        tick = 1

        def periodic(scheduler: abc.SchedulerBase, _: Any) -> None:
            nonlocal tick
            if disposable.is_disposed:
                return
            try:
                holder[0] = action(holder[0])
            except BaseException:
                disposable.dispose()
                raise
            now = self._clock.current_time()
            tick = max(tick + 1, math.floor((now - start) / seconds) + 1)
            disposable.disposable = self._push(start + tick * seconds, periodic, None)

        disposable.disposable = self._push(start + seconds, periodic, None)
        return disposable

    # -- trio tasks for sources ---------------------------------------------------------------

    def start_task(
        self,
        async_fn: Callable[..., Awaitable[object]],
        *args: object,
        name: str | None = None,
    ) -> abc.DisposableBase:
        """Start `await async_fn(*args)` as a task in the nursery; disposing cancels it.

        This is how a cold Observable that does I/O runs its trio code: its subscribe function
        calls `scheduler.start_task(...)` and returns the disposable. Cancellation is trio's:
        the task stops at its next checkpoint. An exception escaping `async_fn` propagates into
        the nursery (like any trio task): a source should catch its errors and send them to
        `observer.on_error` itself (the bridges do).
        """
        self._check_thread("start_task")
        scope = trio.CancelScope()

        async def run() -> None:
            with scope:
                await async_fn(*args)

        self._nursery.start_soon(run, name=name or getattr(async_fn, "__qualname__", None))
        return Disposable(scope.cancel)

    def statistics(self) -> SchedulerStatistics:
        """How many actions are pending, the heap's size, whether the driver task is alive."""
        return SchedulerStatistics(
            pending=self._pending,
            heap_size=len(self._heap),
            driver_running=self._driver_running,
        )

    # -- internals -----------------------------------------------------------------------------

    def _check_thread(self, what: str) -> None:
        if threading.get_ident() != self._thread:
            raise RuntimeError(
                f"TrioScheduler.{what} was called from a thread other than trio's; "
                "use TrioThreadSafeScheduler for emitters on other threads"
            )

    def _push(
        self, due: float, action: typing.ScheduledAction[Any], state: Any
    ) -> abc.DisposableBase:
        self._check_thread("schedule")
        if not self._driver_running:
            # First, so that a closed nursery raises before anything is queued.
            self._nursery.start_soon(self._drive, name=f"{type(self).__name__} driver")
            self._driver_running = True
        elif self._wake is not None and due < self._wake.deadline:
            self._wake.deadline = due
        item = _Item(self, action, state)
        heapq.heappush(self._heap, (due, next(self._order), item))
        self._pending += 1
        return item

    def _cancelled_one(self) -> None:
        self._pending -= 1
        self._cancelled_in_heap += 1
        heap = self._heap
        if self._cancelled_in_heap > _MIN_COMPACT and self._cancelled_in_heap * 2 > len(heap):
            self._heap = [entry for entry in heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled_in_heap = 0
        if self._pending == 0 and self._wake is not None:
            # Nothing left to wait for: wake the driver so it exits and frees the nursery.
            self._wake.deadline = -math.inf

    async def _drive(self) -> None:
        clock = self._clock
        try:
            while True:
                heap = self._heap
                while heap and heap[0][2].cancelled:
                    heapq.heappop(heap)
                    self._cancelled_in_heap -= 1
                if not heap:
                    return
                due = heap[0][0]
                if due > clock.current_time():
                    with trio.CancelScope(deadline=due) as self._wake:
                        await trio.sleep_forever()
                    self._wake = None
                    continue
                # Run what is due now, but not what those actions schedule for "now": that
                # waits for the next round, after a checkpoint, so a self-rescheduling action
                # cannot starve the other trio tasks.
                now = clock.current_time()
                limit = next(self._order)
                while heap and heap[0][0] <= now and heap[0][1] < limit:
                    _, _, item = heapq.heappop(heap)
                    if item.cancelled:
                        self._cancelled_in_heap -= 1
                        continue
                    self._pending -= 1
                    item.run()
                    heap = self._heap  # an action may have compacted the heap
                await trio.lowlevel.checkpoint()
        finally:
            self._driver_running = False
            self._wake = None


class _ForeignDisposable(abc.DisposableBase):
    """A disposable handed to another thread; the real one is created on the trio thread."""

    __slots__ = ("_inner", "_lock", "_scheduler", "disposed")

    def __init__(self, scheduler: TrioThreadSafeScheduler) -> None:
        self._scheduler = scheduler
        self._lock = threading.Lock()
        self._inner: abc.DisposableBase | None = None
        self.disposed = False

    def set(self, inner: abc.DisposableBase) -> None:
        with self._lock:
            if not self.disposed:
                self._inner = inner
                return
        inner.dispose()

    def dispose(self) -> None:
        with self._lock:
            if self.disposed:
                return
            self.disposed = True
            inner, self._inner = self._inner, None
        if inner is not None:
            self._scheduler._in_trio(inner.dispose, must_run=False)


class TrioThreadSafeScheduler(TrioScheduler):
    """A `TrioScheduler` that may be called from any thread (emitters on other threads).

    Calls from trio's own thread go straight to the heap; calls from other threads are handed
    to the trio thread with `TrioToken.run_sync_soon` (due times are stamped when requested).
    Disposing from another thread stops an action that has not started yet at once; one that
    is running finishes (best effort, as in reactivex's asyncio thread-safe scheduler).
    Scheduling after the trio run has finished raises `trio.RunFinishedError`.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        super().__init__(nursery)
        self._token = trio.lowlevel.current_trio_token()

    def schedule(
        self, action: typing.ScheduledAction[_TState], state: _TState | None = None
    ) -> abc.DisposableBase:
        return self._foreign_push(self._clock.current_time(), action, state)

    def schedule_relative(
        self,
        duetime: typing.RelativeTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        seconds = max(0.0, self.to_seconds(duetime))
        return self._foreign_push(self._clock.current_time() + seconds, action, state)

    def schedule_absolute(
        self,
        duetime: typing.AbsoluteTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        return self._foreign_push(self.to_seconds(duetime), action, state)

    def schedule_periodic(
        self,
        period: typing.RelativeTime,
        action: typing.ScheduledPeriodicAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        if threading.get_ident() == self._thread:
            return super().schedule_periodic(period, action, state)
        holder = _ForeignDisposable(self)

        def start() -> None:
            if not holder.disposed:
                holder.set(TrioScheduler.schedule_periodic(self, period, action, state))

        self._in_trio(start, must_run=True)
        return holder

    def start_task(
        self,
        async_fn: Callable[..., Awaitable[object]],
        *args: object,
        name: str | None = None,
    ) -> abc.DisposableBase:
        if threading.get_ident() == self._thread:
            return super().start_task(async_fn, *args, name=name)
        holder = _ForeignDisposable(self)

        def start() -> None:
            if not holder.disposed:
                holder.set(TrioScheduler.start_task(self, async_fn, *args, name=name))

        self._in_trio(start, must_run=True)
        return holder

    def _foreign_push(
        self, due: float, action: typing.ScheduledAction[Any], state: Any
    ) -> abc.DisposableBase:
        if threading.get_ident() == self._thread:
            return self._push(due, action, state)
        holder = _ForeignDisposable(self)

        def guarded(scheduler: abc.SchedulerBase, state: Any) -> abc.DisposableBase | None:
            # Checked again when the action comes due: a dispose from the other thread may
            # still be on its way to the trio thread.
            if holder.disposed:
                return None
            return action(scheduler, state)

        def push() -> None:
            if not holder.disposed:
                holder.set(self._push(due, guarded, state))

        self._in_trio(push, must_run=True)
        return holder

    def _in_trio(self, fn: Callable[[], None], *, must_run: bool) -> None:
        if threading.get_ident() == self._thread:
            fn()
            return
        try:
            self._token.run_sync_soon(fn)
        except trio.RunFinishedError:
            if must_run:
                raise
            # Disposing after the run ended: nothing is left to cancel.


def as_trio_scheduler(scheduler: abc.SchedulerBase | None, *, what: str) -> TrioScheduler:
    """The `TrioScheduler` a source needs, or a TypeError saying how to pass one.

    Sources that do I/O call this in their subscribe function with the scheduler they were
    given: `as_trio_scheduler(scheduler, what="the pod watch")`.
    """
    if isinstance(scheduler, TrioScheduler):
        return scheduler
    got = "no scheduler" if scheduler is None else type(scheduler).__name__
    raise TypeError(
        f"{what} runs on trio and needs a TrioScheduler, got {got}: subscribe with "
        "`observable.subscribe(observer, scheduler=TrioScheduler(nursery))`"
    )
