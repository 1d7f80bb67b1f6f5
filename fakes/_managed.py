"""Managed fields: who set which field (`metadata.managedFields`, `FieldsV1`).

What this module is for: kube-apiserver records, for every write, which field manager owns
which fields (structured-merge-diff); server-side apply (`_apply`) decides conflicts and
removals from it, and `kubectl apply --server-side` reads it. Field sets are computed from the
kind's schema (`_schemas`): struct fields are `f:<name>`, associative lists
(`x-kubernetes-list-type: map`) are keyed `k:{"name":"app"}` (keys sorted, compact JSON, a
missing `protocol` key taken as its default `TCP`), set lists (`x-kubernetes-list-type: set`)
are `v:<json>`, atomic lists and scalars are leaves; maps and list items carry `.` when they
are members themselves. Fields kube-apiserver never tracks (`apiVersion`, `kind`,
`metadata.name`, `uid`, `resourceVersion`, ... ) are left out, and so is `status` on the main
endpoint of a kind with a status subresource (only `status` on the subresource).

An Update (POST, PUT, non-apply PATCH) by manager M, as structured-merge-diff's
`Updater.Update`: the fields this write added or changed go to M and leave every other
manager; removed fields leave everyone; a manager left with nothing is dropped. The manager is
the `fieldManager` parameter or the User-Agent's product (`WriteOptions.manager`). A client
that sends `managedFields` of its own (kubectl's upgrade of client-side apply) has them taken
as given (`[]` clears them). A write that changes nothing but timestamps keeps the old
managedFields, so no-op writes stay no-ops. Entries are sorted as kube-apiserver sorts them
(Apply before Update, then time, then manager). Pure: no I/O.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from rxkube.fakes._resources import ResourceType
from rxkube.fakes._schemas import Schema, Schemas
from rxkube.fakes._store import rfc3339

if TYPE_CHECKING:
    from rxkube.fakes._store import Admission, AdmissionRequest

__all__: list[str] = []

Path = tuple[str, ...]
FieldSet = dict[Path, Any]
"""Member paths -> the value there (leaves) or `MEMBER` (maps and list items with children)."""

MEMBER: Final = object()
_KEY_DEFAULTS: Final = {"protocol": "TCP"}
_STRIPPED: Final = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        ("f:metadata",),
        ("f:metadata", "f:name"),
        ("f:metadata", "f:namespace"),
        ("f:metadata", "f:creationTimestamp"),
        ("f:metadata", "f:selfLink"),
        ("f:metadata", "f:uid"),
        ("f:metadata", "f:clusterName"),
        ("f:metadata", "f:generation"),
        ("f:metadata", "f:managedFields"),
        ("f:metadata", "f:resourceVersion"),
        ("f:metadata", "f:deletionTimestamp"),
        ("f:metadata", "f:deletionGracePeriodSeconds"),
    }
)


def _ext(prop: Schema | None, node: Schema | None, key: str) -> Any:
    for where in (prop, node):
        if where is not None and key in where:
            return where[key]
    return None


def key_element(item: Mapping[str, Any], keys: Iterable[str]) -> str:
    """`k:{"containerPort":80,"protocol":"TCP"}` for an item of an associative list."""
    fields = {}
    for key in sorted(keys):
        if key in item:
            fields[key] = item[key]
        elif key in _KEY_DEFAULTS:
            fields[key] = _KEY_DEFAULTS[key]
    return "k:" + json.dumps(fields, separators=(",", ":"), sort_keys=True)


def value_element(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"), sort_keys=True)


class Fields:
    """Field sets of objects of one kind, from its schema."""

    def __init__(self, schemas: Schemas, schema: Schema | None) -> None:
        self.schemas = schemas
        self.schema = schema

    def of(self, obj: Mapping[str, Any], *, scope: str = "") -> FieldSet:
        """The member paths of `obj`. `scope`: "main" drops `status`, "status" keeps only it."""
        out: FieldSet = {}
        self._walk(obj, self.schema, (), out)
        for path in list(out):
            stripped = path in _STRIPPED or path[:2] == ("f:metadata", "f:managedFields")
            in_status = path[:1] == ("f:status",)
            if stripped or (scope == "main" and in_status) or (scope == "status" and not in_status):
                del out[path]
        return out

    def _walk(self, value: Any, prop: Schema | None, path: Path, out: FieldSet) -> None:
        node = self.schemas.resolve(prop) if prop is not None else None
        if isinstance(value, dict):
            if node is not None and _ext(prop, node, "x-kubernetes-map-type") == "atomic":
                out[path] = value
                return
            if not value:
                if path:
                    out[path] = value
                return
            properties = node.get("properties") if node is not None else None
            additional = node.get("additionalProperties") if node is not None else None
            granular_map = isinstance(additional, Mapping) and not properties
            if granular_map and path:
                out[path] = MEMBER
            for key, item in value.items():
                if isinstance(properties, Mapping) and properties:
                    sub = properties.get(key)
                elif isinstance(additional, Mapping):
                    sub = additional
                else:
                    sub = None
                self._walk(item, sub, (*path, f"f:{key}"), out)
            return
        if isinstance(value, list) and value:
            list_type = _ext(prop, node, "x-kubernetes-list-type")
            keys = _ext(prop, node, "x-kubernetes-list-map-keys")
            items = node.get("items") if node is not None else None
            if list_type == "map" and keys and all(isinstance(i, dict) for i in value):
                for item in value:
                    element = (*path, key_element(item, keys))
                    out[element] = MEMBER
                    for key, sub_value in item.items():
                        item_node = self.schemas.resolve(items) if items else None
                        props = item_node.get("properties") if item_node else None
                        sub = props.get(key) if isinstance(props, Mapping) else None
                        self._walk(sub_value, sub, (*element, f"f:{key}"), out)
                return
            if list_type == "set":
                for item in value:
                    out[(*path, value_element(item))] = item
                return
        out[path] = value

    # -- FieldsV1 <-> sets -------------------------------------------------------------

    @staticmethod
    def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
        """The `fieldsV1` trie of a set of member paths."""
        root: dict[str, Any] = {}
        members = set(paths)
        for path in sorted(members):
            node = root
            for element in path:
                node = node.setdefault(element, {})
        for path in members:
            node = root
            for element in path:
                node = node[element]
            if node:
                node["."] = {}
        return _sorted_trie(root)

    @staticmethod
    def from_fields_v1(trie: Any) -> set[Path]:
        out: set[Path] = set()

        def walk(node: Any, path: Path) -> None:
            if not isinstance(node, dict):
                return
            if (not node or "." in node) and path:
                out.add(path)
            for key, child in node.items():
                if key != ".":
                    walk(child, (*path, key))

        walk(trie, ())
        return out


def _sorted_trie(node: dict[str, Any]) -> dict[str, Any]:
    return {k: _sorted_trie(v) for k, v in sorted(node.items())}


def path_text(path: Path) -> str:
    """A path as structured-merge-diff prints it: `.spec.containers[name="app"].image`."""
    out = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            out.append("." + rest)
        elif kind == "k":
            fields = json.loads(rest)
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in fields.items()) + "]")
        elif kind == "v":
            out.append(f"[={rest}]")
        elif kind == "i":
            out.append(f"[{rest}]")
    return "".join(out)


# -- managedFields entries -------------------------------------------------------------------

Entry = dict[str, Any]


def entry_key(entry: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """The manager identifier: manager, operation, subresource (and apiVersion for Update)."""
    operation = str(entry.get("operation") or "")
    api_version = "" if operation == "Apply" else str(entry.get("apiVersion") or "")
    return (
        str(entry.get("manager") or ""),
        operation,
        str(entry.get("subresource") or ""),
        api_version,
    )


def make_entry(
    manager: str,
    operation: str,
    api_version: str,
    time: str,
    paths: Iterable[Path],
    subresource: str = "",
) -> Entry:
    entry: Entry = {
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": Fields.to_fields_v1(paths),
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


def sort_entries(entries: list[Entry]) -> list[Entry]:
    def key(entry: Entry) -> tuple[int, str, str, str, str]:
        return (
            0 if entry.get("operation") == "Apply" else 1,
            str(entry.get("time") or ""),
            str(entry.get("manager") or ""),
            str(entry.get("apiVersion") or ""),
            str(entry.get("subresource") or ""),
        )

    return sorted(entries, key=key)


def owned(entries: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Mapping[str, Any], set[Path]]]:
    for entry in entries:
        yield entry, Fields.from_fields_v1(entry.get("fieldsV1") or {})


def changed_paths(old: FieldSet, new: FieldSet) -> tuple[set[Path], set[Path]]:
    """(added or modified, removed) between two field sets."""
    touched = {p for p in new if p not in old}
    for path, value in new.items():
        if path not in old:
            continue
        before = old[path]
        kind_changed = (value is MEMBER) != (before is MEMBER)
        if kind_changed or (value is not MEMBER and _json(value) != _json(before)):
            touched.add(path)
    removed = {p for p in old if p not in new}
    return touched, removed


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def update_entries(
    entries: list[Mapping[str, Any]],
    touched: set[Path],
    removed: set[Path],
    *,
    manager: str,
    operation: str,
    api_version: str,
    subresource: str,
    time: str,
    give_to_manager: bool = True,
) -> list[Entry]:
    """Move `touched` to `manager` (from everyone else), drop `removed` from everyone."""
    me = (manager, operation, subresource, "" if operation == "Apply" else api_version)
    out: list[Entry] = []
    mine: set[Path] = set()
    for entry, paths in owned(entries):
        if entry_key(entry) == me:
            mine = paths
            continue
        kept = paths - touched - removed
        if kept == paths:
            out.append(dict(entry))
        elif kept:
            updated = dict(entry)
            updated["fieldsV1"] = Fields.to_fields_v1(kept)
            out.append(updated)
    if give_to_manager:
        mine = (mine - removed) | touched
        if mine:
            out.append(make_entry(manager, operation, api_version, time, mine, subresource))
    return sort_entries(out)


def _without_managed(obj: Mapping[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(dict(obj))
    copied.get("metadata", {}).pop("managedFields", None)
    copied.get("metadata", {}).pop("resourceVersion", None)
    return copied


def track_updates(schemas: Schemas) -> Admission:
    """The admission step that keeps managedFields for Update operations (last in line)."""

    def step(request: AdmissionRequest) -> None:
        options = request.options
        if options is None or options.operation == "Apply" or not options.manager:
            return
        if request.subresource not in ("", "status"):
            return
        obj = request.object
        meta = obj.setdefault("metadata", {})
        old = request.old
        old_entries = list(((old or {}).get("metadata") or {}).get("managedFields") or [])
        given = meta.get("managedFields")
        if old is not None and given is not None and _json(given) != _json(old_entries):
            # The client set managedFields itself: take them as given.
            if not given:
                meta.pop("managedFields", None)
            return
        if old is None and given:
            # A create that carries managedFields keeps them (e.g. a restored object).
            return
        resource = request.resource
        schema = schemas.for_resource(resource)
        fields = Fields(schemas, schema)
        scope = _scope(resource, request.subresource)
        new_set = fields.of(obj, scope=scope)
        old_set = fields.of(old, scope=scope) if old is not None else {}
        touched, removed = changed_paths(old_set, new_set)
        entries = update_entries(
            old_entries,
            touched,
            removed,
            manager=options.manager,
            operation="Update",
            api_version=resource.api_version,
            subresource=request.subresource,
            time=rfc3339(request.store.now()),
        )
        if old is not None and _json(_without_managed(old)) == _json(_without_managed(obj)):
            entries = [dict(e) for e in old_entries]
        if entries:
            meta["managedFields"] = entries
        else:
            meta.pop("managedFields", None)

    return step


def _scope(resource: ResourceType, subresource: str) -> str:
    if subresource == "status":
        return "status"
    return "main" if resource.status_subresource else ""
