"""A controller work queue on trio: keys in, one `sync(key)` at a time, delayed requeues.

What this module is for: the simulated controllers are level-triggered like client-go's: a
store change only marks a key dirty; a single task syncs dirty keys one by one, reading the
current state from the store, so bursts coalesce (a key marked ten times syncs once) and a
sync never sees a half-applied change. `sync` is synchronous (it reads and writes the store
with no await in between, so nothing interleaves); it may return a delay after which the key
is synced again (for deadlines such as `minReadySeconds`). Time is trio's clock, so tests
drive it with `MockClock`.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import trio

from rxkube.fakes._errors import StatusError

__all__: list[str] = []

logger = logging.getLogger("rxkube.fakes")

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, name: str) -> None:
        self.name = name
        self._dirty: dict[K, None] = {}
        self._timers: list[tuple[float, int, K]] = []
        self._serial = 0
        self._wake = trio.Event()
        self._failures: dict[K, int] = {}
        self.syncs = 0

    def add(self, key: K) -> None:
        """Mark `key` for a sync (once, however often it is marked before the sync)."""
        if key not in self._dirty:
            self._dirty[key] = None
            self._wake.set()

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        self._serial += 1
        heapq.heappush(self._timers, (trio.current_time() + delay, self._serial, key))
        self._wake.set()

    def __len__(self) -> int:
        return len(self._dirty)

    async def run(self, sync: Callable[[K], float | None]) -> None:
        """Sync keys until cancelled."""
        while True:
            now = trio.current_time()
            while self._timers and self._timers[0][0] <= now:
                _, _, key = heapq.heappop(self._timers)
                self.add(key)
            if self._dirty:
                key = next(iter(self._dirty))
                del self._dirty[key]
                self.syncs += 1
                try:
                    again = sync(key)
                except StatusError as error:
                    # A write raced another writer (409) or an object vanished: sync again.
                    failures = self._failures.get(key, 0) + 1
                    self._failures[key] = failures
                    logger.debug("%s: sync of %r: %s", self.name, key, error.message)
                    self.add_after(key, min(0.005 * 2**failures, 1.0))
                except Exception:
                    failures = self._failures.get(key, 0) + 1
                    self._failures[key] = failures
                    logger.exception("%s: sync of %r failed", self.name, key)
                    self.add_after(key, min(0.1 * 2**failures, 10.0))
                else:
                    self._failures.pop(key, None)
                    if again is not None:
                        self.add_after(key, again)
                await trio.lowlevel.checkpoint()
                continue
            self._wake = trio.Event()
            deadline = self._timers[0][0] if self._timers else math.inf
            with trio.move_on_at(deadline):
                await self._wake.wait()
