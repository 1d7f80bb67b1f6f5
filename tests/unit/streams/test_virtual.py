"""ReplayScheduler: the same actions, in the same order, at the same times as reactivex's
HistoricalScheduler (compared on random programs), plus its own edges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import abc
from reactivex import operators as ops
from reactivex.disposable import Disposable
from reactivex.internal import ArgumentOutOfRangeException
from reactivex.internal.constants import UTC_ZERO
from reactivex.scheduler import HistoricalScheduler

from rxkube.streams import ReplayScheduler

START = UTC_ZERO + timedelta(days=3)


@dataclass(frozen=True)
class Job:
    """Schedule an action `delay` s from now (or at `now + delay` absolute); when it runs, it
    logs and schedules its children; `cancel` disposes it before it can run."""

    delay: float
    absolute: bool
    cancel: bool
    children: tuple[Job, ...]


delays = st.sampled_from([-1.0, 0.0, 0.0, 0.25, 1.0, 2.5])
jobs = st.recursive(
    st.builds(Job, delays, st.booleans(), st.booleans(), st.just(())),
    lambda inner: st.builds(
        Job, delays, st.booleans(), st.booleans(), st.lists(inner, max_size=3).map(tuple)
    ),
    max_leaves=12,
)


def run_program(
    scheduler: HistoricalScheduler, program: list[Job], steps: list[float]
) -> list[tuple[str, datetime]]:
    log: list[tuple[str, datetime]] = []

    def submit(job: Job, label: str) -> None:
        def action(s: abc.SchedulerBase, state: str | None) -> None:
            log.append((str(state), s.now))
            for i, child in enumerate(job.children):
                submit(child, f"{label}.{i}")

        if job.absolute:
            due = scheduler.now + timedelta(seconds=job.delay)
            handle = scheduler.schedule_absolute(due, action, label)
        elif job.delay == 0.0:
            handle = scheduler.schedule(action, label)
        else:
            handle = scheduler.schedule_relative(job.delay, action, label)
        if job.cancel:
            handle.dispose()

    for i, job in enumerate(program):
        submit(job, str(i))
    for step in steps:
        scheduler.advance_by(timedelta(seconds=step))
        log.append(("advanced", scheduler.now))
    return log


@settings(max_examples=60, deadline=None)
@given(st.lists(jobs, max_size=6), st.lists(st.sampled_from([0.0, 0.25, 1.0, 3.0]), max_size=4))
def test_runs_like_a_historical_scheduler(program: list[Job], steps: list[float]) -> None:
    expected = run_program(HistoricalScheduler(START), program, steps)
    assert run_program(ReplayScheduler(START), program, steps) == expected


def test_equal_times_run_in_the_order_scheduled_and_the_past_runs_first() -> None:
    scheduler = ReplayScheduler(START)
    seen: list[str | None] = []
    scheduler.advance_to(START + timedelta(seconds=10))
    for name, delay in [("a", 0.0), ("b", 5.0), ("c", 0.0), ("late", -3.0), ("d", 5.0)]:
        scheduler.schedule_relative(delay, lambda s, n: seen.append(n), name)
    scheduler.advance_by(timedelta(seconds=5))
    assert seen == ["late", "a", "c", "b", "d"]
    assert scheduler.now == START + timedelta(seconds=15)


def test_advance_to_the_past_is_an_error_and_to_now_runs_nothing() -> None:
    scheduler = ReplayScheduler(START)
    seen: list[str] = []
    scheduler.schedule(lambda s, _: seen.append("now"))
    scheduler.advance_to(START)  # as HistoricalScheduler: advancing to now is a no-op
    assert seen == []
    with pytest.raises(ArgumentOutOfRangeException):
        scheduler.advance_to(START - timedelta(seconds=1))
    scheduler.advance_by(timedelta(seconds=1))
    assert seen == ["now"]


def test_disposing_a_run_action_disposes_what_it_returned() -> None:
    scheduler = ReplayScheduler(START)
    disposed: list[str] = []
    handle = scheduler.schedule(lambda s, _: Disposable(lambda: disposed.append("result")))
    assert not handle.is_disposed  # type: ignore[attr-defined]
    scheduler.advance_by(1.0)
    assert disposed == []
    handle.dispose()
    handle.dispose()
    assert disposed == ["result"]


def test_stop_from_an_action_ends_start_and_start_runs_everything_else() -> None:
    scheduler = ReplayScheduler(START)
    seen: list[float] = []

    def log(s: abc.SchedulerBase, _: object) -> None:
        seen.append((s.now - START).total_seconds())

    scheduler.schedule_relative(1.0, log)
    scheduler.schedule_relative(2.0, lambda s, _: scheduler.stop())
    scheduler.schedule_relative(3.0, log)
    scheduler.start()
    assert seen == [1.0]
    assert scheduler.now == START + timedelta(seconds=2)
    scheduler.start()
    assert seen == [1.0, 3.0]


def test_an_action_that_raises_leaves_the_scheduler_usable() -> None:
    scheduler = ReplayScheduler(START)

    def boom(s: abc.SchedulerBase, _: object) -> None:
        raise RuntimeError("boom")

    scheduler.schedule_relative(1.0, boom)
    with pytest.raises(RuntimeError):
        scheduler.advance_by(2.0)
    seen: list[str] = []
    scheduler.schedule(lambda s, _: seen.append("after"))
    scheduler.advance_by(1.0)
    assert seen == ["after"]


def test_rx_time_operators_see_exact_virtual_times() -> None:
    scheduler = ReplayScheduler(START)
    seen: list[tuple[float, int]] = []
    reactivex.interval(1.5).pipe(ops.take(3), ops.delay(0.5)).subscribe(
        lambda v: seen.append(((scheduler.now - START).total_seconds(), v)), scheduler=scheduler
    )
    scheduler.advance_by(10.0)
    assert seen == [(2.0, 0), (3.5, 1), (5.0, 2)]
