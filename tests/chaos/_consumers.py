"""Consumers under test for the chaos harness that need `rxkube.controllers`.

What this module is for: issue 10's acceptance, "the controllers' final state (apps, server
lists, autoscaled pods) equals that of a fault-free run on the same history". The consumer here
is the controller's real pipeline (`ticket_pipeline`, as `open_ticket_controller` wires it: the
Deployment metadata stream joined with the label-selected Deployment stream, the namespace's
pods with the app label), fed by the harness's informers; its final state is what the runner
would put in the proxy. Autoscaled pods are not part of it yet: the autoscaler is not wired to
the pipeline (issue 8).

It may import `rxkube.controllers`, `rxkube.proxy`, `rxkube.streams`, reactivex and the harness.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import reactivex
from reactivex import Observable
from reactivex.abc import SchedulerBase

from rxkube.controllers import (
    AppChanged,
    AppEffect,
    AppServed,
    AppSpec,
    AppWithdrawn,
    PlanOutput,
    PodUpdate,
    ProxyApp,
    ServerList,
    ticket_pipeline,
)
from rxkube.proxy import Change, ServerSpec
from rxkube.streams import WatchEvent
from tests.chaos._harness import Consumer, Snapshot

__all__ = ["ControllerState", "ticket_pipeline_consumer"]


@dataclass(frozen=True, slots=True)
class ControllerState:
    """What the ticket controller ends with, in three parts, so a difference says where.

    - `apps`: the apps served, by name, with their specs (from the apps fold's lifecycle
      effects: AppServed, AppChanged, AppWithdrawn);
    - `servers`: each app's server list (the pod pipeline's last `ServerList` per app; empty
      lists left out);
    - `plan`: the proxy's desired state per app (the serving plan's last `ProxyApp` per app;
      apps not in the proxy left out).
    """

    apps: Mapping[str, AppSpec]
    servers: Mapping[str, tuple[ServerSpec, ...]]
    plan: Mapping[str, ProxyApp]


def ticket_pipeline_consumer() -> Consumer:
    """The ticket controller's pipeline on views `deployments-meta`, `deployments-apps` and
    `pods`; its state is a `ControllerState`."""

    def attach(streams: Mapping[str, Observable[WatchEvent]], scheduler: SchedulerBase) -> Snapshot:
        loads: Observable[Change] = reactivex.never()  # no users: nobody holds a ticket
        pipeline = ticket_pipeline(
            deployment_metadata=streams["deployments-meta"],
            deployments=streams["deployments-apps"],
            pods=streams["pods"],
            loads=loads,
            scheduler=scheduler,
        )
        apps: dict[str, AppSpec] = {}
        servers: dict[str, tuple[ServerSpec, ...]] = {}
        plan: dict[str, ProxyApp] = {}

        def on_effect(effect: AppEffect) -> None:
            if isinstance(effect, AppServed):
                apps[effect.spec.app] = effect.spec
            elif isinstance(effect, AppChanged):
                apps[effect.new.app] = effect.new
            elif isinstance(effect, AppWithdrawn):
                apps.pop(effect.spec.app, None)

        def on_pods(update: PodUpdate) -> None:
            if isinstance(update, ServerList):
                servers[update.app] = update.servers

        def on_plan(output: PlanOutput) -> None:
            if isinstance(output, ProxyApp):
                plan[output.app] = output

        pipeline.effects.subscribe(on_effect)
        pipeline.pod_updates.subscribe(on_pods)
        pipeline.plan.subscribe(on_plan)
        pipeline.connect()

        def snapshot() -> ControllerState:
            return ControllerState(
                apps=dict(apps),
                servers={app: s for app, s in servers.items() if s},
                plan={app: p for app, p in plan.items() if p.config is not None},
            )

        return snapshot

    return Consumer("ticket-pipeline", ("deployments-meta", "deployments-apps", "pods"), attach)
