"""Small WatchEvents for marble tests: pods with a name, a resourceVersion, labels and a phase."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from reactivex import Observable
from reactivex.testing.marbles import MarblesContext, marbles_testing
from reactivex.testing.recorded import Recorded

from rxkube.streams import EventType, WatchEvent

STREAM = "pods/apps"


def pod_event(
    kind: EventType,
    name: str,
    rv: int,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    phase: str = "Running",
    final_state_unknown: bool = False,
) -> WatchEvent:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "apps",
            "resourceVersion": str(rv),
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "status": {"phase": phase},
    }
    return WatchEvent(
        kind,
        obj,
        resource_version=str(rv),
        stream=STREAM,
        final_state_unknown=final_state_unknown,
    )


def synced(rv: int) -> WatchEvent:
    return WatchEvent("SYNCED", resource_version=str(rv), stream=STREAM)


class Marbles:
    """reactivex's marbles context with optional arguments mypy can see (lookup, error)."""

    def __init__(self, context: MarblesContext) -> None:
        self._context = context

    def hot(
        self, text: str, lookup: Mapping[str, Any] | None = None, error: Exception | None = None
    ) -> Observable[Any]:
        return self._context.hot(text, _lookup(lookup), error)

    def cold(
        self, text: str, lookup: Mapping[str, Any] | None = None, error: Exception | None = None
    ) -> Observable[Any]:
        return self._context.cold(text, _lookup(lookup), error)

    def exp(
        self, text: str, lookup: Mapping[str, Any] | None = None, error: Exception | None = None
    ) -> list[Recorded[Any]]:
        return self._context.exp(text, _lookup(lookup), error)

    def start(self, observable: Observable[Any]) -> list[Recorded[Any]]:
        return self._context.start(observable)


def _lookup(lookup: Mapping[str, Any] | None) -> dict[str | float, Any] | None:
    return None if lookup is None else dict(lookup.items())


@contextmanager
def marbles() -> Iterator[Marbles]:
    """A TestScheduler for one marble test: created at 100, subscribed at 200, disposed at 1000."""
    with marbles_testing() as context:
        yield Marbles(context)
