"""Cursor pagination: `{"items": [...], "next_cursor": null | "..."}`.

A cursor is opaque to clients (base64 of the last key seen); pages are keyset pages, so rows
added meanwhile never shift a page and nothing is seen twice or skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from django.db.models import QuerySet

from workflows.api.errors import bad_request

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_ID = 2**63 - 1


def clamp_limit(limit: int | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    if limit is None:
        return default
    return max(1, min(int(limit), maximum))


def encode_cursor(value: Any) -> str:
    raw = json.dumps({"k": value}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, *, kind: type) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))["k"]
    except (ValueError, KeyError, TypeError, UnicodeEncodeError, binascii.Error):
        raise bad_request("invalid cursor; use the next_cursor of a previous page") from None
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
            raise bad_request("invalid cursor; use the next_cursor of a previous page")
    elif not isinstance(value, kind):
        raise bad_request("invalid cursor; use the next_cursor of a previous page")
    return value


def keyset_page(queryset: QuerySet, *, cursor: str | None, limit: int | None, key: str = "id",
                descending: bool = True, kind: type = int) -> tuple[list[Any], str | None]:
    """One page of `queryset` ordered by `key` (unique), after `cursor`. One query."""
    size = clamp_limit(limit)
    ordered = queryset.order_by(f"-{key}" if descending else key)
    if cursor:
        last = decode_cursor(cursor, kind=kind)
        ordered = ordered.filter(**{f"{key}__{'lt' if descending else 'gt'}": last})
    rows = list(ordered[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = encode_cursor(getattr(rows[-1], key)) if more and rows else None
    return rows, next_cursor
