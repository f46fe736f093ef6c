"""The http step: one request, optionally with an http (or generic) connection's base URL,
headers and credentials. A step naming a connection sends only to URLs under the connection's
base_url (connections/scope.py): a literal URL elsewhere is refused at release, one built from a
reference fails the attempt as ConnectionScopeViolation, never retried, with nothing sent."""

from __future__ import annotations

import json
from typing import Any

import httpx

from connections.scope import is_absolute, join_url, url_scope_problem
from workflows.steps import http_policy
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
PROBE_TIMEOUT_SECONDS = 10.0


class ConnectionScopeViolation(StepFailed):
    """The request would carry a connection's credentials outside its base_url. Never retried:
    the URL would be the same; nothing was sent."""

    def __init__(self, message: str):
        super().__init__(message, error_type="ConnectionScopeViolation", retryable=False)
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

    def release_problems(self, step: dict[str, Any], path: str) -> list[Problem]:
        """A literal absolute URL outside the named connection's base_url (one query)."""
        from connections.models import Connection

        name = step.get("connection")
        request = step.get("request")
        url = request.get("url") if isinstance(request, dict) else None
        if not isinstance(name, str) or not name or not isinstance(url, str) or "{{" in url \
                or not is_absolute(url):
            return []
        row = Connection.objects.filter(name=name).values("config").first()
        if row is None:
            return []  # reported by the existence check
        base_url = (row["config"] or {}).get("base_url") or ""
        reason = url_scope_problem(join_url(base_url, url), base_url, connection=name)
        return [problem(f"{path}.request.url", reason)] if reason else []

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
        if name:
            url = join_url(base_url, url)
            if is_absolute(url):
                reason = url_scope_problem(url, base_url, connection=name)
                if reason:
                    raise ConnectionScopeViolation(reason + "; nothing was sent")
        timeout = float(ctx.step.get("timeout_seconds") or 30)
        ctx.log(f"{method} {url}\n")
        kwargs: dict[str, Any] = {"headers": headers, "params": request.get("params")}
        if "json" in request:
            kwargs["json"] = request["json"]
        elif "body" in request:
            body = request["body"]
            kwargs["content"] = body if isinstance(body, str) else json.dumps(body)
        try:
            with httpx.Client(auth=auth, timeout=timeout,
                              event_hooks=http_policy.EVENT_HOOKS) as client:
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


def probe(*, config: dict[str, Any], secret: dict[str, Any]) -> tuple[bool, str]:
    """GET the connection's base_url with its headers and credentials: (ok, "GET URL → 200").
    ok when the server answers below 400. Raises StepFailed when no answer comes."""
    prepared = connection_request_settings(config, secret)
    base_url = prepared["base_url"]
    if not base_url:
        raise StepFailed("the connection has no base_url to test", error_type="ConnectionInvalid",
                         retryable=False)
    try:
        with httpx.Client(auth=prepared["auth"], timeout=PROBE_TIMEOUT_SECONDS,
                          event_hooks=http_policy.EVENT_HOOKS) as client:
            response = client.get(base_url, headers=prepared["headers"])
    except httpx.HTTPError as exc:
        raise StepFailed(f"GET {base_url}: {type(exc).__name__}: {exc}",
                         error_type=type(exc).__name__) from None
    return response.status_code < 400, f"GET {base_url} → {response.status_code}"
