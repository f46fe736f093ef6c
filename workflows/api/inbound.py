"""Anonymous endpoints for other systems: wait-step callbacks and webhook triggers.

No user authentication and no CSRF (the token in the URL, or the HMAC signature, is the
credential); rate limited per client address; bodies capped at WF_INBOUND_MAX_BYTES (2 MiB). A body over
WF_INLINE_OUTPUT_BYTES, or one holding what a database cannot store (NUL, unpaired
surrogates), is kept whole as a resource by the services (the storage rule).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Header, Router, Status

from workflows.api.auth import AnonThrottle
from workflows.api.documents import run_admin_url
from workflows.api.errors import bad_request, inbound_max_bytes, parse_json, read_body
from workflows.api.lookups import get_flow
from workflows.api.schemas import CallbackAcceptedOut, ErrorOut, HookRunOut
from workflows.services.callbacks import callback_receive
from workflows.services.webhooks import webhook_receive

router = Router(tags=["callbacks and webhooks"], auth=None, throttle=[AnonThrottle()])

JSON_OBJECT_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {"type": "object",
                                                    "additionalProperties": True}}},
    }
}


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise bad_request("the body must be a JSON object")
    return payload


@router.post(
    "/callbacks/{token}",
    response={202: CallbackAcceptedOut, **dict.fromkeys((400, 404, 409, 410, 413, 422, 429),
                                                         ErrorOut)},
    openapi_extra=JSON_OBJECT_BODY,
    summary="Resume a wait step (202; 409 used; 410 expired; 404 unknown)",
)
def callbacks_receive(request: HttpRequest, token: str):
    payload = _json_object(read_body(request, inbound_max_bytes()))
    step_run = callback_receive(
        token=token, payload=payload, remote_addr=request.META.get("REMOTE_ADDR") or "",
        user_agent=request.headers.get("User-Agent") or "",
        traceparent=request.headers.get("traceparent"),
    )
    return Status(202, {"status": "accepted", "step": step_run.key, "run": step_run.run_id})


@router.post(
    "/hooks/{slug}",
    response={202: HookRunOut, **dict.fromkeys((400, 401, 404, 409, 413, 422, 429), ErrorOut)},
    openapi_extra=JSON_OBJECT_BODY,
    summary="Webhook trigger: a signed delivery starts a run of the live release",
)
def hooks_receive(
    request: HttpRequest, slug: str,
    x_signature: str | None = Header(None, alias="X-Signature",
                                     description="t=UNIX,v1=HEX (HMAC-SHA256 of UNIX.BODY)"),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key"),
):
    body = read_body(request, inbound_max_bytes())
    flow = get_flow(slug)
    run, created = webhook_receive(
        flow=flow, body=body, signature=x_signature, idempotency_key=idempotency_key,
        traceparent=request.headers.get("traceparent"),
    )
    return Status(202, {"id": run.pk, "status": run.status, "admin_url": run_admin_url(run.pk),
                        "created": created})
