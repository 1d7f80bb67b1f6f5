"""rxkube.controllers: k8sTicket semantics as pipelines.

Annotations -> app specs, pods -> server lists, the autoscaler, metrics, the runner and the CLI.
Every arrow inside is a pipeable operator without I/O or clock. It may import `rxkube.streams`
and `rxkube.proxy`; only the CLI module imports `rxkube.fakes` (checked by import-linter).
"""

from rxkube.controllers._app_effects import (
    app_effects,
)
from rxkube.controllers._apps import (
    AppChanged,
    AppEffect,
    AppServed,
    AppsState,
    AppWithdrawn,
    ConfigProblem,
    ConfigResolved,
    DeploymentRef,
    apply_deployment_event,
)
from rxkube.controllers._appspec import (
    ANNOTATIONS,
    APP_LABEL,
    OPT_IN_LABEL,
    AnnotationDoc,
    AppSpec,
    ConfigError,
    ParserDefaults,
    PodTarget,
    RoutingMode,
    is_app,
    parse_app_spec,
    parse_pod_target,
    template_hash,
)
from rxkube.controllers._autoscaler import (
    AutoscaledPod,
    DeleteReason,
    KeepReason,
    LoadSummary,
    PodToDelete,
    PodToKeep,
    ScaleDecision,
    ServerLoad,
    decide,
)
from rxkube.controllers._bridge import (
    load_summary,
    table_settings,
    track_idle,
)
from rxkube.controllers._cli import (
    main,
)
from rxkube.controllers._metrics import (
    AppMetrics,
)
from rxkube.controllers._reconcile import (
    AUTOSCALED_LABEL,
    K8STICKET_SCALED_LABEL,
    TEMPLATE_HASH_LABEL,
    AutoscaleStep,
    CreatePod,
    DeletePod,
    PodCommand,
    ReconcileState,
    autoscale,
    autoscaled_pods,
    command_failed,
    reconcile,
    seeded_suffixes,
)

__all__ = [
    "ANNOTATIONS",
    "APP_LABEL",
    "AUTOSCALED_LABEL",
    "AnnotationDoc",
    "AppChanged",
    "AppEffect",
    "AppMetrics",
    "AppServed",
    "AppSpec",
    "AppWithdrawn",
    "AppsState",
    "AutoscaleStep",
    "AutoscaledPod",
    "ConfigError",
    "ConfigProblem",
    "ConfigResolved",
    "CreatePod",
    "DeletePod",
    "DeleteReason",
    "DeploymentRef",
    "K8STICKET_SCALED_LABEL",
    "KeepReason",
    "LoadSummary",
    "OPT_IN_LABEL",
    "ParserDefaults",
    "PodCommand",
    "PodTarget",
    "PodToDelete",
    "PodToKeep",
    "ReconcileState",
    "RoutingMode",
    "ScaleDecision",
    "ServerLoad",
    "TEMPLATE_HASH_LABEL",
    "app_effects",
    "apply_deployment_event",
    "autoscale",
    "autoscaled_pods",
    "command_failed",
    "decide",
    "is_app",
    "load_summary",
    "main",
    "parse_app_spec",
    "parse_pod_target",
    "reconcile",
    "seeded_suffixes",
    "table_settings",
    "template_hash",
    "track_idle",
]
