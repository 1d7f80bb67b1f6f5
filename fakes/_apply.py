"""Server-side apply: `PATCH` with `Content-Type: application/apply-patch+yaml`.

What this module is for: `kubectl apply --server-side` (and any SSA client) sends the
object it wants, as YAML or JSON, with `?fieldManager=<name>` (required: 422 without it) and
`force=true|false`. As structured-merge-diff does, with the field sets of `_managed`:

1. the applied configuration is typed against the kind's schema; a field it does not declare
   is `500` `failed to create typed patch object (ns/name; apps/v1, Kind=Deployment):
   .spec.foo: field not declared in schema`, whatever `fieldValidation` says;
2. it is merged into the live object (associative lists by their keys, sets as sets, atomic
   lists and scalars replaced), or becomes the object when there is none (201);
3. fields it changes that another manager owns are conflicts: 409 `Conflict`, `Apply failed
   with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas`,
   one `FieldManagerConflict` cause each; with `force=true` the applier takes them over;
4. fields this manager applied before and no longer applies, and that nobody else owns, are
   removed from the object;
5. the applier's entry (operation `Apply`) owns exactly what it applied; other managers keep
   what was neither taken over nor removed. A live object without managedFields first gives
   its fields to `before-first-apply`, as kube-apiserver does.

Status is reset on the main endpoint of kinds with a status subresource. Re-applying the
same configuration changes nothing (no new resourceVersion). Pure: no I/O.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import yaml

from rxkube.fakes._errors import StatusCause, StatusError
from rxkube.fakes._managed import (
    Fields,
    FieldSet,
    Path,
    changed_paths,
    entry_key,
    key_element,
    make_entry,
    owned,
    path_text,
    sort_entries,
    update_entries,
)
from rxkube.fakes._patch import PatchFunction, PatchRequest
from rxkube.fakes._schemas import Schema, Schemas
from rxkube.fakes._store import rfc3339
from rxkube.fakes._validation import unknown_fields

__all__: list[str] = []

BEFORE_FIRST_APPLY: Final = "before-first-apply"


def _bool(value: str | None) -> bool:
    return value in ("true", "1", "True")


def _decode(body: bytes) -> Any:
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as error:
        raise StatusError.bad_request(f"error decoding YAML: {error}") from None


def merge_applied(schemas: Schemas, prop: Schema | None, live: Any, applied: Any) -> Any:
    """The live value with the applied value merged in (structured-merge-diff's merge)."""
    node = schemas.resolve(prop) if prop is not None else None
    if isinstance(live, dict) and isinstance(applied, dict):
        if node is not None and (prop or {}).get("x-kubernetes-map-type", "") == "atomic":
            return copy.deepcopy(applied)
        properties = node.get("properties") if node is not None else None
        additional = node.get("additionalProperties") if node is not None else None
        out = dict(live)
        for key, value in applied.items():
            if value is None:
                out.pop(key, None)
                continue
            if isinstance(properties, Mapping) and properties:
                sub = properties.get(key)
            elif isinstance(additional, Mapping):
                sub = additional
            else:
                sub = None
            out[key] = (
                merge_applied(schemas, sub, live[key], value)
                if key in live
                else copy.deepcopy(value)
            )
        return out
    if isinstance(live, list) and isinstance(applied, list):
        list_type = (prop or {}).get("x-kubernetes-list-type") or (node or {}).get(
            "x-kubernetes-list-type"
        )
        keys = (prop or {}).get("x-kubernetes-list-map-keys") or (node or {}).get(
            "x-kubernetes-list-map-keys"
        )
        items_schema = node.get("items") if node is not None else None
        if list_type == "map" and keys and all(isinstance(i, dict) for i in (*live, *applied)):
            out_list = [copy.deepcopy(i) for i in live]
            for item in applied:
                element = key_element(item, keys)
                at = next(
                    (i for i, have in enumerate(out_list) if key_element(have, keys) == element),
                    None,
                )
                if at is None:
                    out_list.append(copy.deepcopy(item))
                else:
                    out_list[at] = merge_applied(schemas, items_schema, out_list[at], item)
            return out_list
        if list_type == "set":
            merged = list(live)
            merged.extend(v for v in applied if v not in merged)
            return merged
    return copy.deepcopy(applied)


def _matches(item: Any, element: str) -> bool:
    kind, _, rest = element.partition(":")
    if kind == "k" and isinstance(item, dict):
        wanted = json.loads(rest)
        return all(item.get(k, "TCP" if k == "protocol" else None) == v for k, v in wanted.items())
    if kind == "v":
        return bool(json.dumps(item, sort_keys=True, separators=(",", ":")) == rest)
    return False


def remove_path(obj: Any, path: Path) -> None:
    """Remove the member at `path` from `obj` (in place; absent paths are ignored)."""
    target = obj
    for element in path[:-1]:
        kind, _, rest = element.partition(":")
        if kind == "f" and isinstance(target, dict):
            target = target.get(rest)
        elif isinstance(target, list):
            target = next((i for i in target if _matches(i, element)), None)
        else:
            return
        if target is None:
            return
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(target, dict):
        target.pop(rest, None)
    elif isinstance(target, list):
        target[:] = [i for i in target if not _matches(i, path[-1])]


def _who(entry: Mapping[str, Any]) -> str:
    text = json.dumps(str(entry.get("manager") or ""))
    if entry.get("subresource"):
        text += f" with subresource {json.dumps(str(entry['subresource']))}"
    if entry.get("operation") == "Update":
        text += f" using {entry.get('apiVersion', '')}"
    return text


def conflict_error(conflicts: list[tuple[Mapping[str, Any], Path]]) -> StatusError:
    causes = [
        StatusCause("FieldManagerConflict", f"conflict with {_who(e)}", path_text(p))
        for e, p in conflicts
    ]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {_who(entry)}: {path_text(path)}"
    else:
        by_manager: dict[str, list[Path]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(_who(entry), []).append(path)
        lines = []
        for who in sorted(by_manager):
            lines.append(f"conflicts with {who}:")
            lines.extend(f"- {path_text(p)}" for p in by_manager[who])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return StatusError(409, "Conflict", message, causes=causes)


def _same_ignoring_time(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    def strip(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k != "time"} for e in entries]

    return json.dumps(strip(a), sort_keys=True) == json.dumps(strip(b), sort_keys=True)


def apply_patch_type(schemas: Schemas, *, now: Any) -> PatchFunction:
    """The `PatchTypes` function for `application/apply-patch+yaml` (registered with
    `creates=True`); `now()` gives wall-clock seconds for managedFields times."""

    def apply(request: PatchRequest) -> dict[str, Any]:
        resource = request.resource
        options = request.options
        manager = options.get("fieldManager") or ""
        if not manager:
            raise StatusError.invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                [
                    StatusCause(
                        "FieldValueRequired",
                        "Required value: is required for apply patch",
                        "fieldManager",
                    )
                ],
            )
        force = _bool(options.get("force"))
        applied = _decode(request.body)
        if not isinstance(applied, dict):
            raise StatusError.bad_request(
                "error decoding patch: the apply configuration is not an object"
            )
        body_text = request.body.decode("utf-8", "replace").strip()
        if not applied.get("kind"):
            raise StatusError.bad_request(f"Object 'Kind' is missing in '{body_text}'")
        if not applied.get("apiVersion"):
            raise StatusError.bad_request(f"Object 'apiVersion' is missing in '{body_text}'")
        if applied["apiVersion"] != resource.api_version or applied["kind"] != resource.kind:
            raise StatusError.bad_request(
                f"the API version in the data ({applied['apiVersion']}) and kind "
                f"({applied['kind']}) do not match the expected {resource.api_version} "
                f"{resource.kind}"
            )
        meta = applied.get("metadata")
        if not isinstance(meta, dict):
            meta = applied["metadata"] = {}
        if meta.get("name") not in (None, "", request.name):
            raise StatusError.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({request.name})"
            )
        meta["name"] = request.name
        schema = schemas.for_resource(resource)
        gvk = f"{resource.group}/{resource.version}, Kind={resource.kind}"
        unknown = _unknown(schemas, schema, applied)
        if unknown:
            raise StatusError.internal(
                f"failed to create typed patch object ({request.namespace}/{request.name}; "
                f"{gvk}): {unknown[0]}: field not declared in schema"
            )
        scope = "main" if resource.status_subresource else ""
        if scope == "main":
            applied.pop("status", None)
        fields = Fields(schemas, schema)
        applied_set = set(fields.of(applied, scope=scope))
        live = copy.deepcopy(dict(request.current)) if request.current is not None else None
        api_version = resource.api_version
        time = rfc3339(now())
        if live is None:
            merged: dict[str, Any] = copy.deepcopy(applied)
            merged["metadata"]["managedFields"] = [
                make_entry(manager, "Apply", api_version, time, applied_set)
            ]
            return merged
        live_entries: list[Mapping[str, Any]] = list(
            (live.get("metadata") or {}).get("managedFields") or []
        )
        live_set: FieldSet = fields.of(live, scope=scope)
        if not live_entries and live_set:
            live_entries = [
                make_entry(BEFORE_FIRST_APPLY, "Update", api_version, time, set(live_set))
            ]
        merged = merge_applied(schemas, schema, live, applied)
        merged_set = fields.of(merged, scope=scope)
        touched, _ = changed_paths(live_set, merged_set)
        me = (manager, "Apply", "", "")
        previous: set[Path] = set()
        conflicts: list[tuple[Mapping[str, Any], Path]] = []
        others: set[Path] = set()
        for entry, paths in owned(live_entries):
            if entry_key(entry) == me:
                previous = paths
                continue
            for path in sorted(paths & touched):
                conflicts.append((entry, path))
            others |= paths - touched if force else paths
        if conflicts and not force:
            raise conflict_error(sorted(conflicts, key=lambda c: (str(c[0].get("manager")), c[1])))
        stale = previous - applied_set - others
        keep = applied_set | others
        # Outermost first: removing a list item or map takes its children with it.
        for path in sorted(stale, key=len):
            if any(k[: len(path)] == path and k != path for k in keep):
                continue
            remove_path(merged, path)
        final_set = fields.of(merged, scope=scope)
        touched, removed = changed_paths(live_set, final_set)
        entries = update_entries(
            live_entries,
            touched,
            removed,
            manager=manager,
            operation="Apply",
            api_version=api_version,
            subresource="",
            time=time,
            give_to_manager=False,
        )
        if applied_set:
            entries = sort_entries(
                [*entries, make_entry(manager, "Apply", api_version, time, applied_set)]
            )
        old_entries = list((live.get("metadata") or {}).get("managedFields") or [])
        merged.setdefault("metadata", {})
        unchanged = _strip_managed(merged) == _strip_managed(live)
        if unchanged and old_entries and _same_ignoring_time(entries, old_entries):
            entries = [dict(e) for e in old_entries]
        merged["metadata"]["managedFields"] = entries
        return merged

    return apply


def _strip_managed(obj: Mapping[str, Any]) -> str:
    copied = copy.deepcopy(dict(obj))
    copied.get("metadata", {}).pop("managedFields", None)
    return json.dumps(copied, sort_keys=True)


def _unknown(schemas: Schemas, schema: Schema | None, applied: dict[str, Any]) -> list[str]:
    if schema is None:
        return []
    return unknown_fields(schemas, schema, copy.deepcopy(applied), prune=False, ssa_paths=True)
