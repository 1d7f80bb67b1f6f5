"""core/v1 Events written by the simulated controllers, scheduler and kubelet.

What this module is for: the Events `kubectl describe` shows (`ScalingReplicaSet`,
`SuccessfulCreate`, `Scheduled`, `Pulled`, `Created`, `Started`, `Killing`, `BackOff`, ...),
shaped as client-go's `tools/record` writes them (reference section 12.1): name
`<object>.<unix nanos in hex>`, `source`/`reportingComponent`/`reportingInstance`, and the
correlation of a repeated event into one object whose `count` and `lastTimestamp` grow. It
writes through the store directly (no HTTP, no RBAC), from the simulation's own thread.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from rxkube.fakes._errors import StatusError
from rxkube.fakes._store import Store, rfc3339

__all__: list[str] = []

_MAX_CACHED = 4096


class EventRecorder:
    """Writes Events to `store` (or nothing when `enabled` is False)."""

    def __init__(self, store: Store, *, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._seen: OrderedDict[tuple[str, ...], tuple[str, str, int]] = OrderedDict()
        self._serial = 0

    def record(
        self,
        involved: Mapping[str, Any],
        reason: str,
        message: str,
        *,
        component: str,
        host: str = "",
        type: str = "Normal",
        field_path: str = "",
    ) -> None:
        if not self.enabled:
            return
        meta = involved.get("metadata") or {}
        name = str(meta.get("name") or "")
        namespace = str(meta.get("namespace") or "default")
        uid = str(meta.get("uid") or "")
        now = self.store.now()
        stamp = rfc3339(now)
        key = (component, host, namespace, uid, field_path, type, reason, message)
        seen = self._seen.get(key)
        if seen is not None:
            event_ns, event_name, count = seen
            try:
                self.store.patch(
                    "events",
                    event_ns,
                    event_name,
                    {"count": count + 1, "lastTimestamp": stamp, "message": message},
                    user=f"system:{component}",
                )
            except StatusError:
                pass
            else:
                self._seen[key] = (event_ns, event_name, count + 1)
                self._seen.move_to_end(key)
                return
        involved_object: dict[str, Any] = {
            "kind": involved.get("kind", ""),
            "namespace": meta.get("namespace", ""),
            "name": name,
            "uid": uid,
            "apiVersion": involved.get("apiVersion", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if not involved_object["namespace"]:
            del involved_object["namespace"]
        if field_path:
            involved_object["fieldPath"] = field_path
        self._serial += 1
        nanos = int(now * 1_000_000_000) + self._serial
        event = {
            "metadata": {"name": f"{name}.{nanos:x}", "namespace": namespace},
            "involvedObject": involved_object,
            "reason": reason,
            "message": message,
            "source": {"component": component, **({"host": host} if host else {})},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "type": type,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host,
        }
        try:
            entry = self.store.create(
                "events", event, namespace=namespace, user=f"system:{component}"
            )
        except StatusError:
            return  # the namespace is going away; a real recorder drops it too
        self._seen[key] = (namespace, entry.name, 1)
        while len(self._seen) > _MAX_CACHED:
            self._seen.popitem(last=False)
