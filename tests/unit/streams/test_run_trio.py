"""`run_trio`: trio work from non-trio code (a Jupyter cell runs on asyncio's loop)."""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest
import trio
import trio.lowlevel
import trio.testing

from rxkube.streams import run_trio


async def double(value: int, *, delay: float = 0.0) -> tuple[int, str, float]:
    await trio.sleep(delay)
    return 2 * value, threading.current_thread().name, trio.current_time()


def test_it_returns_the_result_from_a_worker_thread() -> None:
    value, thread, _ = run_trio(double, 21)
    assert value == 42
    assert thread == "run_trio(double)"
    assert thread != threading.current_thread().name
    assert not [t for t in threading.enumerate() if t.name.startswith("run_trio(")]


def test_it_works_where_an_asyncio_loop_runs_as_in_jupyter() -> None:
    async def cell() -> int:
        # A cell runs synchronously on the kernel's asyncio loop: run_trio blocks it, as
        # any cell's code does, and trio runs beside it without touching it.
        value, _, _ = run_trio(double, 5)
        await asyncio.sleep(0)
        return value

    assert asyncio.run(cell()) == 10


def test_its_errors_are_raised_in_the_caller() -> None:
    async def fail() -> None:
        await trio.lowlevel.checkpoint()
        raise LookupError("no such pod")

    with pytest.raises(LookupError, match="no such pod"):
        run_trio(fail)


def test_a_clock_can_be_given() -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    _, _, now = run_trio(lambda: double(1, delay=3600.0), clock=clock)
    assert now == 3600.0  # an hour of virtual time, at once


def test_interrupting_cancels_the_run_and_waits_for_it_to_unwind() -> None:
    unwound: list[str] = []

    async def forever() -> None:
        try:
            # Jupyter's "interrupt kernel": SIGINT to the kernel's main thread (this one).
            main = threading.main_thread().ident
            assert main is not None
            signal.pthread_kill(main, signal.SIGINT)
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(0.01)
            unwound.append("finally")

    with pytest.raises(KeyboardInterrupt):
        run_trio(forever)
    assert unwound == ["finally"]
    assert not [t for t in threading.enumerate() if t.name.startswith("run_trio(")]


async def test_from_inside_trio_it_refuses() -> None:
    with pytest.raises(RuntimeError, match="await"):
        run_trio(double, 1)
