"""A wait's callback siblings, for the remote agent it was handed to (CONTRACT.md "Remote
agents"): `POST …/callbacks/{token}/heartbeat`, `POST …/logs`, `PUT …/artifacts/{name}`.

The token in the URL is the credential (as for the callback itself). Not throttled per client
address like the other anonymous endpoints: one VM may run many agents heartbeating every few
seconds, and the token (256 bits of HMAC) cannot be guessed; an unknown token is one indexed
read. Bodies are capped per endpoint before they are read (the declared length) and while they
are read: heartbeat 16 KiB, log post 1 MiB, artifact WF_ARTIFACT_MAX_BYTES — 413 naming the
limit. The artifact body is streamed into storage, never read whole.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Status

from workflows.api.errors import (
    ApiError,
    check_request_strings,
    error_response,
    parse_json,
    read_body,
)
from workflows.api.openapi import errors
from workflows.api.params import CallbackToken
from workflows.api.schemas import AgentArtifactOut, AgentLogOut, AgentStatusOut
from workflows.services.agents import (
    HEARTBEAT_MAX_BYTES,
    LOG_MAX_BYTES,
    agent_artifact,
    agent_heartbeat,
    agent_log,
    artifact_name_check,
    log_text,
)

router = Router(tags=["remote agents"], auth=None)

# No per-address throttle: one VM may run many agents (docs/architecture.md).
ERRORS = errors(409, 410, anonymous=True, json_body=False)


def guard(run):
    """URL sanity (no NUL or unpaired surrogates in the path) before anything else."""

    @wraps(run)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any):
        try:
            check_request_strings(request, kwargs)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message, exc.details)
        return run(request, *args, **kwargs)

    return wrapper


router.add_decorator(guard, mode="view")


def _capped(request: HttpRequest, limit: int, what: str) -> bytes:
    try:
        return read_body(request, limit)
    except ApiError as exc:
        if exc.status == 413:
            raise ApiError(413, "payload_too_large",
                           f"{what} is larger than its limit of {limit} bytes") from None
        raise


@router.post(
    "/callbacks/{token}/heartbeat", response={200: AgentStatusOut, **ERRORS},
    summary="A remote agent's heartbeat: message, progress, usage (410 once the wait ended)",
    operation_id="callbacks_heartbeat",
)
def callbacks_heartbeat(request: HttpRequest, token: CallbackToken):
    body = _capped(request, HEARTBEAT_MAX_BYTES, "a heartbeat")
    agent_heartbeat(token=token, payload=parse_json(body) if body.strip() else {})
    return Status(200, {"status": "waiting"})


@router.post(
    "/callbacks/{token}/logs", response={200: AgentLogOut, **ERRORS},
    summary="Append text to the wait's log as stream `remote` (410 once the wait ended)",
    operation_id="callbacks_logs",
)
def callbacks_logs(request: HttpRequest, token: CallbackToken):
    body = _capped(request, LOG_MAX_BYTES, "a log post")
    seq = agent_log(token=token, text=log_text(body, request.content_type or ""))
    return Status(200, {"status": "waiting", "seq": seq})


@router.put(
    "/callbacks/{token}/artifacts/{name}", response={201: AgentArtifactOut, **ERRORS},
    summary="Stream an artifact into a res:// resource (410 once the wait ended)",
    operation_id="callbacks_artifact",
)
def callbacks_artifact(request: HttpRequest, token: CallbackToken, name: str):
    artifact_name_check(name)
    limit = int(settings.WF_ARTIFACT_MAX_BYTES)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, "bad_request", "invalid Content-Length header") from None
    if declared > limit:
        raise ApiError(413, "payload_too_large",
                       f"the artifact is larger than WF_ARTIFACT_MAX_BYTES ({limit} bytes)")
    descriptor = agent_artifact(token=token, name=name, content=request,
                                content_type=request.headers.get("Content-Type") or "")
    return Status(201, {"uri": descriptor["$resource"], "size": descriptor["size"],
                        "sha256": descriptor["sha256"],
                        "content_type": descriptor["content_type"]})
