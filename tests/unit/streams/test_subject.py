"""LocalSubject: what reactivex's Subject does, checked side by side with it."""

from __future__ import annotations

import pytest
from reactivex import abc
from reactivex.internal import DisposedException
from reactivex.subject import Subject

from rxkube.streams import LocalSubject


def script(subject: Subject[int]) -> list[str]:
    """Observers that unsubscribe and subscribe while a value is being delivered."""
    seen: list[str] = []
    late: list[abc.DisposableBase] = []

    def first(value: int) -> None:
        seen.append(f"a{value}")
        if value == 2:
            second.dispose()  # leaves during delivery: not even this value
            late.append(subject.subscribe(lambda v: seen.append(f"c{v}")))  # joins: not this one

    subject.subscribe(first, lambda e: seen.append(f"a!{e}"), lambda: seen.append("a|"))
    second = subject.subscribe(lambda v: seen.append(f"b{v}"))
    for value in (1, 2, 3):
        subject.on_next(value)
    subject.on_completed()
    subject.on_next(4)  # after completion: nobody hears it
    subject.subscribe(lambda v: seen.append(f"d{v}"), on_completed=lambda: seen.append("d|"))
    return seen


def test_delivers_like_a_subject() -> None:
    expected = script(Subject())
    assert expected == ["a1", "b1", "a2", "a3", "c3", "a|", "d|"]
    assert script(LocalSubject()) == expected


def test_a_single_observer_and_errors() -> None:
    subject: LocalSubject[int] = LocalSubject()
    seen: list[object] = []
    subject.subscribe(seen.append, lambda e: seen.append(str(e)))
    subject.on_next(1)
    subject.on_error(ValueError("boom"))
    subject.on_next(2)
    assert seen == [1, "boom"]


def test_a_disposed_subject_refuses_values() -> None:
    subject: LocalSubject[int] = LocalSubject()
    subject.dispose()
    with pytest.raises(DisposedException):
        subject.on_next(1)
