from __future__ import annotations

import json
from typing import Any

import httpx

from workflows.steps.base import (
    Problem,
    StepContext,
    StepFailed,
    StepOutcome,
    StepType,
    problem,
    register_step_type,
)

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
MAX_BODY_BYTES = 1_000_000


def connection_request_settings(config: dict[str, Any], secret: dict[str, Any]) -> dict[str, Any]:
    """Base URL, headers and auth for an http connection.

    config: {base_url, headers, auth: bearer|basic|header, auth_header}; secret: {token} for
    bearer and header auth, {username, password} for basic.
    """
    headers = dict(config.get("headers") or {})
    auth = None
    kind = config.get("auth")
    if kind == "bearer" and secret.get("token"):
        headers["Authorization"] = f"Bearer {secret['token']}"
    elif kind == "header" and secret.get("token"):
        headers[config.get("auth_header") or "X-API-Key"] = secret["token"]
    elif kind == "basic":
        auth = (secret.get("username") or config.get("username") or "", secret.get("password", ""))
    return {"base_url": config.get("base_url", ""), "headers": headers, "auth": auth}


@register_step_type
class HttpStep(StepType):
    """One HTTP request. Output: {status, headers, body} (body parsed when it is JSON)."""

    name = "http"
    connection_kinds = frozenset({"http", "generic"})
    param_keys = frozenset({"request", "connection", "fail_on_status", "accept_statuses"})

    def validate(self, step: dict[str, Any], path: str) -> list[Problem]:
        problems = super().validate(step, path)
        request = step.get("request")
        if not isinstance(request, dict):
            return problems + [problem(f"{path}.request", "required: {method, url, ...}")]
        method = str(request.get("method", "GET")).upper()
        if method not in METHODS:
            problems.append(problem(f"{path}.request.method", f"must be one of {sorted(METHODS)}"))
        if not isinstance(request.get("url"), str) or not request.get("url"):
            problems.append(problem(f"{path}.request.url", "required"))
        for key in ("headers", "params"):
            if key in request and not isinstance(request[key], dict):
                problems.append(problem(f"{path}.request.{key}", "must be a mapping"))
        unknown = set(request) - {"method", "url", "headers", "params", "json", "body"}
        problems += [problem(f"{path}.request.{k}", "unknown request field") for k in sorted(unknown)]
        if "fail_on_status" in step and not isinstance(step["fail_on_status"], bool):
            problems.append(problem(f"{path}.fail_on_status", "must be true or false"))
        return problems

    def execute(self, ctx: StepContext) -> StepOutcome:
        request = ctx.step["request"]
        base_url, headers, auth = "", {}, None
        name = ctx.step.get("connection")
        if name:
            conn = ctx.connections[name]
            prepared = connection_request_settings(conn["config"], ctx.secret(name))
            base_url, headers, auth = prepared["base_url"], prepared["headers"], prepared["auth"]
        headers.update(request.get("headers") or {})
        method = str(request.get("method", "GET")).upper()
        url = request["url"]
        timeout = float(ctx.step.get("timeout_seconds") or 30)
        ctx.log(f"{method} {url}\n")
        kwargs: dict[str, Any] = {"headers": headers, "params": request.get("params")}
        if "json" in request:
            kwargs["json"] = request["json"]
        elif "body" in request:
            body = request["body"]
            kwargs["content"] = body if isinstance(body, str) else json.dumps(body)
        try:
            with httpx.Client(base_url=base_url, auth=auth, timeout=timeout) as client:
                response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise StepFailed(f"{type(exc).__name__}: {exc}", error_type=type(exc).__name__) from exc
        content = response.content[:MAX_BODY_BYTES]
        body: Any
        try:
            body = json.loads(content) if content else None
        except ValueError:
            body = content.decode(response.encoding or "utf-8", errors="replace")
        output = {"status": response.status_code, "headers": dict(response.headers), "body": body}
        ctx.log(f"-> {response.status_code} ({len(response.content)} bytes)\n")
        accepted = ctx.step.get("accept_statuses") or []
        if (response.status_code >= 400 and ctx.step.get("fail_on_status", True)
                and response.status_code not in accepted):
            raise StepFailed(f"HTTP {response.status_code} from {method} {url}",
                             error_type="HTTPStatusError", output=output)
        return StepOutcome.completed(output)
