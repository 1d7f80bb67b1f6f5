"""CustomResourceDefinitions: creating one serves its kind, as the apiextensions server does.

What this module is for: a store subscriber that, when a `CustomResourceDefinition` is
created or changed, registers a `ResourceType` row for each served version (scope, names,
the `status` subresource) and marks the CRD `Established` and `NamesAccepted` in its status,
which is what clients wait for before using the new kind. Deleting a CRD deletes its objects,
but the kind stays registered (its paths answer with empty lists): a simplification. Pure: no
I/O, driven by the store's change feed.
"""

from __future__ import annotations

from typing import Any

from rxkube.fakes._resources import ResourceType
from rxkube.fakes._store import Change, DeleteOptions, Store, rfc3339

__all__: list[str] = []


def _rows(crd: dict[str, Any]) -> list[ResourceType]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group") or "")
    plural = str(names.get("plural") or "")
    kind = str(names.get("kind") or "")
    if not (group and plural and kind):
        return []
    rows = []
    for version in spec.get("versions") or ():
        if not isinstance(version, dict) or not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        rows.append(
            ResourceType(
                group,
                str(version.get("name") or "v1"),
                plural,
                kind,
                spec.get("scope", "Namespaced") == "Namespaced",
                singular=str(names.get("singular") or kind.lower()),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                generation=True,
                status_subresource="status" in subresources,
                custom=True,
            )
        )
    return rows


def install_crd_controller(store: Store) -> None:
    """Serve the kinds of the CRDs written to `store` (already stored ones included)."""

    def on_change(change: Change) -> None:
        if change.resource.kind != "CustomResourceDefinition":
            return
        crd = change.new.object()
        rows = _rows(crd)
        if change.type == "DELETED":
            for row in rows:
                for entry in list(store.entries(row)):
                    store.delete(row, entry.namespace, entry.name, DeleteOptions("Background"))
            return
        for row in rows:
            store.registry.register(row)
        status = crd.get("status") or {}
        if any(c.get("type") == "Established" for c in status.get("conditions") or ()):
            return
        now = rfc3339(store.now())
        names = (crd.get("spec") or {}).get("names") or {}
        crd["status"] = {
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "lastTransitionTime": now,
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                },
                {
                    "type": "Established",
                    "status": "True",
                    "lastTransitionTime": now,
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                },
            ],
            "acceptedNames": names,
            "storedVersions": [
                v.get("name")
                for v in (crd.get("spec") or {}).get("versions") or ()
                if v.get("storage")
            ],
        }
        store.update(change.resource, crd, subresource="status")

    store.subscribe(on_change)
