"""Store: folding events, relist diffs, indexes, transforms, the GC and memory bounds."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import orjson
import pytest
import reactivex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxkube.streams import (
    EventType,
    RawObject,
    Store,
    WatchEvent,
    decode_list,
    label_indexer,
    object_transform,
)

APP = "ipb-halle.de/k8sticket.deployment.app.name"


def pod(
    name: str,
    rv: int,
    *,
    namespace: str = "apps",
    app: str | None = "gmweb",
    phase: str = "Running",
    managed: bool = True,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{namespace}-{name}",
        "resourceVersion": str(rv),
        "labels": {} if app is None else {APP: app},
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid"}
        ],
    }
    if managed:
        metadata["managedFields"] = [{"manager": "kubelet", "operation": "Update"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "web"}]},
        "status": {"phase": phase},
    }


def event(kind: EventType, obj: dict[str, Any], *, stream: str = "pods") -> WatchEvent:
    return WatchEvent(
        kind,
        raw=orjson.dumps(obj),
        resource_version=obj["metadata"]["resourceVersion"],
        stream=stream,
    )


def test_added_modified_deleted_synced() -> None:
    store = Store()
    assert store.apply(event("ADDED", pod("a", 1))) is None
    assert store.apply(event("ADDED", pod("b", 2, phase="Pending"))) is None
    previous = store.apply(event("MODIFIED", pod("b", 3)))
    assert previous is not None
    assert previous.object["status"]["phase"] == "Pending"
    assert store["apps/b"].object["status"]["phase"] == "Running"
    assert not store.statistics().synced
    store.apply(WatchEvent("SYNCED", resource_version="3", stream="pods"))
    assert store.synced
    assert store.resource_version == "3"
    deleted = store.apply(event("DELETED", pod("a", 4)))
    assert deleted is not None
    assert deleted.key == "apps/a"
    assert store.keys() == ["apps/b"]
    assert "apps/a" not in store
    assert len(store) == 1
    assert store.resource_version == "4"
    assert store.statistics().events_applied == 5


def test_tolerates_what_client_go_tolerates() -> None:
    store = Store()
    store.apply(event("MODIFIED", pod("a", 1)))  # unknown key: added
    store.apply(event("ADDED", pod("a", 2)))  # known key: replaced
    assert store["apps/a"].meta.resource_version == "2"
    assert store.apply(event("DELETED", pod("zzz", 3))) is None  # unknown key: ignored
    assert list(store) == ["apps/a"]


def test_the_default_transform_drops_managed_fields() -> None:
    kept_as_is = Store(transform=None)
    default = Store()
    for store in (kept_as_is, default):
        store.apply(event("ADDED", pod("a", 1)))
    assert "managedFields" in kept_as_is["apps/a"].object["metadata"]
    assert "managedFields" not in default["apps/a"].object["metadata"]
    assert default.statistics().raw_bytes < kept_as_is.statistics().raw_bytes


def test_a_user_transform_is_applied_and_the_view_follows_it() -> None:
    def relabel(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["labels"] = {APP: "renamed"}
        return obj

    store = Store(transform=object_transform(relabel), indexers={"app": label_indexer(APP)})
    store.apply(event("ADDED", pod("a", 1)))
    assert store["apps/a"].meta.labels == {APP: "renamed"}
    assert store.index_keys("app", "renamed") == ["apps/a"]


def test_indexes_follow_updates_and_deletions() -> None:
    def by_phase(obj: RawObject) -> list[str]:
        return [obj.object["status"]["phase"]]

    store = Store(indexers={"app": label_indexer(APP), "phase": by_phase})
    store.apply(event("ADDED", pod("a", 1, app="gmweb", phase="Pending")))
    store.apply(event("ADDED", pod("b", 2, app="gmweb")))
    store.apply(event("ADDED", pod("c", 3, app="other", namespace="lab")))
    store.apply(event("ADDED", pod("d", 4, app=None)))
    assert store.index_names() == ["namespace", "app", "phase"]
    assert store.index_keys("namespace", "apps") == ["apps/a", "apps/b", "apps/d"]
    assert store.index_keys("app", "gmweb") == ["apps/a", "apps/b"]
    assert sorted(store.index_values("app")) == ["gmweb", "other"]  # d has no app label
    assert store.index_keys("phase", "Pending") == ["apps/a"]

    store.apply(event("MODIFIED", pod("a", 5, app="other", phase="Running")))
    assert store.index_keys("app", "gmweb") == ["apps/b"]
    assert store.index_keys("app", "other") == ["lab/c", "apps/a"]
    assert store.index_values("phase") == ["Running"]  # the empty Pending bucket is gone

    store.apply(event("DELETED", pod("c", 6, app="other", namespace="lab")))
    assert [o.key for o in store.by_index("app", "other")] == ["apps/a"]
    assert store.index_keys("namespace", "lab") == []
    assert store.by_index("app", "nobody") == []


def test_index_errors_are_clear() -> None:
    store = Store(indexers={"app": label_indexer(APP)})
    with pytest.raises(KeyError, match=r"no index named 'ap'; this store has \['app', 'names"):
        store.index_keys("ap", "x")
    with pytest.raises(ValueError, match="the 'namespace' index is built in"):
        Store(indexers={"namespace": label_indexer(APP)})


def test_replace_synthesizes_deletions_with_the_last_known_state() -> None:
    store = Store()
    for item in (pod("a", 1), pod("b", 2), pod("c", 3, phase="Pending")):
        store.apply(event("ADDED", item))
    store.apply(WatchEvent("SYNCED", resource_version="3", stream="pods"))

    # While disconnected: b changed, c vanished, d appeared; a is unchanged.
    listed = [event("ADDED", pod("a", 1)), event("ADDED", pod("b", 7)), event("ADDED", pod("d", 8))]
    changes = store.replace(listed, resource_version="9", stream="pods")

    summary = [(e.type, e.meta.key, e.resource_version, e.final_state_unknown) for e in changes]
    assert summary == [
        ("MODIFIED", "apps/b", "7", False),
        ("ADDED", "apps/d", "8", False),
        ("DELETED", "apps/c", "3", True),
        ("SYNCED", "", "9", False),
    ]
    assert changes[2].object["status"]["phase"] == "Pending"  # the last state seen
    assert all(e.stream == "pods" for e in changes)
    assert store.keys() == ["apps/a", "apps/b", "apps/d"]
    assert store.synced
    assert store.resource_version == "9"


def test_replace_from_a_list_response_and_both_paths_agree() -> None:
    watcher = Store()
    downstream = Store()
    for item in (pod("a", 1), pod("b", 2)):
        for store in (watcher, downstream):
            store.apply(event("ADDED", item))
    body = orjson.dumps(
        {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "20"},
            "items": [pod("b", 11), pod("e", 12)],
        }
    )
    page = decode_list(body)
    assert page.resource_version == "20"
    # The watch source relists into its own store and emits what replace returns...
    emitted = watcher.replace(page.items, resource_version=page.resource_version, stream="p")
    # ...and a store downstream that only applies the stream ends in the same state.
    for change in emitted:
        downstream.apply(change)
    assert downstream.keys() == watcher.keys() == ["apps/b", "apps/e"]
    assert [o.raw for o in downstream.values()] == [o.raw for o in watcher.values()]
    assert downstream.resource_version == watcher.resource_version == "20"


def test_a_store_is_an_observer_of_watch_events() -> None:
    store = Store()
    events = [event("ADDED", pod("a", 1)), WatchEvent("SYNCED", resource_version="1", stream="s")]
    reactivex.from_iterable(events).subscribe(store)
    assert store.synced
    assert store.keys() == ["apps/a"]
    reactivex.throw(RuntimeError("watch failed")).subscribe(store)
    assert isinstance(store.error, RuntimeError)


def test_clear_forgets_everything() -> None:
    store = Store(indexers={"app": label_indexer(APP)})
    store.apply(event("ADDED", pod("a", 1)))
    store.apply(WatchEvent("SYNCED", resource_version="1", stream="s"))
    store.clear()
    assert len(store) == 0
    assert store.index_values("app") == []
    assert not store.synced
    assert store.statistics().raw_bytes == 0


def test_the_store_gives_the_garbage_collector_nothing_to_traverse() -> None:
    store = Store(indexers={"app": label_indexer(APP)})
    events = [event("ADDED", pod(f"p{i}", i, app=f"app{i % 7}")) for i in range(2000)]
    gc.collect()
    before = len(gc.get_objects())
    for item in events:
        store.apply(item)
    gc.collect()
    after = len(gc.get_objects())
    assert len(store) == 2000
    # 2000 objects with labels, owners and indexes: the collector tracks (almost) none of it.
    assert after - before < 20, after - before


def test_memory_stays_bounded_over_replace_cycles() -> None:
    store = Store(indexers={"app": label_indexer(APP)})

    def cycle(generation: int) -> None:
        # Every cycle replaces everything: new versions, a quarter of the keys new.
        listed = [
            event("ADDED", pod(f"p{i + generation * 50}", generation * 1000 + i, app=f"a{i % 5}"))
            for i in range(200)
        ]
        store.replace(listed, resource_version=str(generation * 1000 + 999), stream="pods")

    tracemalloc.start()
    try:
        for generation in range(3):
            cycle(generation)
        gc.collect()
        settled, _ = tracemalloc.get_traced_memory()
        for generation in range(3, 30):
            cycle(generation)
        gc.collect()
        final, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store) == 200
    assert final < settled * 1.1 + 64 * 1024, (settled, final)


# -- the store equals a dict model under random event sequences ------------------------------

NAMES = st.sampled_from(["a", "b", "c", "d", "e"])
NAMESPACES = st.sampled_from(["apps", "lab"])
APPS = st.sampled_from(["gmweb", "other", None])

operation = st.one_of(
    st.tuples(st.just("ADDED"), NAMES, NAMESPACES, APPS),
    st.tuples(st.just("MODIFIED"), NAMES, NAMESPACES, APPS),
    st.tuples(st.just("DELETED"), NAMES, NAMESPACES, APPS),
    st.tuples(
        st.just("RELIST"),
        st.lists(st.tuples(NAMES, NAMESPACES, APPS), max_size=6),
        st.none(),
        st.none(),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, max_size=25))
def test_the_store_equals_a_dict_model(operations: list[tuple[Any, Any, Any, Any]]) -> None:
    store = Store(indexers={"app": label_indexer(APP)})
    mirror = Store(indexers={"app": label_indexer(APP)})  # applies only what the stream carries
    model: dict[str, tuple[str, str | None]] = {}  # key -> (resourceVersion, app)
    rv = 0
    for kind, first, namespace, app in operations:
        rv += 1
        if kind == "RELIST":
            listed: dict[str, WatchEvent] = {}
            for name, ns, app_label in first:
                rv += 1
                listed[f"{ns}/{name}"] = event("ADDED", pod(name, rv, namespace=ns, app=app_label))
            emitted = store.replace(listed.values(), resource_version=str(rv), stream="pods")
            for change in emitted:
                mirror.apply(change)
            deleted = {e.meta.key for e in emitted if e.type == "DELETED"}
            assert all(e.final_state_unknown for e in emitted if e.type == "DELETED")
            assert deleted == set(model) - set(listed)
            model = {k: (e.resource_version, e.meta.labels.get(APP)) for k, e in listed.items()}
            continue
        key = f"{namespace}/{first}"
        change = event(kind, pod(first, rv, namespace=namespace, app=app))
        store.apply(change)
        mirror.apply(change)
        if kind == "DELETED":
            model.pop(key, None)
        else:
            model[key] = (str(rv), app)

    for candidate in (store, mirror):
        assert {
            k: (o.meta.resource_version, o.meta.labels.get(APP)) for k, o in candidate.items()
        } == (model)
        for app_name in ("gmweb", "other"):
            expected = {k for k, (_, a) in model.items() if a == app_name}
            assert set(candidate.index_keys("app", app_name)) == expected
        for ns in ("apps", "lab"):
            expected = {k for k in model if k.startswith(ns + "/")}
            assert set(candidate.index_keys("namespace", ns)) == expected
        assert candidate.statistics().raw_bytes == sum(len(o.raw) for o in candidate.values())
