"""Realistic Kubernetes objects for benchmarks and the sample trace (not part of the package).

Shapes follow what kube-apiserver v1.30 returns for a Deployment's pods (`kubectl get pod -o
json` minus kubectl's additions): server-set metadata, managedFields from the controller
manager and the kubelet, the projected service-account volume, probes, tolerations, five
conditions and container statuses. `size="large"` adds the env vars, mounts and a sidecar a
typical production pod carries, which brings one pod to about 7 KB of JSON.
"""

from __future__ import annotations

import hashlib
from typing import Any

APP_LABEL = "ipb-halle.de/k8sticket.deployment.app.name"
TICKET_LABEL = "ipb-halle.de/k8sticket"
ANNOTATION = "ipb-halle.de/k8sticket.deployment."
SCALED_LABEL = "ipb-halle.de/k8sTicket.scaled"
RXKUBE_SCALED_LABEL = "rxkube.io/autoscaled"


def uid(*parts: object) -> str:
    """A stable UUID-shaped id derived from `parts` (same input, same uid)."""
    digest = hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"


def timestamp(seconds: float) -> str:
    """RFC 3339 (seconds resolution, as the API server writes) for an offset into the day."""
    total = int(seconds)
    return f"2024-05-01T{10 + total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}Z"


def deployment(
    app: str,
    *,
    namespace: str,
    rv: int,
    t: float,
    replicas: int,
    annotations: dict[str, str],
    image: str,
    container_port: int,
    ready_replicas: int,
    generation: int = 1,
) -> dict[str, Any]:
    name = f"{app}-deployment"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid("deployment", namespace, name),
            "resourceVersion": str(rv),
            "generation": generation,
            "creationTimestamp": timestamp(0),
            "labels": {TICKET_LABEL: "true"},
            "annotations": {
                "deployment.kubernetes.io/revision": str(generation),
                **{ANNOTATION + key: value for key, value in annotations.items()},
            },
            "managedFields": [
                {
                    "manager": "kubectl-client-side-apply",
                    "operation": "Update",
                    "apiVersion": "apps/v1",
                    "time": timestamp(0),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {
                        "f:metadata": {
                            "f:annotations": {
                                ".": {},
                                **{f"f:{ANNOTATION}{k}": {} for k in annotations},
                            },
                            "f:labels": {".": {}, f"f:{TICKET_LABEL}": {}},
                        },
                        "f:spec": {"f:replicas": {}, "f:selector": {}, "f:template": {}},
                    },
                },
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "apiVersion": "apps/v1",
                    "time": timestamp(t),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:status": {"f:availableReplicas": {}, "f:readyReplicas": {}}},
                    "subresource": "status",
                },
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {APP_LABEL: app}},
            "template": {
                "metadata": {
                    "labels": {APP_LABEL: app},
                    "annotations": {"ipb-halle.de/k8sticket.pod.port": str(container_port)},
                },
                "spec": {
                    "containers": [_container(app, image, container_port, large=False)],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready_replicas,
            "availableReplicas": ready_replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if ready_replicas else "False",
                    "lastUpdateTime": timestamp(t),
                    "lastTransitionTime": timestamp(t),
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "lastUpdateTime": timestamp(t),
                    "lastTransitionTime": timestamp(0),
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{name}-7d9f8c6b5" has successfully progressed.',
                },
            ],
        },
    }


def _container(app: str, image: str, port: int, *, large: bool) -> dict[str, Any]:
    probe = {
        "httpGet": {"path": "/", "port": port, "scheme": "HTTP"},
        "initialDelaySeconds": 5,
        "periodSeconds": 3,
        "timeoutSeconds": 4,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    container: dict[str, Any] = {
        "name": app,
        "image": image,
        "imagePullPolicy": "Always",
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "resources": {
            "limits": {"cpu": "2", "memory": "4Gi"},
            "requests": {"cpu": "250m", "memory": "512Mi"},
        },
        "livenessProbe": {**probe, "initialDelaySeconds": 15, "periodSeconds": 35},
        "readinessProbe": probe,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": False,
            "runAsNonRoot": False,
            "capabilities": {},
        },
    }
    if large:
        container["env"] = [
            {"name": "APP_NAME", "value": app},
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "SESSION_TIMEOUT_SECONDS", "value": "3600"},
            {"name": "DATA_DIR", "value": "/data"},
            {"name": "HOME", "value": "/home/app"},
            {
                "name": "POD_NAME",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
            },
            {
                "name": "POD_NAMESPACE",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
            },
            {
                "name": "POD_IP",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
            },
            {
                "name": "NODE_NAME",
                "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}},
            },
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": f"{app}-db", "key": "password"}},
            },
        ]
        container["volumeMounts"] = [
            {"name": "data", "mountPath": "/data"},
            {"name": "config", "mountPath": "/etc/app", "readOnly": True},
            {
                "name": "kube-api-access",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True,
            },
        ]
    return container


def _image_id(image: str) -> str:
    return f"docker.io/{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def pod(
    app: str,
    name: str,
    *,
    namespace: str,
    rv: int,
    t: float,
    created: float,
    stage: str,
    image: str,
    container_port: int,
    node: str,
    ip: str,
    autoscaled: bool = False,
    deleting_at: float | None = None,
    restarts: int = 0,
    size: str = "small",
) -> dict[str, Any]:
    """A pod at one `stage` of its life: "pending", "scheduled", "starting", "ready".

    Deletion is shown by `deleting_at` (deletionTimestamp and grace period set, not ready).
    """
    large = size == "large"
    labels = {APP_LABEL: app}
    owner: dict[str, Any]
    if autoscaled:
        labels[SCALED_LABEL] = "true"
        labels[RXKUBE_SCALED_LABEL] = "true"
        owner = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": f"{app}-deployment",
            "uid": uid("deployment", namespace, f"{app}-deployment"),
        }
    else:
        labels["pod-template-hash"] = "7d9f8c6b5"
        owner = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "name": f"{app}-deployment-7d9f8c6b5",
            "uid": uid("replicaset", namespace, app),
            "controller": True,
            "blockOwnerDeletion": True,
        }
    containers = [_container(app, image, container_port, large=large)]
    if large:
        containers.append(
            {
                "name": "log-shipper",
                "image": "fluent/fluent-bit:3.0",
                "resources": {
                    "limits": {"memory": "128Mi"},
                    "requests": {"cpu": "10m", "memory": "32Mi"},
                },
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            }
        )
    scheduled = stage != "pending"
    running = stage in ("starting", "ready")
    ready = stage == "ready" and deleting_at is None
    metadata: dict[str, Any] = {
        "name": name,
        "generateName": name.rsplit("-", 1)[0] + "-",
        "namespace": namespace,
        "uid": uid("pod", namespace, name),
        "resourceVersion": str(rv),
        "creationTimestamp": timestamp(created),
        "labels": labels,
        "annotations": {"ipb-halle.de/k8sticket.pod.port": str(container_port)},
        "ownerReferences": [owner],
        "managedFields": [
            {
                "manager": "kube-controller-manager",
                "operation": "Update",
                "apiVersion": "v1",
                "time": timestamp(created),
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {
                        "f:generateName": {},
                        "f:labels": {".": {}, **{f"f:{k}": {} for k in labels}},
                        "f:ownerReferences": {".": {}, f'k:{{"uid":"{owner["uid"]}"}}': {}},
                    },
                    "f:spec": {
                        "f:containers": {
                            f'k:{{"name":"{c["name"]}"}}': {".": {}, "f:image": {}, "f:name": {}}
                            for c in containers
                        },
                        "f:restartPolicy": {},
                        "f:terminationGracePeriodSeconds": {},
                    },
                },
            },
        ],
    }
    if running:
        metadata["managedFields"].append(
            {
                "manager": "kubelet",
                "operation": "Update",
                "apiVersion": "v1",
                "time": timestamp(t),
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:status": {
                        "f:conditions": {
                            f'k:{{"type":"{c}"}}': {".": {}, "f:status": {}, "f:type": {}}
                            for c in (
                                "ContainersReady",
                                "Initialized",
                                "PodReadyToStartContainers",
                                "PodScheduled",
                                "Ready",
                            )
                        },
                        "f:containerStatuses": {},
                        "f:hostIP": {},
                        "f:phase": {},
                        "f:podIP": {},
                        "f:startTime": {},
                    }
                },
                "subresource": "status",
            }
        )
    if deleting_at is not None:
        metadata["deletionTimestamp"] = timestamp(deleting_at + 30)
        metadata["deletionGracePeriodSeconds"] = 30
    volumes: list[dict[str, Any]] = [
        {
            "name": "kube-api-access",
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.namespace",
                                    },
                                }
                            ]
                        }
                    },
                ],
            },
        }
    ]
    if large:
        volumes += [
            {"name": "data", "emptyDir": {"sizeLimit": "10Gi"}},
            {"name": "config", "configMap": {"name": f"{app}-config", "defaultMode": 420}},
        ]
    spec: dict[str, Any] = {
        "volumes": volumes,
        "containers": containers,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
        "priority": 0,
        "enableServiceLinks": True,
        "preemptionPolicy": "PreemptLowerPriority",
    }
    if large:
        spec["affinity"] = {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": {APP_LABEL: app}},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }
                ]
            }
        }
        spec["imagePullSecrets"] = [{"name": "registry-credentials"}]
        spec["nodeSelector"] = {"kubernetes.io/os": "linux", "node.kubernetes.io/pool": "apps"}
    if scheduled:
        spec["nodeName"] = node

    def condition(kind: str, status: bool, at: float) -> dict[str, Any]:
        return {
            "type": kind,
            "status": "True" if status else "False",
            "lastProbeTime": None,
            "lastTransitionTime": timestamp(at),
        }

    status: dict[str, Any] = {"phase": "Running" if running else "Pending", "qosClass": "Burstable"}
    if not scheduled:
        status["conditions"] = [condition("PodScheduled", False, created)]
    else:
        status["conditions"] = [
            condition("PodReadyToStartContainers", running, t),
            condition("Initialized", True, created + 1),
            condition("Ready", ready, t),
            condition("ContainersReady", ready, t),
            condition("PodScheduled", True, created + 1),
        ]
        status["hostIP"] = "172.18.0.2"
        status["hostIPs"] = [{"ip": "172.18.0.2"}]
        status["startTime"] = timestamp(created + 1)
        if running:
            status["podIP"] = ip
            status["podIPs"] = [{"ip": ip}]
        status["containerStatuses"] = [
            {
                "name": c["name"],
                "state": (
                    {"running": {"startedAt": timestamp(created + 5)}}
                    if running
                    else {"waiting": {"reason": "ContainerCreating"}}
                ),
                "lastState": {},
                "ready": ready,
                "restartCount": restarts,
                "image": c["image"],
                "imageID": _image_id(c["image"]) if running else "",
                "started": running,
                **(
                    {
                        "containerID": "containerd://"
                        + hashlib.sha256(f"{name}{c['name']}{restarts}".encode()).hexdigest()
                    }
                    if running
                    else {}
                ),
            }
            for c in containers
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}
