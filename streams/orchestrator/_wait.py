"""Waits built on the watch: every selected object satisfies a condition, or a timeout.

What this module is for: `nodes.wait` and `pods.wait` (DESIGN section 4: "built on the pod
watch, not on polling"; Cloudsim listed every few seconds). One `watch()` with the label
selector keeps the selected objects by name; after the first complete list, and at every event
after it, the condition is checked over all of them. It is met when the selection is not empty
and every selected object satisfies it. An empty selection keeps waiting (objects may be about
to appear) unless `fail_if_empty`, which raises `NothingSelected` after the first list.

Time is trio's clock (`trio.move_on_after`), so `MockClock` drives it in tests; the timeout
raises `TimedOut` naming the objects that were not there yet and the watch's last error (a
403 the watch keeps retrying, say). Cancelling the waiting task (or disposing the subscription
of the `Call` that wraps it) stops the watch and closes its connection.

It may import `rxkube.streams`' watch, client, scheduler, selector and resources modules.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any

import trio

from rxkube.streams._client import KubeClient
from rxkube.streams._events import KubeObject, WatchEvent
from rxkube.streams._resources import Resource
from rxkube.streams._scheduler import TrioScheduler
from rxkube.streams._selector import SelectorLike, parse_selector
from rxkube.streams._watch import WatchCounters, WatchPolicy, watch
from rxkube.streams.orchestrator._errors import NothingSelected, TimedOut, not_found_status

__all__ = ["Condition"]


class Condition(enum.Enum):
    """What `wait` waits for (pods: any of several; nodes: `READY`).

    - `READY`: the `Ready` condition is `True` (a pod that has Succeeded or Failed is not ready);
    - `SUCCEEDED`, `FAILED`: the pod's phase;
    - `HAS_IP`: the pod has an IP (`status.podIP`).
    """

    READY = "Ready"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    HAS_IP = "HasIP"

    def satisfied_by(self, obj: KubeObject) -> bool:
        status: Mapping[str, Any] = obj.get("status") or {}
        phase = status.get("phase")
        if self is Condition.READY:
            if phase in ("Succeeded", "Failed"):
                return False
            return any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or ()
            )
        if self is Condition.HAS_IP:
            return bool(status.get("podIP"))
        return bool(phase == self.value)


def describe(obj: KubeObject) -> str:
    """`name (phase Pending, Ready=False)`: what a timeout message says about an object."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    parts = []
    if status.get("phase"):
        parts.append(f"phase {status['phase']}")
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Ready":
            parts.append(f"Ready={condition.get('status')}")
    if status.get("podIP"):
        parts.append(f"IP {status['podIP']}")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"{meta.get('name', '?')}{detail}"


async def wait_for(
    client: KubeClient,
    resource: Resource,
    *,
    namespace: str | None,
    selector: SelectorLike,
    satisfied: Callable[[KubeObject], bool],
    wanted: str,
    time_limit: float | None,
    fail_if_empty: bool,
    policy: WatchPolicy | None,
) -> tuple[KubeObject, ...]:
    """Watch `resource` until every object `selector` selects is `satisfied` (see module
    docstring); returns them, sorted by name. `wanted` says what for, in messages."""
    text = str(parse_selector(selector))
    where = f" in namespace {namespace}" if namespace else ""
    what = f"waiting for {resource.qualified_name} {text or '(all)'}{where} to be {wanted}"
    objects: dict[str, KubeObject] = {}
    counters = WatchCounters()
    done = trio.Event()
    synced = False
    failure: list[Exception] = []

    def check() -> None:
        if not synced:
            return
        if not objects:
            if fail_if_empty:
                failure.append(
                    NothingSelected(
                        not_found_status(
                            f"no {resource.qualified_name} match {text or '(all)'}{where}",
                            kind=resource.plural,
                            name="",
                        )
                    )
                )
                done.set()
            return
        if all(satisfied(obj) for obj in objects.values()):
            done.set()

    def on_next(event: WatchEvent) -> None:
        nonlocal synced
        if event.type == "SYNCED":
            synced = True
        else:
            name = event.meta.name
            if event.type == "DELETED":
                objects.pop(name, None)
            else:
                objects[name] = event.object
        check()

    def on_error(error: Exception) -> None:
        failure.append(error)
        done.set()

    source = watch(
        client,
        resource,
        namespace=namespace,
        label_selector=text or None,
        policy=policy,
        counters=counters,
    )
    with trio.move_on_after(time_limit if time_limit is not None else float("inf")):
        async with trio.open_nursery() as nursery:
            subscription = source.subscribe(on_next, on_error, scheduler=TrioScheduler(nursery))
            try:
                await done.wait()
            finally:
                subscription.dispose()
                nursery.cancel_scope.cancel()
    if failure:
        raise failure[0]
    if not done.is_set():
        pending = sorted(
            (obj for obj in objects.values() if not satisfied(obj)),
            key=lambda o: str((o.get("metadata") or {}).get("name", "")),
        )
        if not synced:
            detail = "the first list never completed"
        elif not objects:
            detail = "nothing matches the selector yet"
        else:
            shown = ", ".join(describe(obj) for obj in pending[:10])
            more = f" and {len(pending) - 10} more" if len(pending) > 10 else ""
            detail = f"{len(objects) - len(pending)} of {len(objects)} are; not yet: {shown}{more}"
        if counters.last_error:
            detail += f"; the watch's last error: {counters.last_error}"
        assert time_limit is not None
        raise TimedOut(what, time_limit, detail)
    return tuple(sorted(objects.values(), key=lambda o: str(o["metadata"]["name"])))
