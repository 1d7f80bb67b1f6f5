"""TrioScheduler in virtual time: what reactivex's scheduler tests check, plus cancellation,
the exception path, threads, and Rx operators driven by it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import reactivex
import trio
import trio.testing
from reactivex import abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.internal.constants import UTC_ZERO

from rxkube.streams import TrioScheduler, TrioThreadSafeScheduler, as_trio_scheduler

Clock = trio.testing.MockClock


async def test_now_is_trios_clock(autojump_clock: Clock) -> None:
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        assert scheduler.now == UTC_ZERO + timedelta(seconds=trio.current_time())
        before = scheduler.now
        await trio.sleep(2.5)
        assert scheduler.now - before == timedelta(seconds=2.5)
        assert scheduler.current_time() == trio.current_time()


async def test_schedule_runs_soon_in_order_with_state(autojump_clock: Clock) -> None:
    seen: list[tuple[str | None, float]] = []

    def action(scheduler: abc.SchedulerBase, state: str | None) -> None:
        seen.append((state, trio.current_time()))

    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()
        for name in "abc":
            scheduler.schedule(action, name)
        assert seen == []  # never synchronously
    assert seen == [("a", start), ("b", start), ("c", start)]


async def test_schedule_relative_runs_at_the_exact_due_time(autojump_clock: Clock) -> None:
    times: list[float] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()
        scheduler.schedule_relative(0.2, lambda s, _: times.append(trio.current_time()))
        scheduler.schedule_relative(
            timedelta(seconds=0.1), lambda s, _: times.append(trio.current_time())
        )
        scheduler.schedule_relative(-5, lambda s, _: times.append(trio.current_time()))
    assert times == [start, start + 0.1, start + 0.2]


async def test_schedule_absolute_counts_on_the_schedulers_clock(autojump_clock: Clock) -> None:
    times: list[float] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()
        scheduler.schedule_absolute(
            scheduler.now + timedelta(seconds=3), lambda s, _: times.append(trio.current_time())
        )
        scheduler.schedule_absolute(start + 1.0, lambda s, _: times.append(trio.current_time()))
    assert times == [start + 1.0, start + 3.0]


async def test_an_earlier_action_wakes_a_sleeping_driver(autojump_clock: Clock) -> None:
    times: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()
        scheduler.schedule_relative(10, lambda s, _: times.append(("late", trio.current_time())))
        await trio.sleep(1)  # the driver is now asleep until start + 10
        scheduler.schedule_relative(1, lambda s, _: times.append(("early", trio.current_time())))
    assert times == [("early", start + 2), ("late", start + 10)]


async def test_dispose_cancels_and_frees_the_nursery_at_once(autojump_clock: Clock) -> None:
    ran: list[str] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()
        scheduler.schedule_relative(60, lambda s, _: ran.append("late")).dispose()
        scheduler.schedule(lambda s, _: ran.append("now")).dispose()
        await trio.sleep(0.5)
    assert ran == []
    # Nothing pending: the driver woke and left, the nursery did not wait 60 s.
    assert trio.current_time() == start + 0.5
    assert scheduler.statistics().pending == 0
    assert not scheduler.statistics().driver_running


async def test_dispose_after_running_disposes_what_the_action_returned(
    autojump_clock: Clock,
) -> None:
    disposed: list[bool] = []

    def action(scheduler: abc.SchedulerBase, state: object) -> abc.DisposableBase:
        return Disposable(lambda: disposed.append(True))

    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        handle = scheduler.schedule(action)
    assert disposed == []
    handle.dispose()
    handle.dispose()
    assert disposed == [True]


async def test_periodic_ticks_exactly_and_threads_state(autojump_clock: Clock) -> None:
    ticks: list[tuple[int, float]] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()

        def action(count: int | None) -> int:
            count = (count or 0) + 1
            ticks.append((count, trio.current_time() - start))
            return count

        handle = scheduler.schedule_periodic(0.5, action, 0)
        await trio.sleep(1.75)
        handle.dispose()
    assert ticks == [(1, 0.5), (2, 1.0), (3, 1.5)]
    assert trio.current_time() == start + 1.75


async def test_periodic_skips_ticks_missed_by_an_overrunning_action(
    autojump_clock: Clock,
) -> None:
    times: list[float] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()

        def action(state: None) -> None:
            times.append(trio.current_time() - start)
            if len(times) == 1:
                autojump_clock.jump(2.5)  # the first tick takes 2.5 s of the clock
            if len(times) == 3:
                handle.dispose()

        handle = scheduler.schedule_periodic(1.0, action)
    assert times == [1.0, 4.0, 5.0]


async def test_periodic_refuses_a_non_positive_period(autojump_clock: Clock) -> None:
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        with pytest.raises(ValueError, match="positive period"):
            scheduler.schedule_periodic(0, lambda state: state)


async def test_an_exception_in_an_action_propagates_into_the_nursery(
    autojump_clock: Clock,
) -> None:
    other_cancelled = False

    async def other_task() -> None:
        nonlocal other_cancelled
        try:
            await trio.sleep(100)
        except trio.Cancelled:
            other_cancelled = True
            raise

    def boom(scheduler: abc.SchedulerBase, state: object) -> None:
        raise ValueError("boom in a scheduled action")

    start = trio.current_time()
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="boom in a scheduled action")):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(other_task)
            scheduler = TrioScheduler(nursery)
            scheduler.schedule_relative(3, boom)
    assert other_cancelled
    assert trio.current_time() == start + 3


async def test_an_exception_in_a_periodic_action_stops_it_and_propagates(
    autojump_clock: Clock,
) -> None:
    calls = 0

    def action(state: None) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyError("second tick")

    with pytest.RaisesGroup(KeyError):
        async with trio.open_nursery() as nursery:
            TrioScheduler(nursery).schedule_periodic(1, action)
    assert calls == 2


async def test_a_self_rescheduling_action_does_not_starve_other_tasks(
    autojump_clock: Clock,
) -> None:
    rounds = 0

    def again(scheduler: abc.SchedulerBase, state: object) -> None:
        nonlocal rounds
        rounds += 1
        scheduler.schedule(again)

    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        scheduler.schedule(again)
        for _ in range(5):
            await trio.lowlevel.checkpoint()
        assert 1 <= rounds <= 10  # one round per checkpoint, not an endless loop
        nursery.cancel_scope.cancel()


async def test_cancelling_the_nursery_drops_pending_actions(autojump_clock: Clock) -> None:
    ran: list[int] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        scheduler.schedule_relative(5, lambda s, _: ran.append(1))
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert ran == []


async def test_disposed_timers_do_not_pile_up(autojump_clock: Clock) -> None:
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        keep = scheduler.schedule_relative(1000, lambda s, _: None)
        for index in range(5000):
            scheduler.schedule_relative(100 + index, lambda s, _: None).dispose()
        stats = scheduler.statistics()
        assert stats.pending == 1
        assert stats.heap_size < 200
        keep.dispose()


async def test_rx_interval_and_timer_run_in_virtual_time(autojump_clock: Clock) -> None:
    seen: list[tuple[int, float]] = []
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()
        reactivex.interval(2.0).pipe(ops.take(3)).subscribe(
            lambda n: seen.append((n, trio.current_time() - start)),
            on_completed=done.set,
            scheduler=scheduler,
        )
        await done.wait()
    assert seen == [(0, 2.0), (1, 4.0), (2, 6.0)]


async def test_rx_debounce_uses_the_scheduler(autojump_clock: Clock) -> None:
    seen: list[tuple[str, float]] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()
        subject: reactivex.subject.Subject[str] = reactivex.subject.Subject()
        subject.pipe(ops.debounce(1.0, scheduler=scheduler)).subscribe(
            lambda v: seen.append((v, trio.current_time() - start))
        )
        for value in "abc":
            subject.on_next(value)
            await trio.sleep(0.5)
        await trio.sleep(5)
        subject.on_next("d")
    assert seen == [("c", 2.0), ("d", 7.5)]  # d's timer keeps the nursery open until it fires


async def test_the_plain_scheduler_refuses_other_threads(autojump_clock: Clock) -> None:
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        with pytest.raises(RuntimeError, match="use TrioThreadSafeScheduler"):
            await trio.to_thread.run_sync(scheduler.schedule, lambda s, _: None)


async def test_thread_safe_scheduler_runs_foreign_actions_on_trios_thread(
    autojump_clock: Clock,
) -> None:
    trio_thread = threading.get_ident()
    ran: list[tuple[int, float]] = []
    done = trio.Event()

    def action(scheduler: abc.SchedulerBase, state: object) -> None:
        ran.append((threading.get_ident(), trio.current_time()))
        done.set()

    async with trio.open_nursery() as nursery:
        scheduler = TrioThreadSafeScheduler(nursery)
        start = trio.current_time()
        await trio.to_thread.run_sync(scheduler.schedule_relative, 0.5, action)
        await done.wait()
    # The due time was stamped when the other thread asked, on the virtual clock.
    assert ran == [(trio_thread, start + 0.5)]


async def test_thread_safe_dispose_from_another_thread_cancels(autojump_clock: Clock) -> None:
    ran: list[int] = []

    def schedule_and_dispose(scheduler: TrioThreadSafeScheduler) -> None:
        scheduler.schedule_relative(1, lambda s, _: ran.append(1)).dispose()
        scheduler.schedule(lambda s, _: ran.append(2)).dispose()
        scheduler.schedule_periodic(1, lambda state: ran.append(3)).dispose()

    async with trio.open_nursery() as nursery:
        scheduler = TrioThreadSafeScheduler(nursery)
        start = trio.current_time()
        await trio.to_thread.run_sync(schedule_and_dispose, scheduler)
        await trio.sleep(3)
    assert ran == []
    assert trio.current_time() == start + 3


async def test_thread_safe_periodic_and_same_thread_calls(
    mock_clock: trio.testing.MockClock,
) -> None:
    # A manual clock: with autojump, virtual time could leap while the worker thread runs
    # (trio sees every task blocked), which made the expected tick times a race.
    ticks: list[float] = []
    async with trio.open_nursery() as nursery:
        scheduler = TrioThreadSafeScheduler(nursery)
        start = trio.current_time()
        handle = await trio.to_thread.run_sync(
            scheduler.schedule_periodic, 1.0, lambda state: ticks.append(trio.current_time())
        )
        scheduler.schedule_relative(2.5, lambda s, _: handle.dispose())
        for _ in range(8):
            mock_clock.jump(0.5)
            await trio.testing.wait_all_tasks_blocked()
    assert ticks == [start + 1.0, start + 2.0]


async def test_start_task_runs_and_dispose_cancels(autojump_clock: Clock) -> None:
    log: list[str] = []

    async def worker(name: str) -> None:
        try:
            log.append(f"{name} started")
            await trio.sleep(10)
            log.append(f"{name} finished")
        except trio.Cancelled:
            log.append(f"{name} cancelled at {trio.current_time() - start}")
            raise

    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()
        handle = scheduler.start_task(worker, "w")
        await trio.sleep(2)
        handle.dispose()
    assert log == ["w started", "w cancelled at 2.0"]


async def test_start_task_from_another_thread(autojump_clock: Clock) -> None:
    log: list[int] = []

    async def worker() -> None:
        log.append(threading.get_ident())

    async with trio.open_nursery() as nursery:
        scheduler = TrioThreadSafeScheduler(nursery)
        await trio.to_thread.run_sync(scheduler.start_task, worker)
    assert log == [threading.get_ident()]


async def test_start_task_errors_propagate_into_the_nursery(autojump_clock: Clock) -> None:
    async def failing() -> None:
        await trio.sleep(1)
        raise OSError("the source broke")

    with pytest.RaisesGroup(pytest.RaisesExc(OSError, match="the source broke")):
        async with trio.open_nursery() as nursery:
            TrioScheduler(nursery).start_task(failing)


async def test_as_trio_scheduler_explains_what_to_pass(autojump_clock: Clock) -> None:
    with pytest.raises(TypeError, match=r"the pod watch .* needs a TrioScheduler, got no sch"):
        as_trio_scheduler(None, what="the pod watch")
    with pytest.raises(TypeError, match="got ImmediateScheduler"):
        as_trio_scheduler(reactivex.scheduler.ImmediateScheduler(), what="x")
    async with trio.open_nursery() as nursery:
        scheduler = TrioThreadSafeScheduler(nursery)
        assert as_trio_scheduler(scheduler, what="x") is scheduler


async def test_scheduling_on_a_closed_nursery_fails_loudly_and_queues_nothing(
    autojump_clock: Clock,
) -> None:
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.schedule(lambda s, _: None)
    assert scheduler.statistics().pending == 0
