"""The `join_deployments` operator: Deployment metadata and opted-in Deployments, joined by name.

What this module is for: issue 7 item 2. Two watches see the namespace's Deployments:

- the metadata stream (`metadata_only=True`, all Deployments): PartialObjectMetadata, cheap.
  It decides which Deployments are apps (the opt-in label) and with which settings (the
  annotations), and when one stops being an app (label off, or deleted);
- the full stream (label-selected on `ipb-halle.de/k8sticket=true`): whole Deployments, only
  of the apps. It supplies each app's pod template (`spec`).

The join emits, per Deployment, the object the apps fold (`app_effects`) reads: the metadata
stream's `metadata` with the full stream's `spec`. An app is emitted only once both streams
have shown it with the same uid (the two watches are not synchronised: the full object of a
newly labelled Deployment may come a moment after its metadata), so an app never appears
without its pod template. A Deployment that stops being an app is passed on at once, from the
metadata stream, whatever the full stream says. SYNCED is emitted when both streams have
completed their first list, and after every later SYNCED of either (relists).

No I/O, no clock: events are emitted synchronously on the sources' `on_next`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable

from rxkube.controllers._appspec import is_app
from rxkube.streams import EventType, WatchEvent

__all__ = ["join_deployments"]


def _combined(meta: WatchEvent, full: WatchEvent) -> dict[str, Any]:
    spec = full.object.get("spec")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta.object.get("metadata", {}),
        "spec": spec if isinstance(spec, Mapping) else {},
    }


def join_deployments(
    full: Observable[WatchEvent],
) -> Callable[[Observable[WatchEvent]], Observable[WatchEvent]]:
    """Join the metadata stream (the source) with the full stream of opted-in Deployments.

    ::

        m = metadata of web (opted in)     f = full web       n = metadata of web, label off
        s = SYNCED                         x = metadata of a Deployment that is no app

        metadata: -m--x--s------n--|
        full:     ----f-----s------|
                [ join_deployments(full) ]
        result:   ----A-----S---M--|      A: ADDED web (metadata of m, spec of f)
                                          S: SYNCED (both listed)   M: MODIFIED web, no app

    Completes when both sources have completed; an error of either is passed on.
    """

    def operator(metadata: Observable[WatchEvent]) -> Observable[WatchEvent]:
        def subscribe(
            observer: abc.ObserverBase[WatchEvent],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            metas: dict[str, WatchEvent] = {}
            fulls: dict[str, WatchEvent] = {}
            emitted: dict[str, bool] = {}  # key -> emitted as an app (True) or not (False)
            synced = {"meta": False, "full": False}
            done = {"meta": False, "full": False}

            def emit_app(key: str) -> None:
                meta, whole = metas.get(key), fulls.get(key)
                if meta is None or whole is None or not is_app(meta.object):
                    return
                if meta.meta.uid != whole.meta.uid:
                    return  # re-created: wait until both streams show the same object
                kind: EventType = "MODIFIED" if key in emitted else "ADDED"
                emitted[key] = True
                observer.on_next(
                    WatchEvent(
                        kind,
                        _combined(meta, whole),
                        resource_version=meta.resource_version,
                        stream=meta.stream,
                    )
                )

            def synced_event(event: WatchEvent, source: str) -> None:
                synced[source] = True
                if synced["meta"] and synced["full"]:
                    observer.on_next(event)

            def on_meta(event: WatchEvent) -> None:
                if event.type == "SYNCED":
                    synced_event(event, "meta")
                    return
                key = event.meta.key
                if event.type == "DELETED":
                    metas.pop(key, None)
                    if key in emitted:
                        del emitted[key]
                        observer.on_next(event)
                    return
                metas[key] = event
                if is_app(event.object):
                    emit_app(key)
                elif emitted.get(key):
                    emitted[key] = False
                    observer.on_next(event.with_type("MODIFIED"))

            def on_full(event: WatchEvent) -> None:
                if event.type == "SYNCED":
                    synced_event(event, "full")
                    return
                key = event.meta.key
                if event.type == "DELETED":
                    # The metadata stream says whether it stopped being an app or went away.
                    fulls.pop(key, None)
                    return
                fulls[key] = event
                emit_app(key)

            def completed(source: str) -> Callable[[], None]:
                def on_completed() -> None:
                    done[source] = True
                    if done["meta"] and done["full"]:
                        observer.on_completed()

                return on_completed

            return CompositeDisposable(
                metadata.subscribe(
                    on_meta, observer.on_error, completed("meta"), scheduler=scheduler
                ),
                full.subscribe(on_full, observer.on_error, completed("full"), scheduler=scheduler),
            )

        return Observable(subscribe)

    return operator
