"""rxkube.streams.orchestrator: a cluster to orchestrate, as stream sinks (DESIGN section 4).

The successor of Cloudsim's orchestrator package. A `Cluster` has `nodes`, `pods`, `services`,
`ingresses`, `ingress_rules` (a Kubernetes Ingress or a Gloo VirtualService flavour),
`network_policies` and `configurations`. The parts that change the cluster are sinks: commands
(frozen dataclasses such as `CreatePod`, `DeletePods`, `UpsertPaths`) go in as an Observer or
an Observable, are applied one at a time in order, and every outcome (`Applied` or `Failed`
with the API's reason) comes out on `outcomes`. Reads, waits, exec and logs are cold
Observables that trio code can also simply await (`Call`, `Stream`)::

    from rxkube.streams import open_client, load_config
    from rxkube.streams.orchestrator import Condition, ContainerSpec, CreatePod, open_cluster

    async with open_client(load_config()) as client, open_cluster(client) as cluster:
        await cluster.pods.create(CreatePod("sim-0", [ContainerSpec("sim", "sim:1")],
                                            labels={"app": "sim"}))
        await cluster.pods.wait("app=sim", Condition.HAS_IP, timeout=60)
        result = await cluster.pods.exec_script("sim-0", "ls /data")

For tests, `rxkube.fakes.open_fake_cluster()` yields a Cluster on an in-process fake API server.
This package is part of `rxkube.streams` (the bottom layer): it imports nothing of rxkube's
other packages.
"""

from rxkube.streams.orchestrator._call import (
    Call,
    Stream,
)
from rxkube.streams.orchestrator._cluster import (
    Cluster,
    open_cluster,
)
from rxkube.streams.orchestrator._commands import (
    Command,
    ConfigMapVolume,
    ConfigurationCommand,
    ContainerSpec,
    CreateConfiguration,
    CreateNetworkPolicy,
    CreatePod,
    CreatePodFromManifest,
    CreateService,
    DeleteConfiguration,
    DeleteConfigurations,
    DeletePod,
    DeletePods,
    EmptyDirVolume,
    HostPathVolume,
    IngressPath,
    IngressRuleCommand,
    IPBlock,
    NamedPort,
    NetworkPolicyCommand,
    Peer,
    PodCommand,
    PodPeer,
    PolicyPort,
    PolicyRule,
    RemoveNetworkPolicies,
    RemoveNetworkPolicy,
    RemovePaths,
    RemoveService,
    RemoveServices,
    Rule,
    SecretVolume,
    ServiceCommand,
    ServicePort,
    Toleration,
    UpdateConfiguration,
    UpsertPaths,
    Volume,
    VolumeMount,
)
from rxkube.streams.orchestrator._configurations import (
    Configuration,
    Configurations,
)
from rxkube.streams.orchestrator._errors import (
    ExecFailed,
    NoPodIP,
    NothingSelected,
    RuleNotFound,
    SinkOverflow,
    TimedOut,
)
from rxkube.streams.orchestrator._exec import (
    ExecEvent,
    ExecExit,
    ExecOutput,
    ExecResult,
)
from rxkube.streams.orchestrator._ingresses import (
    GlooIngresses,
    GlooIngressRules,
    Ingresses,
    IngressRules,
    KubernetesIngressRules,
)
from rxkube.streams.orchestrator._network_policies import (
    NetworkPolicies,
)
from rxkube.streams.orchestrator._nodes import (
    Nodes,
)
from rxkube.streams.orchestrator._pods import (
    Pods,
)
from rxkube.streams.orchestrator._services import (
    Services,
)
from rxkube.streams.orchestrator._sink import (
    Applied,
    Failed,
    Outcome,
    Sink,
    SinkStatistics,
)
from rxkube.streams.orchestrator._wait import (
    Condition,
)

__all__ = [
    "Applied",
    "Call",
    "Cluster",
    "Command",
    "Condition",
    "ConfigMapVolume",
    "Configuration",
    "ConfigurationCommand",
    "Configurations",
    "ContainerSpec",
    "CreateConfiguration",
    "CreateNetworkPolicy",
    "CreatePod",
    "CreatePodFromManifest",
    "CreateService",
    "DeleteConfiguration",
    "DeleteConfigurations",
    "DeletePod",
    "DeletePods",
    "EmptyDirVolume",
    "ExecEvent",
    "ExecExit",
    "ExecFailed",
    "ExecOutput",
    "ExecResult",
    "Failed",
    "GlooIngressRules",
    "GlooIngresses",
    "HostPathVolume",
    "IPBlock",
    "IngressPath",
    "IngressRuleCommand",
    "IngressRules",
    "Ingresses",
    "KubernetesIngressRules",
    "NamedPort",
    "NetworkPolicies",
    "NetworkPolicyCommand",
    "NoPodIP",
    "Nodes",
    "NothingSelected",
    "Outcome",
    "Peer",
    "PodCommand",
    "PodPeer",
    "Pods",
    "PolicyPort",
    "PolicyRule",
    "RemoveNetworkPolicies",
    "RemoveNetworkPolicy",
    "RemovePaths",
    "RemoveService",
    "RemoveServices",
    "Rule",
    "RuleNotFound",
    "SecretVolume",
    "ServiceCommand",
    "ServicePort",
    "Services",
    "Sink",
    "SinkOverflow",
    "SinkStatistics",
    "Stream",
    "TimedOut",
    "Toleration",
    "UpdateConfiguration",
    "UpsertPaths",
    "Volume",
    "VolumeMount",
    "open_cluster",
]
