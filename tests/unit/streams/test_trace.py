"""Traces: round trips (plain and gzip), bad traces with errors naming the line, replays."""

from __future__ import annotations

import gzip
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from reactivex.notification import Notification, OnError, OnNext
from reactivex.scheduler import HistoricalScheduler
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.recorded import Recorded

from rxkube.streams import (
    StreamEvent,
    TraceError,
    TraceEvent,
    TraceRecord,
    TrioScheduler,
    WatchEvent,
    load_trace,
    open_trace,
    open_trace_writer,
    replay,
    sample_trace_path,
)
from tests.conftest import REPO

STARTED = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
STREAMS: dict[str, dict[str, Any]] = {
    "pods/lab": {"resource": "pods", "namespace": "lab"},
    "tickets/gmweb": {"kind": "tickets", "app": "gmweb"},
}


def pod(name: str, rv: int, phase: str = "Running") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "lab", "resourceVersion": str(rv)},
        "status": {"phase": phase},
    }


def sample_records() -> list[tuple[float, TraceEvent]]:
    return [
        (0.0, WatchEvent("ADDED", pod("a", 1), resource_version="1", stream="pods/lab")),
        (0.0, WatchEvent("SYNCED", resource_version="1", stream="pods/lab")),
        (1.5, StreamEvent("tickets/gmweb", "requested", {"user": "u1"})),
        (1.5, StreamEvent("tickets/gmweb", "issued", {"user": "u1", "server": "lab/a"})),
        (
            4.25,
            WatchEvent("MODIFIED", pod("a", 2, "Failed"), resource_version="2", stream="pods/lab"),
        ),
        (
            9.0,
            WatchEvent(
                "DELETED",
                pod("a", 2, "Failed"),
                resource_version="2",
                stream="pods/lab",
                final_state_unknown=True,
            ),
        ),
    ]


def write_sample(path: Path) -> None:
    with open_trace_writer(
        path, streams=STREAMS, scheduler=TestScheduler(), source="kind-lab", started=STARTED
    ) as writer:
        for t, event in sample_records():
            writer.write(event, t=t)
        assert writer.records == 6


@pytest.mark.parametrize("name", ["trace.jsonl", "trace.jsonl.gz"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    write_sample(path)
    trace = load_trace(path)
    assert trace.header.started == STARTED
    assert trace.header.source == "kind-lab"
    assert trace.header.streams == STREAMS
    assert [(r.t, r.event) for r in trace.records] == sample_records()
    assert [r.line for r in trace.records] == [2, 3, 4, 5, 6, 7]
    assert trace.duration == 9.0
    deleted = trace.records[-1].event
    assert isinstance(deleted, WatchEvent)
    assert deleted.final_state_unknown


def test_gzip_by_suffix_and_reproducible_bytes(tmp_path: Path) -> None:
    write_sample(tmp_path / "a.jsonl.gz")
    write_sample(tmp_path / "b.jsonl.gz")
    write_sample(tmp_path / "plain.jsonl")
    gz_a = (tmp_path / "a.jsonl.gz").read_bytes()
    assert gz_a[:2] == b"\x1f\x8b"
    assert gzip.decompress(gz_a) == (tmp_path / "plain.jsonl").read_bytes()
    assert gzip.decompress(gz_a) == gzip.decompress((tmp_path / "b.jsonl.gz").read_bytes())


def test_the_lines_are_the_documented_format(tmp_path: Path) -> None:
    write_sample(tmp_path / "t.jsonl")
    lines = [orjson.loads(line) for line in (tmp_path / "t.jsonl").read_bytes().splitlines()]
    assert lines[0] == {
        "format": "rxkube-trace",
        "version": 1,
        "started": "2024-05-01T10:00:00Z",
        "source": "kind-lab",
        "streams": STREAMS,
    }
    assert lines[1] == {
        "t": 0.0,
        "stream": "pods/lab",
        "type": "ADDED",
        "rv": "1",
        "object": pod("a", 1),
    }
    assert lines[2] == {"t": 0.0, "stream": "pods/lab", "type": "SYNCED", "rv": "1"}
    assert lines[3] == {
        "t": 1.5,
        "stream": "tickets/gmweb",
        "type": "requested",
        "data": {"user": "u1"},
    }
    assert lines[6]["final_state_unknown"] is True


def test_the_writer_is_an_observer_timed_by_the_scheduler(tmp_path: Path) -> None:
    scheduler = TestScheduler()
    a, b = (
        WatchEvent("ADDED", pod(n, i), resource_version=str(i), stream="pods/lab")
        for i, n in ((1, "a"), (2, "b"))
    )
    events = scheduler.create_hot_observable(
        ReactiveTest.on_next(250, a), ReactiveTest.on_next(400, b), ReactiveTest.on_completed(500)
    )
    tickets = scheduler.create_hot_observable(
        ReactiveTest.on_next(300, StreamEvent("tickets/gmweb", "queued", {"user": "u2"})),
        ReactiveTest.on_error(350, RuntimeError("proxy stopped")),
    )
    path = tmp_path / "t.jsonl"
    scheduler.advance_to(200)
    with open_trace_writer(path, streams=STREAMS, scheduler=scheduler) as writer:
        events.subscribe(writer)
        tickets.subscribe(writer)
        scheduler.start()
        assert isinstance(writer.error, RuntimeError)
    trace = load_trace(path)
    assert [(r.t, r.event.type) for r in trace.records] == [
        (50.0, "ADDED"),
        (100.0, "queued"),
        (200.0, "ADDED"),
    ]


def test_the_writer_refuses_undeclared_streams_and_time_going_back(tmp_path: Path) -> None:
    with open_trace_writer(
        tmp_path / "t.jsonl", streams=STREAMS, scheduler=TestScheduler()
    ) as writer:
        with pytest.raises(ValueError, match=r"stream 'pods/other' is not declared"):
            writer.write(WatchEvent("SYNCED", resource_version="1", stream="pods/other"))
        writer.write(WatchEvent("SYNCED", resource_version="1", stream="pods/lab"), t=5)
        with pytest.raises(ValueError, match="before the previous record"):
            writer.write(WatchEvent("SYNCED", resource_version="2", stream="pods/lab"), t=4)


# -- bad traces ---------------------------------------------------------------------------------

HEADER = orjson.dumps(
    {
        "format": "rxkube-trace",
        "version": 1,
        "started": "2024-05-01T10:00:00Z",
        "source": "",
        "streams": STREAMS,
    }
)
GOOD = b'{"t":1,"stream":"pods/lab","type":"SYNCED","rv":"1"}\n'


def read_all(path: Path) -> tuple[list[TraceRecord], TraceError]:
    seen: list[TraceRecord] = []
    with pytest.raises(TraceError) as raised, open_trace(path) as trace:
        seen.extend(trace)
    return seen, raised.value


def test_a_truncated_last_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(HEADER + b"\n" + GOOD + b'{"t":2,"stream":"pods/lab","type":"ADD')
    seen, error = read_all(path)
    assert len(seen) == 1  # what came before the bad line was delivered
    assert "t.jsonl, line 3: truncated record at the end of the trace" in str(error)


def test_a_cut_off_gzip_trace_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl.gz"
    body = HEADER + b"\n" + GOOD * 2000
    path.write_bytes(gzip.compress(body)[:-200])
    seen, error = read_all(path)
    assert 0 < len(seen) < 2000
    assert f"line {len(seen) + 2}: the compressed trace is cut off or corrupt" in str(error)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "line 1: the trace is empty"),
        (b"not json\n", "line 1: the header is not JSON"),
        (b'{"format": "other"}\n', "line 1: not an rxkube trace header"),
        (
            HEADER.replace(b'"version":1', b'"version":2') + b"\n",
            "line 1: unsupported trace version 2",
        ),
        (
            HEADER.replace(b"2024-05-01T10:00:00Z", b"yesterday") + b"\n",
            'line 1: "started" must be',
        ),
        (HEADER + b"\n" + GOOD + b"{oops}\n", "line 3: bad record"),
        (
            HEADER + b"\n" + GOOD.replace(b"pods/lab", b"pods/x"),
            "line 2: stream 'pods/x' is not declared",
        ),
        (HEADER + b"\n" + GOOD.replace(b'"t":1', b'"t":3') + GOOD, "line 3: t=1.0 is before"),
        (
            HEADER + b"\n" + GOOD.replace(b"SYNCED", b"BOOKMARK"),
            "line 2: unknown watch event type 'BOOKMARK'",
        ),
        (
            HEADER + b"\n" + GOOD.replace(b"SYNCED", b"ADDED"),
            "line 2: a ADDED record has no object",
        ),
    ],
)
def test_bad_traces_get_an_error_naming_the_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=message.replace("(", r"\(")) as raised:
        load_trace(path)
    assert str(path) in str(raised.value)


def test_a_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot open the trace"):
        open_trace(tmp_path / "missing.jsonl.gz")


# -- replay -------------------------------------------------------------------------------------


def timeline(messages: list[Recorded[TraceEvent]]) -> list[tuple[float, str, object]]:
    """(virtual time, notification kind N/E/C, value or exception) per recorded message."""
    out: list[tuple[float, str, object]] = []
    for message in messages:
        notification = message.value
        assert isinstance(notification, Notification)
        if isinstance(notification, OnNext):
            detail: object = notification.value
        elif isinstance(notification, OnError):
            detail = notification.exception
        else:
            detail = None
        out.append((message.time, notification.kind, detail))
    return out


def test_replay_in_virtual_time_at_the_recorded_offsets(tmp_path: Path) -> None:
    write_sample(tmp_path / "t.jsonl.gz")
    trace = load_trace(tmp_path / "t.jsonl.gz")
    scheduler = TestScheduler()
    result = scheduler.start(lambda: trace.replay(), created=100, subscribed=200, disposed=1000)
    expected = [(200 + t, "N", event) for t, event in sample_records()]
    assert timeline(result.messages) == [*expected, (209.0, "C", None)]


def test_replay_selected_streams_at_a_speed(tmp_path: Path) -> None:
    write_sample(tmp_path / "t.jsonl")
    scheduler = TestScheduler()
    replayed = replay(lambda: open_trace(tmp_path / "t.jsonl"), streams={"tickets/gmweb"}, speed=2)
    result = scheduler.start(lambda: replayed)
    assert [(time, kind) for time, kind, _ in timeline(result.messages)] == [
        (200.75, "N"),
        (200.75, "N"),
        (204.5, "C"),
    ]


def test_replay_on_a_historical_scheduler_at_the_traces_own_time(tmp_path: Path) -> None:
    write_sample(tmp_path / "t.jsonl")
    trace = load_trace(tmp_path / "t.jsonl")
    scheduler = HistoricalScheduler(initial_clock=trace.header.started)
    seen: list[tuple[str, str]] = []
    trace.replay().subscribe(
        lambda e: seen.append((scheduler.now.isoformat(), e.type)), scheduler=scheduler
    )
    scheduler.start()
    assert seen[0] == ("2024-05-01T10:00:00+00:00", "ADDED")
    assert seen[-1] == ("2024-05-01T10:00:09+00:00", "DELETED")


async def test_live_replay_on_the_trio_scheduler_with_a_speed_factor(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    write_sample(tmp_path / "t.jsonl")
    seen: list[tuple[float, str]] = []
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        start = trio.current_time()
        replay(lambda: open_trace(tmp_path / "t.jsonl"), speed=10).subscribe(
            lambda e: seen.append((round(trio.current_time() - start, 6), e.type)),
            on_completed=done.set,
            scheduler=scheduler,
        )
        await done.wait()
    assert seen == [
        (0.0, "ADDED"),
        (0.0, "SYNCED"),
        (0.15, "requested"),
        (0.15, "issued"),
        (0.425, "MODIFIED"),
        (0.9, "DELETED"),
    ]


def test_a_bad_trace_replays_its_good_records_then_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(HEADER + b"\n" + GOOD + b'{"t":2,"stream":"pods/lab","type":"ADD')
    scheduler = TestScheduler()
    result = scheduler.start(lambda: replay(lambda: open_trace(path)))
    (_, first, _), (_, second, error) = timeline(result.messages)
    assert (first, second) == ("N", "E")
    assert isinstance(error, TraceError)
    assert "line 3: truncated" in str(error)


def test_replay_needs_a_scheduler_and_a_positive_speed(tmp_path: Path) -> None:
    write_sample(tmp_path / "t.jsonl")
    errors: list[Exception] = []
    replay(lambda: open_trace(tmp_path / "t.jsonl")).subscribe(on_error=errors.append)
    assert "replay needs a scheduler" in str(errors[0])
    with pytest.raises(ValueError, match="speed must be positive"):
        replay(list, speed=0)


def test_disposing_a_replay_stops_it_and_closes_the_reader(tmp_path: Path) -> None:
    write_sample(tmp_path / "t.jsonl")
    readers = []

    def source() -> object:
        reader = open_trace(tmp_path / "t.jsonl")
        readers.append(reader)
        return reader

    scheduler = TestScheduler()
    result = scheduler.start(lambda: replay(source), disposed=202)  # type: ignore[arg-type]
    assert [m.time for m in result.messages] == [200.0, 200.0, 201.5, 201.5]
    assert readers[0]._file.closed


def test_an_empty_trace_completes_at_once() -> None:
    scheduler = TestScheduler()
    result = scheduler.start(lambda: replay(list))
    assert result.messages == [ReactiveTest.on_completed(200)]


# -- the sample trace shipped in the package ------------------------------------------------------


def test_the_sample_trace_is_shipped_and_reads_cleanly() -> None:
    trace = load_trace(sample_trace_path())
    streams = trace.header.streams
    assert sorted(streams) == [
        "deployments.apps/example?labelSelector=ipb-halle.de%2Fk8sticket%3Dtrue",
        "pods/example?labelSelector=ipb-halle.de%2Fk8sticket.deployment.app.name",
        "tickets/gmweb",
        "tickets/notebook",
    ]
    watch = [r.event for r in trace.records if isinstance(r.event, WatchEvent)]
    deployments = {
        e.meta.name for e in watch if e.stream.startswith("deployments") and e.type != "SYNCED"
    }
    assert deployments == {"gmweb-deployment", "notebook-deployment"}
    assert all(
        e.meta.labels.get("ipb-halle.de/k8sticket") == "true"
        for e in watch
        if e.stream.startswith("deployments") and e.type != "SYNCED"
    )
    assert {e.type for e in watch} == {"ADDED", "MODIFIED", "DELETED", "SYNCED"}
    tickets = {r.event.type for r in trace.records if isinstance(r.event, StreamEvent)}
    assert tickets == {"requested", "issued", "queued", "left", "touched", "released"}
    assert sample_trace_path().stat().st_size < 200 * 1024


def test_the_sample_trace_is_what_its_generator_makes(tmp_path: Path) -> None:
    output = tmp_path / "sample-trace.jsonl.gz"
    subprocess.run(
        [sys.executable, str(REPO / "bench" / "make_sample_trace.py"), str(output)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert output.read_bytes() == sample_trace_path().read_bytes()
