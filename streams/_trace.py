"""Traces: record what the pipelines saw, read it back, replay it in virtual or live time.

What this module is for: DESIGN section 4, "Trace format". A trace is JSON Lines (gzip when the
name ends in `.gz`). Line 1 is the header::

    {"format": "rxkube-trace", "version": 1, "started": "<RFC 3339>", "source": "<context>",
     "streams": {"<id>": {<what the stream watches>}}}

then one line per event, in time order. A watch event::

    {"t": <seconds since start>, "stream": "<id>", "type": "ADDED", "rv": "<rv>", "object": {...}}

(plus `"final_state_unknown": true` on synthesized deletions; SYNCED has no object). Streams that
are not watches, such as the proxy's ticket events per app, are recorded as `StreamEvent`s::

    {"t": 12.5, "stream": "tickets/gmweb", "type": "issued", "data": {"ticket": "t1", ...}}

It may import the codec, `WatchEvent`, and reactivex's scheduler interface; its only I/O is the
trace file it is given. Time comes from the scheduler passed in, never from a clock of its own
(the header's `started` is the one wall-clock stamp, and it can be passed in too).

Errors: a bad trace raises `TraceError`, whose message names the file and the line (a truncated
last line, a header that is not an rxkube trace, an unknown version, a record out of time order
or naming an undeclared stream). Records before the bad line have been delivered by then.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self, TypeAlias, cast

import msgspec
import orjson
import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, MultipleAssignmentDisposable

from rxkube.streams._events import EVENT_TYPES, WatchEvent

__all__ = [
    "StreamEvent",
    "Trace",
    "TraceError",
    "TraceEvent",
    "TraceHeader",
    "TraceReader",
    "TraceRecord",
    "TraceWriter",
    "demo_trace_path",
    "load_trace",
    "open_trace",
    "open_trace_writer",
    "replay",
    "sample_trace_path",
]

TRACE_FORMAT: Final = "rxkube-trace"
TRACE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """An event of a recorded stream that is not a watch (e.g. the proxy's ticket events).

    `type` names what happened ("requested", "issued", "touched", "released", "queued",
    "left" for tickets); `data` is JSON-serializable detail.
    """

    stream: str
    type: str
    data: Mapping[str, Any] = field(default_factory=dict)


TraceEvent: TypeAlias = WatchEvent | StreamEvent
"""What a trace holds and a replay emits."""


@dataclass(frozen=True, slots=True)
class TraceHeader:
    """Line 1 of a trace."""

    started: datetime
    source: str
    streams: Mapping[str, Mapping[str, Any]]
    """Stream id -> what it records (e.g. `{"resource": "pods", "namespace": "lab"}`)."""
    version: int = TRACE_VERSION

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "format": TRACE_FORMAT,
                "version": self.version,
                "started": self.started.isoformat().replace("+00:00", "Z"),
                "source": self.source,
                "streams": self.streams,
            }
        )


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One event of a trace, `t` seconds after the trace started (`line` is 1-based)."""

    t: float
    event: TraceEvent
    line: int = 0


class TraceError(ValueError):
    """A trace that cannot be read; the message names the file and the line."""


class _Record(msgspec.Struct, gc=False):
    t: float
    stream: str
    type: str
    rv: str = ""
    object: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)
    data: dict[str, Any] | None = None
    final_state_unknown: bool = False


_record_decoder: Final = msgspec.json.Decoder(_Record)


def _open_binary(path: Path, mode: str, compresslevel: int = 6) -> IO[bytes]:
    if path.suffix == ".gz":
        # mtime=0: the same events give the same bytes (reproducible sample traces).
        return cast(IO[bytes], gzip.GzipFile(path, mode, compresslevel, mtime=0))
    return open(path, mode)


# -- writing ------------------------------------------------------------------------------------


class TraceWriter(abc.ObserverBase[TraceEvent]):
    """Writes events to a trace; an Observer, so `events.subscribe(writer)` records a stream.

    Made by `open_trace_writer`. Each event's `t` is the scheduler's time since the writer
    was opened (or `t=` given to `write`). Completion of a subscribed stream does not close
    the file (several streams may share a writer); leaving the `with` block does. An error
    ending a subscribed stream is kept in `error` and does not stop the recording of others.
    """

    def __init__(
        self, file: IO[bytes], header: TraceHeader, scheduler: abc.SchedulerBase, name: str
    ) -> None:
        self._file = file
        self._header = header
        self._scheduler = scheduler
        self._start = scheduler.now
        self._name = name
        self._streams = header.streams
        self._records = 0
        self._last_t = 0.0
        self.error: Exception | None = None
        file.write(header.to_json() + b"\n")

    @property
    def header(self) -> TraceHeader:
        return self._header

    @property
    def records(self) -> int:
        """How many records were written."""
        return self._records

    @property
    def opened(self) -> datetime:
        """The scheduler's time when the writer was opened: every record's `t` counts from it
        (so an event stamped with that scheduler's clock can be written at its own time)."""
        return self._start

    @property
    def last_t(self) -> float:
        """The `t` of the last record written (0 before the first): the next may not be
        earlier."""
        return self._last_t

    def write(self, event: TraceEvent, *, t: float | None = None) -> None:
        """Append one record (at the scheduler's time since start, unless `t` is given)."""
        if event.stream not in self._streams:
            raise ValueError(
                f"stream {event.stream!r} is not declared in the trace header of {self._name}; "
                f"declared: {sorted(self._streams)} (pass it in `streams=` when opening)"
            )
        if t is None:
            t = (self._scheduler.now - self._start).total_seconds()
        if t < self._last_t:
            raise ValueError(f"t={t} is before the previous record's t={self._last_t}")
        self._last_t = t
        head = b'{"t":' + orjson.dumps(t) + b',"stream":' + orjson.dumps(event.stream)
        if isinstance(event, WatchEvent):
            line = head + b',"type":"' + event.type.encode() + b'","rv":'
            line += orjson.dumps(event.resource_version)
            if event.type != "SYNCED":
                line += b',"object":' + event.raw
            if event.final_state_unknown:
                line += b',"final_state_unknown":true'
        else:
            line = head + b',"type":' + orjson.dumps(event.type)
            line += b',"data":' + orjson.dumps(event.data)
        self._file.write(line + b"}\n")
        self._records += 1

    def on_next(self, value: TraceEvent) -> None:
        self.write(value)

    def on_error(self, error: Exception) -> None:
        self.error = error

    def on_completed(self) -> None:
        pass

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_trace_writer(
    path: str | Path,
    *,
    streams: Mapping[str, Mapping[str, Any]],
    scheduler: abc.SchedulerBase,
    source: str = "",
    started: datetime | None = None,
    compresslevel: int = 6,
) -> TraceWriter:
    """Create a trace at `path` (gzip if it ends in `.gz`) and write its header.

    ::

        with open_trace_writer("run.jsonl.gz", streams={"pods/lab": {"resource": "pods",
                               "namespace": "lab"}}, scheduler=scheduler) as writer:
            pod_events.subscribe(writer)      # or writer.write(event)

    Every stream written must be declared in `streams`. `started` (default: the wall clock
    now, UTC) only labels the trace; record times come from `scheduler`. Writing is
    synchronous and buffered (a trace is an edge of the pipeline, like a log).
    `compresslevel` (gzip only) trades size for speed: 1 is fastest, 9 smallest.
    """
    path = Path(path)
    header = TraceHeader(
        started=started or datetime.now(UTC),
        source=source,
        streams={name: dict(spec) for name, spec in streams.items()},
    )
    return TraceWriter(_open_binary(path, "wb", compresslevel), header, scheduler, str(path))


# -- reading ------------------------------------------------------------------------------------


def _parse_header(line: bytes, name: str) -> TraceHeader:
    where = f"{name}, line 1"
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise TraceError(f"{where}: the header is not JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != TRACE_FORMAT:
        raise TraceError(
            f"{where}: not an rxkube trace header (expected a JSON object with "
            f'"format": "{TRACE_FORMAT}"), got {line[:80]!r}'
        )
    version = data.get("version")
    if version != TRACE_VERSION:
        raise TraceError(
            f"{where}: unsupported trace version {version!r} (this rxkube reads version "
            f"{TRACE_VERSION}); upgrade rxkube or re-record the trace"
        )
    streams = data.get("streams")
    if not isinstance(streams, dict) or not all(isinstance(v, dict) for v in streams.values()):
        raise TraceError(f'{where}: "streams" must map stream ids to objects, got {streams!r}')
    try:
        started = datetime.fromisoformat(str(data.get("started", "")))
    except ValueError:
        raise TraceError(
            f'{where}: "started" must be an RFC 3339 time, got {data.get("started")!r}'
        ) from None
    source = data.get("source", "")
    if not isinstance(source, str):
        raise TraceError(f'{where}: "source" must be a string, got {source!r}')
    return TraceHeader(started=started, source=source, streams=streams, version=version)


class TraceReader:
    """Reads a trace lazily: `header`, then records by iteration (see `open_trace`)."""

    def __init__(self, file: IO[bytes], name: str) -> None:
        self._file = file
        self._name = name
        try:
            first = file.readline()
        except (OSError, EOFError, zlib.error) as error:
            file.close()
            raise TraceError(f"{name}, line 1: cannot read the trace ({error})") from None
        if not first.strip():
            file.close()
            raise TraceError(f"{name}, line 1: the trace is empty (no header)")
        try:
            self.header = _parse_header(first, name)
        except TraceError:
            file.close()
            raise

    def __iter__(self) -> Iterator[TraceRecord]:
        streams = self.header.streams
        name = self._name
        number = 1
        last_t = 0.0
        file = self._file
        while True:
            try:
                line = file.readline()
            except (OSError, EOFError, zlib.error) as error:
                raise TraceError(
                    f"{name}, line {number + 1}: the compressed trace is cut off or corrupt "
                    f"after line {number} ({error})"
                ) from None
            if not line:
                return
            number += 1
            if not line.strip():
                continue
            try:
                record = _record_decoder.decode(line)
            except msgspec.DecodeError as error:
                if not line.endswith(b"\n"):
                    raise TraceError(
                        f"{name}, line {number}: truncated record at the end of the trace "
                        f"(the recording was probably interrupted): {line[:80]!r}"
                    ) from None
                raise TraceError(f"{name}, line {number}: bad record ({error})") from None
            if record.stream not in streams:
                raise TraceError(
                    f"{name}, line {number}: stream {record.stream!r} is not declared in the "
                    f"header (declared: {sorted(streams)})"
                )
            if record.t < last_t:
                raise TraceError(
                    f"{name}, line {number}: t={record.t} is before the previous record's "
                    f"t={last_t} (records must be in time order)"
                )
            last_t = record.t
            yield TraceRecord(record.t, self._event(record, number), number)

    def _event(self, record: _Record, number: int) -> TraceEvent:
        if record.data is not None:
            return StreamEvent(record.stream, record.type, record.data)
        if record.type not in EVENT_TYPES:
            raise TraceError(
                f"{self._name}, line {number}: unknown watch event type {record.type!r} "
                f'(a record of another stream needs "data")'
            )
        raw = bytes(record.object)
        if record.type == "SYNCED":
            return WatchEvent("SYNCED", resource_version=record.rv, stream=record.stream)
        if not raw or raw == b"null":
            raise TraceError(f"{self._name}, line {number}: a {record.type} record has no object")
        return WatchEvent(
            record.type,  # type: ignore[arg-type]  # checked against EVENT_TYPES above
            raw=raw,
            resource_version=record.rv,
            stream=record.stream,
            final_state_unknown=record.final_state_unknown,
        )

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_trace(source: str | Path | IO[bytes]) -> TraceReader:
    """Open a trace for reading (gzip if the name ends in `.gz`); raises `TraceError` if bad.

    ::

        with open_trace("run.jsonl.gz") as trace:
            print(trace.header.streams)
            for record in trace:
                print(record.t, record.event)

    `source` may also be a binary file object (already decompressed).
    """
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            file = _open_binary(path, "rb")
        except OSError as error:
            raise TraceError(f"{path}: cannot open the trace ({error})") from None
        return TraceReader(file, str(path))
    return TraceReader(source, getattr(source, "name", "<trace>"))


@dataclass(frozen=True, slots=True)
class Trace:
    """A trace read into memory: its header and records (see `load_trace`)."""

    header: TraceHeader
    records: tuple[TraceRecord, ...]

    @property
    def duration(self) -> float:
        """Seconds from the start to the last record."""
        return self.records[-1].t if self.records else 0.0

    def replay(
        self,
        *,
        streams: Collection[str] | None = None,
        speed: float = 1.0,
        scheduler: abc.SchedulerBase | None = None,
    ) -> Observable[TraceEvent]:
        """The records as a cold Observable, at their offsets (see `replay`).

        Tip: `HistoricalScheduler(initial_clock=trace.header.started)` makes `scheduler.now`
        the recorded wall-clock time."""
        return replay(lambda: self.records, streams=streams, speed=speed, scheduler=scheduler)

    def write(self, path: str | Path, *, scheduler: abc.SchedulerBase | None = None) -> None:
        """Write this trace to `path` (records keep their `t`)."""
        with open_trace_writer(
            path,
            streams=self.header.streams,
            scheduler=scheduler or reactivex.scheduler.ImmediateScheduler(),
            source=self.header.source,
            started=self.header.started,
        ) as writer:
            for record in self.records:
                writer.write(record.event, t=record.t)


def load_trace(source: str | Path | IO[bytes]) -> Trace:
    """Read a whole trace into memory (objects stay raw bytes until read)."""
    with open_trace(source) as reader:
        return Trace(reader.header, tuple(reader))


def sample_trace_path() -> Path:
    """The sample trace shipped with rxkube (`rxkube demo`, the tests and the notebooks).

    Fifteen simulated minutes of namespace `example`: two k8sTicket apps (`gmweb`,
    `notebook`), their pods from Pending to Ready, autoscaling, a drained pod, and one ticket
    stream per app. Made by `bench/make_sample_trace.py`.
    """
    return Path(__file__).resolve().parent / "data" / "sample-trace.jsonl.gz"


def demo_trace_path() -> Path:
    """A trace recorded from `rxkube demo`, shipped with rxkube (the notebooks, the README's
    tour, the tests).

    `rxkube demo --users 40 --duration 120 --seed 1 --record ...`: two minutes of the demo's
    namespace `default` as the ticket controller saw it, written by the runner's own
    recording (what `rxkube run --record` writes): its three watches, the users' tickets
    (`tickets/default`: issued, queued, released, left) and the autoscaler's commands
    (`autoscaler/default`) while users arrive, wait, scale the apps up and leave, and idle
    pods go. Made by `bench/make_demo_trace.py`; a plain replay makes the recorded decisions.
    """
    return Path(__file__).resolve().parent / "data" / "demo-trace.jsonl.gz"


# -- replaying ----------------------------------------------------------------------------------


def replay(
    records: Callable[[], Iterable[TraceRecord]],
    *,
    streams: Collection[str] | None = None,
    speed: float = 1.0,
    scheduler: abc.SchedulerBase | None = None,
) -> Observable[TraceEvent]:
    """Emit each record's event `t / speed` seconds after subscription, on the given scheduler.

    ::

        events = replay(lambda: open_trace("run.jsonl.gz"), streams={"pods/lab"})
        events.subscribe(store, scheduler=HistoricalScheduler())   # virtual time
        events.subscribe(store, scheduler=TrioScheduler(nursery))  # live, e.g. speed=10

    `records` is called per subscription (a cold Observable): pass `lambda: open_trace(path)`
    to stream a big trace from disk (a reader is closed when its replay ends), or
    `lambda: trace.records` for one in memory. The scheduler passed at subscribe time sets
    the time: a virtual one (TestScheduler, HistoricalScheduler, VirtualTimeScheduler) for
    replays that run as fast as the CPU allows and yield the same decisions every run, or a
    `TrioScheduler` for a live replay at `speed` times the recorded pace. Records at the same
    time are emitted together, in order. A bad trace ends the Observable with its
    `TraceError` after the good records before it. `scheduler` is used when none is passed
    at subscribe time (handy when a pipeline subscribes in several places).
    """
    if not speed > 0:
        raise ValueError(f"speed must be positive, got {speed!r}")
    wanted = None if streams is None else frozenset(streams)

    def subscribe(
        observer: abc.ObserverBase[TraceEvent], given: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        chosen = given or scheduler
        if chosen is None:
            raise TypeError(
                "replay needs a scheduler at subscribe time: a virtual one (TestScheduler, "
                "HistoricalScheduler) or a TrioScheduler for a live replay"
            )
        source = records()
        iterator = iter(source)
        closer = getattr(source, "close", None)
        start = chosen.now
        timer = MultipleAssignmentDisposable()
        pending: list[tuple[TraceRecord, datetime]] = []

        def close() -> None:
            if closer is not None:
                closer()

        def advance() -> TraceRecord | None:
            return next(iterator, None)

        def due(record: TraceRecord) -> datetime:
            return start + timedelta(seconds=record.t / speed)

        def emit(sched: abc.SchedulerBase, _: object = None) -> None:
            record, record_due = pending[0]
            try:
                now = sched.now
                while record_due <= now:
                    if wanted is None or record.event.stream in wanted:
                        observer.on_next(record.event)
                    if timer.is_disposed:
                        return
                    following = advance()
                    if following is None:
                        close()
                        observer.on_completed()
                        return
                    if following.t != record.t:
                        record_due = due(following)
                    record = following
            except TraceError as error:
                close()
                observer.on_error(error)
                return
            pending[0] = (record, record_due)
            timer.disposable = sched.schedule_absolute(record_due, emit)

        try:
            first = advance()
        except TraceError as error:
            close()
            observer.on_error(error)
            return Disposable()
        if first is None:
            close()
            observer.on_completed()
            return Disposable()
        pending.append((first, due(first)))
        timer.disposable = chosen.schedule_absolute(pending[0][1], emit)
        return CompositeDisposable(timer, Disposable(close))

    return Observable(subscribe)
