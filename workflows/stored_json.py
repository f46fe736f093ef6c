"""Reading JSON columns that hold values from outside, whatever a row holds.

A run's input and trigger payload come from callers. The services keep them to what both
databases store (`validate_run_input`, the webhook's storage rule), but a row written before
those rules, by a restore or by hand can hold what Python cannot read back as it is: an
integer past the 4,300-digit conversion limit (ValueError), nesting past the recursion limit
(RecursionError), an unpaired surrogate (SQLite keeps the `\\ud800` escape; decoded, it makes
every page that shows it fail to encode as UTF-8). Django's JSONField only survives
`JSONDecodeError`; every other error made each page listing the row a 500.

`StoredJSONDecoder` is the decoder of those columns: an unreadable value is read as
`{"$unreadable": <why>, "preview": <the first 200 characters of the stored text>}`, and unpaired
surrogates as U+FFFD (as `storable_text` does for logs). Text that is not JSON at all is left to
Django (it returns the text).
"""

from __future__ import annotations

import json
import re
from typing import Any

UNREADABLE = "$unreadable"
PREVIEW_CHARS = 200
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def utf8_encodable(text: str) -> bool:
    """Whether `text` encodes to UTF-8 (no unpaired surrogate)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _repaired(text: str) -> str:
    """`text` with each unpaired surrogate replaced by U+FFFD (pairs are joined)."""
    if utf8_encodable(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def without_lone_surrogates(value: Any) -> Any:
    """`value` with every string and key repaired (`_repaired`), in place where it can be;
    walked without recursion, so any depth the decoder produced is fine."""
    if isinstance(value, str):
        return _repaired(value)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            for index, child in enumerate(item):
                if isinstance(child, str):
                    item[index] = _repaired(child)
                elif isinstance(child, list | dict):
                    stack.append(child)
        elif isinstance(item, dict):
            entries = list(item.items())
            item.clear()
            for key, child in entries:
                if isinstance(child, str):
                    child = _repaired(child)
                elif isinstance(child, list | dict):
                    stack.append(child)
                item[_repaired(key)] = child
    return value


class StoredJSONDecoder(json.JSONDecoder):
    """The decoder of JSON columns whose rows may hold anything (see the module docstring)."""

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        try:
            value = super().decode(s, *args, **kwargs)
        except json.JSONDecodeError:
            raise  # not JSON: Django's JSONField returns the stored text
        except (ValueError, RecursionError) as exc:
            reason = ("nested too deeply to read" if isinstance(exc, RecursionError)
                      else f"cannot be read: {str(exc).split(';')[0]}")
            return {UNREADABLE: reason, "preview": s[:PREVIEW_CHARS]}
        if _SURROGATE_ESCAPE.search(s):
            value = without_lone_surrogates(value)
        return value
