"""A wait's callback siblings, for the remote agent it was handed to (CONTRACT.md "Remote
agents"): `POST …/callbacks/{token}/heartbeat`, `POST …/logs`, `PUT …/artifacts/{name}`.

The token in the URL is the credential (as for the callback itself). Not throttled per client
address like the other anonymous endpoints: one VM may run many agents heartbeating every few
seconds, and the token (256 bits of HMAC) cannot be guessed; an unknown token is one indexed
read. Bodies are capped per endpoint before they are read (the declared length) and while they
are read: heartbeat 16 KiB, log post 1 MiB, artifact WF_ARTIFACT_MAX_BYTES — 413 naming the
limit. The artifact body is streamed into storage, never read whole.

These routes declare the operations for the OpenAPI document; requests to them are answered by
`workflows.api.agent_callbacks` (a middleware ahead of the session, CSRF and authentication
middleware: the lean path), and by the same `answer` here if that middleware is not installed.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from workflows.api.agent_callbacks import ARTIFACT, HEARTBEAT, LOGS, answer
from workflows.api.openapi import errors
from workflows.api.params import CallbackToken
from workflows.api.schemas import AgentArtifactOut, AgentLogOut, AgentStatusOut

router = Router(tags=["remote agents"], auth=None)

# No per-address throttle: one VM may run many agents (docs/architecture.md).
ERRORS = errors(409, 410, anonymous=True, json_body=False)


@router.post(
    "/callbacks/{token}/heartbeat", response={200: AgentStatusOut, **ERRORS},
    summary="A remote agent's heartbeat: message, progress, usage (410 once the wait ended)",
    operation_id="callbacks_heartbeat",
)
def callbacks_heartbeat(request: HttpRequest, token: CallbackToken):
    return answer(request, HEARTBEAT, token)


@router.post(
    "/callbacks/{token}/logs", response={200: AgentLogOut, **ERRORS},
    summary="Append text to the wait's log as stream `remote` (410 once the wait ended)",
    operation_id="callbacks_logs",
)
def callbacks_logs(request: HttpRequest, token: CallbackToken):
    return answer(request, LOGS, token)


@router.put(
    "/callbacks/{token}/artifacts/{name}", response={201: AgentArtifactOut, **ERRORS},
    summary="Stream an artifact into a res:// resource (410 once the wait ended)",
    operation_id="callbacks_artifact",
)
def callbacks_artifact(request: HttpRequest, token: CallbackToken, name: str):
    return answer(request, ARTIFACT, token, name)
