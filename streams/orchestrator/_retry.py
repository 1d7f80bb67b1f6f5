"""Read, change, write with optimistic concurrency, retrying on 409 Conflict.

What this module is for: edits of shared objects (an Ingress many simulations add paths to, a
ConfigMap) must never lose a concurrent writer's change. Cloudsim read the Ingress, changed a
copy of a rule it had read earlier, and wrote it back without a resourceVersion: the last writer
silently erased the others' paths. Here the change is a pure function of the object as just
read, the write carries that read's resourceVersion (wire reference 2.2: a stale one is a 409
Conflict), and a Conflict reads again and re-applies the change, as client-go's
`retry.RetryOnConflict` does. Time is trio's clock; jitter comes from an injectable Random.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Final

import trio

from rxkube.streams._client import KubeClient
from rxkube.streams._errors import Conflict
from rxkube.streams._events import KubeObject
from rxkube.streams._resources import Resource

__all__: list[str] = []  # private helpers of the orchestrator, nothing public

ATTEMPTS: Final = 10
_FIRST_DELAY: Final = 0.01
_MAX_DELAY: Final = 0.5


async def update_with_retry(
    client: KubeClient,
    resource: Resource,
    name: str,
    *,
    namespace: str | None,
    change: Callable[[KubeObject], dict[str, Any] | None],
    attempts: int = ATTEMPTS,
    rng: random.Random | None = None,
) -> KubeObject:
    """GET the object, `change` it (None: nothing to change, no write), PUT it with the read
    resourceVersion; on `Conflict` start again (at most `attempts` times, with a short jittered
    backoff). Errors of `change` (e.g. `RuleNotFound`) and other API errors are raised."""
    delay = _FIRST_DELAY
    rand = rng or random.Random()
    for attempt in range(attempts):
        current = await client.get(resource, name, namespace=namespace)
        updated = change(current)
        if updated is None:
            return current
        meta = dict(updated.get("metadata") or {})
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        updated["metadata"] = meta
        try:
            return await client.replace(resource, updated, namespace=namespace)
        except Conflict:
            if attempt == attempts - 1:
                raise
        await trio.sleep(delay * (1 + rand.random()))
        delay = min(delay * 2, _MAX_DELAY)
    raise AssertionError("unreachable")
