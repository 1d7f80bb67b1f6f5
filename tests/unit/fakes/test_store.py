"""The store core, driven directly (no sockets, no clock): the rules at the top of _store.py."""

from __future__ import annotations

import random
from typing import Any

import pytest

from rxkube.fakes import Change, DeleteOptions, Entry, StatusError, Store


def make_store(**options: Any) -> Store:
    return Store(now=lambda: 1_700_000_000.0, random=random.Random(7), **options)


def pod(name: str, *, labels: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}, **meta},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]},
    }


def deployment(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "web:1"}]},
            },
        },
    }


def owned_by(obj: dict[str, Any], owner_uid: str, kind: str = "Deployment") -> dict[str, Any]:
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": kind, "name": "x", "uid": owner_uid, "controller": True}
    ]
    return obj


def test_create_sets_server_metadata_and_defaults() -> None:
    store = make_store()
    before = store.resource_version
    entry = store.create("pods", pod("web"), namespace="default")
    obj = entry.object()
    meta = obj["metadata"]
    assert entry.rv == before + 1 == store.resource_version
    assert meta["resourceVersion"] == str(entry.rv)
    assert meta["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert len(meta["uid"]) == 36
    assert meta["uid"][14] == "4"
    assert "generation" not in meta
    assert obj["kind"] == "Pod"
    assert obj["apiVersion"] == "v1"
    assert list(obj)[:3] == ["kind", "apiVersion", "metadata"]
    assert obj["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    assert obj["spec"]["restartPolicy"] == "Always"
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    # List items of built-in kinds carry no kind/apiVersion (reference 3.2).
    assert entry.item_raw().startswith(b'{"metadata":')


def test_generate_name_appends_five_characters_from_the_real_alphabet() -> None:
    store = make_store()
    entry = store.create(
        "pods", {**pod(""), "metadata": {"generateName": "web-"}}, namespace="default"
    )
    assert entry.name.startswith("web-")
    assert len(entry.name) == 9
    assert set(entry.name[4:]) <= set("bcdfghjklmnpqrstvwxz2456789")


class _ScriptedChoices(random.Random):
    """Draws the given characters in turn, then repeats the last one."""

    def __init__(self, letters: str) -> None:
        super().__init__(7)
        self.letters = list(letters)

    def choice(self, seq: Any) -> Any:
        return self.letters.pop(0) if len(self.letters) > 1 else self.letters[0]


def test_a_generated_name_that_is_taken_is_drawn_again() -> None:
    # The first pod takes web-bbbbb; the second draws bbbbb again, then ccccc.
    store = Store(now=lambda: 1_700_000_000.0, random=_ScriptedChoices("b" * 10 + "c"))
    generated = {"metadata": {"generateName": "web-"}}
    first = store.create("pods", {**pod(""), **generated}, namespace="default")
    second = store.create("pods", {**pod(""), **generated}, namespace="default")
    assert (first.name, second.name) == ("web-bbbbb", "web-ccccc")


def test_a_generated_name_taken_eight_times_is_a_conflict_saying_so() -> None:
    store = Store(now=lambda: 1_700_000_000.0, random=_ScriptedChoices("b"))
    generated = {"metadata": {"generateName": "web-"}}
    store.create("pods", {**pod(""), **generated}, namespace="default")
    with pytest.raises(StatusError) as caught:
        store.create("pods", {**pod(""), **generated}, namespace="default")
    assert caught.value.code == 409
    assert caught.value.reason == "AlreadyExists"
    assert "not able to generate a unique name" in caught.value.message
    assert len(store.list("pods", "default").items) == 1


def test_generation_bumps_on_spec_change_only() -> None:
    store = make_store()
    entry = store.create("deployments", deployment("web"), namespace="default")
    obj = entry.object()
    assert obj["metadata"]["generation"] == 1
    obj["metadata"]["labels"] = {"tier": "front"}
    obj = store.update("deployments", obj).object()
    assert obj["metadata"]["generation"] == 1
    obj["status"] = {"replicas": 5}
    obj = store.update("deployments", obj, subresource="status").object()
    assert obj["metadata"]["generation"] == 1
    assert obj["status"] == {"replicas": 5}
    obj["spec"]["replicas"] = 3
    obj = store.update("deployments", obj).object()
    assert obj["metadata"]["generation"] == 2
    # The main endpoint ignores status; the status subresource ignores the rest.
    obj["status"] = {"replicas": 99}
    obj["spec"]["replicas"] = 4
    obj = store.update("deployments", obj).object()
    assert obj["status"] == {"replicas": 5}
    assert obj["spec"]["replicas"] == 4


def test_a_write_that_changes_nothing_is_not_persisted() -> None:
    store = make_store()
    entry = store.create(
        "configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}}, namespace="default"
    )
    watcher = store.watch("configmaps", "default", resource_version=str(entry.rv))
    again = store.update("configmaps", entry.object())
    assert again.rv == entry.rv == store.resource_version
    patched, _ = store.patch("configmaps", "default", "c", {"data": {"a": "1"}})
    assert patched.rv == entry.rv
    assert watcher.take() == []


def test_stale_resource_version_is_409_conflict_and_changes_nothing() -> None:
    store = make_store()
    entry = store.create(
        "configmaps", {"metadata": {"name": "c"}, "data": {"a": "1"}}, namespace="default"
    )
    first = entry.object()
    first["data"]["a"] = "2"
    store.update("configmaps", first)
    stale = entry.object()
    stale["data"]["a"] = "3"
    rv = store.resource_version
    with pytest.raises(StatusError) as raised:
        store.update("configmaps", stale)
    assert raised.value.code == 409
    assert raised.value.reason == "Conflict"
    assert raised.value.message == (
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert store.resource_version == rv
    assert store.get("configmaps", "default", "c")["data"] == {"a": "2"}


def test_create_of_an_existing_name_is_409_already_exists() -> None:
    store = make_store()
    store.create("pods", pod("web"), namespace="default")
    rv = store.resource_version
    with pytest.raises(StatusError) as raised:
        store.create("pods", pod("web"), namespace="default")
    assert raised.value.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'pods "web" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "web", "kind": "pods"},
        "code": 409,
    }
    assert store.resource_version == rv


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        ({"metadata": {}}, 422, "metadata.name: Required value: name or generateName is required"),
        ({"metadata": {"name": "Bad_Name"}}, 422, 'metadata.name: Invalid value: "Bad_Name"'),
        ({"metadata": {"name": "x", "labels": {"a": 1}}}, 400, "map[string]string"),
        ({"metadata": {"name": "x", "labels": {"bad key!": "v"}}}, 422, "metadata.labels"),
        ({"metadata": "x"}, 400, "cannot unmarshal string"),
        ({"kind": "Secret", "metadata": {"name": "x"}}, 400, "does not match the expected kind"),
        ({"apiVersion": "apps/v1", "metadata": {"name": "x"}}, 400, "does not match the expected"),
        ({"metadata": {"name": "x", "namespace": "other"}}, 400, "does not match the namespace"),
        ({"metadata": {"name": "x"}, "data": {"a": 1}}, 400, "map[string]string"),
        ({"metadata": {"name": "x"}, "data": []}, 400, "map[string]string"),
    ],
)
def test_bad_bodies_get_the_real_error_and_change_nothing(
    body: dict[str, Any], code: int, text: str
) -> None:
    store = make_store()
    rv = store.resource_version
    with pytest.raises(StatusError) as raised:
        store.create("configmaps", body, namespace="default")
    assert raised.value.code == code
    assert text in raised.value.message
    assert store.resource_version == rv
    assert list(store.entries("configmaps")) == []


def test_invalid_pod_and_deployment_are_422_with_field_paths() -> None:
    store = make_store()
    with pytest.raises(StatusError) as raised:
        store.create(
            "pods",
            {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}},
            namespace="default",
        )
    assert raised.value.message == 'Pod "p" is invalid: spec.containers[0].image: Required value'
    assert raised.value.status()["details"] == {
        "name": "p",
        "kind": "Pod",
        "causes": [
            {
                "reason": "FieldValueRequired",
                "message": "Required value",
                "field": "spec.containers[0].image",
            }
        ],
    }
    bad = deployment("web")
    bad["spec"]["replicas"] = -1
    del bad["spec"]["selector"]
    with pytest.raises(StatusError) as raised:
        store.create("deployments", bad, namespace="default")
    assert raised.value.message == (
        'Deployment.apps "web" is invalid: [spec.replicas: Invalid value: -1: must be greater '
        "than or equal to 0, spec.selector: Required value]"
    )


def test_create_in_a_missing_namespace_is_404_namespace_not_found() -> None:
    store = make_store()
    with pytest.raises(StatusError) as raised:
        store.create("pods", pod("p"), namespace="nope")
    assert raised.value.message == 'namespaces "nope" not found'
    assert store.list("pods", "nope").items == []


def test_list_is_read_at_the_global_rv_in_key_order() -> None:
    store = make_store()
    for name in ("b", "a", "c"):
        store.create("configmaps", {"metadata": {"name": name}}, namespace="default")
    store.create("secrets", {"metadata": {"name": "s"}}, namespace="default")
    page = store.list("configmaps", "default")
    assert [e.name for e in page.items] == ["a", "b", "c"]
    assert page.resource_version == store.resource_version
    assert page.continue_token == ""
    assert page.remaining is None


def test_pagination_is_consistent_at_the_first_pages_rv() -> None:
    store = make_store()
    for i in range(5):
        store.create("configmaps", {"metadata": {"name": f"c{i}"}}, namespace="default")
    first = store.list("configmaps", "default", limit=2)
    assert [e.name for e in first.items] == ["c0", "c1"]
    assert first.remaining == 3
    # Writes after the first page do not show up in the next pages.
    store.delete("configmaps", "default", "c3")
    store.create("configmaps", {"metadata": {"name": "c9"}}, namespace="default")
    second = store.list("configmaps", "default", limit=2, continue_token=first.continue_token)
    third = store.list("configmaps", "default", limit=2, continue_token=second.continue_token)
    assert [e.name for e in second.items] == ["c2", "c3"]
    assert [e.name for e in third.items] == ["c4"]
    assert third.continue_token == ""
    assert second.resource_version == first.resource_version


def test_expired_continue_is_410_with_an_inconsistent_token() -> None:
    store = make_store()
    for i in range(3):
        store.create("configmaps", {"metadata": {"name": f"c{i}"}}, namespace="default")
    first = store.list("configmaps", "default", limit=1)
    store.create("configmaps", {"metadata": {"name": "c5"}}, namespace="default")
    store.compact()
    with pytest.raises(StatusError) as raised:
        store.list("configmaps", "default", limit=1, continue_token=first.continue_token)
    assert raised.value.code == 410
    assert raised.value.reason == "Expired"
    assert raised.value.message.startswith("The provided continue parameter is too old")
    token = raised.value.metadata["continue"]
    rest = store.list("configmaps", "default", continue_token=token)
    assert [e.name for e in rest.items] == ["c1", "c2", "c5"]


def test_malformed_continue_is_400() -> None:
    store = make_store()
    with pytest.raises(StatusError) as raised:
        store.list("pods", continue_token="!!!")
    assert raised.value.code == 400
    assert "continue key is not valid" in raised.value.message


def test_rv_zero_ignores_limit_like_the_watch_cache() -> None:
    store = make_store()
    for i in range(3):
        store.create("configmaps", {"metadata": {"name": f"c{i}"}}, namespace="default")
    page = store.list("configmaps", limit=1, resource_version="0")
    assert len(page.items) == 3
    assert page.continue_token == ""


def test_list_validation_errors() -> None:
    store = make_store()
    with pytest.raises(StatusError) as raised:
        store.list("pods", resource_version_match="Exact")
    assert raised.value.code == 422
    assert raised.value.message == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
        "resourceVersionMatch is forbidden unless resourceVersion is provided"
    )
    with pytest.raises(StatusError) as raised:
        store.list("pods", resource_version=str(store.resource_version + 10))
    assert raised.value.code == 504
    assert "Too large resource version" in raised.value.message


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["a", "b"]),
        ("app==web", ["a", "b"]),
        ("app!=web", ["c", "d"]),
        ("tier in (front,back)", ["a", "c"]),
        ("tier notin (front)", ["b", "c", "d"]),
        ("tier", ["a", "c"]),
        ("!tier", ["b", "d"]),
        ("app=web,tier=front", ["a"]),
        ("", ["a", "b", "c", "d"]),
    ],
)
def test_label_selectors(selector: str, expected: list[str]) -> None:
    store = make_store()
    labels = {
        "a": {"app": "web", "tier": "front"},
        "b": {"app": "web"},
        "c": {"app": "db", "tier": "back"},
        "d": {},
    }
    for name, value in labels.items():
        store.create("pods", pod(name, labels=value), namespace="default")
    page = store.list("pods", "default", label_selector=selector)
    assert [e.name for e in page.items] == expected


@pytest.mark.parametrize(
    "selector", ["app in (a", "=x", "app=(", "a b", "app>x", "key with space=1"]
)
def test_invalid_label_selectors_are_400(selector: str) -> None:
    store = make_store()
    with pytest.raises(StatusError) as raised:
        store.list("pods", label_selector=selector)
    assert raised.value.code == 400
    assert raised.value.message.startswith("unable to parse requirement")


def test_field_selectors() -> None:
    store = make_store()
    store.create("pods", pod("a"), namespace="default")
    store.create("pods", pod("b"), namespace="kube-system")
    running = store.get("pods", "default", "a")
    running["status"] = {"phase": "Running"}
    store.update("pods", running, subresource="status")
    assert [e.name for e in store.list("pods", field_selector="status.phase=Running").items] == [
        "a"
    ]
    assert [e.name for e in store.list("pods", field_selector="status.phase!=Running").items] == [
        "b"
    ]
    assert [e.name for e in store.list("pods", field_selector="metadata.name=b").items] == ["b"]
    selected = store.list("pods", field_selector="metadata.namespace==default,metadata.name=a")
    assert [e.name for e in selected.items] == ["a"]
    with pytest.raises(StatusError) as raised:
        store.list("configmaps", field_selector="status.phase=Running")
    assert raised.value.code == 400
    assert "field label not supported: status.phase" in raised.value.message


def test_watch_from_rv_replays_history_then_follows() -> None:
    store = make_store()
    start = store.resource_version
    store.create("configmaps", {"metadata": {"name": "a"}}, namespace="default")
    watcher = store.watch("configmaps", "default", resource_version=str(start))
    store.patch("configmaps", "default", "a", {"data": {"k": "v"}})
    store.delete("configmaps", "default", "a")
    events = [(t, e.name, e.rv) for t, e in watcher.take() if not isinstance(e, int)]
    assert events == [
        ("ADDED", "a", start + 1),
        ("MODIFIED", "a", start + 2),
        ("DELETED", "a", start + 3),
    ]
    assert watcher.progress_rv == store.resource_version


def test_watch_without_rv_starts_with_synthetic_added() -> None:
    store = make_store()
    store.create("configmaps", {"metadata": {"name": "b"}}, namespace="default")
    store.create("configmaps", {"metadata": {"name": "a"}}, namespace="default")
    watcher = store.watch("configmaps", "default")
    assert [(t, e.name) for t, e in watcher.take() if not isinstance(e, int)] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]


def test_send_initial_events_ends_with_a_marker_at_the_state_rv() -> None:
    store = make_store()
    store.create("configmaps", {"metadata": {"name": "a"}}, namespace="default")
    watcher = store.watch("configmaps", "default", resource_version="", send_initial_events=True)
    items = watcher.take()
    assert items[-1] == ("INITIAL_END", store.resource_version)
    assert [t for t, _ in items] == ["ADDED", "INITIAL_END"]


def test_selector_transitions_are_added_and_deleted() -> None:
    store = make_store()
    store.create("pods", pod("p", labels={"app": "web"}), namespace="default")
    watcher = store.watch(
        "pods", "default", label_selector="app=web", resource_version=str(store.resource_version)
    )
    obj = store.get("pods", "default", "p")
    obj["metadata"]["labels"] = {"app": "db"}
    left = store.update("pods", obj)
    obj = left.object()
    obj["metadata"]["labels"]["extra"] = "1"
    store.update("pods", obj)  # no match -> no match: nothing
    obj = store.get("pods", "default", "p")
    obj["metadata"]["labels"] = {"app": "web"}
    back = store.update("pods", obj)
    items = watcher.take()
    assert [t for t, _ in items] == ["DELETED", "ADDED"]
    deleted = items[0][1]
    assert not isinstance(deleted, int)
    # DELETED carries the previous content with the new RV (reference 4.4).
    assert deleted.rv == left.rv
    assert deleted.object()["metadata"]["labels"] == {"app": "web"}
    assert deleted.object()["metadata"]["resourceVersion"] == str(left.rv)
    assert items[1][1] is back


def test_watch_below_the_history_floor_is_410() -> None:
    store = make_store(history_limit=3)
    start = store.resource_version
    for i in range(5):
        store.create("configmaps", {"metadata": {"name": f"c{i}"}}, namespace="default")
    with pytest.raises(StatusError) as raised:
        store.watch("configmaps", resource_version=str(start))
    assert raised.value.code == 410
    assert raised.value.reason == "Expired"
    assert (
        raised.value.message == f"too old resource version: {start} ({store.floor('configmaps')})"
    )
    # The newest history is still there.
    recent = store.watch("configmaps", resource_version=str(store.floor("configmaps")))
    assert len(recent.take()) == 3


def test_compact_makes_every_older_rv_410() -> None:
    store = make_store()
    store.create("configmaps", {"metadata": {"name": "a"}}, namespace="default")
    old = store.resource_version - 1
    store.compact()
    with pytest.raises(StatusError):
        store.watch("configmaps", resource_version=str(old))
    assert store.watch("configmaps", resource_version=str(store.resource_version)).take() == []


def test_a_slow_watcher_is_closed_not_grown() -> None:
    store = make_store()
    watcher = store.watch("configmaps", max_buffer=3)
    for i in range(5):
        store.create("configmaps", {"metadata": {"name": f"c{i}"}}, namespace="default")
    assert watcher.closed
    assert watcher.take() == []
    assert watcher not in store.watchers("configmaps")


def test_a_resumed_watch_gets_its_whole_history_whatever_the_buffer() -> None:
    # Found by the watch chaos suite (tests/chaos, seeds with a `burst`): a watcher ended for
    # falling behind resumes from its last resourceVersion; its replay was counted against the
    # buffer too, so the resume was ended at once, again and again, until a compaction.
    store = make_store()
    start = store.resource_version
    for i in range(5):
        store.create("configmaps", {"metadata": {"name": f"c{i}"}}, namespace="default")
    resumed = store.watch("configmaps", resource_version=str(start), max_buffer=3)
    assert not resumed.closed
    names = [entry.name for _, entry in resumed.take() if isinstance(entry, Entry)]
    assert names == ["c0", "c1", "c2", "c3", "c4"]
    # Live events are bounded again once the replay is taken.
    for i in range(4):
        store.create("configmaps", {"metadata": {"name": f"d{i}"}}, namespace="default")
    assert resumed.closed


def test_a_replay_does_not_count_against_the_live_buffer() -> None:
    store = make_store()
    start = store.resource_version
    for i in range(5):
        store.create("configmaps", {"metadata": {"name": f"c{i}"}}, namespace="default")
    resumed = store.watch("configmaps", resource_version=str(start), max_buffer=3)
    for i in range(3):  # not yet taken: 5 replayed + 3 live, within the live buffer of 3
        store.create("configmaps", {"metadata": {"name": f"d{i}"}}, namespace="default")
    assert not resumed.closed
    assert len(resumed.take()) == 8


def test_subscribers_see_every_change_in_order_even_when_they_write() -> None:
    store = make_store()
    seen: list[tuple[str, str, int]] = []

    def controller(change: Change) -> None:
        seen.append((change.type, change.new.name, change.rv))
        if (
            change.type == "ADDED"
            and change.resource.plural == "configmaps"
            and change.new.name == "a"
        ):
            store.create("configmaps", {"metadata": {"name": "b"}}, namespace="default")

    unsubscribe = store.subscribe(controller)
    rv = store.resource_version
    store.create("configmaps", {"metadata": {"name": "a"}}, namespace="default")
    assert seen == [("ADDED", "a", rv + 1), ("ADDED", "b", rv + 2)]
    unsubscribe()
    store.create("configmaps", {"metadata": {"name": "c"}}, namespace="default")
    assert len(seen) == 2


def test_finalizers_keep_the_object_until_removed() -> None:
    store = make_store()
    store.create(
        "configmaps",
        {"metadata": {"name": "f", "finalizers": ["example.com/x"]}},
        namespace="default",
    )
    entry, removed = store.delete("configmaps", "default", "f")
    assert not removed
    obj = entry.object()
    assert obj["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:20Z"
    obj["metadata"]["finalizers"].append("example.com/y")
    with pytest.raises(StatusError) as raised:
        store.update("configmaps", obj)
    assert raised.value.code == 422
    assert "no new finalizers" in raised.value.message
    watcher = store.watch("configmaps", resource_version=str(store.resource_version))
    obj["metadata"]["finalizers"] = []
    store.update("configmaps", obj)
    assert [t for t, _ in watcher.take()] == ["DELETED"]
    with pytest.raises(StatusError):
        store.get("configmaps", "default", "f")


def test_background_deletion_collects_dependents_recursively() -> None:
    store = make_store()
    owner = store.create("deployments", deployment("web"), namespace="default")
    rs = store.create(
        "replicasets",
        owned_by({**deployment("web-1"), "metadata": {"name": "web-1"}}, owner.uid),
        namespace="default",
    )
    store.create("pods", owned_by(pod("web-1-a"), rs.uid, "ReplicaSet"), namespace="default")
    store.create("pods", pod("bystander"), namespace="default")
    _, removed = store.delete("deployments", "default", "web")
    assert removed
    assert [e.name for e in store.entries("replicasets")] == []
    assert [e.name for e in store.entries("pods")] == ["bystander"]


def test_foreground_deletion_deletes_dependents_first() -> None:
    store = make_store()
    owner = store.create("deployments", deployment("web"), namespace="default")
    store.create("pods", owned_by(pod("dep"), owner.uid), namespace="default")
    watcher = store.watch("deployments", resource_version=str(store.resource_version))
    pods = store.watch("pods", resource_version=str(store.resource_version))
    _, removed = store.delete("deployments", "default", "web", DeleteOptions("Foreground"))
    assert removed
    deployment_events = watcher.take()
    # Marked (deletionTimestamp + foregroundDeletion), then removed once the pod is gone.
    assert [t for t, _ in deployment_events] == ["MODIFIED", "DELETED"]
    marked = deployment_events[0][1]
    assert not isinstance(marked, int)
    assert marked.object()["metadata"]["finalizers"] == ["foregroundDeletion"]
    pod_events = pods.take()
    assert [t for t, _ in pod_events] == ["DELETED"]
    assert pod_events[0][1].rv < deployment_events[-1][1].rv  # type: ignore[union-attr]


def test_orphan_deletion_strips_owner_references() -> None:
    store = make_store()
    owner = store.create("deployments", deployment("web"), namespace="default")
    store.create("pods", owned_by(pod("dep"), owner.uid), namespace="default")
    _, removed = store.delete("deployments", "default", "web", DeleteOptions("Orphan"))
    assert removed
    assert "ownerReferences" not in store.get("pods", "default", "dep")["metadata"]


def test_a_dependent_with_another_live_owner_survives() -> None:
    store = make_store()
    a = store.create("configmaps", {"metadata": {"name": "a"}}, namespace="default")
    b = store.create("configmaps", {"metadata": {"name": "b"}}, namespace="default")
    dep = pod("dep")
    dep["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "a", "uid": a.uid},
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "b", "uid": b.uid},
    ]
    store.create("pods", dep, namespace="default")
    store.delete("configmaps", "default", "a")
    refs = store.get("pods", "default", "dep")["metadata"]["ownerReferences"]
    assert [r["name"] for r in refs] == ["b"]


def test_graceful_pod_deletion_marks_then_a_grace_zero_delete_removes() -> None:
    store = make_store(graceful_pod_deletion=True)
    scheduled = pod("p")
    scheduled["spec"]["nodeName"] = "node-1"
    store.create("pods", scheduled, namespace="default")
    entry, removed = store.delete("pods", "default", "p")
    assert not removed
    meta = entry.object()["metadata"]
    assert meta["deletionTimestamp"] == "2023-11-14T22:13:50Z"  # now + 30 s
    assert meta["deletionGracePeriodSeconds"] == 30
    _, removed = store.delete("pods", "default", "p", DeleteOptions(grace_period_seconds=0))
    assert removed


def test_namespace_deletion_removes_its_content_then_itself() -> None:
    store = make_store()
    store.create("namespaces", {"metadata": {"name": "team"}})
    store.create("configmaps", {"metadata": {"name": "c"}}, namespace="team")
    store.create("configmaps", {"metadata": {"name": "f", "finalizers": ["x/y"]}}, namespace="team")
    _, removed = store.delete("namespaces", "", "team")
    assert not removed
    ns = store.get("namespaces", "", "team")
    assert ns["status"]["phase"] == "Terminating"
    with pytest.raises(StatusError) as raised:
        store.create("configmaps", {"metadata": {"name": "new"}}, namespace="team")
    assert raised.value.code == 403
    assert "is being terminated" in raised.value.message
    held = store.get("configmaps", "team", "f")
    held["metadata"]["finalizers"] = []
    store.update("configmaps", held)
    assert not store.namespace_exists("team")


def test_delete_preconditions() -> None:
    store = make_store()
    entry = store.create("configmaps", {"metadata": {"name": "c"}}, namespace="default")
    with pytest.raises(StatusError) as raised:
        store.delete("configmaps", "default", "c", DeleteOptions(uid="other"))
    assert raised.value.code == 409
    assert "Precondition failed: UID" in raised.value.message
    with pytest.raises(StatusError):
        store.delete("configmaps", "default", "c", DeleteOptions(resource_version="1"))
    _, removed = store.delete("configmaps", "default", "c", DeleteOptions(uid=entry.uid))
    assert removed


def test_merge_and_json_patch() -> None:
    store = make_store()
    store.create(
        "configmaps", {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}, namespace="default"
    )
    entry, created = store.patch("configmaps", "default", "c", {"data": {"a": None, "c": "3"}})
    assert not created
    assert entry.object()["data"] == {"b": "2", "c": "3"}
    entry, _ = store.patch(
        "configmaps",
        "default",
        "c",
        [{"op": "replace", "path": "/data/b", "value": "9"}],
        patch_type="application/json-patch+json",
    )
    assert entry.object()["data"] == {"b": "9", "c": "3"}
    rv = store.resource_version
    with pytest.raises(StatusError) as raised:
        store.patch(
            "configmaps",
            "default",
            "c",
            [{"op": "test", "path": "/data/b", "value": "0"}],
            patch_type="application/json-patch+json",
        )
    assert raised.value.code == 422
    with pytest.raises(StatusError) as raised:
        store.patch("configmaps", "default", "c", b"{", patch_type="application/merge-patch+json")
    assert raised.value.code == 400
    with pytest.raises(StatusError) as raised:
        store.patch("configmaps", "default", "c", b"<x/>", patch_type="application/xml")
    assert raised.value.code == 415
    with pytest.raises(StatusError) as raised:
        store.patch("configmaps", "default", "c", {"metadata": {"resourceVersion": "1"}})
    assert raised.value.code == 409
    assert store.resource_version == rv


def test_a_registered_patch_type_can_create() -> None:
    store = make_store()

    def apply(request: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"metadata": {"name": request.name}, "data": {"applied": "yes"}}
        return body

    store.patch_types.register("application/apply-patch+yaml", apply, creates=True)
    entry, created = store.patch(
        "configmaps", "default", "new", b"{}", patch_type="application/apply-patch+yaml"
    )
    assert created
    assert entry.object()["data"] == {"applied": "yes"}


def test_dry_run_persists_nothing() -> None:
    store = make_store()
    rv = store.resource_version
    entry = store.create(
        "configmaps", {"metadata": {"generateName": "c-"}}, namespace="default", dry_run=True
    )
    assert entry.name.startswith("c-")
    assert entry.uid
    assert store.resource_version == rv
    assert list(store.entries("configmaps")) == []


def test_strategic_merge_patch_merges_lists_by_key() -> None:
    store = make_store()
    web = pod("web")
    web["spec"]["containers"].append({"name": "side", "image": "side:1"})
    store.create("pods", web, namespace="default")
    smp = "application/strategic-merge-patch+json"
    patch = {
        "metadata": {"finalizers": ["a/b"]},
        "spec": {"containers": [{"name": "side", "image": "side:2"}]},
    }
    entry, _ = store.patch("pods", "default", "web", patch, patch_type=smp)
    obj = entry.object()
    assert [(c["name"], c["image"]) for c in obj["spec"]["containers"]] == [
        ("app", "nginx:1.25"),
        ("side", "side:2"),
    ]
    assert obj["metadata"]["finalizers"] == ["a/b"]
    store.create("virtualservices", {"metadata": {"name": "vs"}, "spec": {}}, namespace="default")
    with pytest.raises(StatusError) as raised:
        store.patch("virtualservices", "default", "vs", {"spec": {}}, patch_type=smp)
    assert raised.value.code == 415


def test_foreground_owner_waits_for_a_dependent_with_a_finalizer() -> None:
    store = make_store()
    owner = store.create("deployments", deployment("web"), namespace="default")
    held = owned_by(pod("dep"), owner.uid)
    held["metadata"]["finalizers"] = ["example.com/hold"]
    store.create("pods", held, namespace="default")
    _, removed = store.delete("deployments", "default", "web", DeleteOptions("Foreground"))
    assert not removed
    marked = store.get("deployments", "default", "web")["metadata"]
    assert marked["finalizers"] == ["foregroundDeletion"]
    assert store.get("pods", "default", "dep")["metadata"]["deletionTimestamp"]
    dep = store.get("pods", "default", "dep")
    dep["metadata"]["finalizers"] = []
    store.update("pods", dep)
    assert list(store.entries("pods")) == []
    assert list(store.entries("deployments")) == []
