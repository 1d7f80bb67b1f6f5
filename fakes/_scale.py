"""The `scale` subresource of deployments and replicasets (`kubectl scale`).

What this module is for: `GET .../deployments/web/scale` answers an `autoscaling/v1` `Scale`
(name, namespace, uid, resourceVersion and creationTimestamp of the parent; `spec.replicas`;
`status.replicas` and `status.selector` as a label selector string), `PUT` and `PATCH` (merge,
JSON, strategic) write `spec.replicas` back to the parent through the store, so generation,
resourceVersion, watch events and managed fields behave as for any write. A `resourceVersion`
in the Scale is a precondition (409 Conflict when stale), as on a real server; a negative
count is 422 `Scale.autoscaling "web" is invalid: spec.replicas: ...`. Discovery lists the
subresource with group `autoscaling`, version `v1`, kind `Scale` (what kubectl's scale
client needs, reference section 1.3). It may import the other modules of `rxkube.fakes`.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from rxkube.fakes._api import ApiServer, RequestContext, warning_headers
from rxkube.fakes._errors import StatusCause, StatusError
from rxkube.fakes._http import Response
from rxkube.fakes._patch import PatchRequest
from rxkube.fakes._resources import ResourceType, Subresource
from rxkube.fakes._tables import selector_string

__all__: list[str] = []

SCALE: Final = Subresource("scale", kind="Scale", group="autoscaling", version="v1")
SCALE_RESOURCE: Final = ResourceType("autoscaling", "v1", "scales", "Scale", True)
"""A row for the Scale kind itself (not served as a collection), for patch functions."""


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The `autoscaling/v1` Scale of a deployment or replica set."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    scale_meta = {
        k: meta[k]
        for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        if k in meta
    }
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": int(spec.get("replicas") or 0)},
        "status": {
            "replicas": int(status.get("replicas") or 0),
            "selector": selector_string(spec.get("selector")),
        },
    }


async def serve_scale(context: RequestContext) -> Response:
    request = context.request
    store = context.store
    res = context.resource
    current = store.get_entry(res, context.namespace, context.name)
    if context.verb == "get":
        return Response(200, orjson.dumps(scale_of(current.object())))
    if context.verb not in ("update", "patch"):
        raise StatusError.method_not_allowed(request.method, f"{res.plural}/scale")
    scale = scale_of(current.object())
    if context.verb == "update":
        try:
            wanted: Any = orjson.loads(request.body)
        except orjson.JSONDecodeError as error:
            raise StatusError.bad_request(
                f"couldn't get version/kind; json parse error: {error}"
            ) from None
    else:
        content_type = request.header("content-type").split(";")[0].strip()
        wanted = store.patch_types.apply(
            content_type,
            PatchRequest(
                SCALE_RESOURCE,
                scale,
                request.body,
                context.name,
                context.namespace,
                dict(request.query),
            ),
        )
    if not isinstance(wanted, dict):
        raise StatusError.bad_request("the body of the request was not a Scale object")
    replicas = (wanted.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise StatusError.invalid(
            "Scale",
            "autoscaling",
            context.name,
            [
                StatusCause(
                    "FieldValueInvalid",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                    "spec.replicas",
                )
            ],
        )
    patch: dict[str, Any] = {"spec": {"replicas": replicas}}
    wanted_rv = (wanted.get("metadata") or {}).get("resourceVersion")
    if context.verb == "update" and wanted_rv:
        patch["metadata"] = {"resourceVersion": str(wanted_rv)}
    with store.write_options(context.api.write_options(request)) as options:
        entry, _ = store.patch(
            res,
            context.namespace,
            context.name,
            patch,
            patch_type="application/merge-patch+json",
            user=context.user.name,
        )
    return Response(200, orjson.dumps(scale_of(entry.object())), warning_headers(options.warnings))


def install_scale(api: ApiServer) -> None:
    """Serve `deployments/scale` and `replicasets/scale`."""
    for resource in ("deployments.apps", "replicasets.apps"):
        api.add_subresource(resource, SCALE, serve_scale)
