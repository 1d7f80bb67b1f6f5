"""What still holds: the problems and warnings the pipeline's stages know are true right now.

What this module is for: DESIGN section 4, "Bad input gets a clear error": a problem reported
while nobody could post it (a replica that does not lead yet posts no Events) must still reach
`kubectl describe`. Which problems hold is state, and each stage that finds problems keeps it
(the apps fold its Deployments' problems, the pod pipeline its pods', the serving plan its
routing fallbacks, the runner the own ports it cannot bind). `Outstanding` lets each stage
register a view of that state, read only when asked (`reports()`), e.g. when a replica starts
leading and posts what still holds. Nothing is copied per event: a view is a function of the
stage's current state.

It imports nothing of rxkube; no I/O, no clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

from reactivex.abc import DisposableBase
from reactivex.disposable import Disposable

__all__ = ["Outstanding"]


class Outstanding:
    """Views of what still holds, registered by the stages that know it.

    ::

        outstanding = Outstanding()
        registration = outstanding.add(lambda: state.problems)   # a stage, while subscribed
        outstanding.reports()   # everything every registered view holds now, in order added
        registration.dispose()  # the stage ended
    """

    def __init__(self) -> None:
        self._views: dict[int, Callable[[], Iterable[object]]] = {}
        self._keys = itertools.count()

    def add(self, view: Callable[[], Iterable[object]]) -> DisposableBase:
        """Register `view` (called by `reports()`); dispose the result to take it away."""
        key = next(self._keys)
        self._views[key] = view

        def remove() -> None:
            self._views.pop(key, None)

        return Disposable(remove)

    def reports(self) -> list[object]:
        """What every registered view holds now, views in the order they were added."""
        return [report for view in list(self._views.values()) for report in view()]

    def __len__(self) -> int:
        """The number of views registered."""
        return len(self._views)
