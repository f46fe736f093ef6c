"""Anonymous endpoints for other systems: wait-step callbacks and webhook triggers.

No user authentication and no CSRF (the token in the URL, or the HMAC signature, is the
credential); rate limited per client address; bodies capped at WF_INBOUND_MAX_BYTES (2 MiB). A body over
WF_INLINE_OUTPUT_BYTES, or one holding what a database cannot store (NUL, unpaired
surrogates), is kept whole as a resource by the services (the storage rule).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from ninja import Router, Status

from workflows.api.auth import AnonThrottle
from workflows.api.documents import run_admin_url
from workflows.api.errors import bad_request, inbound_max_bytes, parse_json, read_body
from workflows.api.lookups import get_flow_row
from workflows.api.openapi import errors
from workflows.api.params import CallbackToken, FlowSlug
from workflows.api.schemas import CallbackAcceptedOut, HookOutcomeOut, HookRunOut
from workflows.services.callbacks import callback_receive
from workflows.services.webhooks import webhook_receive
from workflows.states import DeliveryOutcome

router = Router(tags=["callbacks and webhooks"], auth=None, throttle=[AnonThrottle()])

JSON_OBJECT_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {"type": "object",
                                                    "additionalProperties": True}}},
    }
}


HOOK_BODY = {
    "requestBody": {
        "required": False,
        "content": {
            "application/json": {"schema": {"type": "object", "additionalProperties": True}},
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}},
        },
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
    response={202: CallbackAcceptedOut, **errors(409, 410, anonymous=True, json_body=False)},
    operation_id="callbacks_receive",
    openapi_extra=JSON_OBJECT_BODY,
    summary="Resume a wait step (202; 409 used; 410 expired; 404 unknown)",
)
def callbacks_receive(request: HttpRequest, token: CallbackToken):
    payload = _json_object(read_body(request, inbound_max_bytes()))
    step_run = callback_receive(
        token=token, payload=payload, remote_addr=request.META.get("REMOTE_ADDR") or "",
        user_agent=request.headers.get("User-Agent") or "",
        traceparent=request.headers.get("traceparent"),
    )
    return Status(202, {"status": "accepted", "step": step_run.key, "run": step_run.run_id})


@router.post(
    "/hooks/{slug}",
    response={202: HookRunOut, 200: HookOutcomeOut,
              **errors(401, 409, anonymous=True, json_body=False)},
    operation_id="hooks_receive",
    openapi_extra=HOOK_BODY,
    summary="Webhook trigger: a verified delivery starts a run of the live release",
    description="How a delivery is verified depends on the trigger's `verify:` preset "
                "(signature, github, gitlab, stripe, slack, standard); see docs/webhooks.md. "
                "202 a run started; 200 `duplicate` (the run the same delivery id started), "
                "`filtered` (events / when left it out) or Slack's `{challenge}`; 401 "
                "`signature_invalid` naming the failed check.",
)
def hooks_receive(request: HttpRequest, slug: FlowSlug):
    body = read_body(request, inbound_max_bytes())
    flow = get_flow_row(slug)
    result = webhook_receive(flow=flow, body=body, headers=request.headers,
                             content_type=request.content_type or "",
                             traceparent=request.headers.get("traceparent"),
                             tracestate=request.headers.get("tracestate"))
    if result.challenge is not None:
        return JsonResponse(result.challenge)
    if result.outcome != DeliveryOutcome.STARTED:
        answer = {"delivery": result.delivery.pk, "outcome": result.outcome}
        if result.outcome == DeliveryOutcome.DUPLICATE:
            answer["run"] = result.run.pk if result.run is not None else None
        else:
            answer["reason"] = result.reason
        return JsonResponse(answer)
    run = result.run
    return Status(202, {"id": run.pk, "status": run.status, "admin_url": run_admin_url(run.pk),
                        "delivery": result.delivery.pk, "created": True})
