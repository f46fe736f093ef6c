"""The http step: one request, optionally with an http (or generic) connection's base URL,
headers and credentials. A step naming a connection sends only to URLs under the connection's
base_url (connections/scope.py): a literal URL elsewhere is refused at release, one built from a
reference fails the attempt as ConnectionScopeViolation, never retried, with nothing sent.

The response is streamed (`client.stream()`), never held whole: a text or JSON body of at most
WF_INLINE_OUTPUT_BYTES stays inline (JSON parsed; a non-finite number such as `1e400` is kept
and the storage rule offloads the output); a larger, binary or undecodable body is streamed into
a resource (size and SHA-256 computed on the way) and `body` is its descriptor. A body over
WF_HTTP_MAX_BYTES fails the attempt with ResponseTooLarge naming the cap; nothing is cut
silently. Every request goes out through `send()`, the one place to add an outbound policy.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
from django.conf import settings

from connections.outbound import is_internal
from connections.scope import is_absolute, join_url, url_scope_problem
from resources.models import ResourceKind
from resources.payloads import describe_resource, is_json_type
from resources.services import ResourceTooLarge
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


class ResponseTooLarge(StepFailed):
    """The response body passed WF_HTTP_MAX_BYTES; nothing of it was kept. Not retried: the
    same response would come back."""

    def __init__(self, message: str):
        super().__init__(message, error_type="ResponseTooLarge", retryable=False)


TEXT_TYPES = ("text/", "application/xml", "application/javascript", "application/x-www-form")
PREVIEW_BYTES = 800
READ_BYTES = 64 * 1024


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
    input_keys = frozenset({"request"})

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
        """A literal absolute URL the outbound policy refuses (connections/outbound.py), or
        outside the named connection's base_url (one query). A URL built from a reference is
        checked when it is sent."""
        from connections.models import Connection

        name = step.get("connection")
        request = step.get("request")
        url = request.get("url") if isinstance(request, dict) else None
        if not isinstance(url, str) or "{{" in url or not is_absolute(url):
            return []
        refused = http_policy.url_problem(url, names=False)
        if refused:
            return [problem(f"{path}.request.url", f"refused by the outbound policy: {refused}")]
        if not isinstance(name, str) or not name:
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
        traceparent = getattr(ctx, "traceparent", None)
        if traceparent and not any(k.lower() == "traceparent" for k in headers):
            # The attempt's span (ops.tracing); with the httpx instrumentation installed, the
            # client span's, its child, replaces it as the request goes out.
            headers["traceparent"] = traceparent
            tracestate = getattr(ctx, "tracestate", None)
            if tracestate and not any(k.lower() == "tracestate" for k in headers):
                headers["tracestate"] = tracestate
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
            with send(method, url, auth=auth, timeout=timeout, **kwargs) as response:
                body, size = read_body(ctx, response, what=f"{method} {url}")
        except httpx.HTTPError as exc:
            raise StepFailed(send_error(exc, method=method, url=url),
                             error_type=type(exc).__name__) from None
        output = {"status": response.status_code, "headers": dict(response.headers), "body": body}
        ctx.log(f"-> {response.status_code} ({size} bytes)\n")
        accepted = ctx.step.get("accept_statuses") or []
        if (response.status_code >= 400 and ctx.step.get("fail_on_status", True)
                and response.status_code not in accepted):
            raise StepFailed(f"HTTP {response.status_code} from {method} {url}",
                             error_type="HTTPStatusError", output=output)
        return StepOutcome.completed(output)


@contextlib.contextmanager
def send(method: str, url: str, *, auth: Any, timeout: float,
         **kwargs: Any) -> Iterator[httpx.Response]:
    """The one place an http step's request goes out: the response is open for streaming
    inside the block (headers read, body not yet). Redirects are not followed. The outbound
    address policy (http_policy) checks the destination before anything is sent."""
    with httpx.Client(auth=auth, timeout=timeout,
                      event_hooks=http_policy.EVENT_HOOKS) as client, \
            client.stream(method, url, **kwargs) as response:
        yield response


def send_error(exc: httpx.HTTPError, *, method: str, url: str) -> str:
    """The recorded message of a request that got no answer. For an internal target (loopback,
    private, link-local, or a name that does not resolve publicly) the transport's own text
    ("Connection refused", a timeout) is left out: run readers must not learn which internal
    ports answer."""
    name = type(exc).__name__
    try:
        parsed = httpx.URL(url)
        internal = is_internal(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
    except (httpx.InvalidURL, ValueError):
        internal = True
    if internal:
        return f"{name}: {method} {url} got no answer (details withheld: not a public address)"
    return f"{name}: {exc}"


def _is_text_type(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return not base or is_json_type(base) or base.startswith(TEXT_TYPES)


def _text_of(data: bytes, encoding: str, *, final: bool = True) -> str | None:
    """`data` decoded strictly, or None when it is not text a database column can hold
    (undecodable, or holding NUL or other control bytes than whitespace). With `final=False`
    `data` is a prefix: a character cut at its end is not an error."""
    try:
        text = codecs.getincrementaldecoder(encoding or "utf-8")().decode(data, final)
    except (UnicodeDecodeError, LookupError):
        return None
    if any(ch < " " and ch not in "\t\n\r\f" for ch in text):
        return None
    return text


def read_body(ctx: StepContext, response: httpx.Response, *, what: str) -> tuple[Any, int]:
    """(body, size in bytes): inline text or parsed JSON up to WF_INLINE_OUTPUT_BYTES, else the
    descriptor of a resource the body was streamed into (see the module docstring)."""
    cap = int(settings.WF_HTTP_MAX_BYTES)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise ResponseTooLarge(f"the response to {what} is {int(declared)} bytes, more than "
                               f"the cap of {cap} bytes (WF_HTTP_MAX_BYTES); nothing was kept")
    limit = int(settings.WF_INLINE_OUTPUT_BYTES)
    content_type = response.headers.get("content-type", "")
    chunks = response.iter_bytes(READ_BYTES)
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) > limit:
            break
    whole = len(head) <= limit
    if whole and not head:
        return None, 0
    text = _text_of(head, response.charset_encoding or "utf-8") \
        if whole and _is_text_type(content_type) else None
    if text is not None:
        try:
            return json.loads(text), len(head)  # 1e400 → inf: the storage rule offloads it
        except ValueError:
            return text, len(head)
    reason = "size" if _text_of(head[:PREVIEW_BYTES * 2], "utf-8", final=False) is not None \
        and _is_text_type(content_type) else "binary"
    try:
        stored = ctx.resource_store(
            content=itertools.chain([head], chunks), name=_file_name(response),
            content_type=content_type or "application/octet-stream", max_bytes=cap,
            max_bytes_setting="WF_HTTP_MAX_BYTES", kind=ResourceKind.VALUE)
    except ResourceTooLarge as exc:
        raise ResponseTooLarge(f"the response to {what} is larger than the cap of "
                               f"{exc.limit} bytes (WF_HTTP_MAX_BYTES); nothing was "
                               f"kept") from None
    return describe_resource(stored, preview=_preview(head) if reason == "size" else None,
                             reason=reason), stored.size


def _preview(head: bytes) -> str:
    text = head[:PREVIEW_BYTES].decode("utf-8", "ignore")[:200]
    return text + "…"


def _file_name(response: httpx.Response) -> str:
    name = response.url.path.rsplit("/", 1)[-1] or "response"
    return f"body-{name}"[:200]


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
