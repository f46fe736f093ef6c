"""Path and query parameter types whose OpenAPI schema says what the server accepts.

Each is `Annotated[<python type>, WithJsonSchema(...)]`: the schema describes the value exactly
(patterns, lengths, ranges), while the handlers keep answering as they always did (a slug that
cannot exist is a 404 from the lookup, not a 422 from the parameter parser). Nothing here changes
what the server accepts; it only tells generated clients and schemathesis the truth.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import WithJsonSchema

from connections.validation import NAME_MAX_LENGTH as CONNECTION_NAME_MAX
from workflows.definitions.base import MAX_SLUG_LENGTH, MAX_STEP_KEY_LENGTH

MAX_ID = 2**63 - 1
MAX_VERSION = 2**31 - 1

SLUG_PATTERN = rf"^[a-z0-9][a-z0-9-]{{0,{MAX_SLUG_LENGTH - 1}}}$"
STEP_KEY_PATTERN = r"^[a-z0-9_]+$"
CONNECTION_NAME_PATTERN = r"^[a-z0-9][a-z0-9-_]*$"
# base64url without padding (pagination.encode_cursor); anything else is a 400.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"
# base64url of an HMAC-SHA256 digest without padding (engine.callback_tokens.callback_token).
CALLBACK_TOKEN_PATTERN = r"^[A-Za-z0-9_-]{43}$"
# flows.diff `_version`: 3, v3, live or draft (any case, surrounding whitespace ignored).
VERSION_LABEL_PATTERN = r"^\s*(?:[vV]?[0-9]{1,9}|[lL][iI][vV][eE]|[dD][rR][aA][fF][tT])\s*$"
# runs.compare: a run id or last_good (surrounding whitespace ignored).
COMPARE_TARGET_PATTERN = r"^\s*(?:[0-9]+|last_good)\s*$"


def _string(pattern: str, description: str, *, max_length: int | None = None,
            examples: list[str] | None = None) -> WithJsonSchema:
    schema: dict = {"type": "string", "pattern": pattern, "description": description}
    if max_length is not None:
        schema["maxLength"] = max_length
    if examples:
        schema["examples"] = examples
    return WithJsonSchema(schema)


def _id(description: str, maximum: int = MAX_ID) -> WithJsonSchema:
    return WithJsonSchema({"type": "integer", "minimum": 1, "maximum": maximum,
                           "description": description})


FlowSlug = Annotated[str, _string(SLUG_PATTERN, "The flow's slug.", max_length=MAX_SLUG_LENGTH,
                                  examples=["simple"])]
StepKey = Annotated[str, _string(STEP_KEY_PATTERN, "The step's key.",
                                 max_length=MAX_STEP_KEY_LENGTH, examples=["first"])]
ConnectionName = Annotated[str, _string(CONNECTION_NAME_PATTERN, "The connection's name.",
                                        max_length=CONNECTION_NAME_MAX,
                                        examples=["reports-api"])]
CallbackToken = Annotated[str, _string(CALLBACK_TOKEN_PATTERN,
                                       "The token of the wait step's callback URL.")]
RunId = Annotated[int, _id("The run's id.")]
ApprovalId = Annotated[int, _id("The approval's id.")]
ReleaseNumber = Annotated[int, _id("The release number.", MAX_VERSION)]
Cursor = Annotated[str | None, WithJsonSchema({
    "type": "string", "pattern": CURSOR_PATTERN,
    "description": "The next_cursor of the previous page (opaque); a cursor the server did "
                   "not issue is a 400."})]
Limit = Annotated[int, WithJsonSchema({
    "type": "integer", "default": 50,
    "description": "Page size; values out of range are clamped (any integer is accepted)."})]
VersionLabel = Annotated[str, _string(
    VERSION_LABEL_PATTERN, "A release number (3 or v3), live or draft.", max_length=20,
    examples=["1", "v1", "live", "draft"])]
CompareTarget = Annotated[str, _string(
    COMPARE_TARGET_PATTERN, "A run id, or last_good (the newest completed run before it).",
    max_length=30, examples=["last_good", "1"])]
