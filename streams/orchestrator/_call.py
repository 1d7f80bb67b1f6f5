"""`Call` and `Stream`: cold Observables that trio code can also simply `await`.

What this module is for: DESIGN section 4 says reads and waits are cold Observables
(subscribing starts the request, disposing cancels it) and that async convenience methods call
the same code. Both are one object here: a `Call[T]` wraps an async function returning one
value, a `Stream[T, R]` an async generator yielding many.

- As Observables they follow rxkube's convention for I/O sources: subscribe with a
  `TrioScheduler` (`obs.subscribe(observer, scheduler=TrioScheduler(nursery))`), which runs the
  request as a task in that scheduler's nursery; disposing the subscription cancels the task
  and closes its connection. A `Call` emits its one value, then completes; a `Stream` emits each
  item as it is read (the next read starts only once `on_next` has returned, so a slow observer
  slows the reads, never a buffer); errors go to `on_error`.
- In trio code, `await call` runs the same function in the caller's task (no scheduler, no
  nursery); `async for item in stream` reads the items in the caller's task; `await stream`
  collects them into the stream's result (a list of log lines, an exec's `ExecResult`).

Each subscription, await or iteration starts a new request: they are cold.
It may import reactivex, trio and `rxkube.streams`' bridge and scheduler modules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc

from rxkube.streams._bridge import from_async_iterable
from rxkube.streams._scheduler import as_trio_scheduler

__all__ = ["Call", "Stream"]

T = TypeVar("T")
R = TypeVar("R")


class Call(Observable[T], Generic[T]):
    """One request: `await` it for its value, or subscribe to it (with a `TrioScheduler`).

    ::

        pod = await cluster.pods.get("web-0")
        cluster.pods.get("web-0").subscribe(print, scheduler=TrioScheduler(nursery))
    """

    def __init__(self, run: Callable[[], Awaitable[T]], *, name: str) -> None:
        self._run = run
        self._name = name

        def subscribe(
            observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            trio_scheduler = as_trio_scheduler(scheduler, what=name)

            async def task() -> None:
                try:
                    value = await run()
                except Exception as error:
                    observer.on_error(error)
                    return
                observer.on_next(value)
                observer.on_completed()

            return trio_scheduler.start_task(task, name=name)

        super().__init__(subscribe)

    def __await__(self) -> Generator[Any, None, T]:
        return self._run().__await__()

    def __repr__(self) -> str:
        return f"<Call {self._name}>"


class Stream(Observable[T], Generic[T, R]):
    """Many items read from one request: subscribe, `async for`, or `await` the result.

    ::

        async for line in cluster.pods.logs("web-0", follow=True):
            ...
        lines = await cluster.pods.logs("web-0", tail=10)       # list[str]
        cluster.pods.logs("web-0").subscribe(print, scheduler=TrioScheduler(nursery))
    """

    def __init__(
        self,
        open_items: Callable[[], AsyncIterator[T]],
        collect: Callable[[AsyncIterator[T]], Awaitable[R]],
        *,
        name: str,
    ) -> None:
        self._open = open_items
        self._collect = collect
        self._name = name
        source = from_async_iterable(open_items)

        def subscribe(
            observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            return source.subscribe(observer, scheduler=as_trio_scheduler(scheduler, what=name))

        super().__init__(subscribe)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._open()

    # Awaiting a Stream gives its collected result (not reactivex's "last item over asyncio",
    # which cannot run on trio anyway): the one behaviour a trio caller wants.
    def __await__(self) -> Generator[Any, None, R]:  # type: ignore[override]
        return self._gather().__await__()

    async def _gather(self) -> R:
        iterator = self._open()
        try:
            return await self._collect(iterator)
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    def __repr__(self) -> str:
        return f"<Stream {self._name}>"
