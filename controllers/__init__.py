"""rxkube.controllers: k8sTicket semantics as pipelines.

Annotations -> app specs, pods -> server lists, the autoscaler, metrics, the runner and the CLI.
Every arrow inside is a pipeable operator without I/O or clock. It may import `rxkube.streams`
and `rxkube.proxy`; only the CLI module imports `rxkube.fakes` (checked by import-linter).
"""

from rxkube.controllers._admin import (
    serve_admin,
)
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
from rxkube.controllers._deployments import (
    join_deployments,
)
from rxkube.controllers._endpoints import (
    serve_endpoints,
)
from rxkube.controllers._logs import (
    LogFormat,
    configure_logging,
    fields,
)
from rxkube.controllers._metrics import (
    AppMetrics,
)
from rxkube.controllers._notices import (
    Reportable,
    event_commands,
    to_event,
)
from rxkube.controllers._pipeline import (
    TicketPipeline,
    ticket_pipeline,
)
from rxkube.controllers._plan import (
    AppNotice,
    DrainExpired,
    PlanInput,
    PlanOutput,
    ProxyApp,
    ServePlan,
    app_config,
    serve_plan,
)
from rxkube.controllers._pods import (
    PodProblem,
    PodUpdate,
    ServerList,
    pod_servers,
    servers_by_app,
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
from rxkube.controllers._replication import (
    AUTHORITY_ANNOTATION,
    AUTHORITY_PORT,
    AuthorityRole,
    Replication,
    authority_role,
    lease_policy,
    open_replication,
)
from rxkube.controllers._runner import (
    AppStatus,
    ControllerStatistics,
    TicketController,
    open_ticket_controller,
)
from rxkube.controllers._status import (
    Activity,
    AppBoard,
    ServerBoard,
    StatusBoard,
    StatusSnapshot,
)

__all__ = [
    "ANNOTATIONS",
    "APP_LABEL",
    "AUTHORITY_ANNOTATION",
    "AUTHORITY_PORT",
    "AUTOSCALED_LABEL",
    "Activity",
    "AnnotationDoc",
    "AppBoard",
    "AppChanged",
    "AppEffect",
    "AppMetrics",
    "AppNotice",
    "AppServed",
    "AppSpec",
    "AppStatus",
    "AppWithdrawn",
    "AppsState",
    "AuthorityRole",
    "AutoscaleStep",
    "AutoscaledPod",
    "ConfigError",
    "ConfigProblem",
    "ConfigResolved",
    "ControllerStatistics",
    "CreatePod",
    "DeletePod",
    "DeleteReason",
    "DeploymentRef",
    "DrainExpired",
    "K8STICKET_SCALED_LABEL",
    "KeepReason",
    "LoadSummary",
    "LogFormat",
    "OPT_IN_LABEL",
    "ParserDefaults",
    "PlanInput",
    "PlanOutput",
    "PodCommand",
    "PodProblem",
    "PodTarget",
    "PodToDelete",
    "PodToKeep",
    "PodUpdate",
    "ProxyApp",
    "ReconcileState",
    "Replication",
    "Reportable",
    "RoutingMode",
    "ScaleDecision",
    "ServePlan",
    "ServerBoard",
    "ServerList",
    "ServerLoad",
    "StatusBoard",
    "StatusSnapshot",
    "TEMPLATE_HASH_LABEL",
    "TicketController",
    "TicketPipeline",
    "app_config",
    "app_effects",
    "apply_deployment_event",
    "authority_role",
    "autoscale",
    "autoscaled_pods",
    "command_failed",
    "configure_logging",
    "decide",
    "event_commands",
    "fields",
    "is_app",
    "join_deployments",
    "lease_policy",
    "load_summary",
    "main",
    "open_replication",
    "open_ticket_controller",
    "parse_app_spec",
    "parse_pod_target",
    "pod_servers",
    "reconcile",
    "seeded_suffixes",
    "serve_admin",
    "serve_endpoints",
    "serve_plan",
    "servers_by_app",
    "table_settings",
    "template_hash",
    "ticket_pipeline",
    "to_event",
    "track_idle",
]
