"""What makes the OpenAPI document one that validators and client generators accept.

- Operation ids: every route passes `operation_id="<entity>_<action>"` (flows_list, runs_get);
  generated clients name their functions after them, so they are public names
  (tests/api/test_openapi_document.py pins them). A route without one falls back to its view
  function's name, which the test then holds to the same form.
- Errors: `errors(...)` declares the error document (ErrorOut, the one problem shape) for the
  statuses every operation may answer, plus the ones an operation adds (409, 410, 429).
- `finish_document` repairs what django-ninja writes and OpenAPI 3.1 refuses or misstates:
  a parameter's `examples` list (a Parameter Object wants a map of Example Objects; the list
  stays inside the parameter's schema), and an optional JSON body or query parameter typed
  `X | null` (the server refuses a `null` body with a 422, and a query string cannot carry a
  null: the value is X or absent).
"""

from __future__ import annotations

import re
from typing import Any

from workflows.api.schemas import ErrorOut

OPERATION_ID_RE = re.compile(r"^[a-z]+(?:_[a-z]+)+$")

# What any operation may answer: bad input (400, also a NUL in the URL), a missing object (404),
# a body too large (413), a body that is not JSON (415, where the JSON guard reads the body),
# invalid parameters or body (422).
COMMON_ERRORS = (400, 404, 413, 422)
JSON_BODY_ERRORS = (415,)
# What an authenticated operation adds: no or a bad token (401), no permission (403).
AUTH_ERRORS = (401, 403)
# What an anonymous, rate-limited operation adds.
ANON_ERRORS = (429,)


def errors(*extra: int, anonymous: bool = False, json_body: bool = True) -> dict[int, Any]:
    """The error responses of an operation: the common ones, those of its authentication and
    body guard, and `extra` (409 conflict, 410 gone, ...); each is the one error document,
    ErrorOut."""
    statuses = (COMMON_ERRORS + (ANON_ERRORS if anonymous else AUTH_ERRORS)
                + (JSON_BODY_ERRORS if json_body else ()) + extra)
    return dict.fromkeys(sorted(set(statuses)), ErrorOut)


def _examples_map(values: list[Any]) -> dict[str, dict[str, Any]]:
    names: dict[str, dict[str, Any]] = {}
    for number, value in enumerate(values, start=1):
        name = str(value) if isinstance(value, str | int) and str(value) else f"example{number}"
        names.setdefault(name, {"value": value})
    return names


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """`anyOf: [X, null]` as X (with the outer title and description)."""
    variants = schema.get("anyOf")
    if not isinstance(variants, list) or {"type": "null"} not in variants:
        return schema
    rest = [v for v in variants if v != {"type": "null"}]
    if len(rest) != 1:
        return schema
    return {**{k: v for k, v in schema.items() if k != "anyOf"}, **rest[0]}


def _finish_operation(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        examples = parameter.get("examples")
        if isinstance(examples, list):
            parameter["examples"] = _examples_map(examples)
        # A query string cannot carry a JSON null: an optional parameter is absent or a value.
        if not parameter.get("required"):
            parameter["schema"] = _without_null(parameter.get("schema", {}))
    body = operation.get("requestBody", {})
    if not body.get("required", False):
        for media in body.get("content", {}).values():
            media["schema"] = _without_null(media.get("schema", {}))


def finish_document(document: dict[str, Any]) -> dict[str, Any]:
    """`document` made valid OpenAPI 3.1 (in place; returned for convenience)."""
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                _finish_operation(operation)
    return document
