"""`run_trio`: run trio work from code that is not trio, such as a Jupyter cell.

What this module is for: issue 12 item 4. Jupyter runs cells on an asyncio loop, and rxkube's
I/O (the client, watches, the fake API server) runs on trio. `run_trio(async_fn, *args)` runs
`trio.run(async_fn, *args)` in a worker thread of its own and blocks the caller until it ends,
returning its result or raising its exception. A worker thread, because the caller's thread
may be running another event loop (asyncio's, in Jupyter) whose signal wake-up file descriptor
and running-loop state trio must not share.

Each call is one complete trio run: whatever it opens (a client, a fake cluster, a nursery) is
opened and closed inside `async_fn`, and no task outlives the call (structured concurrency:
nothing is left running between cells). Keep results in plain values (lists of events, dicts)
and look at them in later cells.

Interrupting (Jupyter's "interrupt kernel", Ctrl-C) cancels the trio run, waits for it to
unwind (its `finally` blocks and `async with` exits run), and raises `KeyboardInterrupt`.
Calling it from inside trio is a mistake (it would block trio's own thread) and raises
`RuntimeError`: `await async_fn(*args)` there instead.

It may import trio; it does no I/O of its own.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar, TypeVarTuple, Unpack

import trio

__all__ = ["run_trio"]

_T = TypeVar("_T")
_Args = TypeVarTuple("_Args")


class _Run(Generic[_T]):
    """One trio run in a worker thread, and what it left behind."""

    def __init__(self) -> None:
        self.token: trio.lowlevel.TrioToken | None = None
        self.scope: trio.CancelScope | None = None
        self.value: list[_T] = []
        self.error: BaseException | None = None

    def cancel(self) -> None:
        """From the caller's thread: cancel the run (if it has started and not ended)."""
        token, scope = self.token, self.scope
        if token is None or scope is None:
            return
        with contextlib.suppress(trio.RunFinishedError):  # it ended meanwhile
            trio.from_thread.run_sync(scope.cancel, trio_token=token)


def _in_trio() -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def run_trio(
    async_fn: Callable[[Unpack[_Args]], Awaitable[_T]],
    *args: *_Args,
    clock: trio.abc.Clock | None = None,
) -> _T:
    """Run `async_fn(*args)` under `trio.run` in a worker thread; return its result.

    ::

        from rxkube.streams import run_trio

        async def pods_now() -> list[str]:
            async with open_client(load_config()) as client:
                pods = await client.list(PODS, namespace="lab")
            return [pod["metadata"]["name"] for pod in pods.items]

        names = run_trio(pods_now)          # in a Jupyter cell, or any non-trio code

    `clock`: trio's clock for the run (e.g. `trio.testing.MockClock(autojump_threshold=0)`
    to run timers in virtual time). See the module docstring for interrupts and threads.
    """
    if _in_trio():
        raise RuntimeError(
            "run_trio() was called from inside trio, whose thread it would block: "
            "`await` the function there instead"
        )
    run: _Run[_T] = _Run()

    async def main() -> None:
        run.token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as scope:
            run.scope = scope
            run.value.append(await async_fn(*args))

    done = threading.Event()

    def worker() -> None:
        try:
            trio.run(main, clock=clock)
        except BaseException as error:  # handed to the caller's thread, raised there
            run.error = error
        finally:
            done.set()

    thread = threading.Thread(target=worker, name=f"run_trio({_name(async_fn)})", daemon=True)
    try:
        thread.start()
        # An Event, not `thread.join()`: on Python 3.11 a join interrupted by Ctrl-C leaves
        # `is_alive()` False while the thread still runs.
        done.wait()
    except KeyboardInterrupt:
        # Retried: the interrupt may come before the run has its cancel scope.
        while not done.is_set():
            run.cancel()
            done.wait(0.05)
        thread.join()
        raise
    thread.join()
    if run.error is not None:
        raise run.error
    return run.value[0]


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__name__
