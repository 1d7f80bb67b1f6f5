"""Request bodies in `application/vnd.kubernetes.protobuf`, for kubectl's typed `create`.

What this module is for: `kubectl create namespace|configmap|secret|serviceaccount|
deployment` build the object with client-go's typed clientset, which sends it as Kubernetes
protobuf (the 4-byte magic `k8s\\x00`, then a `runtime.Unknown` whose `raw` is the object's
`generated.proto` message; so do `kubectl create role|rolebinding|clusterrole|
clusterrolebinding|job|cronjob|token|service|poddisruptionbudget|ingress|quota|
priorityclass` and `kubectl auth can-i|whoami`). This module decodes those bodies into the
same JSON dict a JSON body would give, so the rest of the fake sees no difference.
Responses stay JSON (kubectl accepts both).

The protobuf wire format is decoded by hand (varints and length-delimited fields; no protobuf
library is needed for these few kinds), with the field numbers of `k8s.io/api` and
`k8s.io/apimachinery` `generated.proto` for the messages those commands send. Like gogo
protobuf's JSON twin, zero values of non-pointer fields are dropped (omitempty), pointer
fields (`replicas`, `immutable`, ...) keep an explicit zero. A kind or field outside the table
is refused with 415 naming it, never silently dropped. Pure: no I/O.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Final

from rxkube.fakes._errors import StatusError
from rxkube.fakes._resources import ResourceType

__all__: list[str] = []

PROTOBUF: Final = "application/vnd.kubernetes.protobuf"
MAGIC: Final = b"k8s\x00"

# field number -> (json name, type, flags); type is a scalar name or "msg:<Message>";
# flags: "r" repeated, "k" keep zero values (pointer fields), "e" embedded: a Go struct
# embedded with `json:",inline"` (IngressRule's IngressRuleValue) is its own message on the
# wire but its fields sit directly on the parent in JSON, so the decoded fields are merged
# into the parent (the json name is only the Go field's, for error messages).
Field = tuple[str, str, str]
_MESSAGES: Final[dict[str, dict[int, Field]]] = {
    "Unknown": {
        1: ("typeMeta", "msg:TypeMeta", ""),
        2: ("raw", "raw", ""),
        3: ("contentEncoding", "string", ""),
        4: ("contentType", "string", ""),
    },
    "TypeMeta": {1: ("apiVersion", "string", ""), 2: ("kind", "string", "")},
    "ObjectMeta": {
        1: ("name", "string", ""),
        2: ("generateName", "string", ""),
        3: ("namespace", "string", ""),
        4: ("selfLink", "string", ""),
        5: ("uid", "string", ""),
        6: ("resourceVersion", "string", ""),
        7: ("generation", "int", ""),
        8: ("creationTimestamp", "time", ""),
        9: ("deletionTimestamp", "time", ""),
        10: ("deletionGracePeriodSeconds", "int", "k"),
        11: ("labels", "map:string", ""),
        12: ("annotations", "map:string", ""),
        13: ("ownerReferences", "msg:OwnerReference", "r"),
        14: ("finalizers", "string", "r"),
    },
    "OwnerReference": {
        1: ("kind", "string", ""),
        3: ("name", "string", ""),
        4: ("uid", "string", ""),
        5: ("apiVersion", "string", ""),
        6: ("controller", "bool", "k"),
        7: ("blockOwnerDeletion", "bool", "k"),
    },
    "ConfigMap": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("data", "map:string", ""),
        3: ("binaryData", "map:bytes", ""),
        4: ("immutable", "bool", "k"),
    },
    "Secret": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("data", "map:bytes", ""),
        3: ("type", "string", ""),
        4: ("stringData", "map:string", ""),
        5: ("immutable", "bool", "k"),
    },
    "Namespace": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:NamespaceSpec", ""),
        3: ("status", "msg:NamespaceStatus", ""),
    },
    "NamespaceSpec": {1: ("finalizers", "string", "r")},
    "NamespaceStatus": {1: ("phase", "string", "")},
    "ServiceAccount": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("secrets", "msg:ObjectReference", "r"),
        3: ("imagePullSecrets", "msg:LocalObjectReference", "r"),
        4: ("automountServiceAccountToken", "bool", "k"),
    },
    "ObjectReference": {
        1: ("kind", "string", ""),
        2: ("namespace", "string", ""),
        3: ("name", "string", ""),
        4: ("uid", "string", ""),
        5: ("apiVersion", "string", ""),
        6: ("resourceVersion", "string", ""),
        7: ("fieldPath", "string", ""),
    },
    "LocalObjectReference": {1: ("name", "string", "")},
    "Deployment": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:DeploymentSpec", ""),
        # Status is reset on create (status subresource): read past it.
        3: ("status", "msg:Ignored", ""),
    },
    "DeploymentSpec": {
        1: ("replicas", "int", "k"),
        2: ("selector", "msg:LabelSelector", ""),
        3: ("template", "msg:PodTemplateSpec", ""),
        4: ("strategy", "msg:DeploymentStrategy", ""),
        5: ("minReadySeconds", "int", ""),
        6: ("revisionHistoryLimit", "int", "k"),
        7: ("paused", "bool", ""),
        9: ("progressDeadlineSeconds", "int", "k"),
    },
    "DeploymentStrategy": {1: ("type", "string", "")},
    "LabelSelector": {
        1: ("matchLabels", "map:string", ""),
        2: ("matchExpressions", "msg:LabelSelectorRequirement", "r"),
    },
    "LabelSelectorRequirement": {
        1: ("key", "string", ""),
        2: ("operator", "string", ""),
        3: ("values", "string", "r"),
    },
    "PodTemplateSpec": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:PodSpec", ""),
    },
    "PodSpec": {
        2: ("containers", "msg:Container", "r"),
        3: ("restartPolicy", "string", ""),
        4: ("terminationGracePeriodSeconds", "int", "k"),
        6: ("dnsPolicy", "string", ""),
        7: ("nodeSelector", "map:string", ""),
        8: ("serviceAccountName", "string", ""),
        9: ("serviceAccount", "string", ""),
        10: ("nodeName", "string", ""),
        11: ("hostNetwork", "bool", ""),
        12: ("hostPID", "bool", ""),
        13: ("hostIPC", "bool", ""),
        # Defaulted to {} by the API server (a CronJob's template sent back by `create job
        # --from`); its fields are outside the table, so anything in it is refused.
        14: ("securityContext", "msg:PodSecurityContext", ""),
        15: ("imagePullSecrets", "msg:LocalObjectReference", "r"),
        16: ("hostname", "string", ""),
        17: ("subdomain", "string", ""),
        19: ("schedulerName", "string", ""),
        20: ("initContainers", "msg:Container", "r"),
        24: ("priorityClassName", "string", ""),
        30: ("enableServiceLinks", "bool", "k"),
    },
    "Container": {
        1: ("name", "string", ""),
        2: ("image", "string", ""),
        3: ("command", "string", "r"),
        4: ("args", "string", "r"),
        5: ("workingDir", "string", ""),
        6: ("ports", "msg:ContainerPort", "r"),
        7: ("env", "msg:EnvVar", "r"),
        8: ("resources", "msg:ResourceRequirements", ""),
        13: ("terminationMessagePath", "string", ""),
        14: ("imagePullPolicy", "string", ""),
        16: ("stdin", "bool", ""),
        17: ("stdinOnce", "bool", ""),
        18: ("tty", "bool", ""),
        20: ("terminationMessagePolicy", "string", ""),
    },
    "ContainerPort": {
        1: ("name", "string", ""),
        2: ("hostPort", "int", ""),
        3: ("containerPort", "int", "k"),
        4: ("protocol", "string", ""),
        5: ("hostIP", "string", ""),
    },
    "EnvVar": {1: ("name", "string", "k"), 2: ("value", "string", "")},
    "ResourceRequirements": {
        1: ("limits", "map:quantity", ""),
        2: ("requests", "map:quantity", ""),
    },
    "Quantity": {1: ("string", "string", "")},
    "Time": {1: ("seconds", "int", ""), 2: ("nanos", "int", "")},
    "Ignored": {},
    "PodSecurityContext": {},
    # rbac.authorization.k8s.io/v1 (kubectl create role|clusterrole|rolebinding|...)
    "Role": {1: ("metadata", "msg:ObjectMeta", ""), 2: ("rules", "msg:PolicyRule", "r")},
    "ClusterRole": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("rules", "msg:PolicyRule", "r"),
        3: ("aggregationRule", "msg:AggregationRule", ""),
    },
    "AggregationRule": {1: ("clusterRoleSelectors", "msg:LabelSelector", "r")},
    "PolicyRule": {
        1: ("verbs", "string", "r"),
        2: ("apiGroups", "string", "r"),
        3: ("resources", "string", "r"),
        4: ("resourceNames", "string", "r"),
        5: ("nonResourceURLs", "string", "r"),
    },
    "RoleBinding": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("subjects", "msg:Subject", "r"),
        3: ("roleRef", "msg:RoleRef", ""),
    },
    "Subject": {
        1: ("kind", "string", ""),
        2: ("apiGroup", "string", ""),
        3: ("name", "string", ""),
        4: ("namespace", "string", ""),
    },
    "ClusterRoleBinding": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("subjects", "msg:Subject", "r"),
        3: ("roleRef", "msg:RoleRef", ""),
    },
    "RoleRef": {
        1: ("apiGroup", "string", ""),
        2: ("kind", "string", ""),
        3: ("name", "string", ""),
    },
    # authorization.k8s.io/v1 (kubectl auth can-i) and authentication.k8s.io/v1 (whoami, token)
    "SubjectAccessReview": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:SubjectAccessReviewSpec", ""),
        3: ("status", "msg:Ignored", ""),
    },
    "SubjectAccessReviewSpec": {
        1: ("resourceAttributes", "msg:ResourceAttributes", ""),
        2: ("nonResourceAttributes", "msg:NonResourceAttributes", ""),
        3: ("user", "string", ""),
        4: ("groups", "string", "r"),
        5: ("extra", "msg:Ignored", ""),
        6: ("uid", "string", ""),
    },
    "SelfSubjectAccessReview": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:SelfSubjectAccessReviewSpec", ""),
        3: ("status", "msg:Ignored", ""),
    },
    "SelfSubjectAccessReviewSpec": {
        1: ("resourceAttributes", "msg:ResourceAttributes", ""),
        2: ("nonResourceAttributes", "msg:NonResourceAttributes", ""),
    },
    "ResourceAttributes": {
        1: ("namespace", "string", ""),
        2: ("verb", "string", ""),
        3: ("group", "string", ""),
        4: ("version", "string", ""),
        5: ("resource", "string", ""),
        6: ("subresource", "string", ""),
        7: ("name", "string", ""),
    },
    "NonResourceAttributes": {1: ("path", "string", ""), 2: ("verb", "string", "")},
    "SelfSubjectRulesReview": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:SelfSubjectRulesReviewSpec", ""),
        3: ("status", "msg:Ignored", ""),
    },
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string", "")},
    "SelfSubjectReview": {1: ("metadata", "msg:ObjectMeta", ""), 2: ("status", "msg:Ignored", "")},
    "TokenRequest": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:TokenRequestSpec", ""),
        3: ("status", "msg:Ignored", ""),
    },
    "TokenRequestSpec": {
        1: ("audiences", "string", "r"),
        3: ("boundObjectRef", "msg:BoundObjectReference", ""),
        4: ("expirationSeconds", "int", "k"),
    },
    "BoundObjectReference": {
        1: ("kind", "string", ""),
        2: ("apiVersion", "string", ""),
        3: ("name", "string", ""),
        4: ("uid", "string", ""),
    },
    # v1 Service (kubectl create service clusterip|nodeport|loadbalancer|externalname)
    "Service": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:ServiceSpec", ""),
        3: ("status", "msg:Ignored", ""),
    },
    "ServiceSpec": {
        1: ("ports", "msg:ServicePort", "r"),
        2: ("selector", "map:string", ""),
        3: ("clusterIP", "string", ""),
        4: ("type", "string", ""),
        5: ("externalIPs", "string", "r"),
        7: ("sessionAffinity", "string", ""),
        8: ("loadBalancerIP", "string", ""),
        9: ("loadBalancerSourceRanges", "string", "r"),
        10: ("externalName", "string", ""),
        11: ("externalTrafficPolicy", "string", ""),
        12: ("healthCheckNodePort", "int", ""),
        13: ("publishNotReadyAddresses", "bool", ""),
        18: ("clusterIPs", "string", "r"),
        19: ("ipFamilies", "string", "r"),
    },
    "ServicePort": {
        1: ("name", "string", ""),
        2: ("protocol", "string", ""),
        3: ("port", "int", "k"),
        4: ("targetPort", "intorstring", ""),
        5: ("nodePort", "int", ""),
        6: ("appProtocol", "string", ""),
    },
    "IntOrString": {1: ("type", "int", ""), 2: ("intVal", "int", ""), 3: ("strVal", "string", "")},
    # policy/v1 (kubectl create poddisruptionbudget)
    "PodDisruptionBudget": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:PodDisruptionBudgetSpec", ""),
        3: ("status", "msg:Ignored", ""),
    },
    "PodDisruptionBudgetSpec": {
        1: ("minAvailable", "intorstring", ""),
        2: ("selector", "msg:LabelSelector", ""),
        3: ("maxUnavailable", "intorstring", ""),
        4: ("unhealthyPodEvictionPolicy", "string", ""),
    },
    # batch/v1 (kubectl create job|cronjob, create job --from=cronjob/NAME)
    "Job": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:JobSpec", ""),
        3: ("status", "msg:Ignored", ""),
    },
    "JobSpec": {
        1: ("parallelism", "int", "k"),
        2: ("completions", "int", "k"),
        3: ("activeDeadlineSeconds", "int", "k"),
        4: ("selector", "msg:LabelSelector", ""),
        5: ("manualSelector", "bool", "k"),
        6: ("template", "msg:PodTemplateSpec", ""),
        7: ("backoffLimit", "int", "k"),
        8: ("ttlSecondsAfterFinished", "int", "k"),
        9: ("completionMode", "string", ""),
        10: ("suspend", "bool", "k"),
        12: ("backoffLimitPerIndex", "int", "k"),
        13: ("maxFailedIndexes", "int", "k"),
        14: ("podReplacementPolicy", "string", ""),
        15: ("managedBy", "string", ""),
    },
    "CronJob": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:CronJobSpec", ""),
        3: ("status", "msg:Ignored", ""),
    },
    "CronJobSpec": {
        1: ("schedule", "string", ""),
        2: ("startingDeadlineSeconds", "int", "k"),
        3: ("concurrencyPolicy", "string", ""),
        4: ("suspend", "bool", "k"),
        5: ("jobTemplate", "msg:JobTemplateSpec", ""),
        6: ("successfulJobsHistoryLimit", "int", "k"),
        7: ("failedJobsHistoryLimit", "int", "k"),
        8: ("timeZone", "string", ""),
    },
    "JobTemplateSpec": {1: ("metadata", "msg:ObjectMeta", ""), 2: ("spec", "msg:JobSpec", "")},
    # kubectl create quota (core/v1) and create priorityclass (scheduling.k8s.io/v1);
    # numbers checked against kubernetes/api core/v1/generated.proto and scheduling/v1's
    # (read in a k8s.io/api v0.26.0 mirror; PriorityClass has not changed since).
    "ResourceQuota": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:ResourceQuotaSpec", ""),
        3: ("status", "msg:Ignored", ""),
    },
    "ResourceQuotaSpec": {
        1: ("hard", "map:quantity", ""),
        2: ("scopes", "string", "r"),
        3: ("scopeSelector", "msg:ScopeSelector", ""),
    },
    "ScopeSelector": {1: ("matchExpressions", "msg:ScopedResourceSelectorRequirement", "r")},
    "ScopedResourceSelectorRequirement": {
        1: ("scopeName", "string", ""),
        2: ("operator", "string", ""),
        3: ("values", "string", "r"),
    },
    # `value` has no omitempty in Go (a value of 0 is written), preemptionPolicy is a pointer.
    "PriorityClass": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("value", "int", "k"),
        3: ("globalDefault", "bool", ""),
        4: ("description", "string", ""),
        5: ("preemptionPolicy", "string", "k"),
    },
    # networking.k8s.io/v1 (kubectl create ingress); numbers checked against kubernetes/api
    # networking/v1/generated.proto and core/v1/generated.proto (TypedLocalObjectReference).
    "Ingress": {
        1: ("metadata", "msg:ObjectMeta", ""),
        2: ("spec", "msg:IngressSpec", ""),
        3: ("status", "msg:Ignored", ""),
    },
    "IngressSpec": {
        1: ("defaultBackend", "msg:IngressBackend", ""),
        2: ("tls", "msg:IngressTLS", "r"),
        3: ("rules", "msg:IngressRule", "r"),
        4: ("ingressClassName", "string", "k"),
    },
    "IngressBackend": {
        3: ("resource", "msg:TypedLocalObjectReference", ""),
        4: ("service", "msg:IngressServiceBackend", ""),
    },
    "IngressServiceBackend": {
        1: ("name", "string", ""),
        2: ("port", "msg:ServiceBackendPort", ""),
    },
    "ServiceBackendPort": {1: ("name", "string", ""), 2: ("number", "int", "")},
    "TypedLocalObjectReference": {
        1: ("apiGroup", "string", "k"),
        2: ("kind", "string", ""),
        3: ("name", "string", ""),
    },
    "IngressTLS": {1: ("hosts", "string", "r"), 2: ("secretName", "string", "")},
    # `IngressRuleValue` is embedded inline in IngressRule: `{"host": ..., "http": ...}`.
    "IngressRule": {
        1: ("host", "string", ""),
        2: ("ingressRuleValue", "msg:IngressRuleValue", "e"),
    },
    "IngressRuleValue": {1: ("http", "msg:HTTPIngressRuleValue", "")},
    "HTTPIngressRuleValue": {1: ("paths", "msg:HTTPIngressPath", "r")},
    "HTTPIngressPath": {
        1: ("path", "string", ""),
        2: ("backend", "msg:IngressBackend", ""),
        3: ("pathType", "string", "k"),
    },
}
_KINDS: Final = {
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "Namespace"): "Namespace",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("apps/v1", "Deployment"): "Deployment",
    **{
        ("rbac.authorization.k8s.io/v1", kind): kind
        for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
    },
    **{
        ("authorization.k8s.io/v1", kind): kind
        for kind in ("SelfSubjectAccessReview", "SelfSubjectRulesReview", "SubjectAccessReview")
    },
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"): "SubjectAccessReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("v1", "Service"): "Service",
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass",
}


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varints, bytes for length-delimited fields."""
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            out.append((number, value))
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ProtobufError("truncated field")
            out.append((number, data[at : at + length]))
            at += length
        elif wire == 1:
            at += 8
        elif wire == 5:
            at += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, value: int | bytes, where: str) -> Any:
    if kind == "int":
        if not isinstance(value, int):
            raise ProtobufError(f"{where}: expected a varint")
        return _signed(value)
    if kind == "bool":
        if not isinstance(value, int):
            raise ProtobufError(f"{where}: expected a varint")
        return bool(value)
    if not isinstance(value, bytes):
        raise ProtobufError(f"{where}: expected a length-delimited field")
    if kind in ("string",):
        return value.decode("utf-8")
    if kind in ("bytes",):
        return base64.b64encode(value).decode()
    if kind == "raw":
        return value
    if kind == "time":
        parts = decode_message("Time", value)
        if not parts.get("seconds"):
            return None
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(parts["seconds"])))
    if kind == "quantity":
        return decode_message("Quantity", value).get("string", "")
    if kind == "intorstring":
        parts = decode_message("IntOrString", value)
        return parts.get("strVal", "") if parts.get("type") == 1 else parts.get("intVal", 0)
    raise ProtobufError(f"{where}: unknown type {kind}")


def _map_entry(kind: str, value: int | bytes, where: str) -> tuple[str, Any]:
    if not isinstance(value, bytes):
        raise ProtobufError(f"{where}: expected a map entry")
    key = ""
    item: Any = "" if kind != "quantity" else "0"
    for number, part in _fields(value):
        if number == 1 and isinstance(part, bytes):
            key = part.decode("utf-8")
        elif number == 2:
            item = _scalar(kind, part, where)
    return key, item


def _zero(value: Any) -> bool:
    return value in ("", 0, False, None) or value == {} or value == []


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    """One message of the table, as the JSON dict its Go struct would marshal to."""
    table = _MESSAGES[name]
    out: dict[str, Any] = {}
    if name == "Ignored":
        _fields(data)  # still well-formed protobuf
        return out
    for number, value in _fields(data):
        field = table.get(number)
        if field is None:
            raise ProtobufError(f"field {number} of {name} is not supported by the fake")
        json_name, kind, flags = field
        where = f"{name}.{json_name}"
        if kind.startswith("map:"):
            key, item = _map_entry(kind[4:], value, where)
            out.setdefault(json_name, {})[key] = item
            continue
        if kind.startswith("msg:"):
            if not isinstance(value, bytes):
                raise ProtobufError(f"{where}: expected a message")
            decoded: Any = decode_message(kind[4:], value)
        else:
            decoded = _scalar(kind, value, where)
        if "e" in flags:
            if not isinstance(decoded, dict):
                raise ProtobufError(f"{where}: only a message can be embedded")
            out.update(decoded)
        elif "r" in flags:
            out.setdefault(json_name, []).append(decoded)
        elif decoded is not None and (not _zero(decoded) or "k" in flags or kind[:4] == "msg:"):
            # gogo writes every non-pointer field; JSON omits the empty ones (omitempty).
            out[json_name] = decoded
    return out


def decode_body(body: bytes, resource: ResourceType) -> dict[str, Any]:
    """The `ApiServer.body_decoders` entry for `application/vnd.kubernetes.protobuf`."""
    try:
        if not body.startswith(MAGIC):
            raise ProtobufError("the body does not start with the Kubernetes protobuf magic")
        unknown = decode_message("Unknown", body[len(MAGIC) :])
        type_meta = unknown.get("typeMeta") or {}
        api_version = str(type_meta.get("apiVersion") or resource.api_version)
        kind = str(type_meta.get("kind") or resource.kind)
        message = _KINDS.get((api_version, kind))
        if message is None:
            known = ", ".join(f"{v} {k}" for v, k in _KINDS)
            raise StatusError(
                415,
                "UnsupportedMediaType",
                f"the fake API server decodes {PROTOBUF} bodies of {known} only, not of "
                f"{api_version} {kind}: send it as application/json or application/yaml",
            )
        raw = unknown.get("raw", b"")
        obj = decode_message(message, raw if isinstance(raw, bytes) else b"")
    except ProtobufError as error:
        raise StatusError.bad_request(
            f"the body of the request could not be decoded as {PROTOBUF}: {error}"
        ) from None
    out: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    out.update(obj)
    return out
