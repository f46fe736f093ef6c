"""The lean path of a wait's callback siblings (CONTRACT.md "Remote agents"): `POST
…/callbacks/{token}/heartbeat`, `POST …/logs`, `PUT …/artifacts/{name}`.

Agents heartbeat every few seconds, a few hundred of them on one platform: the web tier's CPU
per heartbeat is what the workers lose (docs/performance.md, issue 20). Through Django's whole
middleware stack (CSP, sessions, CSRF, authentication, messages, htmx, time zones) and
django-ninja's routing, parameter parsing and rendering, a heartbeat cost the web server about
1.5 ms of CPU more than this path (bench/agents.py --http). So `AgentCallbackMiddleware`, placed
in MIDDLEWARE right after SecurityMiddleware, answers exactly these three URLs and methods itself
and hands every other request on untouched. What it keeps of the stack: Django's handler
(request_started/finished: connections are closed and recycled as for any request, a crash is
a logged 500), the ALLOWED_HOSTS check, SecurityMiddleware's headers (nosniff, referrer policy,
HSTS behind TLS) set on the way out, and the refusal counting of `ops.middleware.InboundRefusalMiddleware` (called directly here, with the
error code known). What it leaves out is what an anonymous, token-authenticated POST of JSON
never used: no session, no cookie, no CSRF (the Ninja routes are `auth=None` and CSRF-exempt
too), no user, and no Content-Security-Policy header (a policy for documents; these answers are
JSON no browser renders).

The answers are the Ninja routes' answers (`workflows/api/agents.py` declares them for the
OpenAPI document and calls `answer` below, so there is one implementation): 200/201 bodies,
404 `callback_unknown`, 410 `callback_expired`, 400 naming the field, 409 `wait_not_reached`,
413 naming the limit, all in the API's error shape (`errors.describe`). Another method on these
URLs, or a path that is not one of the three (an artifact name with a slash), goes on to Django
and Ninja as before (405, 404).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from ops.services import refusal_record
from workflows.api.errors import (
    ApiError,
    check_request_strings,
    describe,
    error_response,
    parse_json,
    read_body,
)
from workflows.api.params import CALLBACK_TOKEN_PATTERN
from workflows.errors import CallbackUnknown
from workflows.services.agents import (
    HEARTBEAT_MAX_BYTES,
    LOG_MAX_BYTES,
    agent_artifact,
    agent_heartbeat,
    agent_log,
    artifact_name_check,
    log_text,
)

logger = logging.getLogger(__name__)

PREFIX = "/api/v1/callbacks/"
_SIBLING = re.compile(r"/api/v1/callbacks/([^/]+)/(?:(heartbeat|logs)|artifacts/([^/]+))\Z")
_TOKEN = re.compile(CALLBACK_TOKEN_PATTERN)
_WAITING = b'{"status": "waiting"}'
HEARTBEAT, LOGS, ARTIFACT = "heartbeat", "logs", "artifact"
METHODS = {HEARTBEAT: "POST", LOGS: "POST", ARTIFACT: "PUT"}


class AgentCallbackMiddleware:
    """Answers the three sibling URLs (their own method only); everything else goes on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path.startswith(PREFIX):
            match = _SIBLING.match(path)
            if match is not None:
                token, what, name = match.groups()
                kind = what or ARTIFACT
                if request.method == METHODS[kind]:
                    request.get_host()  # ALLOWED_HOSTS (DisallowedHost: Django's 400)
                    return answer(request, kind, token, name)
        return self.get_response(request)


def answer(request: HttpRequest, kind: str, token: str, name: str | None = None) -> HttpResponse:
    """The answer to a heartbeat, a log post or an artifact upload; a refusal is counted for
    /metrics (`workflows_inbound_refusals_total{endpoint="callback"}`)."""
    try:
        return _serve(request, kind, token, name)
    except Exception as exc:  # noqa: BLE001 - every error gets the API's shape, as in Ninja
        status, code, message, details = describe(exc)
    if 400 <= status < 500:
        try:
            refusal_record(endpoint="callback", code=code)
        except Exception:  # counting must never turn a refusal into a 500
            logger.exception("could not count a refused callback request")
    return error_response(status, code, message, details)


def _serve(request: HttpRequest, kind: str, token: str, name: str | None) -> HttpResponse:
    check_request_strings(request, {"token": token, "name": name or ""})
    if kind == ARTIFACT:
        artifact_name_check(name or "")
    if not _TOKEN.match(token):
        raise CallbackUnknown("unknown callback token")
    traceparent = request.META.get("HTTP_TRACEPARENT")
    if kind == HEARTBEAT:
        body = _capped(request, HEARTBEAT_MAX_BYTES, "a heartbeat")
        agent_heartbeat(token=token, payload=parse_json(body) if body.strip() else {},
                        traceparent=traceparent)
        return _json(_WAITING)
    if kind == LOGS:
        body = _capped(request, LOG_MAX_BYTES, "a log post")
        seq = agent_log(token=token, text=log_text(body, request.content_type or ""),
                        traceparent=traceparent)
        return _json(b'{"status": "waiting", "seq": %d}' % seq)
    return _artifact(request, token, name or "")


def _json(content: bytes) -> HttpResponse:
    """A JSON answer with its Content-Length (CommonMiddleware, which would set it, is not on
    this path; without it gunicorn sends the body chunked)."""
    response = HttpResponse(content, content_type="application/json")
    response["Content-Length"] = str(len(content))
    return response


def _capped(request: HttpRequest, limit: int, what: str) -> bytes:
    try:
        return read_body(request, limit)
    except ApiError as exc:
        if exc.status == 413:
            raise ApiError(413, "payload_too_large",
                           f"{what} is larger than its limit of {limit} bytes") from None
        raise


def _artifact(request: HttpRequest, token: str, name: str) -> HttpResponse:
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
    return JsonResponse({"uri": descriptor["$resource"], "size": descriptor["size"],
                         "sha256": descriptor["sha256"],
                         "content_type": descriptor["content_type"]}, status=201)
