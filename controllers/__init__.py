"""rxkube.controllers: k8sTicket semantics as pipelines.

Annotations -> app specs, pods -> server lists, the autoscaler, metrics, the runner and the CLI.
Every arrow inside is a pipeable operator without I/O or clock. It may import `rxkube.streams`
and `rxkube.proxy`; only the CLI module imports `rxkube.fakes` (checked by import-linter).
"""

from rxkube.controllers._app_effects import (
    app_effects,
)
from rxkube.controllers._apps import (
    AppAdded,
    AppEffect,
    AppRemoved,
    AppsState,
    AppUpdated,
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
    AppLoad,
    AutoscaledPod,
    DeleteReason,
    KeepReason,
    PodToDelete,
    PodToKeep,
    ScaleDecision,
    ServerLoad,
    decide,
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

# Plain sorted() order, as tests/unit/test_exports.py checks (RUF022 puts constants first).
__all__ = [  # noqa: RUF022
    "ANNOTATIONS",
    "APP_LABEL",
    "AUTOSCALED_LABEL",
    "AnnotationDoc",
    "AppAdded",
    "AppEffect",
    "AppLoad",
    "AppMetrics",
    "AppRemoved",
    "AppSpec",
    "AppUpdated",
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
    "main",
    "parse_app_spec",
    "parse_pod_target",
    "reconcile",
    "seeded_suffixes",
    "template_hash",
]
