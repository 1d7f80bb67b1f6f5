"""What kubectl needs beyond the API core, installed on one fake API server.

What this module is for: one call, `install_kubectl_support(api)`, that `open_fake_apiserver`
makes for every server, wiring the companion modules of issue 6 into the core's extension
points: OpenAPI documents (`/openapi/v3`, `/openapi/v2`), server-side field validation
(`fieldValidation`, first admission step), Table output for `kubectl get`, the schema-driven
strategic merge patch, server-side apply, managed fields (last admission step) and the
`scale` subresource of deployments and replica sets, the access reviews and service account
tokens (`kubectl auth can-i|whoami`, `kubectl create token`), and protobuf request bodies (kubectl's
typed `create` subcommands). Nothing here runs at startup beyond
registering handlers: the schemas load on the first request that needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rxkube.fakes._apply import apply_patch_type
from rxkube.fakes._auth_api import install_auth_api
from rxkube.fakes._managed import track_updates
from rxkube.fakes._openapi import OpenApiDocuments
from rxkube.fakes._patch import APPLY_PATCH, STRATEGIC_MERGE_PATCH
from rxkube.fakes._protobuf import PROTOBUF, decode_body
from rxkube.fakes._scale import install_scale
from rxkube.fakes._schemas import Schemas
from rxkube.fakes._strategic import strategic_patch_type
from rxkube.fakes._tables import table_transform
from rxkube.fakes._validation import field_validation

if TYPE_CHECKING:
    from rxkube.fakes._api import ApiServer

__all__: list[str] = []


def install_kubectl_support(api: ApiServer, schemas: Schemas | None = None) -> Schemas:
    """Install OpenAPI, validation, tables, patches, apply, managed fields and scale."""
    schemas = schemas if schemas is not None else Schemas()
    store = api.store
    documents = OpenApiDocuments(api, schemas)
    api.add_path("/openapi", documents.handle)
    api.add_transform("Table", table_transform(store))
    store.patch_types.register(STRATEGIC_MERGE_PATCH, strategic_patch_type(schemas))
    store.patch_types.register(APPLY_PATCH, apply_patch_type(schemas, now=store.now), creates=True)
    store.admission.insert(0, field_validation(schemas))
    store.admission.append(track_updates(schemas))
    install_scale(api)
    install_auth_api(api)
    api.body_decoders[PROTOBUF] = decode_body
    return schemas
