"""The Kubernetes API schemas the fake serves and checks against, from a real source.

What this module is for: one place that knows the shape of every built-in kind, so that the
OpenAPI documents (`_openapi`), server-side field validation (`_validation`), strategic merge
patch (`_strategic`) and managed fields (`_managed`) all read the same schema.

Where the schemas come from: the `kubernetes-validate` package ships the Kubernetes OpenAPI
definitions of each release as JSON Schema (`kubernetes-json-schema/v1.32.0-local/
_definitions.json`, generated from the release's `swagger.json`, with every
`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`, `x-kubernetes-list-type`,
`x-kubernetes-list-map-keys` and `x-kubernetes-group-version-kind` extension kept). We read the
version the fake reports in `/version` (1.32) and convert it back to the OpenAPI 3 form
kube-apiserver publishes: references as `#/components/schemas/<name>` (wrapped in `allOf` when
the property carries its own description or extensions, as kube-openapi does), nullable type
lists reduced to their type, `IntOrString` and `Quantity` as strings with their format, and
the `enum` that kubernetes-validate adds on `apiVersion`/`kind` dropped. Custom resources
(Gloo's VirtualService and Upstream, any CRD registered later) get a permissive schema:
`spec` and `status` keep unknown fields, as a CRD with `x-kubernetes-preserve-unknown-fields`.

Loading is lazy: nothing is read until the first request that needs a schema (the fake starts
in milliseconds); the converted definitions are read-only and cached for the process, keyed by
version (a cache of package data, not mutable global state). The package is located without
importing it (its `__init__` pulls in jsonschema, which the fake does not need).
Pure: file reads only, no network.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

import orjson

from rxkube.fakes._resources import ResourceType

__all__: list[str] = []

SCHEMA_VERSION: Final = "1.32"
"""The Kubernetes release whose schemas are served (the fake reports v1.32.4)."""

REF_PREFIX: Final = "#/components/schemas/"
META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META: Final = META + "ObjectMeta"

Schema = Mapping[str, Any]

_SCALARS: Final = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "type": "string",
        "format": "int-or-string",
        "description": "IntOrString is a type that can hold an int32 or a string.  When used in "
        "JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.  "
        "This allows you to have, for example, a JSON field that can accept a name or number.",
    },
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "type": "string",
        "description": "Quantity is a fixed-point representation of a number.",
    },
}


class SchemaUnavailable(RuntimeError):
    """kubernetes-validate is missing or has no schemas for the version asked."""


def _schema_dir() -> Path:
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise SchemaUnavailable(
            "the kubernetes-validate package is not installed: `pip install "
            "kubernetes-validate` (a dependency of rxkube) ships the Kubernetes schemas"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"


def _pick_version(version: str) -> Path:
    base = _schema_dir()
    wanted = base / f"v{version}.0-local" / "_definitions.json"
    if wanted.is_file():
        return wanted
    # A newer kubernetes-validate may have dropped old releases: take the closest one.
    available = sorted(
        (p for p in base.glob("v*-local") if (p / "_definitions.json").is_file()),
        key=lambda p: tuple(int(x) for x in p.name[1:].split("-")[0].split(".")),
    )
    if not available:
        raise SchemaUnavailable(f"kubernetes-validate has no schemas under {base}")
    major_minor = tuple(int(x) for x in version.split("."))

    def distance(path: Path) -> int:
        parts = tuple(int(x) for x in path.name[1:].split("-")[0].split("."))
        return abs(parts[1] - major_minor[1]) + 100 * abs(parts[0] - major_minor[0])

    return min(available, key=distance) / "_definitions.json"


def _convert(node: Any) -> Any:
    """kubernetes-validate's JSON Schema node -> the OpenAPI 3 node kube-apiserver serves."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    ref = node.get("$ref")
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "type" and isinstance(value, list):
            kinds = [t for t in value if t != "null"]
            if len(kinds) == 1:
                out["type"] = kinds[0]
            elif kinds:
                out["type"] = kinds
            continue
        if key in ("properties", "patternProperties", "$defs"):
            out[key] = {name: _convert(sub) for name, sub in value.items()}
            continue
        out[key] = _convert(value)
    if isinstance(ref, str):
        target = REF_PREFIX + ref.rsplit("/", 1)[-1]
        if out:
            return {"allOf": [{"$ref": target}], **out}
        return {"$ref": target}
    return out


@functools.cache
def load_definitions(version: str = SCHEMA_VERSION) -> Mapping[str, Schema]:
    """The converted definitions of a release, by name (`io.k8s.api.apps.v1.Deployment`)."""
    raw = orjson.loads(_pick_version(version).read_bytes())
    definitions: dict[str, Any] = raw.get("$defs") or raw.get("definitions") or {}
    out: dict[str, Schema] = {}
    for name, node in definitions.items():
        if name in _SCALARS:
            out[name] = dict(_SCALARS[name])
            continue
        converted = _convert(node)
        if "x-kubernetes-group-version-kind" in converted:
            for key in ("apiVersion", "kind"):
                prop = converted.get("properties", {}).get(key)
                if isinstance(prop, dict):
                    prop.pop("enum", None)
        out[name] = converted
    return out


def _reverse_group(group: str) -> str:
    return ".".join(reversed(group.split("."))) if group else ""


def custom_schema_name(resource: ResourceType, kind: str = "") -> str:
    """The definition name of a CRD's kind: `io.solo.gateway.v1.VirtualService`."""
    return f"{_reverse_group(resource.group)}.{resource.version}.{kind or resource.kind}"


def _custom_schemas(resource: ResourceType) -> dict[str, Schema]:
    gvk = [{"group": resource.group, "kind": resource.kind, "version": resource.version}]
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    name = custom_schema_name(resource)
    item: dict[str, Any] = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": REF_PREFIX + OBJECT_META},
            "spec": dict(open_object),
            "status": dict(open_object),
        },
        "x-kubernetes-group-version-kind": gvk,
    }
    listing: dict[str, Any] = {
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"$ref": REF_PREFIX + META + "ListMeta"},
            "items": {"type": "array", "items": {"$ref": REF_PREFIX + name}},
        },
        "x-kubernetes-group-version-kind": [{**gvk[0], "kind": resource.list_kind}],
    }
    return {name: item, name + "List": listing}


class Schemas:
    """The schemas of the kinds one fake serves: the release's built-in definitions plus a
    permissive one per custom resource. Cheap to create; the definitions load on first use."""

    def __init__(self, version: str = SCHEMA_VERSION) -> None:
        self.version = version
        self._custom: dict[str, Schema] = {}
        self._by_gvk: dict[tuple[str, str, str], str] | None = None

    @property
    def builtin(self) -> Mapping[str, Schema]:
        return load_definitions(self.version)

    def add_custom(self, resource: ResourceType) -> None:
        """Give a custom resource its (permissive) schema; idempotent."""
        name = custom_schema_name(resource)
        if name in self._custom:
            return
        self._custom.update(_custom_schemas(resource))
        self._by_gvk = None

    def definition(self, name: str) -> Schema | None:
        return self._custom.get(name) or self.builtin.get(name)

    def names(self) -> Iterator[str]:
        yield from self.builtin
        yield from self._custom

    def _index(self) -> dict[tuple[str, str, str], str]:
        if self._by_gvk is None:
            index: dict[tuple[str, str, str], str] = {}
            for source in (self.builtin, self._custom):
                for name, schema in source.items():
                    for gvk in schema.get("x-kubernetes-group-version-kind") or ():
                        key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
                        # The first definition wins: kube-openapi lists a kind once per GV.
                        index.setdefault(key, name)
            self._by_gvk = index
        return self._by_gvk

    def name_for(self, group: str, version: str, kind: str) -> str | None:
        """The definition name of a kind (`("apps", "v1", "Deployment")`), or None."""
        return self._index().get((group, version, kind))

    def for_resource(self, resource: ResourceType) -> Schema | None:
        """The schema of a served kind (custom resources get theirs on first ask)."""
        if resource.custom:
            self.add_custom(resource)
        name = self.name_for(resource.group, resource.version, resource.kind)
        return self.definition(name) if name else None

    def resolve(self, node: Schema | None) -> Schema | None:
        """Follow `$ref` and a single-element `allOf` to the node that has the structure."""
        seen = 0
        while node is not None and seen < 64:
            seen += 1
            ref = node.get("$ref")
            if isinstance(ref, str):
                node = self.definition(ref.removeprefix(REF_PREFIX))
                continue
            all_of = node.get("allOf")
            if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
                node = all_of[0]
                continue
            return node
        return node

    def closure(self, roots: list[str]) -> dict[str, Schema]:
        """The named definitions reachable from `roots` (what an OpenAPI document embeds)."""
        out: dict[str, Schema] = {}
        stack = list(roots)
        while stack:
            name = stack.pop()
            if name in out:
                continue
            schema = self.definition(name)
            if schema is None:
                continue
            out[name] = schema
            stack.extend(_refs(schema))
        return dict(sorted(out.items()))


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            yield ref[len(REF_PREFIX) :]
        for value in node.values():
            if isinstance(value, dict | list):
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)
