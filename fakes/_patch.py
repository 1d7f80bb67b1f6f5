"""PATCH bodies by content type: the dispatch point, JSON merge patch and JSON patch.

What this module is for: `PatchTypes` maps a PATCH `Content-Type` to a function that turns the
current object and the body into the new object. This module fills in RFC 7386 merge patch
(`application/merge-patch+json`: objects merged, `null` deletes, lists replaced whole) and RFC
6902 JSON patch (`application/json-patch+json`, through the `jsonpatch` library), and a basic
strategic
merge patch: merge keys for the lists controllers patch most (containers, env, ports,
volumes, conditions, ownerReferences, ...), `$patch: delete|replace` and finalizers as a set;
custom resources get 415 as on a real server. The complete strategic merge patch and
server-side apply (`application/apply-patch+yaml`) come with issue 6 through
`PatchTypes.register`; an apply handler may create the object (`creates=True`). Unknown types
are 415. Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer
import orjson

from rxkube.fakes._errors import StatusCause, StatusError
from rxkube.fakes._resources import ResourceType

__all__ = ["PatchRequest", "PatchTypes"]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


@dataclass(frozen=True, slots=True)
class PatchRequest:
    """What a patch handler gets: the kind, the current object (None when absent, only for
    handlers registered with `creates=True`), the raw body and the query options
    (`fieldManager`, `force`, ...), plus the target's name and namespace."""

    resource: ResourceType
    current: Mapping[str, Any] | None
    body: bytes
    name: str
    namespace: str
    options: Mapping[str, str] = field(default_factory=dict)


PatchFunction = Callable[[PatchRequest], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Entry:
    function: PatchFunction
    creates: bool


class PatchTypes:
    """Content type -> patch function. Start with merge patch and JSON patch."""

    def __init__(self) -> None:
        self._types: dict[str, _Entry] = {}
        self.register(MERGE_PATCH, merge_patch)
        self.register(JSON_PATCH, json_patch)
        self.register(STRATEGIC_MERGE_PATCH, strategic_merge_patch)

    def register(
        self, content_type: str, function: PatchFunction, *, creates: bool = False
    ) -> None:
        """Serve PATCH bodies of `content_type` with `function` (replaces any earlier one).

        `creates=True`: the function is also called when the object does not exist (with
        `current=None`), and the result is created (server-side apply answers 201 then).
        """
        self._types[content_type] = _Entry(function, creates)

    def supported(self) -> list[str]:
        return list(self._types)

    def creates(self, content_type: str) -> bool:
        entry = self._types.get(content_type)
        return entry is not None and entry.creates

    def apply(self, content_type: str, request: PatchRequest) -> dict[str, Any]:
        entry = self._types.get(content_type)
        if entry is None:
            raise StatusError.unsupported_media_type(content_type, self.supported())
        return entry.function(request)


def _decode(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise StatusError.bad_request(f"error decoding patch: {error}") from None


def merge_values(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(target, patch)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_values(result.get(key), value)
    return result


def merge_patch(request: PatchRequest) -> dict[str, Any]:
    patch = _decode(request.body)
    if not isinstance(patch, dict):
        raise StatusError.bad_request(
            "error decoding patch: json: cannot unmarshal "
            f"{_json_type(patch)} into Go value of type map[string]interface {{}}"
        )
    result = merge_values(copy.deepcopy(dict(request.current or {})), patch)
    assert isinstance(result, dict)
    return result


def json_patch(request: PatchRequest) -> dict[str, Any]:
    ops = _decode(request.body)
    if not isinstance(ops, list):
        raise StatusError.bad_request(
            "error decoding patch: json: cannot unmarshal "
            f"{_json_type(ops)} into Go value of type jsonpatch.Patch"
        )
    try:
        result = jsonpatch.JsonPatch(ops).apply(copy.deepcopy(dict(request.current or {})))
    except jsonpatch.JsonPatchTestFailed as error:
        raise _patch_invalid(request, f"testing value failed: {error}") from None
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException) as error:
        raise _patch_invalid(request, str(error)) from None
    except (jsonpatch.InvalidJsonPatch, TypeError, KeyError) as error:
        raise StatusError.bad_request(f"error decoding patch: {error}") from None
    if not isinstance(result, dict):
        raise StatusError.bad_request("the patch does not yield an object")
    return result


def _patch_invalid(request: PatchRequest, why: str) -> StatusError:
    # kube-apiserver reports a JSON patch that cannot be applied as 422 with this text.
    return StatusError(
        422,
        "Invalid",
        f"the server rejected our request due to an error in our request: {why}",
        name=request.name,
        group=request.resource.group,
        kind=request.resource.kind,
        causes=[StatusCause("FieldValueInvalid", why)],
    )


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "object"


# patchMergeKey of the list fields that have `patchStrategy:"merge"` in k8s.io/api, keyed by
# (parent field, list field); "" as parent matches any parent.
_MERGE_KEYS: dict[tuple[str, str], str] = {
    ("", "containers"): "name",
    ("", "initContainers"): "name",
    ("", "ephemeralContainers"): "name",
    ("", "imagePullSecrets"): "name",
    ("", "volumes"): "name",
    ("", "env"): "name",
    ("", "volumeMounts"): "mountPath",
    ("", "volumeDevices"): "devicePath",
    ("", "hostAliases"): "ip",
    ("", "conditions"): "type",
    ("", "ownerReferences"): "uid",
    ("containers", "ports"): "containerPort",
    ("initContainers", "ports"): "containerPort",
    ("spec", "ports"): "port",
}
_SET_LISTS = frozenset({"finalizers"})


def strategic_merge_patch(request: PatchRequest) -> dict[str, Any]:
    """A strategic merge patch for built-in kinds (415 for custom resources, as for real)."""
    if request.resource.custom:
        raise StatusError.unsupported_media_type(
            STRATEGIC_MERGE_PATCH, [MERGE_PATCH, JSON_PATCH, APPLY_PATCH]
        )
    patch = _decode(request.body)
    if not isinstance(patch, dict):
        raise StatusError.bad_request("error decoding patch: the patch is not a JSON object")
    return _smp_map(copy.deepcopy(dict(request.current or {})), patch, "")


def _smp_map(target: dict[str, Any], patch: dict[str, Any], parent: str) -> dict[str, Any]:
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return {}
    for key, value in patch.items():
        if key.startswith("$"):
            if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
                field_name = key.split("/", 1)[1]
                current = target.get(field_name)
                if isinstance(current, list):
                    target[field_name] = [v for v in current if v not in value]
            continue
        if value is None:
            target.pop(key, None)
            continue
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            target[key] = _smp_map(current, value, key)
        elif isinstance(value, list) and isinstance(current, list):
            target[key] = _smp_list(current, value, parent, key)
        elif isinstance(value, dict):
            target[key] = _smp_map({}, value, key)
        else:
            target[key] = copy.deepcopy(value)
    return target


def _smp_list(current: list[Any], patch: list[Any], parent: str, key: str) -> list[Any]:
    if key in _SET_LISTS:
        out = list(current)
        out.extend(v for v in patch if v not in out)
        return out
    merge_key = _MERGE_KEYS.get((parent, key)) or _MERGE_KEYS.get(("", key))
    if merge_key is None or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)
    out = [copy.deepcopy(item) for item in current]
    for item in patch:
        if item.get("$patch") == "replace":
            return [copy.deepcopy({k: v for k, v in i.items() if k != "$patch"}) for i in patch]
        wanted = item.get(merge_key)
        index = next(
            (
                i
                for i, have in enumerate(out)
                if isinstance(have, dict) and have.get(merge_key) == wanted
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
            continue
        if index is None:
            out.append(_smp_map({}, item, key))
        else:
            out[index] = _smp_map(out[index], item, key)
    return out
