"""Server-side field validation: `?fieldValidation=Ignore|Warn|Strict` against real schemas.

What this module is for: kube-apiserver decodes every write into the kind's Go struct, so a
field the kind does not have is dropped in every mode, and a field given twice keeps its last
value; `fieldValidation` decides only what the client hears (reference section 7):

| directive        | unknown or duplicate field                                  |
|------------------|-------------------------------------------------------------|
| `Ignore`         | dropped / last wins, nothing said                           |
| `Warn` (default) | the same, plus one `Warning: 299 - "unknown field ..."` each |
| `Strict`         | the write is refused, naming every field                    |
| anything else    | 422 on the options kind (`CreateOptions.meta.k8s.io ...`)   |

Strict refusals use the real texts: a POST or PUT is `400 BadRequest` `Deployment in version
"v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.foo"`; a
merge, strategic or JSON patch is `422 Invalid` ` "" is invalid: patch: Invalid value:
"<patch>": strict decoding error: ...`. For a patch only the unknown fields the patch brought
are reported (the stored object may hold fields written before, by a direct store call).
Server-side apply reports unknown fields itself, as structured-merge-diff does (`_apply`).
Status subresource writes are not checked, as on a real server. The schemas are those of
`_schemas` (kubernetes-validate's, a real source); custom resources keep unknown fields under
`spec` and `status` (preserve-unknown-fields). Pure: no I/O.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from rxkube.fakes._errors import StatusCause, StatusError
from rxkube.fakes._schemas import Schema, Schemas

if TYPE_CHECKING:
    from rxkube.fakes._store import Admission, AdmissionRequest

__all__: list[str] = []

DIRECTIVES: Final = ("Ignore", "Warn", "Strict")
PATCH_TYPES: Final = frozenset(
    {
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
    }
)


def check_directive(value: str | None, options_kind: str) -> str:
    """The directive in force (`Warn` when absent), or 422 for an unknown one."""
    if value in (None, ""):
        return "Warn"
    if value in DIRECTIVES:
        return value
    raise StatusError.invalid(
        options_kind,
        "meta.k8s.io",
        "",
        [
            StatusCause(
                "FieldValueNotSupported",
                f'Unsupported value: "{value}": supported values: "", "Ignore", "Strict", "Warn"',
                "fieldValidation",
            )
        ],
    )


def _key_text(item: Any, keys: list[str]) -> str:
    parts = []
    for key in keys:
        value = item.get(key) if isinstance(item, dict) else None
        parts.append(f"{key}={json.dumps(value)}")
    return ",".join(parts)


def unknown_fields(
    schemas: Schemas,
    schema: Schema | None,
    value: Any,
    *,
    prune: bool,
    ssa_paths: bool = False,
    keep: frozenset[str] | set[str] = frozenset(),
    path: str = "",
) -> list[str]:
    """Paths of the fields `value` has and `schema` does not (dropping them when `prune`);
    paths in `keep` are neither reported nor dropped.

    Paths read as the decoder writes them (`spec.containers[0].foo`), or, with `ssa_paths`,
    as structured-merge-diff does (`.spec.containers[name="app"].foo`).
    """
    out: list[str] = []
    node = schemas.resolve(schema)
    if node is None or node.get("x-kubernetes-preserve-unknown-fields"):
        return out
    if isinstance(value, dict):
        properties = node.get("properties")
        additional = node.get("additionalProperties")
        if isinstance(properties, Mapping) and properties:
            for key in list(value):
                sub_path = f"{path}.{key}" if (path or ssa_paths) else key
                if key not in properties:
                    if sub_path in keep:
                        continue
                    out.append(sub_path)
                    if prune:
                        del value[key]
                    continue
                out.extend(
                    unknown_fields(
                        schemas,
                        properties[key],
                        value[key],
                        prune=prune,
                        ssa_paths=ssa_paths,
                        keep=keep,
                        path=sub_path,
                    )
                )
        elif isinstance(additional, Mapping):
            for key, item in value.items():
                sub_path = f"{path}.{key}" if (path or ssa_paths) else key
                out.extend(
                    unknown_fields(
                        schemas,
                        additional,
                        item,
                        prune=prune,
                        ssa_paths=ssa_paths,
                        keep=keep,
                        path=sub_path,
                    )
                )
    elif isinstance(value, list):
        items = node.get("items")
        if isinstance(items, Mapping):
            keys = (schema or {}).get("x-kubernetes-list-map-keys") or node.get(
                "x-kubernetes-list-map-keys"
            )
            for index, item in enumerate(value):
                if ssa_paths and keys:
                    where = f"{path}[{_key_text(item, list(keys))}]"
                else:
                    where = f"{path}[{index}]"
                out.extend(
                    unknown_fields(
                        schemas,
                        items,
                        item,
                        prune=prune,
                        ssa_paths=ssa_paths,
                        keep=keep,
                        path=where,
                    )
                )
    return out


class _Pairs(dict[str, Any]):
    """A decoded JSON object that remembers the keys it saw twice."""

    duplicates: list[str]


def _pairs_hook(pairs: list[tuple[str, Any]]) -> _Pairs:
    out = _Pairs()
    out.duplicates = []
    for key, value in pairs:
        if key in out and key not in out.duplicates:
            out.duplicates.append(key)
        out[key] = value
    return out


def duplicate_fields(body: bytes) -> list[str]:
    """Paths of the keys a JSON body gives twice (`spec.replicas`), in document order."""
    try:
        decoded = json.loads(body, object_pairs_hook=_pairs_hook)
    except (ValueError, UnicodeDecodeError):
        return []  # not JSON (YAML, or already rejected by the decoder)
    out: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, _Pairs):
            out.extend(f"{path}.{k}" if path else k for k in value.duplicates)
            for key, item in value.items():
                walk(item, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    walk(decoded, "")
    return out


def _old_unknown(schemas: Schemas, schema: Schema, old: Mapping[str, Any] | None) -> set[str]:
    if old is None:
        return set()
    return set(unknown_fields(schemas, schema, copy.deepcopy(dict(old)), prune=False))


def field_validation(schemas: Schemas) -> Admission:
    """The admission step (first in line, as decoding comes first on a real server)."""

    def step(request: AdmissionRequest) -> None:
        options = request.options
        if options is None or request.subresource:
            return
        patching = options.content_type in PATCH_TYPES
        if options.operation == "Apply":
            return
        if patching:
            options_kind = "PatchOptions"
        elif request.operation == "CREATE":
            options_kind = "CreateOptions"
        else:
            options_kind = "UpdateOptions"
        directive = check_directive(options.query.get("fieldValidation"), options_kind)
        resource = request.resource
        schema = schemas.for_resource(resource)
        findings: list[str] = []
        if directive != "Ignore" and options.content_type != "application/json-patch+json":
            findings.extend(f'duplicate field "{p}"' for p in duplicate_fields(options.body))
        if schema is not None:
            before = _old_unknown(schemas, schema, request.old) if patching else set()
            unknown = unknown_fields(schemas, schema, request.object, prune=True, keep=before)
            findings.extend(f'unknown field "{p}"' for p in unknown)
        if not findings or directive == "Ignore":
            return
        if directive == "Warn":
            options.warnings.extend(findings)
            return
        detail = "strict decoding error: " + ", ".join(findings)
        if patching:
            patch_text = options.body.decode("utf-8", "replace").strip()
            quoted = json.dumps(patch_text)
            raise StatusError(
                422,
                "Invalid",
                f' "" is invalid: patch: Invalid value: {quoted}: {detail}',
                causes=[StatusCause("FieldValueInvalid", f"Invalid value: {quoted}: {detail}")],
            )
        raise StatusError.bad_request(
            f'{resource.kind} in version "{resource.version}" cannot be handled as a '
            f"{resource.kind}: {detail}"
        )

    return step
