"""`LocalSubject`: reactivex's `Subject` for one thread, without its locks.

What this module is for: rxkube's pipelines run on one thread (trio's, or a replay's), yet every
`Subject.on_next` takes its lock twice, copies its observer list and makes five Python calls
before the first observer sees the value. A replay of a day pushes tens of thousands of values
through the subjects that join its pipelines; this one does what `Subject` does for them in one
call. Same contract otherwise (subscribe, completion, errors, dispose are `Subject`'s own): an
observer that unsubscribes while a value is being delivered does not get it, nor does one that
subscribes meanwhile.

Only for values emitted from one thread at a time. It does no I/O and keeps no clock.
"""

from __future__ import annotations

from typing import TypeVar

from reactivex.internal import DisposedException
from reactivex.subject import Subject

__all__ = ["LocalSubject"]

_T = TypeVar("_T")


class LocalSubject(Subject[_T]):
    """A `Subject` whose `on_next` takes no lock: emit from one thread only (see the module
    docstring). Everything else is `Subject`'s."""

    def on_next(self, value: _T) -> None:
        if self.is_disposed:
            raise DisposedException()
        if self.is_stopped:
            return
        observers = self.observers
        if len(observers) == 1:
            observers[0].on_next(value)
            return
        for observer in observers.copy():
            observer.on_next(value)
