"""Strategic merge patch (`application/strategic-merge-patch+json`) driven by the real schemas.

What this module is for: applying the patches `kubectl apply` (client-side), `kubectl patch`
(its default type), the event recorder and many controllers send, as apimachinery's
`strategicpatch.StrategicMergeMapPatch` does (`MergeParallelList`, `IgnoreUnmatchedNulls`).
Which lists merge, and by which key, is read from the schema of the kind (`_schemas`):
`x-kubernetes-patch-strategy` (`merge`, `retainKeys`, `merge,retainKeys`, `replace`) and
`x-kubernetes-patch-merge-key` (containers and volumes by `name`, ports by `containerPort`,
env by `name`, ownerReferences by `uid`, finalizers merged as a set of strings, ...). Lists
without a merge strategy, and maps under a `replace` strategy, are replaced whole.

Directives: `$patch: replace|delete` in a map, `{"$patch": "delete", <key>: ...}` and
`{"$patch": "replace"}` items in a merging list, `$retainKeys`, `$setElementOrder/<list>`
(order: the directive's, then the patch's, then the live object's), and
`$deleteFromPrimitiveList/<list>`. A value taken whole (the field was absent) has its
directives applied against nothing, so no `$...` key is ever stored. Malformed patches are
400 BadRequest with apimachinery's texts; custom resources get 415 (no SMP for CRs, as on a
real server). Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

import orjson

from rxkube.fakes._errors import StatusError
from rxkube.fakes._patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchRequest,
    strategic_merge_patch,
)
from rxkube.fakes._schemas import Schema, Schemas

__all__: list[str] = []

DIRECTIVE: Final = "$patch"
RETAIN_KEYS: Final = "$retainKeys"
SET_ORDER: Final = "$setElementOrder/"
DELETE_FROM: Final = "$deleteFromPrimitiveList/"


class PatchFormatError(ValueError):
    """A patch apimachinery would reject (answered 400)."""


class _Meta:
    """Where the merge is in the schema: the node for the current value, or None (no
    schema: maps merge, lists are replaced)."""

    __slots__ = ("node", "schemas")

    def __init__(self, schemas: Schemas, node: Schema | None) -> None:
        self.schemas = schemas
        self.node = schemas.resolve(node) if node is not None else None

    def field(self, key: str) -> tuple[_Meta, list[str], str]:
        """Sub-schema, patch strategies and merge key of a field of this map."""
        if self.node is None:
            return _Meta(self.schemas, None), [], ""
        props = self.node.get("properties")
        prop: Schema | None = None
        if isinstance(props, Mapping):
            prop = props.get(key)
        elif isinstance(self.node.get("additionalProperties"), Mapping):
            prop = self.node["additionalProperties"]
        if prop is None:
            return _Meta(self.schemas, None), [], ""
        strategy = str(prop.get("x-kubernetes-patch-strategy") or "")
        strategies = [s for s in strategy.split(",") if s]
        merge_key = str(prop.get("x-kubernetes-patch-merge-key") or "")
        return _Meta(self.schemas, prop), strategies, merge_key

    def items(self) -> _Meta:
        if self.node is None:
            return self
        items = self.node.get("items")
        return _Meta(self.schemas, items if isinstance(items, Mapping) else None)


def _strategy(strategies: list[str]) -> str:
    others = [s for s in strategies if s != "retainKeys"]
    if len(others) > 1:
        raise PatchFormatError(f"unexpected patch strategy: {','.join(strategies)}")
    return others[0] if others else ""


def _equal(left: Any, right: Any) -> bool:
    # Go compares interface values: 1 == 1.0 for JSON numbers, but bool is not a number.
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return bool(left == right)


def _index(items: list[Any], value: Any, merge_key: str) -> int:
    for i, item in enumerate(items):
        if merge_key:
            if (
                isinstance(item, dict)
                and isinstance(value, dict)
                and merge_key in item
                and _equal(item.get(merge_key), value.get(merge_key))
            ):
                return i
        elif _equal(item, value):
            return i
    return -1


def _require_keys(items: list[Any], merge_key: str) -> None:
    for item in items:
        if not isinstance(item, dict):
            raise PatchFormatError(f"expected a map in the list, got {item!r}")
        if merge_key not in item:
            raise PatchFormatError(f"map: {item} does not contain declared merge key: {merge_key}")


def _normalize_order(items: list[Any], order: list[Any], merge_key: str, maps: bool) -> list[Any]:
    to_delete: list[Any] = []
    if maps:
        _require_keys(items, merge_key)
        _require_keys(order, merge_key)
        keep = []
        for item in items:
            if item.get(DIRECTIVE) == "delete":
                to_delete.append(item)
            else:
                keep.append(item)
        items = keep
    positions = [_index(order, item, merge_key if maps else "") for item in items]
    # Go's sort.SliceStable with "unknown sorts first" is stable on the known ones.
    known = sorted((i for i, p in enumerate(positions) if p >= 0), key=lambda i: positions[i])
    unknown = [i for i, p in enumerate(positions) if p < 0]
    ordered = [items[i] for i in unknown] + [items[i] for i in known]
    return ordered + to_delete


def _merge_sorted(
    left: list[Any], right: list[Any], server_order: list[Any], merge_key: str, maps: bool
) -> list[Any]:
    key = merge_key if maps else ""
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], key)
            ri = _index(server_order, right[j], key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _order(
    merged: list[Any], patch_order: list[Any], server_order: list[Any], merge_key: str
) -> list[Any]:
    maps = bool(merge_key)
    patch_items = []
    server_only = []
    for item in merged:
        if _index(patch_order, item, merge_key) >= 0:
            patch_items.append(item)
        else:
            server_only.append(item)
    patch_items = _normalize_order(patch_items, patch_order, merge_key, maps)
    server_only = _normalize_order(server_only, server_order, merge_key, maps)
    return _merge_sorted(server_only, patch_items, server_order, merge_key, maps)


def _dedupe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if _index(out, item, "") < 0:
            out.append(item)
    return out


def merge_map(original: dict[str, Any], patch: dict[str, Any], meta: _Meta) -> dict[str, Any]:
    """mergeMap: `original` and `patch` are consumed (pass copies)."""
    directive = patch.get(DIRECTIVE)
    if directive is not None:
        if directive == "replace":
            del patch[DIRECTIVE]
            cleaned: dict[str, Any] = _clean(patch, meta)
            return cleaned
        if directive == "delete":
            return {}
        if directive != "merge":
            raise PatchFormatError(f"Unknown patch type: {directive} in map: {patch}")
        del patch[DIRECTIVE]
    retain = patch.pop(RETAIN_KEYS, None)
    if retain is not None:
        if not isinstance(retain, list):
            raise PatchFormatError("doesn't match the expected format for retainKeys")
        allowed = set(retain)
        for key, value in patch.items():
            if value is None or key.startswith((DELETE_FROM, SET_ORDER)):
                continue
            if key not in allowed:
                raise PatchFormatError("doesn't match the expected format for retainKeys")
        for key in list(original):
            if key not in allowed:
                del original[key]
    for key in [k for k in patch if k.startswith(SET_ORDER)]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise PatchFormatError("invalid list format for $setElementOrder")
        field_name = key[len(SET_ORDER) :]
        sub, strategies, merge_key = meta.field(field_name)
        found_original = field_name in original
        found_patch = field_name in patch
        if found_original and not isinstance(original[field_name], list):
            raise PatchFormatError(f"expected a list for {field_name}")
        if found_patch and not isinstance(patch[field_name], list):
            raise PatchFormatError(f"expected a list for {field_name}")
        original_list: list[Any] = list(original.get(field_name) or [])
        if found_original and found_patch:
            merged = _merge_list_field(
                original_list, patch.pop(field_name), sub, _strategy(strategies), merge_key, False
            )
        elif found_patch:
            merged = _clean(patch.pop(field_name), sub.items())
        elif found_original:
            merged = original_list
        else:
            continue
        original[field_name] = _order(merged, order, original_list, merge_key)
    for key, value in patch.items():
        delete_list = key.startswith(DELETE_FROM)
        if delete_list:
            key = key[len(DELETE_FROM) :]
        if value is None:
            original.pop(key, None)
            continue
        if key not in original:
            if not delete_list:
                sub, _, _ = meta.field(key)
                original[key] = _clean(value, sub)
            continue
        current = original[key]
        if type(current) is not type(value) and not (
            isinstance(current, dict) and isinstance(value, dict)
        ):
            original[key] = _clean(value, meta.field(key)[0])
            continue
        sub, strategies, merge_key = meta.field(key)
        strategy = _strategy(strategies)
        if isinstance(current, dict):
            if strategy == "replace":
                original[key] = _clean(value, sub)
            else:
                original[key] = merge_map(current, value, sub)
        elif isinstance(current, list):
            original[key] = _merge_list_field(current, value, sub, strategy, merge_key, delete_list)
        else:
            original[key] = value
    return original


def _merge_list_field(
    current: list[Any],
    patch: list[Any],
    sub: _Meta,
    strategy: str,
    merge_key: str,
    delete_list: bool,
) -> list[Any]:
    if strategy == "merge":
        return merge_slice(current, patch, sub.items(), merge_key, delete_list)
    return list(_clean(patch, sub.items()) if isinstance(patch, list) else patch)


def merge_slice(
    original: list[Any], patch: list[Any], item_meta: _Meta, merge_key: str, delete_list: bool
) -> list[Any]:
    if not original and not patch:
        return original
    sample = [*original, *patch]
    if any(isinstance(v, list) for v in sample):
        raise PatchFormatError("lists of lists are not supported")
    maps = any(isinstance(v, dict) for v in sample)
    if not maps:
        if delete_list:
            return [v for v in original if _index(patch, v, "") < 0]
        merged = _dedupe([*original, *patch])
        return _order(merged, patch, original, "")
    if not merge_key:
        raise PatchFormatError("cannot merge lists without merge key for type map")
    # Special elements ($patch: delete|replace) first.
    plain: list[Any] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict):
            raise PatchFormatError(f"expected a map in the list, got {item!r}")
        directive = item.get(DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if merge_key not in item:
                raise PatchFormatError(
                    f"map: {item} does not contain declared merge key: {merge_key}"
                )
            original = [o for o in original if _index([o], item, merge_key) < 0]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchFormatError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchFormatError(f"Unknown patch type: {directive} in map: {item}")
    if replace:
        original, plain = [_clean(p, item_meta) for p in plain], []
    server_order = list(original)
    for item in plain:
        if merge_key not in item:
            raise PatchFormatError(f"map: {item} does not contain declared merge key: {merge_key}")
        at = _index(original, item, merge_key)
        if at >= 0:
            original[at] = merge_map(original[at], item, item_meta)
        else:
            original.append(_clean(item, item_meta))
    return _order(original, plain, server_order, merge_key) if plain else original


def _clean(value: Any, meta: _Meta) -> Any:
    """A value taken whole: apply its directives against nothing (no `$...` key stored)."""
    if isinstance(value, dict):
        if not any(isinstance(k, str) and k.startswith("$") for k in value) and not any(
            isinstance(v, dict | list) for v in value.values()
        ):
            return {k: v for k, v in value.items() if v is not None}
        return merge_map({}, dict(value), meta)
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict) and item.get(DIRECTIVE) in ("delete", "replace"):
                continue
            out.append(_clean(item, meta) if isinstance(item, dict | list) else item)
        return out
    return value


def apply_strategic(
    schemas: Schemas, schema: Schema | None, original: Mapping[str, Any], patch: Any
) -> dict[str, Any]:
    """StrategicMergeMapPatch(original, patch) under `schema` (copies both)."""
    if not isinstance(patch, dict):
        raise StatusError.bad_request(
            "error decoding patch: json: cannot unmarshal into Go value of type "
            "map[string]interface {}"
        )
    try:
        return merge_map(
            copy.deepcopy(dict(original)), copy.deepcopy(patch), _Meta(schemas, schema)
        )
    except PatchFormatError as error:
        raise StatusError.bad_request(str(error)) from None


def strategic_patch_type(schemas: Schemas) -> Any:
    """The `PatchTypes` function for `application/strategic-merge-patch+json`."""

    def apply(request: PatchRequest) -> dict[str, Any]:
        resource = request.resource
        if resource.custom:
            raise StatusError.unsupported_media_type(
                STRATEGIC_MERGE_PATCH, [MERGE_PATCH, JSON_PATCH, APPLY_PATCH]
            )
        schema = schemas.for_resource(resource)
        if schema is None:
            return strategic_merge_patch(request)
        try:
            patch = orjson.loads(request.body)
        except orjson.JSONDecodeError as error:
            raise StatusError.bad_request(f"error decoding patch: {error}") from None
        return apply_strategic(schemas, schema, request.current or {}, patch)

    return apply
