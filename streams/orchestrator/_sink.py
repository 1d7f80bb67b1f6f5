"""`Sink`: commands in, outcomes out, applied one at a time in order (DESIGN section 4).

What this module is for: the machinery every orchestrator part shares. A sink accepts commands
three ways, puts them all in one first-in-first-out queue, and applies them one at a time in
the order they arrived:

- as an **Observer** (`commands.subscribe(cluster.pods)`): `on_next` cannot wait, so it queues
  the command and, if none is running, starts a task that drains the queue (in the nursery of
  the sink's `TrioScheduler`; the task exits when the queue is empty, so an idle sink keeps no
  task alive);
- from an **Observable** (`cluster.pods.apply(commands)`, itself a cold Observable of the
  outcomes of those commands): the commands cross into trio through a bounded receive channel
  and are queued one at a time, each once the previous one has been applied;
- from trio code (`await cluster.pods.create(...)`): queued, then applied by the awaiting task
  itself when nobody else is draining the queue (so it needs no scheduler).

Whoever drains applies every queued command in order, its own and the others'. Every outcome
(`Applied` with the object the API returned, or `Failed` with the error, which for API errors
carries the server's `Status` and reason) is published on the hot `outcomes` Observable,
whichever way the command came.

Back-pressure (Rx's `on_next` cannot wait, so nothing here grows without bound):
- Observer: at most `max_pending` commands sent with `on_next` wait in the queue. One more is
  refused: its `Failed` outcome (error `SinkOverflow`) is published and `on_next` raises
  `SinkOverflow` to the producer. Producers that can burst should emit desired state and
  reconcile (DESIGN), or use `apply`.
- `apply(observable)`: at most `max_pending` commands wait in the channel. A producer on another
  thread (a `TrioThreadSafeScheduler`) waits for room; a producer on trio's thread cannot wait,
  so outrunning the bound ends that `apply` with `ChannelOverflowError` on its `on_error`.
- `apply(async_iterable)` (e.g. a trio receive channel): true back-pressure; the next command is
  pulled only once the previous one is applied.
- Awaiting callers: one queued command per waiting task.

Cancellation: a command that has started is applied to the end (shielded; the client's request
timeout bounds it), so a write the server may have done never goes without an outcome. A command
that has not started is dropped when the task waiting for it is cancelled (an awaiting caller, or
an `apply` whose subscription is disposed); commands sent with `on_next` stay queued until a
drain runs again (the next `on_next`, `apply` or await).

It may import reactivex, trio and `rxkube.streams`' bridge, scheduler and error modules.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeAlias, TypeVar

import reactivex
import trio
from reactivex import Observable, abc
from reactivex.subject import Subject

from rxkube.streams._bridge import ObservableReceiveChannel, to_receive_channel
from rxkube.streams._errors import ApiError
from rxkube.streams._events import KubeObject
from rxkube.streams._scheduler import TrioScheduler, as_trio_scheduler
from rxkube.streams.orchestrator._call import Call
from rxkube.streams.orchestrator._commands import Command
from rxkube.streams.orchestrator._errors import SinkOverflow

__all__ = ["Applied", "Failed", "Outcome", "Sink", "SinkStatistics"]

log: Final = logging.getLogger("rxkube.streams.orchestrator")

C = TypeVar("C", bound=Command)

DEFAULT_MAX_PENDING: Final = 1000


@dataclass(frozen=True, slots=True)
class Applied:
    """The command took effect; `object` is what the API returned for it (the created or
    updated object, the deleted one, or the deleted list), None when there was nothing."""

    sink: str
    command: Command
    object: KubeObject | None

    @property
    def ok(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Failed:
    """The command did not take effect (or not wholly, for bulk commands); `error` says why.

    `reason` is the API's reason (`AlreadyExists`, `NotFound`, `Invalid`, `Conflict`,
    `Forbidden`, ...) for API errors, else the error's class name (`SinkOverflow`, ...).
    """

    sink: str
    command: Command
    error: Exception

    @property
    def ok(self) -> bool:
        return False

    @property
    def reason(self) -> str:
        if isinstance(self.error, ApiError):
            return self.error.reason or type(self.error).__name__
        return type(self.error).__name__


Outcome: TypeAlias = Applied | Failed


@dataclass(frozen=True, slots=True)
class SinkStatistics:
    """What `Sink.statistics()` reports (trio's naming convention).

    - `queued`: commands waiting in the Observer queue; `max_pending`: its bound.
    - `applying`: a command is being applied now.
    - `applied`, `failed`: outcomes so far; `overflows`: commands refused by a full queue.
    - `source_errors`: errors received from command sources (Observer `on_error`).
    """

    queued: int
    max_pending: int
    applying: bool
    applied: int
    failed: int
    overflows: int
    source_errors: int


class _Entry(Generic[C]):
    """One queued command and, once applied, its outcome."""

    __slots__ = ("command", "outcome", "queued", "started")

    def __init__(self, command: C, *, queued: bool) -> None:
        self.command = command
        self.queued = queued  # sent with on_next: counts against max_pending
        self.started = False
        self.outcome: Outcome | None = None


class Sink(abc.ObserverBase[C], Generic[C]):
    """Base of the orchestrator parts that take commands. Subclasses set `name` and
    `commands` (the command classes they accept) and implement `_execute`."""

    name: str = "sink"
    commands: tuple[type[Command], ...] = ()

    def __init__(
        self,
        *,
        scheduler: TrioScheduler | None = None,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.scheduler = scheduler
        self.max_pending = max_pending
        self._queue: deque[_Entry[C]] = deque()
        self._observer_pending = 0
        self._draining = False
        self._drain_task = False
        self._applying = False
        self._changed = trio.lowlevel.ParkingLot()
        self._subject: Subject[Outcome] = Subject()
        self._applied = 0
        self._failed = 0
        self._overflows = 0
        self._source_errors = 0

    # -- what subclasses implement -------------------------------------------------------------

    async def _execute(self, command: C) -> KubeObject | None:
        """Apply one command against the API; return what the API returned, or raise."""
        raise NotImplementedError

    # -- outcomes ------------------------------------------------------------------------------

    @property
    def outcomes(self) -> Observable[Outcome]:
        """Every outcome of every command this sink applies (hot: subscribe before sending)."""
        return self._subject

    def statistics(self) -> SinkStatistics:
        return SinkStatistics(
            queued=len(self._queue) - (1 if self._applying else 0),
            max_pending=self.max_pending,
            applying=self._applying,
            applied=self._applied,
            failed=self._failed,
            overflows=self._overflows,
            source_errors=self._source_errors,
        )

    def _publish(self, outcome: Outcome) -> None:
        if outcome.ok:
            self._applied += 1
        else:
            self._failed += 1
            log.info("%s: %s failed: %s", self.name, type(outcome.command).__name__, outcome)
        self._subject.on_next(outcome)

    def _check(self, command: object) -> C:
        if not isinstance(command, self.commands):
            accepted = ", ".join(c.__name__ for c in self.commands)
            raise TypeError(
                f"{self.name} does not accept {type(command).__name__} (it takes {accepted}); "
                "send it to the part of the Cluster that handles it, or use cluster.apply()"
            )
        return command  # type: ignore[return-value]

    # -- the queue -----------------------------------------------------------------------------

    async def _apply_one(self, command: C) -> Outcome:
        self._applying = True
        try:
            result = await self._execute(command)
        except Exception as error:
            outcome: Outcome = Failed(self.name, command, error)
        else:
            outcome = Applied(self.name, command, result)
        finally:
            self._applying = False
        self._publish(outcome)
        return outcome

    async def _drain(self) -> None:
        """Apply queued commands in order until the queue is empty (one drainer at a time)."""
        self._draining = True
        try:
            while self._queue:
                entry = self._queue[0]
                entry.started = True
                with trio.CancelScope(shield=True):
                    outcome = await self._apply_one(entry.command)
                self._queue.popleft()
                if entry.queued:
                    self._observer_pending -= 1
                entry.outcome = outcome
                self._changed.unpark_all()
                # A cancelled drainer stops between commands; a waiting task takes over.
                await trio.lowlevel.checkpoint_if_cancelled()
        finally:
            self._draining = False
            self._changed.unpark_all()

    async def _submit(self, command: C) -> Outcome:
        """Queue `command` and return its outcome once it has been applied."""
        entry = _Entry(command, queued=False)
        self._queue.append(entry)
        try:
            while entry.outcome is None:
                if self._draining:
                    await self._changed.park()
                else:
                    await self._drain()
        except BaseException:
            if not entry.started:
                self._queue.remove(entry)
                self._changed.unpark_all()
            raise
        return entry.outcome

    async def _drain_queued(self) -> None:
        # The task on_next starts: runs until the queue is empty.
        try:
            while self._queue:
                if self._draining:
                    await self._changed.park()
                else:
                    await self._drain()
        finally:
            self._drain_task = False

    async def wait_idle(self) -> None:
        """Return once no command is queued or being applied."""
        while self._queue or self._draining:
            await self._changed.park()

    # -- trio callers ----------------------------------------------------------------------------

    def _call(self, command: C, *, what: str) -> Call[KubeObject | None]:
        """The command as an awaitable cold `Call`: the result, or the error raised."""

        async def run() -> KubeObject | None:
            outcome = await self._submit(self._check(command))
            if isinstance(outcome, Failed):
                raise outcome.error
            return outcome.object

        return Call(run, name=f"{self.name}.{what}")

    # -- Observer ----------------------------------------------------------------------------------

    def on_next(self, value: C) -> None:
        """Queue a command (see the module docstring for the bound and its overflow error)."""
        try:
            command = self._check(value)
        except TypeError as error:
            self._publish(Failed(self.name, value, error))
            raise
        if not trio.lowlevel.in_trio_run():
            raise RuntimeError(
                f"{self.name}.on_next was called outside trio's thread; a producer on another "
                "thread should use apply(), whose channel makes it wait for room"
            )
        scheduler = self.scheduler
        if scheduler is None:
            raise RuntimeError(
                f"{self.name} has no scheduler to apply commands sent with on_next: open the "
                "cluster with `async with open_cluster(client) as cluster` or pass "
                "scheduler=TrioScheduler(nursery)"
            )
        if self._observer_pending >= self.max_pending:
            self._overflows += 1
            overflow = SinkOverflow(
                f"{self.name} already has max_pending={self.max_pending} commands queued; "
                f"{type(value).__name__} was refused. Send desired state and reconcile, use "
                "apply() with an async iterable for back-pressure, or raise max_pending"
            )
            self._publish(Failed(self.name, command, overflow))
            raise overflow
        self._queue.append(_Entry(command, queued=True))
        self._observer_pending += 1
        if not self._drain_task:
            self._drain_task = True
            scheduler.start_task(self._drain_queued, name=f"{self.name} sink")

    def on_error(self, error: Exception) -> None:
        """A command source failed: logged and counted; the sink goes on serving others."""
        self._source_errors += 1
        log.error("%s: a command source failed: %r", self.name, error)

    def on_completed(self) -> None:
        """A command source ended; the sink goes on serving others."""

    # -- Observable sources ----------------------------------------------------------------------

    def apply(self, commands: Observable[C] | AsyncIterable[C]) -> Observable[Outcome]:
        """Apply every command `commands` emits, in order; a cold Observable of their outcomes.

        Subscribe with a `TrioScheduler` (or rely on the sink's). It completes after the last
        command's outcome once `commands` completes; an error of `commands` is passed on. The
        outcomes are published on `outcomes` too. Disposing drops the commands not started.

            cluster.pods.apply(reactivex.of(CreatePod(...), DeletePod("old"))).subscribe(
                print, scheduler=scheduler)
        """

        def subscribe(
            observer: abc.ObserverBase[Outcome], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            trio_scheduler = as_trio_scheduler(
                scheduler or self.scheduler, what=f"{self.name}.apply"
            )
            return trio_scheduler.start_task(
                pump_commands,
                commands,
                observer,
                trio_scheduler,
                self.max_pending,
                self._route,
                name=f"{self.name}.apply",
            )

        return reactivex.create(subscribe)

    async def _route(self, command: object) -> Outcome:
        try:
            checked = self._check(command)
        except TypeError as error:
            outcome = Failed(self.name, command, error)  # type: ignore[arg-type]
            self._publish(outcome)
            return outcome
        return await self._submit(checked)


async def pump_commands(
    commands: Observable[C] | AsyncIterable[C],
    observer: abc.ObserverBase[Outcome],
    scheduler: TrioScheduler,
    max_pending: int,
    route: Callable[[object], Awaitable[Outcome]],
) -> None:
    """Feed each command of `commands` to `route` in order and pass each outcome on (shared by
    `Sink.apply` and `Cluster.apply`). An error of the source goes to `on_error`."""
    bridge: ObservableReceiveChannel[C] | None = None
    if isinstance(commands, Observable):
        bridge = to_receive_channel(
            commands, scheduler=scheduler, max_buffer=max_pending, overflow="block"
        )
        iterator: AsyncIterator[C] = aiter(bridge)
    else:
        iterator = aiter(commands)
    try:
        while True:
            try:
                command = await anext(iterator)
            except StopAsyncIteration:
                break
            except Exception as error:
                observer.on_error(error)
                return
            observer.on_next(await route(command))
    finally:
        if bridge is not None:
            bridge.close()
    observer.on_completed()
