"""`watch()`'s reflector semantics in virtual time.

The API server is replaced behind the client's one seam (`httpx.MockTransport`) by a script of
list and watch responses; trio's `MockClock` with autojump makes every backoff, Retry-After
and inactivity timeout observable at an exact virtual time. The same behaviour is tested
against the fake API server over loopback in tests/integration/streams/.
"""

from __future__ import annotations

import gzip
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
import trio.lowlevel
import trio.testing
from reactivex import abc

from rxkube.streams import (
    DEPLOYMENTS,
    NODES,
    PODS,
    BadRequest,
    KubeConfig,
    TrioScheduler,
    WatchCounters,
    WatchEvent,
    WatchPolicy,
    label_indexer,
    open_client,
    open_informer,
    open_trace,
    open_trace_writer,
    stream_id,
    stream_spec,
    watch,
)

Clock = trio.testing.MockClock
# No jitter and a power-of-two first delay: every time is exact in binary floating point.
POLICY = WatchPolicy(
    backoff_initial=0.5, backoff_jitter=0.0, inactivity_timeout=50.0, server_timeout=10.0
)


def pod(name: str, rv: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "apps", "resourceVersion": rv, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def line(kind: str, obj: dict[str, Any]) -> bytes:
    if kind != "ERROR":
        obj = {"kind": "Pod", "apiVersion": "v1", **obj}
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


def bookmark(rv: str) -> bytes:
    return line("BOOKMARK", {"metadata": {"resourceVersion": rv}})


def gone(message: str = "too old resource version: 5 (9)") -> bytes:
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    return line("ERROR", {**status, "message": message, "reason": "Expired", "code": 410})


def listing(rv: str, *items: dict[str, Any], cont: str | None = None) -> httpx.Response:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    return httpx.Response(
        200, json={"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": list(items)}
    )


def status(code: int, reason: str, message: str, **headers: str) -> httpx.Response:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return httpx.Response(code, json=body, headers=headers)


def stream(*chunks: bytes, then: str = "end") -> Callable[[], httpx.Response]:
    """A watch response: the chunks, then `end` (clean end), `hang` (stall) or `drop`."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk
            await trio.lowlevel.checkpoint()
        if then == "hang":
            await trio.sleep_forever()
        if then == "drop":
            raise httpx.ReadError("connection reset by peer")

    return lambda: httpx.Response(200, content=body())


Answer = httpx.Response | Callable[[], httpx.Response]


class Api:
    """Answers list and watch requests from two scripts; records what was asked, and when.
    A request the script has no answer for waits forever (the test ends by disposing)."""

    def __init__(self, lists: list[Answer], watches: list[Answer]) -> None:
        self.lists = deque(lists)
        self.watches = deque(watches)
        self.requests: list[tuple[float, str, dict[str, str]]] = []
        self.accept: list[str] = []
        self._lot = trio.lowlevel.ParkingLot()

    async def wait_requests(self, n: int) -> None:
        while len(self.requests) < n:
            await self._lot.park()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        is_watch = params.pop("watch", None) == "true"
        self.requests.append((trio.current_time(), "watch" if is_watch else "list", params))
        self.accept.append(request.headers.get("accept", ""))
        self._lot.unpark_all()
        queue = self.watches if is_watch else self.lists
        if not queue:
            await trio.sleep_forever()
        answer = queue.popleft()
        return answer() if callable(answer) else answer

    def kinds(self) -> list[str]:
        return [kind for _, kind, _ in self.requests]


class Events:
    """The observer: records events with their virtual time; `wait_for` parks until a
    predicate over the events holds (no polling, no sleeps)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, WatchEvent]] = []
        self.error: Exception | None = None
        self._lot = trio.lowlevel.ParkingLot()

    def on_next(self, event: WatchEvent) -> None:
        self.items.append((trio.current_time(), event))
        self._lot.unpark_all()

    def on_error(self, error: Exception) -> None:
        self.error = error
        self._lot.unpark_all()

    async def wait_for(self, predicate: Callable[[list[WatchEvent]], bool]) -> None:
        while not predicate(self.events):
            await self._lot.park()

    async def wait_error(self) -> Exception:
        while self.error is None:
            await self._lot.park()
        return self.error

    @property
    def events(self) -> list[WatchEvent]:
        return [e for _, e in self.items]

    def summary(self) -> list[tuple[str, str, str]]:
        return [
            (e.type, e.object.get("metadata", {}).get("name", "-"), e.resource_version)
            for e in self.events
        ]

    def synced(self, n: int) -> Callable[[list[WatchEvent]], bool]:
        return lambda events: sum(e.type == "SYNCED" for e in events) >= n


class Run:
    def __init__(self, api: Api, events: Events, counters: WatchCounters) -> None:
        self.api = api
        self.events = events
        self.counters = counters


async def run_watch(
    api: Api,
    body: Callable[[Run], Any],
    *,
    policy: WatchPolicy = POLICY,
    **kw: Any,
) -> Run:
    config = KubeConfig(server="http://k8s.test", namespace="apps")
    events = Events()
    counters = WatchCounters()
    run = Run(api, events, counters)
    async with (
        open_client(config, transport=httpx.MockTransport(api)) as client,
        trio.open_nursery() as nursery,
    ):
        observable = watch(
            client,
            PODS,
            namespace="apps",
            policy=policy,
            rng=random.Random(7),
            counters=counters,
            **kw,
        )
        subscription: abc.DisposableBase = observable.subscribe(
            events.on_next, events.on_error, scheduler=TrioScheduler(nursery)
        )
        await body(run)
        subscription.dispose()
    return run


async def test_list_pages_then_watch_from_the_lists_version(autojump_clock: Clock) -> None:
    api = Api(
        lists=[
            listing("10", pod("a", "3"), cont="page2"),
            listing("10", pod("b", "7")),
        ],
        watches=[
            stream(
                line("MODIFIED", pod("a", "11")), bookmark("12"), line("DELETED", pod("b", "13"))
            )
        ],
    )

    async def body(run: Run) -> None:
        await run.events.wait_for(lambda ev: len(ev) == 5)
        await run.api.wait_requests(4)

    run = await run_watch(api, body)
    assert run.events.summary() == [
        ("ADDED", "a", "3"),
        ("ADDED", "b", "7"),
        ("SYNCED", "-", "10"),
        ("MODIFIED", "a", "11"),
        ("DELETED", "b", "13"),
    ]
    # List items carry no kind; events get it, like watch events.
    assert run.events.events[0].object["kind"] == "Pod"
    assert run.events.events[0].object["apiVersion"] == "v1"
    assert run.events.events[0].stream == "pods/apps"
    expected_timeout = str(int(10.0 * (1 + random.Random(7).random())))
    assert api.requests[:3] == [
        (0.0, "list", {"limit": "500", "resourceVersion": "0"}),
        (0.0, "list", {"limit": "500", "continue": "page2"}),
        (
            0.0,
            "watch",
            {
                "resourceVersion": "10",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": expected_timeout,
            },
        ),
    ]
    # The stream ended cleanly: re-watch at once from the last RV (the DELETED's), no relist.
    assert api.requests[3][:2] == (0.0, "watch")
    assert api.requests[3][2]["resourceVersion"] == "13"
    stats = run.counters.statistics()
    assert (stats.lists, stats.relists, stats.watches, stats.reconnects) == (1, 0, 2, 1)
    assert (stats.events, stats.bookmarks, stats.resource_version) == (4, 1, "13")
    assert stats.synced is True
    assert stats.errors == {}


async def test_bookmarks_advance_the_version_and_are_not_passed_on(autojump_clock: Clock) -> None:
    api = Api(
        lists=[listing("10")],
        watches=[
            stream(bookmark("20"), bookmark("30"), then="drop"),
            stream(line("ADDED", pod("x", "31"))),
        ],
    )

    async def body(run: Run) -> None:
        await run.events.wait_for(lambda ev: len(ev) == 2)
        await run.api.wait_requests(4)

    run = await run_watch(api, body)
    assert run.events.summary() == [("SYNCED", "-", "10"), ("ADDED", "x", "31")]
    assert api.kinds() == ["list", "watch", "watch", "watch"]
    # A dropped connection resumes from the bookmark, at once and without a relist.
    assert api.requests[2][0] == 0.0
    assert api.requests[2][2]["resourceVersion"] == "30"
    stats = run.counters.statistics()
    assert stats.relists == 0
    assert stats.errors == {"Connection": 1}


async def test_gone_relists_and_synthesizes_deletions(autojump_clock: Clock) -> None:
    api = Api(
        lists=[
            listing("10", pod("a", "1"), pod("b", "2"), pod("c", "3")),
            # b vanished while we were away, c changed, d is new, a is unchanged.
            listing("40", pod("a", "1"), pod("c", "33"), pod("d", "35")),
        ],
        watches=[stream(line("MODIFIED", pod("a", "1")), gone())],
    )

    async def body(run: Run) -> None:
        await run.events.wait_for(run.events.synced(2))

    run = await run_watch(api, body)
    assert run.events.summary()[4:] == [
        ("MODIFIED", "a", "1"),
        ("MODIFIED", "c", "33"),
        ("ADDED", "d", "35"),
        ("DELETED", "b", "2"),  # the last state seen, resourceVersion included
        ("SYNCED", "-", "40"),
    ]
    deleted = run.events.events[-2]
    assert deleted.final_state_unknown is True
    assert deleted.object["metadata"]["resourceVersion"] == "2"
    assert all(not e.final_state_unknown for e in run.events.events[:-2])
    # The relist comes after the first backoff delay (0.5 s, no jitter), not-older-than the
    # last RV and without a limit (client-go: no paging from a specific RV).
    assert api.requests[2] == (0.5, "list", {"resourceVersion": "1"})
    stats = run.counters.statistics()
    assert (stats.lists, stats.relists, stats.synthesized_deletions) == (2, 1, 1)
    assert stats.errors == {"Gone": 1}
    assert stats.last_error is not None
    assert "too old resource version" in stats.last_error


async def test_a_gone_relist_falls_back_to_the_latest_state(autojump_clock: Clock) -> None:
    api = Api(
        lists=[
            listing("10"),
            status(410, "Expired", "The resourceVersion for the provided list is too old."),
            listing("50", pod("z", "49")),
        ],
        watches=[stream(gone())],
    )

    async def body(run: Run) -> None:
        await run.events.wait_for(run.events.synced(2))

    run = await run_watch(api, body)
    lists = [(t, p) for t, kind, p in api.requests if kind == "list"]
    assert lists == [
        (0.0, {"limit": "500", "resourceVersion": "0"}),
        (0.5, {"resourceVersion": "10"}),
        (1.5, {"limit": "500", "resourceVersion": ""}),
    ]
    assert run.events.summary()[-2:] == [("ADDED", "z", "49"), ("SYNCED", "-", "50")]


async def test_an_expired_continue_redoes_the_list_in_one_request(autojump_clock: Clock) -> None:
    api = Api(
        lists=[
            listing("10", pod("a", "1"), cont="tok"),
            status(410, "Expired", "The provided continue parameter is too old"),
            listing("12", pod("a", "1"), pod("b", "11")),
        ],
        watches=[],
    )

    async def body(run: Run) -> None:
        await run.events.wait_for(run.events.synced(1))

    run = await run_watch(api, body)
    assert [p for _, kind, p in api.requests if kind == "list"] == [
        {"limit": "500", "resourceVersion": "0"},
        {"limit": "500", "continue": "tok"},
        {"resourceVersion": "0"},
    ]
    assert run.events.summary() == [
        ("ADDED", "a", "1"),
        ("ADDED", "b", "11"),
        ("SYNCED", "-", "12"),
    ]
    assert run.counters.statistics().errors == {"Gone": 1}


async def test_429_waits_for_retry_after_and_5xx_backs_off_exponentially(
    autojump_clock: Clock,
) -> None:
    api = Api(
        lists=[
            httpx.Response(
                429,
                text="Too many requests, please try again later.\n",
                headers={"Retry-After": "3"},
            ),
            listing("10"),
        ],
        watches=[
            status(500, "InternalError", "etcd is sad"),
            status(503, "ServiceUnavailable", "shutting down"),
            status(500, "InternalError", "etcd is sad"),
            stream(line("ADDED", pod("a", "11")), then="hang"),
        ],
    )

    async def body(run: Run) -> None:
        await run.events.wait_for(lambda ev: len(ev) == 2)

    run = await run_watch(api, body)
    # Retry-After (3 s) wins over the first backoff delay (0.5 s); then 5xx: 1, 2, 4.
    assert [(t, kind) for t, kind, _ in api.requests] == [
        (0.0, "list"),
        (3.0, "list"),
        (3.0, "watch"),
        (4.0, "watch"),
        (6.0, "watch"),
        (10.0, "watch"),
    ]
    assert run.counters.statistics().errors == {"TooManyRequests": 1, "ServerError": 3}
    assert all(p["resourceVersion"] == "10" for _, kind, p in api.requests if kind == "watch")
    assert run.counters.statistics().relists == 0


async def test_backoff_resets_after_a_healthy_period(autojump_clock: Clock) -> None:
    policy = WatchPolicy(
        backoff_initial=0.5, backoff_jitter=0.0, backoff_reset=60.0, inactivity_timeout=500.0
    )
    late_failure = stream(bookmark("11"), then="hang")

    async def healthy_then_failing() -> AsyncIterator[bytes]:
        yield bookmark("12")
        await trio.sleep(100)  # a long healthy watch
        raise httpx.ReadError("reset")

    api = Api(
        lists=[listing("10")],
        watches=[
            status(500, "InternalError", "x"),
            status(500, "InternalError", "x"),
            lambda: httpx.Response(200, content=healthy_then_failing()),
            status(500, "InternalError", "x"),
            late_failure,
        ],
    )

    async def body(run: Run) -> None:
        await run.api.wait_requests(6)

    await run_watch(api, body, policy=policy)
    times = [t for t, kind, _ in api.requests if kind == "watch"]
    # 0.5, 1; then 100 s of health, a dropped stream resumed at once; the next failure
    # waits 0.5 again, not 2.
    assert times == [0.0, 0.5, 1.5, 101.5, 102.0]


async def test_a_stalled_connection_is_caught_by_the_inactivity_timeout(
    autojump_clock: Clock,
) -> None:
    api = Api(
        lists=[listing("10")],
        watches=[
            stream(line("ADDED", pod("a", "11")), then="hang"),
            stream(line("ADDED", pod("b", "12")), then="hang"),
        ],
    )

    async def body(run: Run) -> None:
        await run.events.wait_for(lambda ev: len(ev) == 3)

    run = await run_watch(api, body)
    assert [(t, kind) for t, kind, _ in api.requests] == [
        (0.0, "list"),
        (0.0, "watch"),
        (50.0, "watch"),
    ]
    assert api.requests[2][2]["resourceVersion"] == "11"
    assert run.events.items[-1][0] == 50.0
    stats = run.counters.statistics()
    assert stats.errors == {"Inactivity": 1}
    assert (stats.reconnects, stats.relists) == (1, 0)


async def test_a_malformed_line_is_logged_and_answered_by_a_relist(
    autojump_clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    api = Api(
        lists=[listing("10", pod("a", "1")), listing("20", pod("a", "15"))],
        watches=[
            stream(
                line("MODIFIED", pod("a", "11")),
                b'{"type":"MODIFIED","object":{"metad\n',
                line("MODIFIED", pod("a", "99")),
            )
        ],
    )

    async def body(run: Run) -> None:
        await run.events.wait_for(run.events.synced(2))

    with caplog.at_level(logging.ERROR, logger="rxkube.streams.watch"):
        run = await run_watch(api, body)
    assert run.events.summary() == [
        ("ADDED", "a", "1"),
        ("SYNCED", "-", "10"),
        ("MODIFIED", "a", "11"),
        ("MODIFIED", "a", "15"),  # what the line after the bad one said is never trusted
        ("SYNCED", "-", "20"),
    ]
    assert run.counters.statistics().errors == {"Malformed": 1}
    assert any("malformed watch line" in r.getMessage() for r in caplog.records)


async def test_a_403_names_what_rbac_must_allow_and_is_retried(
    autojump_clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    message = (
        'pods is forbidden: User "system:serviceaccount:rxkube:rxkube" cannot list resource '
        '"pods" in API group "" in the namespace "apps"'
    )
    api = Api(
        lists=[status(403, "Forbidden", message), status(403, "Forbidden", message), listing("10")],
        watches=[],
    )

    async def body(run: Run) -> None:
        await run.events.wait_for(run.events.synced(1))

    with caplog.at_level(logging.ERROR, logger="rxkube.streams.watch"):
        run = await run_watch(api, body)
    assert [t for t, _, _ in api.requests] == [0.0, 0.5, 1.5, 1.5]
    stats = run.counters.statistics()
    assert stats.errors == {"Forbidden": 2}
    assert stats.last_error is not None
    hint = (
        "grant `list` on `pods` in namespace `apps` (a Role and RoleBinding) "
        "to service account `rxkube/rxkube`"
    )
    assert hint in stats.last_error
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert hint in errors[0].getMessage()


async def test_a_bad_selector_ends_the_stream_with_the_error(autojump_clock: Clock) -> None:
    api = Api(
        lists=[status(400, "BadRequest", "unable to parse requirement: invalid label key")],
        watches=[],
    )

    async def body(run: Run) -> None:
        error = await run.events.wait_error()
        assert isinstance(error, BadRequest)

    run = await run_watch(api, body, label_selector="app in (")
    assert run.events.items == []
    assert api.requests[0][2]["labelSelector"] == "app in ("


async def test_a_very_short_empty_watch_backs_off(autojump_clock: Clock) -> None:
    api = Api(
        lists=[listing("10")], watches=[stream(), stream(), stream(line("ADDED", pod("a", "11")))]
    )

    async def body(run: Run) -> None:
        await run.events.wait_for(lambda ev: len(ev) == 2)

    run = await run_watch(api, body)
    assert [t for t, kind, _ in api.requests if kind == "watch"][:3] == [0.0, 0.5, 1.5]
    assert run.counters.statistics().errors == {"ShortWatch": 2}


async def test_metadata_only_asks_for_partial_object_metadata(autojump_clock: Clock) -> None:
    meta_item = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", **pod("a", "1")}
    del meta_item["spec"]
    api = Api(
        lists=[
            httpx.Response(
                200,
                json={
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": {"resourceVersion": "5"},
                    "items": [meta_item],
                },
            )
        ],
        watches=[],
    )

    async def body(run: Run) -> None:
        await run.api.wait_requests(2)

    run = await run_watch(api, body, metadata_only=True)
    assert api.accept == [
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
        "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
    ]
    first = run.events.events[0]
    assert first.object["kind"] == "PartialObjectMetadata"
    assert first.stream == "pods/apps?meta"


async def test_disposing_stops_the_watch_and_closes_the_stream(autojump_clock: Clock) -> None:
    closed = trio.Event()

    async def body_stream() -> AsyncIterator[bytes]:
        try:
            yield line("ADDED", pod("a", "11"))
            await trio.sleep_forever()
        finally:
            closed.set()

    api = Api(lists=[listing("10")], watches=[lambda: httpx.Response(200, content=body_stream())])

    async def body(run: Run) -> None:
        await run.events.wait_for(lambda ev: len(ev) == 2)

    await run_watch(api, body)
    assert closed.is_set()
    assert api.kinds() == ["list", "watch"]


def test_the_default_policy_is_client_gos() -> None:
    policy = WatchPolicy()
    assert (policy.backoff_initial, policy.backoff_max, policy.backoff_factor) == (0.8, 30.0, 2.0)
    assert (policy.backoff_jitter, policy.backoff_reset, policy.server_timeout) == (
        1.0,
        120.0,
        300.0,
    )
    assert (policy.page_size, policy.short_watch) == (500, 1.0)
    with pytest.raises(ValueError, match="inactivity_timeout"):
        WatchPolicy(inactivity_timeout=0)


def test_stream_ids_name_one_watch_exactly() -> None:
    assert stream_id(PODS) == "pods"
    assert stream_id(NODES) == "nodes"
    assert (
        stream_id(
            DEPLOYMENTS, namespace="lab", label_selector="app=web,tier!=db", metadata_only=True
        )
        == "deployments.apps/lab?labelSelector=app%3Dweb%2Ctier%21%3Ddb&meta"
    )
    assert (
        stream_id(PODS, field_selector="spec.nodeName=n1")
        == "pods?fieldSelector=spec.nodeName%3Dn1"
    )


def test_a_watch_needs_a_trio_scheduler() -> None:
    async def main() -> None:
        config = KubeConfig(server="http://k8s.test")
        async with open_client(
            config, transport=httpx.MockTransport(lambda r: httpx.Response(500))
        ) as client:
            with pytest.raises(TypeError, match="needs a TrioScheduler"):
                watch(client, PODS).subscribe(lambda e: None)

    trio.run(main)


# -- the informer ---------------------------------------------------------------------------


def managed(p: dict[str, Any]) -> dict[str, Any]:
    p["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Update"}]
    return p


async def test_an_informer_shares_one_watch_and_replays_its_store_to_late_subscribers(
    autojump_clock: Clock,
) -> None:
    api = Api(
        lists=[listing("10", managed(pod("a", "1", app="web")), pod("b", "2", app="db"))],
        watches=[
            stream(line("ADDED", managed(pod("c", "11", app="web"))), then="hang"),
        ],
    )
    config = KubeConfig(server="http://k8s.test", namespace="apps")
    early = Events()
    late = Events()
    async with (
        open_client(config, transport=httpx.MockTransport(api)) as client,
        open_informer(
            client,
            PODS,
            namespace="apps",
            indexers={"app": label_indexer("app")},
            policy=POLICY,
            rng=random.Random(1),
        ) as informer,
    ):
        informer.events.subscribe(early.on_next, early.on_error)
        await informer.wait_synced()
        assert informer.synced
        assert {"apps/a", "apps/b"} <= set(informer.store.keys())
        await early.wait_for(lambda ev: len(ev) == 4)
        # Joining late: the store's contents as ADDED, a SYNCED, then live events.
        informer.events.subscribe(late.on_next, late.on_error)
        assert late.summary() == [
            ("ADDED", "a", "1"),
            ("ADDED", "b", "2"),
            ("ADDED", "c", "11"),
            ("SYNCED", "-", "11"),
        ]
        stats = informer.statistics()
        assert (stats.objects, stats.subscribers, stats.lists, stats.events) == (3, 2, 1, 3)
        assert stats.synced is True
        assert stats.resource_version == "11"
        assert [o.key for o in informer.store.by_index("app", "web")] == ["apps/a", "apps/c"]
    assert early.summary() == [
        ("ADDED", "a", "1"),
        ("ADDED", "b", "2"),
        ("SYNCED", "-", "10"),
        ("ADDED", "c", "11"),
    ]
    # managedFields are dropped before the object is kept or published: one copy of the bytes.
    for event in early.events[:2] + early.events[3:]:
        assert "managedFields" not in event.object["metadata"]
        assert event.raw is informer.store[event.meta.key].raw
    assert api.kinds() == ["list", "watch"]  # one watch, however many subscribers


async def test_an_informer_with_a_bad_selector_fails_its_block(autojump_clock: Clock) -> None:
    api = Api(lists=[status(400, "BadRequest", "unable to parse requirement")], watches=[])
    config = KubeConfig(server="http://k8s.test", namespace="apps")
    with pytest.RaisesGroup(BadRequest, flatten_subgroups=True):
        async with (
            open_client(config, transport=httpx.MockTransport(api)) as client,
            open_informer(client, PODS, label_selector="app in (", policy=POLICY) as informer,
        ):
            await informer.wait_synced()


# -- recording --------------------------------------------------------------------------------


async def test_an_informer_records_every_event_to_a_trace(
    autojump_clock: Clock, tmp_path: Path
) -> None:
    api = Api(
        lists=[listing("10", pod("a", "1"), pod("b", "2")), listing("20", pod("a", "15"))],
        watches=[stream(line("MODIFIED", pod("a", "11")), gone())],
    )
    config = KubeConfig(server="http://k8s.test", namespace="apps")
    sid = stream_id(PODS, namespace="apps")
    assert stream_spec(PODS, namespace="apps") == {
        "resource": "pods",
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": "apps",
    }
    path = tmp_path / "pods.jsonl.gz"
    async with (
        open_client(config, transport=httpx.MockTransport(api)) as client,
        trio.open_nursery() as nursery,
    ):
        scheduler = TrioScheduler(nursery)
        with open_trace_writer(
            path, streams={sid: stream_spec(PODS, namespace="apps")}, scheduler=scheduler
        ) as writer:
            async with open_informer(
                client, PODS, namespace="apps", policy=POLICY, record=writer
            ) as informer:
                assert informer.spec == stream_spec(PODS, namespace="apps")
                await informer.wait_until(lambda s: s.relists == 1)
    with open_trace(path) as reader:
        assert reader.header.streams == {sid: stream_spec(PODS, namespace="apps")}
        records = [
            (r.t, r.event.type, r.event.resource_version, r.event.final_state_unknown)
            for r in reader
            if isinstance(r.event, WatchEvent)
        ]
    assert records == [
        (0.0, "ADDED", "1", False),
        (0.0, "ADDED", "2", False),
        (0.0, "SYNCED", "10", False),
        (0.0, "MODIFIED", "11", False),
        (0.5, "MODIFIED", "15", False),  # the relist, after the first backoff delay
        (0.5, "DELETED", "2", True),
        (0.5, "SYNCED", "20", False),
    ]


async def test_recording_needs_the_stream_declared(autojump_clock: Clock, tmp_path: Path) -> None:
    config = KubeConfig(server="http://k8s.test", namespace="apps")
    async with (
        open_client(config, transport=httpx.MockTransport(Api([], []))) as client,
        trio.open_nursery() as nursery,
    ):
        with (
            open_trace_writer(
                tmp_path / "t.jsonl", streams={"pods": {}}, scheduler=TrioScheduler(nursery)
            ) as writer,
            pytest.raises(ValueError, match="does not declare the stream 'pods/apps'"),
        ):
            async with open_informer(client, PODS, namespace="apps", record=writer):
                pass


async def test_a_too_large_resource_version_on_watch_relists_the_latest_state(
    autojump_clock: Clock,
) -> None:
    too_large = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Timeout: Too large resource version: 105, current: 100",
        "reason": "Timeout",
        "details": {"causes": [{"reason": "ResourceVersionTooLarge"}], "retryAfterSeconds": 1},
        "code": 504,
    }
    api = Api(
        lists=[listing("105", pod("a", "1")), listing("100", pod("a", "1"))],
        watches=[stream(line("ERROR", too_large))],
    )

    async def body(run: Run) -> None:
        await run.events.wait_for(run.events.synced(2))

    run = await run_watch(api, body)
    assert [(t, kind, p.get("resourceVersion")) for t, kind, p in api.requests[:3]] == [
        (0.0, "list", "0"),
        (0.0, "watch", "105"),
        (1.0, "list", ""),  # Retry-After (1 s) over the 0.5 s backoff; then the latest state
    ]
    assert run.counters.statistics().errors == {"ServerError": 1}


async def test_a_gzip_encoded_watch_is_decoded(autojump_clock: Clock) -> None:
    body = gzip.compress(line("ADDED", pod("a", "11")) + line("DELETED", pod("a", "12")))
    api = Api(
        lists=[listing("10")],
        watches=[lambda: httpx.Response(200, content=body, headers={"Content-Encoding": "gzip"})],
    )

    async def body_(run: Run) -> None:
        await run.events.wait_for(lambda ev: len(ev) == 3)

    run = await run_watch(api, body_)
    assert run.events.summary() == [
        ("SYNCED", "-", "10"),
        ("ADDED", "a", "11"),
        ("DELETED", "a", "12"),
    ]
