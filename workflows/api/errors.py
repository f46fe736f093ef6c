"""The one place domain errors become HTTP statuses, and the guards every request passes first.

Every error body is `{"error": {"code", "message", "details": [{path, message}]}}`. Bad input of
any kind (malformed JSON, wrong content type, values PostgreSQL cannot store, bodies that are too
large) is a 4xx, never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig
from django.db import DataError, IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError

from resources.payloads import json_loads_strict, json_storage_problems
from workflows.errors import WorkflowError

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


def inbound_max_bytes() -> int:
    """The cap of a callback or webhook body: WF_INBOUND_MAX_BYTES (read per request)."""
    return int(settings.WF_INBOUND_MAX_BYTES)
JSON_CONTENT_TYPES = ("application/json",)


class ApiError(Exception):
    """An error the API itself raises (bad cursor, bad query value, body too large)."""

    def __init__(self, status: int, code: str, message: str,
                 details: list[dict[str, str]] | None = None):
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        super().__init__(message)


def bad_request(message: str, details: list[dict[str, str]] | None = None) -> ApiError:
    return ApiError(400, "bad_request", message, details)


def invalid(path: str, message: str) -> ApiError:
    return ApiError(422, "validation_error", f"{path}: {message}",
                    [{"path": path, "message": message}])


def error_body(code: str, message: str, details: list[dict[str, str]] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or []}}


def error_response(status: int, code: str, message: str,
                   details: list[dict[str, str]] | None = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


_HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 410: "gone", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "throttled",
}


def _validation_details(errors: list[dict[str, Any]]) -> list[dict[str, str]]:
    details = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        # ("body", "payload", "input", "x") -> "input.x"; ("query", "limit") -> "query.limit"
        if len(loc) >= 2 and loc[0] == "body":
            loc = loc[2:] or loc[1:]
        details.append({"path": ".".join(loc) or "(body)", "message": str(error.get("msg", ""))})
    return details


def describe(exc: Exception) -> tuple[int, str, str, list[dict[str, str]]]:
    """(status, code, message, details) for an exception. A domain error carries its own status
    and code (`workflows.errors.WorkflowError`); what remains are the API's own errors and the
    framework's (Django, Ninja, the database)."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.message, exc.details
    if isinstance(exc, WorkflowError):
        return exc.http_status, exc.code, str(exc) or exc.default_message, exc.details
    if isinstance(exc, ValidationError):
        details = _validation_details(exc.errors)
        summary = "; ".join(f"{d['path']}: {d['message']}" for d in details[:5])
        return 422, "validation_error", f"the request is invalid: {summary}", details
    if isinstance(exc, ObjectDoesNotExist | Http404):
        return 404, "not_found", str(exc) or "not found", []
    if isinstance(exc, AuthenticationError):
        message = exc.message
        if message == "Unauthorized":
            message = "authentication required: send `Authorization: Bearer <token>`"
        return 401, "unauthorized", message, []
    if isinstance(exc, Throttled):
        return 429, "throttled", "too many requests; slow down", []
    if isinstance(exc, HttpError):
        status = exc.status_code
        return status, _HTTP_CODES.get(status, "error"), exc.message, []
    if isinstance(exc, RequestDataTooBig):
        return 413, "payload_too_large", "the request body is too large", []
    if isinstance(exc, IntegrityError):
        logger.warning("integrity error answered with 409: %s", exc)
        return 409, "conflict", "the request conflicts with the current state; retry", []
    if isinstance(exc, DataError):
        logger.warning("data error answered with 400: %s", exc)
        return 400, "bad_request", "the database refused a value of this request", []
    logger.exception("unhandled error in the API", exc_info=exc)
    return 500, "internal_error", "internal server error", []


def handle_exception(request: HttpRequest, exc: Exception, *, api) -> HttpResponse:
    status, code, message, details = describe(exc)
    return api.create_response(request, error_body(code, message, details), status=status)


# --- guards -------------------------------------------------------------------------------------


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN, Infinity or numbers beyond a float (`1e400`). Raises ApiError(400)
    on malformed input."""
    try:
        return json_loads_strict(body)
    except (ValueError, RecursionError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc}") from None


def unstorable_strings(value: Any) -> list[dict[str, str]]:
    """Problems with strings in a parsed body that the database could not store."""
    return json_storage_problems(value)


def _storable(text: str) -> bool:
    return not json_storage_problems(text)


def read_body(request: HttpRequest, max_bytes: int) -> bytes:
    """The raw body, refusing (413) anything over `max_bytes` before reading it when the length
    is declared."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        length = int(declared)
    except ValueError:
        raise bad_request("invalid Content-Length header") from None
    if length > max_bytes:
        raise ApiError(413, "payload_too_large",
                       f"the request body is larger than {max_bytes} bytes")
    try:
        body = request.body
    except RequestDataTooBig:
        raise ApiError(413, "payload_too_large",
                       f"the request body is larger than {max_bytes} bytes") from None
    if len(body) > max_bytes:
        raise ApiError(413, "payload_too_large",
                       f"the request body is larger than {max_bytes} bytes")
    return body


def check_request_strings(request: HttpRequest, kwargs: dict[str, Any]) -> None:
    texts = [request.path] + [str(v) for v in kwargs.values() if isinstance(v, str)]
    for key, values in request.GET.lists():
        texts.append(key)
        texts.extend(values)
    for text in texts:
        if not _storable(text):
            raise bad_request("the URL must not contain NUL characters or unpaired surrogates")


def request_guard(*, max_bytes: int | Callable[[], int], json_body: bool) -> Callable:
    """An operation decorator: size cap (a number, or a function read per request), URL
    sanity, and (for `json_body`) the content type and a strict JSON parse of the body, before
    authentication and parameter parsing."""

    def decorator(run: Callable) -> Callable:
        @wraps(run)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                check_request_strings(request, kwargs)
                body = read_body(request, max_bytes() if callable(max_bytes) else max_bytes)
                if json_body and body.strip():
                    content_type = request.content_type or ""
                    if content_type not in JSON_CONTENT_TYPES and not content_type.endswith(
                        "+json"
                    ):
                        raise ApiError(415, "unsupported_media_type",
                                       "send the body as JSON with Content-Type: "
                                       "application/json")
                    document = parse_json(body)
                    if not isinstance(document, dict):
                        raise ApiError(422, "validation_error", "the body must be a JSON object",
                                       [{"path": "(body)", "message": "must be a JSON object"}])
                    problems = unstorable_strings(document)
                    if problems:
                        raise ApiError(422, "validation_error",
                                       "the body holds strings that cannot be stored", problems)
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message, exc.details)
            return run(request, *args, **kwargs)

        return wrapper

    return decorator
