"""GET /schema/flow.json: the JSON Schema of a flow definition, for editors and tools.

Public (no credentials, like the OpenAPI document): it describes a format, holds no data, and
editors (`# yaml-language-server: $schema=…`) fetch it without headers. Rate limited per client
address like the other anonymous endpoints.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from ninja import Router

from workflows.api.auth import AnonThrottle
from workflows.api.openapi import errors
from workflows.definitions.schema import flow_json_schema

router = Router(tags=["schema"], auth=None, throttle=[AnonThrottle()])

SCHEMA_RESPONSE = {
    "responses": {
        200: {
            "description": "A JSON Schema (draft 2020-12) of a flow definition.",
            "content": {"application/schema+json": {"schema": {"type": "object"}}},
        }
    }
}


@router.get("/flow.json", response={200: None, **errors(anonymous=True)},
            openapi_extra=SCHEMA_RESPONSE, operation_id="schema_flow")
def schema_flow(request: HttpRequest) -> JsonResponse:
    """The JSON Schema of a flow definition (docs/flow.schema.json is the same document)."""
    return JsonResponse(
        flow_json_schema(),
        content_type="application/schema+json",
        json_dumps_params={"ensure_ascii": False},
    )
