"""Built-in admission: defaulting and validation of the kinds a controller writes most.

What this module is for: the defaults kube-apiserver fills in (so a GET after a create looks
like a real cluster's, and diffs and server-side apply see the same fields; reference section
2.1) and the validation errors a controller is most likely to hit (422 Invalid with the real
field paths and texts). Each step is a plain function of `AdmissionRequest`, registered per
kind in `_STEPS`; other modules (schemas for `fieldValidation`, managedFields) add their own
steps to `Store.admission`. Pure: no I/O.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from rxkube.fakes._errors import StatusCause, StatusError
from rxkube.fakes._selectors import LabelSelector

if TYPE_CHECKING:
    from rxkube.fakes._store import Admission, AdmissionRequest

__all__: list[str] = []


def _invalid(request: AdmissionRequest, causes: list[StatusCause]) -> StatusError:
    res = request.resource
    name = str(request.object.get("metadata", {}).get("name") or "")
    return StatusError.invalid(res.kind, res.group, name, causes)


def _required(path: str) -> StatusCause:
    return StatusCause("FieldValueRequired", "Required value", path)


def _dict_at(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        value = obj[key] = {}
    return value


# -- pods and pod templates ---------------------------------------------------------------


def _default_container(container: dict[str, Any]) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = str(container.get("image") or "")
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("resources", {})
    for port in container.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")


def default_pod_spec(spec: dict[str, Any]) -> None:
    """Pod spec defaults of kube-apiserver (section 2.1)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or ():
            if isinstance(container, dict):
                _default_container(container)


def validate_pod_spec(spec: Any, path: str) -> list[StatusCause]:
    if not isinstance(spec, dict):
        return [_required(path)]
    causes: list[StatusCause] = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [_required(f"{path}.containers")]
    names: set[str] = set()
    for index, container in enumerate(containers):
        where = f"{path}.containers[{index}]"
        if not isinstance(container, dict):
            causes.append(_required(where))
            continue
        name = container.get("name")
        if not name:
            causes.append(_required(f"{where}.name"))
        elif name in names:
            causes.append(
                StatusCause("FieldValueDuplicate", f'Duplicate value: "{name}"', f"{where}.name")
            )
        else:
            names.add(str(name))
        if not container.get("image"):
            causes.append(_required(f"{where}.image"))
    policy = spec.get("restartPolicy")
    if policy not in (None, "Always", "OnFailure", "Never"):
        causes.append(
            StatusCause(
                "FieldValueNotSupported",
                f'Unsupported value: "{policy}": supported values: "Always", "OnFailure", "Never"',
                f"{path}.restartPolicy",
            )
        )
    return causes


def _qos_class(spec: Mapping[str, Any]) -> str:
    containers = [c for c in spec.get("containers") or () if isinstance(c, dict)]
    limited = requested = 0
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = resources.get("requests") or {}
        if limits or requests:
            requested += 1
        if "cpu" in limits and "memory" in limits:
            limited += 1
            if requests and any(requests.get(k, limits[k]) != limits[k] for k in ("cpu", "memory")):
                guaranteed = False
        else:
            guaranteed = False
    if not requested:
        return "BestEffort"
    if guaranteed and limited == len(containers):
        return "Guaranteed"
    return "Burstable"


_POD_MUTABLE_SPEC = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def _pod(request: AdmissionRequest) -> None:
    obj = request.object
    if request.subresource == "status":
        return
    spec = _dict_at(obj, "spec")
    default_pod_spec(spec)
    causes = validate_pod_spec(spec, "spec")
    if causes:
        raise _invalid(request, causes)
    if request.operation == "CREATE":
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}
        return
    old_spec = copy.deepcopy(dict((request.old or {}).get("spec") or {}))
    new_spec = copy.deepcopy(spec)
    for key in _POD_MUTABLE_SPEC:
        old_spec.pop(key, None)
        new_spec.pop(key, None)
    if not old_spec.get("nodeName"):
        # Binding a pod (what the scheduler does through pods/binding) sets nodeName once.
        old_spec.pop("nodeName", None)
        new_spec.pop("nodeName", None)
    for spec_copy in (old_spec, new_spec):
        for key in ("containers", "initContainers"):
            for container in spec_copy.get(key) or ():
                if isinstance(container, dict):
                    container.pop("image", None)
    if old_spec != new_spec:
        raise _invalid(
            request,
            [
                StatusCause(
                    "FieldValueForbidden",
                    "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
                    "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to "
                    "be set to 1 if it was previously negative)",
                    "spec",
                )
            ],
        )


def _workload(request: AdmissionRequest) -> None:
    """Deployments and ReplicaSets: defaults, selector/template validation, immutability."""
    obj = request.object
    if request.subresource == "status":
        return
    spec = _dict_at(obj, "spec")
    spec.setdefault("replicas", 1)
    deployment = request.resource.kind == "Deployment"
    if deployment:
        strategy = _dict_at(spec, "strategy")
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _dict_at(strategy, "rollingUpdate")
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    template = spec.get("template")
    causes: list[StatusCause] = []
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        causes.append(
            StatusCause(
                "FieldValueInvalid",
                f"Invalid value: {replicas}: must be greater than or equal to 0",
                "spec.replicas",
            )
        )
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        causes.append(_required("spec.selector"))
    if not isinstance(template, dict):
        causes.append(_required("spec.template"))
    else:
        template_meta = template.get("metadata") or {}
        labels = template_meta.get("labels") or {}
        if isinstance(selector, dict) and selector.get("matchLabels"):
            wanted = LabelSelector.from_match_labels(selector["matchLabels"])
            if not wanted.matches(labels):
                causes.append(
                    StatusCause(
                        "FieldValueInvalid",
                        f"Invalid value: {_go_map(labels)}: `selector` does not match template "
                        "`labels`",
                        "spec.template.metadata.labels",
                    )
                )
        template_spec = template.get("spec")
        if isinstance(template_spec, dict):
            default_pod_spec(template_spec)
        causes.extend(validate_pod_spec(template_spec, "spec.template.spec"))
    if request.operation == "UPDATE" and request.old is not None:
        old_selector = (request.old.get("spec") or {}).get("selector")
        if old_selector is not None and old_selector != selector:
            causes.append(
                StatusCause(
                    "FieldValueInvalid",
                    f"Invalid value: {_go_selector(selector)}: field is immutable",
                    "spec.selector",
                )
            )
    if causes:
        raise _invalid(request, causes)


JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"


def _job_template(spec: dict[str, Any], path: str, causes: list[StatusCause]) -> None:
    """The pod template of a Job (or a CronJob's job template): defaults, and the restart
    policy a Job allows (`pkg/apis/batch/validation`)."""
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(_required(f"{path}.template"))
        return
    template_spec = template.get("spec")
    if isinstance(template_spec, dict):
        asked_policy = template_spec.get("restartPolicy")
        default_pod_spec(template_spec)
        if asked_policy is None:
            # Defaulting cannot pick for the user: a Job's pods may not restart Always.
            del template_spec["restartPolicy"]
    causes.extend(validate_pod_spec(template_spec, f"{path}.template.spec"))
    if isinstance(template_spec, dict):
        policy = template_spec.get("restartPolicy")
        if policy is None:
            causes.append(
                StatusCause(
                    "FieldValueRequired",
                    'Required value: valid values: "OnFailure", "Never"',
                    f"{path}.template.spec.restartPolicy",
                )
            )
        elif policy not in ("OnFailure", "Never"):
            causes.append(
                StatusCause(
                    "FieldValueNotSupported",
                    f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
                    f"{path}.template.spec.restartPolicy",
                )
            )


def _job(request: AdmissionRequest) -> None:
    """Jobs: the defaults of `SetDefaults_Job` and the selector and labels the API server
    generates (`generateSelector`: `batch.kubernetes.io/controller-uid` and `job-name`,
    with their legacy unprefixed twins on the pod template)."""
    if request.subresource == "status":
        return
    obj = request.object
    meta = _dict_at(obj, "metadata")
    spec = _dict_at(obj, "spec")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    causes: list[StatusCause] = []
    if not spec.get("manualSelector"):
        uid = str(meta.get("uid") or "")
        if request.operation == "UPDATE" and request.old is not None:
            old_selector = (request.old.get("spec") or {}).get("selector")
            spec.setdefault("selector", copy.deepcopy(old_selector))
        spec.setdefault("selector", {"matchLabels": {CONTROLLER_UID_LABEL: uid}})
        template = spec.get("template")
        if isinstance(template, dict):
            labels = _dict_at(_dict_at(template, "metadata"), "labels")
            name = str(meta.get("name") or "")
            for key, value in (
                (CONTROLLER_UID_LABEL, uid),
                (JOB_NAME_LABEL, name),
                ("controller-uid", uid),
                ("job-name", name),
            ):
                labels.setdefault(key, value)
    elif not spec.get("selector"):
        causes.append(_required("spec.selector"))
    _job_template(spec, "spec", causes)
    if causes:
        raise _invalid(request, causes)


def _cronjob(request: AdmissionRequest) -> None:
    """CronJobs: `SetDefaults_CronJob`, a schedule, and a job template a Job could run."""
    if request.subresource == "status":
        return
    spec = _dict_at(request.object, "spec")
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    causes: list[StatusCause] = []
    if not spec.get("schedule"):
        causes.append(_required("spec.schedule"))
    job_template = spec.get("jobTemplate")
    if not isinstance(job_template, dict):
        causes.append(_required("spec.jobTemplate"))
    else:
        _job_template(_dict_at(job_template, "spec"), "spec.jobTemplate.spec", causes)
    if causes:
        raise _invalid(request, causes)


def _go_map(labels: Mapping[str, Any]) -> str:
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(labels.items()))
    return f"map[string]string{{{inner}}}"


def _go_selector(selector: Any) -> str:
    if isinstance(selector, dict):
        return f"v1.LabelSelector{{MatchLabels:{_go_map(selector.get('matchLabels') or {})}}}"
    return "null"


# -- other kinds --------------------------------------------------------------------------


def _namespace(request: AdmissionRequest) -> None:
    obj = request.object
    meta = obj["metadata"]
    labels = meta.setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = meta.get("name", "")
    if request.operation == "CREATE":
        _dict_at(obj, "spec").setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}


def _service(request: AdmissionRequest) -> None:
    obj = request.object
    if request.subresource == "status":
        return
    spec = _dict_at(obj, "spec")
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
    if spec["type"] != "ExternalName":
        if request.operation == "CREATE":
            if not spec.get("clusterIP"):
                spec["clusterIP"] = _cluster_ip(request)
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
            obj["status"] = {"loadBalancer": {}}
        elif request.old is not None:
            old_spec = request.old.get("spec") or {}
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                if key in old_spec:
                    spec.setdefault(key, old_spec[key])
    _node_ports(request, spec)


# The kube-apiserver's default --service-node-port-range.
NODE_PORT_RANGE: tuple[int, int] = (30000, 32767)


def _needs_node_ports(spec: Mapping[str, Any]) -> bool:
    kind = spec.get("type")
    return kind == "NodePort" or (
        kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False
    )


def _node_ports(request: AdmissionRequest, spec: dict[str, Any]) -> None:
    """Allocate `nodePort`s as the API server's service REST storage does.

    The allocator's state is the store itself (the node ports of every other Service in the
    cluster), so a deleted Service releases its ports with no bookkeeping. A user-given port
    is kept if free and in range, else 422 with the real texts
    (pkg/registry/core/service/portallocator: "provided port is already allocated"). On
    update a port left empty gets back the old port of the same name
    (`patchAllocatedValues` in pkg/registry/core/service/storage/storage.go); a change to a
    type without node ports drops the ones the user did not touch.
    """
    ports = [p for p in spec.get("ports") or () if isinstance(p, dict)]
    old_spec: Mapping[str, Any] = (request.old or {}).get("spec") or {}
    old_ports = [p for p in old_spec.get("ports") or () if isinstance(p, dict)]
    if not _needs_node_ports(spec):
        if _needs_node_ports(old_spec):
            kept = {p.get("nodePort") for p in old_ports}
            for port in ports:
                if port.get("nodePort") in kept:
                    port.pop("nodePort")
        return
    spec.setdefault("externalTrafficPolicy", "Cluster")
    if _needs_node_ports(old_spec):
        by_name = {str(p.get("name") or ""): p.get("nodePort") for p in old_ports}
        given = {p.get("nodePort") for p in ports}
        for port in ports:
            old = by_name.get(str(port.get("name") or ""))
            if not port.get("nodePort") and old and old not in given:
                port["nodePort"] = old
    meta = request.object.get("metadata") or {}
    me = (request.namespace or meta.get("namespace"), meta.get("name"))
    used: set[int] = set()
    for entry in request.store.entries(request.resource):
        other = entry.object()
        other_meta = other.get("metadata") or {}
        if (other_meta.get("namespace"), other_meta.get("name")) == me:
            continue
        for port in (other.get("spec") or {}).get("ports") or ():
            if isinstance(port, dict) and port.get("nodePort"):
                used.add(int(port["nodePort"]))
    low, high = NODE_PORT_RANGE
    causes: list[StatusCause] = []
    mine: dict[int, set[str]] = {}
    for index, port in enumerate(ports):
        wanted = port.get("nodePort")
        if not wanted:
            continue
        where = f"spec.ports[{index}].nodePort"
        protocol = str(port.get("protocol") or "TCP")
        if not isinstance(wanted, int) or not low <= wanted <= high:
            causes.append(
                StatusCause(
                    "FieldValueInvalid",
                    f"Invalid value: {wanted}: provided port is not in the valid range. "
                    f"The range of valid ports is {low}-{high}",
                    where,
                )
            )
        elif wanted in used:
            causes.append(
                StatusCause(
                    "FieldValueInvalid",
                    f"Invalid value: {wanted}: provided port is already allocated",
                    where,
                )
            )
        elif protocol in mine.get(wanted, set()):
            causes.append(StatusCause("FieldValueDuplicate", f"Duplicate value: {wanted}", where))
        else:
            # One Service may use one node port for several protocols (TCP and UDP DNS).
            mine.setdefault(wanted, set()).add(protocol)
    if causes:
        raise _invalid(request, causes)
    free = high - low + 1 - len(used | set(mine))
    for port in ports:
        if port.get("nodePort"):
            continue
        if free <= 0:
            # portallocator.ErrFull, wrapped by allocNodePorts as an internal error.
            raise StatusError.internal("failed to allocate a nodePort: range is full")
        while True:
            candidate = request.store.random.randint(low, high)
            if candidate not in used and candidate not in mine:
                break
        port["nodePort"] = candidate
        mine[candidate] = {str(port.get("protocol") or "TCP")}
        free -= 1


def _cluster_ip(request: AdmissionRequest) -> str:
    used = set()
    for entry in request.store.entries(request.resource):
        ip = entry.object().get("spec", {}).get("clusterIP")
        if ip:
            used.add(ip)
    network = ipaddress.ip_network("10.96.0.0/12")
    while True:
        offset = request.store.random.randrange(10, network.num_addresses - 1)
        ip = str(network.network_address + offset)
        if ip not in used:
            return ip


def _string_map(request: AdmissionRequest, key: str) -> None:
    value = request.object.get(key)
    if value is None:
        return
    res = request.resource
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise StatusError.bad_request(
            f'{res.kind} in version "{res.version}" cannot be handled as a {res.kind}: json: '
            f"cannot unmarshal into Go struct field {res.kind}.{key} of type map[string]string"
        )


def _configmap(request: AdmissionRequest) -> None:
    _string_map(request, "data")
    _string_map(request, "binaryData")


def _secret(request: AdmissionRequest) -> None:
    _string_map(request, "data")
    _string_map(request, "stringData")
    obj = request.object
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if string_data:
        import base64

        data = obj.setdefault("data", {})
        for k, v in string_data.items():
            data[k] = base64.b64encode(v.encode()).decode()


def _resource_quota(request: AdmissionRequest) -> None:
    """status.hard follows spec.hard at once, as the quota controller would set it soon after
    a real create; status.used is only kept across spec updates (the fake has no quota
    controller yet, so `kubectl get quota` shows every used amount as 0)."""
    if request.subresource == "status":
        return
    obj = request.object
    hard = (obj.get("spec") or {}).get("hard")
    old_status = (request.old or {}).get("status") or {}
    status: dict[str, Any] = {}
    if hard:
        status["hard"] = copy.deepcopy(hard)
    if request.operation == "UPDATE" and old_status.get("used"):
        status["used"] = copy.deepcopy(old_status["used"])
    obj["status"] = status


def _priority_class(request: AdmissionRequest) -> None:
    request.object.setdefault("preemptionPolicy", "PreemptLowerPriority")


def _crd(request: AdmissionRequest) -> None:
    if request.subresource == "status":
        return
    spec = request.object.get("spec")
    causes: list[StatusCause] = []
    if not isinstance(spec, dict):
        raise _invalid(request, [_required("spec")])
    raw_names = spec.get("names")
    names: dict[str, Any] = raw_names if isinstance(raw_names, dict) else {}
    group = spec.get("group")
    for path, value in (
        ("spec.group", group),
        ("spec.names.plural", names.get("plural")),
        ("spec.names.kind", names.get("kind")),
    ):
        if not value:
            causes.append(_required(path))
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        causes.append(
            StatusCause(
                "FieldValueNotSupported",
                f'Unsupported value: "{scope}": supported values: "Cluster", "Namespaced"',
                "spec.scope",
            )
        )
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        causes.append(_required("spec.versions"))
    name = request.object["metadata"].get("name")
    if names.get("plural") and group and name != f"{names['plural']}.{group}":
        causes.append(
            StatusCause(
                "FieldValueInvalid",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                "metadata.name",
            )
        )
    if causes:
        raise _invalid(request, causes)


_STEPS: dict[tuple[str, str], Callable[[AdmissionRequest], None]] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): _crd,
    ("", "pods"): _pod,
    ("apps", "deployments"): _workload,
    ("apps", "replicasets"): _workload,
    ("batch", "jobs"): _job,
    ("batch", "cronjobs"): _cronjob,
    ("", "namespaces"): _namespace,
    ("", "services"): _service,
    ("", "configmaps"): _configmap,
    ("", "secrets"): _secret,
    ("", "resourcequotas"): _resource_quota,
    ("scheduling.k8s.io", "priorityclasses"): _priority_class,
}


def _dispatch(request: AdmissionRequest) -> None:
    step = _STEPS.get((request.resource.group, request.resource.plural))
    if step is not None:
        step(request)


def builtin_admission() -> list[Admission]:
    """The admission steps every store starts with."""
    return [_dispatch]
