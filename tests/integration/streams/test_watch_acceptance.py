"""Issue 11 acceptance: `watch()` and the informer against the fake API server over loopback,
through the real client, under each failure the API server and the network produce.

In every test the informer's Store ends equal to the server's state, compared with a fresh
(consistent) list. Timings are shortened through `WatchPolicy` (real clock: sockets are real);
waits are for conditions (`informer.wait_until`), never sleeps.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from reactivex import operators as ops

from rxkube.fakes import FakeApiServer, Fault
from rxkube.streams import (
    CONFIGMAPS,
    NAMESPACES,
    PODS,
    Informer,
    InformerStatistics,
    KubeClient,
    Resource,
    Store,
    TrioScheduler,
    WatchEvent,
    WatchPolicy,
    load_kubeconfig,
    open_client,
    open_informer,
    open_trace,
    open_trace_writer,
    stream_id,
    stream_spec,
    watch,
)

NS = "default"
POLICY = WatchPolicy(
    page_size=2,
    server_timeout=30,
    inactivity_timeout=1.0,
    backoff_initial=0.05,
    backoff_max=0.4,
    backoff_reset=5.0,
)
DEADLINE = 15.0


def configmap(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"v": "0"}}


async def create(client: KubeClient, *names: str, **labels: str) -> None:
    for name in names:
        await client.create(CONFIGMAPS, configmap(name, **labels), namespace=NS)


async def server_state(
    client: KubeClient, resource: Resource = CONFIGMAPS, label_selector: str | None = None
) -> dict[str, str]:
    """key -> resourceVersion, from a fresh consistent list (no resourceVersion)."""
    listed = await client.list(resource, namespace=NS, label_selector=label_selector)
    return {
        f"{o['metadata']['namespace']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
        for o in listed.items
    }


def store_state(store: Store) -> dict[str, str]:
    return {key: obj.meta.resource_version for key, obj in store.items()}


async def converge(
    informer: Informer, client: KubeClient, label_selector: str | None = None
) -> None:
    """Wait until the informer's store equals a fresh list of the server (it must, soon)."""
    expected = await server_state(client, informer.resource, label_selector)
    with trio.fail_after(DEADLINE):
        await informer.wait_until(lambda _: store_state(informer.store) == expected)


async def wait(informer: Informer, predicate: Callable[[InformerStatistics], Any]) -> None:
    with trio.fail_after(DEADLINE):
        await informer.wait_until(lambda s: bool(predicate(s)))


async def live(informer: Informer) -> None:
    """Wait until the informer's watch is open on the server: a bookmark arrived on it."""
    seen = informer.statistics().bookmarks
    await wait(informer, lambda s: s.synced and s.bookmarks > seen)


class Seen:
    """A second consumer: records the events and folds them into its own Store, which must
    end equal to the informer's (the event stream alone carries the state)."""

    def __init__(self) -> None:
        self.events: list[WatchEvent] = []
        self.store = Store(transform=None)

    def on_next(self, event: WatchEvent) -> None:
        self.events.append(event)
        self.store.apply(event)

    def deletions(self) -> list[tuple[str, bool]]:
        return [(e.meta.key, e.final_state_unknown) for e in self.events if e.type == "DELETED"]


def informer_for(client: KubeClient, **kw: Any) -> Any:
    return open_informer(client, CONFIGMAPS, namespace=NS, policy=kw.pop("policy", POLICY), **kw)


async def test_initial_list_then_watch(server: FakeApiServer, client: KubeClient) -> None:
    await create(client, "a", "b", "c", "d", "e")
    seen = Seen()
    async with informer_for(client) as informer:
        informer.events.subscribe(seen.on_next)
        with trio.fail_after(DEADLINE):
            await informer.wait_synced()
        await converge(informer, client)
        await create(client, "f")
        await client.patch(CONFIGMAPS, "a", {"data": {"v": "1"}}, namespace=NS)
        await client.delete(CONFIGMAPS, "b", namespace=NS)
        await converge(informer, client)
        stats = informer.statistics()
        assert (stats.lists, stats.relists, stats.errors) == (1, 0, {})
        assert stats.synced
    assert [(e.type, e.meta.key) for e in seen.events[-3:]] == [
        ("ADDED", "default/f"),
        ("MODIFIED", "default/a"),
        ("DELETED", "default/b"),
    ]
    assert [e.type for e in seen.events[:6]] == ["ADDED"] * 5 + ["SYNCED"]
    assert store_state(seen.store) == store_state(informer.store)
    assert all(e.object["kind"] == "ConfigMap" for e in seen.events if e.type != "SYNCED")


async def test_resume_after_a_dropped_connection_without_relisting(
    server: FakeApiServer, client: KubeClient
) -> None:
    await create(client, "a", "b")
    async with informer_for(client) as informer:
        await live(informer)
        assert server.faults.drop_watches() == 1
        await create(client, "c")
        await client.delete(CONFIGMAPS, "a", namespace=NS)
        await converge(informer, client)
        # And a watch cut after one event, half-way through the next line.
        server.faults.inject(Fault.truncate(after_events=1), verb="watch")
        await live(informer)
        server.faults.drop_watches()
        await create(client, "d", "e", "f")
        await converge(informer, client)
        stats = informer.statistics()
    assert server.faults.fired("truncate") == 1, (server.faults.counts, stats)
    assert stats.relists == 0
    assert stats.reconnects >= 2
    assert stats.errors.get("Connection", 0) >= 2
    assert "Malformed" not in stats.errors


async def _disconnect_and_change(
    server: FakeApiServer, client: KubeClient, informer: Informer
) -> None:
    """Hold the watch off (its reconnect stalls), change things it cannot see, and compact
    the history, so that its next watch gets 410 and it must relist."""
    await live(informer)
    server.faults.inject(Fault.stall(), verb="watch", resource="configmaps")
    watches = informer.statistics().watches
    server.faults.drop_watches()
    await wait(informer, lambda s: s.watches > watches)
    await client.delete(CONFIGMAPS, "b", namespace=NS)
    await client.delete(CONFIGMAPS, "c", namespace=NS)
    await client.patch(CONFIGMAPS, "a", {"data": {"v": "2"}}, namespace=NS)
    await create(client, "z")
    server.store.compact()


async def test_relist_after_a_410_error_event_synthesizes_deletions(
    server: FakeApiServer, client: KubeClient
) -> None:
    await create(client, "a", "b", "c", "d")
    seen = Seen()
    async with informer_for(client) as informer:
        informer.events.subscribe(seen.on_next)
        await wait(informer, lambda s: s.synced)
        await _disconnect_and_change(server, client, informer)
        await wait(informer, lambda s: s.relists == 1)
        await converge(informer, client)
        stats = informer.statistics()
    assert stats.errors.get("Inactivity") == 1  # the stalled reconnect
    assert stats.errors.get("Gone") == 1  # the in-band ERROR 410 on the next watch
    assert stats.synthesized_deletions == 2
    assert sorted(seen.deletions()) == [("default/b", True), ("default/c", True)]
    deleted = [e for e in seen.events if e.final_state_unknown]
    assert all(e.object["metadata"]["name"] in ("b", "c") for e in deleted)  # last known state
    assert store_state(seen.store) == store_state(informer.store)


async def test_relist_after_an_expired_continue_lists_again_in_one_request(
    server: FakeApiServer, client: KubeClient
) -> None:
    await create(client, "a", "b", "c", "d", "e")
    seen = Seen()
    async with informer_for(client) as informer:
        informer.events.subscribe(seen.on_next)
        await wait(informer, lambda s: s.synced)
        # The relist from the last RV is refused (410), so the next one reads the latest state
        # page by page (limit 2); its continue token has expired (HTTP 410) by page 2.
        rules = [
            server.faults.inject(Fault.status(410), verb="list"),
            server.faults.inject(Fault.delay(0.0), verb="list"),
            server.faults.inject(
                Fault.status(410, message="The provided continue parameter is too old"),
                verb="list",
            ),
        ]
        await _disconnect_and_change(server, client, informer)
        await wait(informer, lambda s: s.relists == 1)
        await converge(informer, client)
        stats = informer.statistics()
    assert [rule.fired for rule in rules] == [1, 1, 1]
    assert stats.errors.get("Gone") == 3  # the watch's, the list's, the continue's
    assert sorted(seen.deletions()) == [("default/b", True), ("default/c", True)]
    assert store_state(seen.store) == store_state(informer.store)


async def test_429_waits_for_retry_after(server: FakeApiServer, client: KubeClient) -> None:
    await create(client, "a")
    async with informer_for(client) as informer:
        await live(informer)
        server.faults.inject(Fault.too_many_requests(retry_after=1), verb="watch")
        watches = informer.statistics().watches
        dropped_at = trio.current_time()
        server.faults.drop_watches()
        await create(client, "b")
        await wait(informer, lambda s: s.watches >= watches + 2)
        waited = trio.current_time() - dropped_at
        await converge(informer, client)
        stats = informer.statistics()
    assert stats.errors.get("TooManyRequests") == 1
    assert waited >= 1.0  # Retry-After, although the backoff alone would be 0.05 s
    assert stats.relists == 0


async def test_bursts_of_500s_on_list_and_watch(server: FakeApiServer, client: KubeClient) -> None:
    await create(client, "a", "b")
    server.faults.inject(Fault.status(500), verb="list", times=2)
    async with informer_for(client) as informer:
        await live(informer)
        server.faults.inject(Fault.status(503, retry_after=0), verb="watch", times=3)
        server.faults.drop_watches()
        await create(client, "c")
        await client.delete(CONFIGMAPS, "a", namespace=NS)
        await converge(informer, client)
        stats = informer.statistics()
    assert server.faults.fired("status") == 5
    assert stats.errors.get("ServerError") == 5
    assert (stats.lists, stats.relists) == (1, 0)


async def test_a_stalled_connection_is_caught_by_the_inactivity_timeout(
    server: FakeApiServer, client: KubeClient
) -> None:
    await create(client, "a")
    server.faults.inject(Fault.stall(), verb="watch")
    async with informer_for(client) as informer:
        await wait(informer, lambda s: s.synced)
        await create(client, "b", "c")
        started = trio.current_time()
        await converge(informer, client)
        caught_after = trio.current_time() - started
        stats = informer.statistics()
    assert server.faults.fired("stall") == 1
    assert stats.errors == {"Inactivity": 1}
    assert caught_after < DEADLINE
    assert (stats.relists, stats.reconnects) == (0, 1)


async def test_a_malformed_line_is_answered_by_a_relist(
    server: FakeApiServer, client: KubeClient
) -> None:
    await create(client, "a", "b")
    async with informer_for(client) as informer:
        await live(informer)
        server.faults.inject(Fault.malformed(after_events=0), verb="watch")
        server.faults.drop_watches()
        await create(client, "c")
        await wait(informer, lambda s: s.relists == 1)
        await client.delete(CONFIGMAPS, "b", namespace=NS)
        await converge(informer, client)
        stats = informer.statistics()
    assert server.faults.fired("malformed") == 1
    assert stats.errors.get("Malformed") == 1
    assert stats.last_error is not None


async def test_metadata_only_watch(server: FakeApiServer, client: KubeClient) -> None:
    await create(client, "a", "b", app="web")
    async with informer_for(client, metadata_only=True) as informer:
        await wait(informer, lambda s: s.synced)
        await create(client, "c", app="db")
        await client.patch(CONFIGMAPS, "a", {"metadata": {"labels": {"app": "db"}}}, namespace=NS)
        await converge(informer, client)
        objects = {key: obj.object for key, obj in informer.store.items()}
        assert informer.stream == "configmaps/default?meta"
    assert {o["kind"] for o in objects.values()} == {"PartialObjectMetadata"}
    assert all("data" not in o for o in objects.values())
    assert objects["default/a"]["metadata"]["labels"] == {"app": "db"}


async def test_selector_transitions(server: FakeApiServer, client: KubeClient) -> None:
    await create(client, "a", app="web")
    await create(client, "b", app="db")
    seen = Seen()
    async with informer_for(client, label_selector="app=web") as informer:
        informer.events.subscribe(seen.on_next)
        await wait(informer, lambda s: s.synced)
        assert list(informer.store) == ["default/a"]
        await client.patch(CONFIGMAPS, "b", {"metadata": {"labels": {"app": "web"}}}, namespace=NS)
        await client.patch(CONFIGMAPS, "a", {"metadata": {"labels": {"app": "db"}}}, namespace=NS)
        await converge(informer, client, label_selector="app=web")
    assert [(e.type, e.meta.key) for e in seen.events] == [
        ("ADDED", "default/a"),
        ("SYNCED", ""),
        ("ADDED", "default/b"),  # no match -> match
        ("DELETED", "default/a"),  # match -> no match
    ]
    # The DELETED of a transition carries the previous content (label still app=web).
    assert seen.events[-1].object["metadata"]["labels"] == {"app": "web"}
    assert list(informer.store) == ["default/b"]


ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")


async def test_a_403_says_what_to_grant_and_recovers_once_the_role_exists(
    tmp_path: Path,
) -> None:
    from rxkube.fakes import open_fake_apiserver

    async with open_fake_apiserver(rbac=True, bookmark_interval=0.2) as server:
        token = server.add_service_account("apps", "rxkube")
        own = server.write_kubeconfig(tmp_path / "rxkube", token=token, namespace="apps")
        async with (
            open_client(load_kubeconfig(server.kubeconfig_path), rate_limit=None) as admin,
            open_client(load_kubeconfig(own), rate_limit=None) as client,
        ):
            await admin.create(NAMESPACES, {"metadata": {"name": "apps"}})
            await admin.create(PODS, _pod("web-0"), namespace="apps")
            async with open_informer(client, PODS, namespace="apps", policy=POLICY) as informer:
                await wait(informer, lambda s: s.errors.get("Forbidden", 0) >= 2)
                stats = informer.statistics()
                assert not stats.synced
                assert stats.last_error is not None
                assert (
                    "grant `list` on `pods` in namespace `apps` (a Role and RoleBinding) "
                    "to service account `apps/rxkube`"
                ) in stats.last_error
                await admin.create(ROLES, _role("pod-reader"), namespace="apps")
                await admin.create(
                    ROLE_BINDINGS, _binding("pod-reader", "apps", "rxkube"), namespace="apps"
                )
                with trio.fail_after(DEADLINE):
                    await informer.wait_synced()
                await admin.create(PODS, _pod("web-1"), namespace="apps")
                expected = {
                    f"apps/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
                    for o in (await admin.list(PODS, namespace="apps")).items
                }
                with trio.fail_after(DEADLINE):
                    await informer.wait_until(lambda _: store_state(informer.store) == expected)


async def test_401_rereads_a_rotated_token_file(tmp_path: Path) -> None:
    from rxkube.fakes import open_fake_apiserver

    async with open_fake_apiserver(auth=True, bookmark_interval=0.2) as server:
        old = server.add_user("robot")
        token_file = tmp_path / "token"
        token_file.write_text(old)
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            server.kubeconfig_path.read_text().replace(
                f"token: {server.admin_token}", f"tokenFile: {token_file}"
            )
        )
        config = load_kubeconfig(kubeconfig)
        async with open_client(config, rate_limit=None) as client:
            await client.create(CONFIGMAPS, configmap("a"), namespace=NS)
            async with informer_for(client) as informer:
                await live(informer)
                # The old token is revoked before the file is rotated: requests get 401,
                # the client re-reads the file (still old) and retries, then backs off.
                del server.api.authenticator.tokens[old]
                new = server.add_user("robot")
                server.faults.drop_watches()
                await wait(informer, lambda s: s.errors.get("Unauthorized", 0) >= 1)
                rotated = tmp_path / "token.new"
                rotated.write_text(new)
                os.replace(rotated, token_file)
                await client.create(CONFIGMAPS, configmap("b"), namespace=NS)
                await converge(informer, client)
                assert informer.statistics().relists == 0


def _pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
    }


def _role(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }


def _binding(role: str, namespace: str, account: str) -> dict[str, Any]:
    return {
        "metadata": {"name": role},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }


async def test_a_recorded_trace_rebuilds_the_store(
    server: FakeApiServer, client: KubeClient, tmp_path: Path
) -> None:
    await create(client, "a", "b", "c")
    path = tmp_path / "configmaps.jsonl.gz"
    sid = stream_id(CONFIGMAPS, namespace=NS)
    async with trio.open_nursery() as nursery:
        with open_trace_writer(
            path,
            streams={sid: stream_spec(CONFIGMAPS, namespace=NS)},
            scheduler=TrioScheduler(nursery),
            source=server.url,
        ) as writer:
            async with informer_for(client, record=writer) as informer:
                await live(informer)
                await _disconnect_and_change(server, client, informer)
                await wait(informer, lambda s: s.relists == 1)
                await converge(informer, client)
                expected = store_state(informer.store)
    replayed = Store(transform=None)
    with open_trace(path) as trace:
        assert trace.header.source == server.url
        for record in trace:
            assert isinstance(record.event, WatchEvent)
            replayed.apply(record.event)
    assert store_state(replayed) == expected
    assert expected == await server_state(client)


def _not_synced(event: WatchEvent) -> bool:
    return event.type != "SYNCED"


async def test_watch_is_cold_and_disposing_closes_its_connection(
    server: FakeApiServer, client: KubeClient
) -> None:
    await create(client, "a", "b")
    first: list[WatchEvent] = []
    second: list[WatchEvent] = []
    fourth = trio.Event()

    def on_second(event: WatchEvent) -> None:
        second.append(event)
        if len(second) == 4:
            fourth.set()

    async def open_watches(n: int) -> None:
        # The server counts a watch closed when its next write (a bookmark) fails.
        with trio.fail_after(DEADLINE):
            await server.api.wait_open_watches(n)

    async with trio.open_nursery() as nursery:
        scheduler = TrioScheduler(nursery)
        events = watch(client, CONFIGMAPS, namespace=NS, policy=POLICY)
        one = events.pipe(ops.filter(_not_synced)).subscribe(first.append, scheduler=scheduler)
        two = events.subscribe(on_second, scheduler=scheduler)
        await open_watches(2)  # cold: one list+watch per subscription
        one.dispose()
        await open_watches(1)
        await create(client, "c")
        with trio.fail_after(DEADLINE):
            await fourth.wait()
        two.dispose()
        await open_watches(0)
    assert [(e.type, e.meta.key) for e in first] == [("ADDED", "default/a"), ("ADDED", "default/b")]
    assert [e.type for e in second] == ["ADDED", "ADDED", "SYNCED", "ADDED"]
