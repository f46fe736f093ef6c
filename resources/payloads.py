"""The storage rule: every value the engine writes is one the databases can store.

A value is written inline (a JSONField, a TextField) only when both databases can hold it and it
is small. Anything else is kept whole as a resource and replaced inline by a small descriptor:

    {"$resource": "res://<uuid>", "size": 70211, "sha256": "<hex>",
     "content_type": "application/json", "preview": "{\"items\":[{\"id\":1,…", "reason": "size"}

`reason` says why: `size` (the compact JSON is over WF_INLINE_OUTPUT_BYTES), `unstorable` (it holds
NUL, an unpaired surrogate or a non-finite number such as the `1e400` a remote JSON reply may
hold), `binary` (the value is bytes), `depth` (containers nest more than INLINE_MAX_DEPTH levels:
decoding such a row back, deep in a web request's stack, could exhaust Python's recursion limit;
the admin renders 40 levels, the definitions allow 64). `preview` is at most PREVIEW_CHARS characters of the JSON
(or of the bytes, when they are text), itself storable; null for binary content.

The resource of a JSON value is UTF-8 JSON (pure ASCII with `\\uXXXX` escapes when it holds an
unpaired surrogate). What JSON cannot say is written in tagged one-key objects, which
`value_load` reads back, so the value round-trips exactly:

    {"$float": "Infinity" | "-Infinity" | "NaN"}    a non-finite float
    {"$bytes": "<base64>"}                          bytes inside a JSON value
    {"$dict": {...}}                                a mapping of the value that itself has
                                                    exactly one key among $float/$bytes/$dict
NUL is `\\u0000` and surrogates `\\udXXX`, as JSON writes them. A value that is bytes at the top
is stored raw (content type application/octet-stream unless the caller names one).

`storable_text` is the rule for log text: it never offloads, it shows a NUL visibly (U+2400 ␀)
and replaces unpaired surrogates with U+FFFD, and never raises.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from resources.models import Resource, ResourceKind
from resources.selectors import resource_from_uri
from resources.services import resource_create
from workflows.errors import OutputNotStorable, WorkflowError
from workflows.stored_json import utf8_encodable

__all__ = [
    "DESCRIPTOR_KEYS",
    "INLINE_MAX_DEPTH",
    "OutputNotStorable",
    "ValueTooLargeToLoad",
    "describe_resource",
    "KeptValue",
    "is_descriptor",
    "json_loads_strict",
    "json_storage_problems",
    "keep_json",
    "storable_json",
    "storable_text",
    "value_load",
]

PREVIEW_CHARS = 200
INLINE_MAX_DEPTH = 64
DESCRIPTOR_KEYS = frozenset({"$resource", "size", "sha256", "content_type", "preview", "reason"})
JSON_CONTENT_TYPE = "application/json"
_TAGS = ("$float", "$bytes", "$dict")
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}
_FROM_NON_FINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}
# A `\u0000` escape that is not itself an escaped backslash followed by "u0000".
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class ValueTooLargeToLoad(WorkflowError):
    """An offloaded value is larger than what may be loaded back (WF_REFERENCE_LOAD_BYTES)."""

    code = "value_too_large"
    http_status = 422

    def __init__(self, *, uri: str, size: int, limit: int,
                 setting: str = "WF_REFERENCE_LOAD_BYTES"):
        self.uri, self.size, self.limit, self.setting = uri, size, limit, setting
        super().__init__(f"{uri} holds {size} bytes, more than the {limit} bytes a reference may "
                         f"load (raise {setting} to allow it)")


# --- text ----------------------------------------------------------------------------------------


def text_storable(text: str) -> bool:
    """Whether a text column holds `text` as it is: no NUL (PostgreSQL refuses it) and no
    unpaired surrogate (it does not encode to UTF-8)."""
    return "\x00" not in text and utf8_encodable(text)


# --- JSON from outside ----------------------------------------------------------------------


def json_loads_strict(text: str | bytes) -> Any:
    """`json.loads` for bodies from outside: NaN, Infinity and numbers too large for a float
    (`1e400`) are refused with ValueError instead of becoming non-finite floats, which no JSON
    column can store (PostgreSQL refuses them; the attempt would fail after the fact)."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large for a JSON number")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def storable_text(text: Any) -> str:
    """`text` as both databases can store it: NUL shown as U+2400 (␀), unpaired surrogates
    (including the U+DC80–U+DCFF that `surrogateescape` makes of undecodable bytes) as U+FFFD.
    Never raises; anything that is not a string is written with str() first."""
    try:
        if not isinstance(text, str):
            text = str(text)
        if text_storable(text):
            return text
        text = text.replace("\x00", "\u2400")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return text
    except Exception:  # noqa: BLE001 - log text must never stop a step
        return "\ufffd"


# --- JSON values ---------------------------------------------------------------------------------


def is_descriptor(value: Any) -> bool:
    """True for the inline stand-in of an offloaded value (see the module docstring)."""
    return (isinstance(value, dict) and isinstance(value.get("$resource"), str)
            and value["$resource"].startswith("res://") and set(value) <= DESCRIPTOR_KEYS)


def _compact(value: Any, *, ascii_only: bool = False, allow_nan: bool = False) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_only,
                      allow_nan=allow_nan)


def _has_bytes(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, bytes | bytearray | memoryview):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _has_unstorable_string(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not text_storable(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(k for k in item if isinstance(k, str))
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _tagged(value: Any) -> Any:
    """A copy of `value` with what JSON cannot say written in tagged objects."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": _NON_FINITE.get(value, "NaN")}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        mapped = {key: _tagged(item) for key, item in value.items()}
        if len(mapped) == 1 and next(iter(mapped)) in _TAGS:
            return {"$dict": mapped}
        return mapped
    if isinstance(value, list | tuple):
        return [_tagged(item) for item in value]
    return value


def _untagged(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, inner), = value.items()
            if tag == "$float" and inner in _FROM_NON_FINITE:
                return _FROM_NON_FINITE[inner]
            if tag == "$bytes" and isinstance(inner, str):
                return base64.b64decode(inner)
            if tag == "$dict" and isinstance(inner, dict):
                return {key: _untagged(item) for key, item in inner.items()}
        return {key: _untagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untagged(item) for item in value]
    return value


def _encode_offloaded(value: Any) -> bytes:
    tagged = _tagged(value)
    try:
        return _compact(tagged).encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate: escape everything, stay valid UTF-8
        return _compact(tagged, ascii_only=True).encode("ascii")


def _preview(text: str) -> str:
    cut = text[:PREVIEW_CHARS]
    return storable_text(cut + ("…" if len(text) > PREVIEW_CHARS else ""))


def _bytes_preview(data: bytes) -> str | None:
    head = data[:PREVIEW_CHARS * 4]
    text = head.decode("utf-8", "ignore") if len(head) < len(data) else None
    try:
        text = head.decode("utf-8") if text is None else text
    except UnicodeDecodeError:
        return None
    if any(ch < " " and ch not in "\t\n\r" for ch in text):
        return None
    return _preview(text[:PREVIEW_CHARS] + ("…" if len(data) > len(head) else ""))


def describe_resource(resource: Any, *, preview: str | None = None,
                      reason: str = "binary") -> dict[str, Any]:
    """The inline descriptor of a stored resource (what a step output carries in its place),
    for step types that stream content into a resource themselves (the http step's body, an
    SFTP download). `preview` is made storable here."""
    return {"$resource": resource.uri, "size": resource.size, "sha256": resource.sha256,
            "content_type": resource.content_type,
            "preview": storable_text(preview) if preview is not None else None,
            "reason": reason}


@dataclass(frozen=True)
class KeptValue:
    """A value made storable for one write from outside (a webhook delivery, a callback body),
    with the handle of the resource this write created for it, if any.

    The handle is the only thing `attach` and `discard` act on: a body is data, so a
    descriptor-shaped value inside it (`{"$resource": "res://<someone else's uuid>"}`) is stored
    as it came and never names a resource to move or delete."""

    value: Any
    resource_id: Any = None

    def attach(self, *, run: Any) -> int:
        """Give the resource this write kept before its run existed to `run`, so retention
        prunes it with the run. Returns how many were attached (0 or 1)."""
        if self.resource_id is None:
            return 0
        return Resource.objects.filter(pk=self.resource_id, run__isnull=True).update(run=run)

    def discard(self) -> None:
        """Delete the resource this write kept (row and file), because the write was refused (a
        callback that turned out used or expired, a repeated webhook delivery)."""
        if self.resource_id is None:
            return
        resource = Resource.objects.filter(pk=self.resource_id).first()
        if resource is None:
            return
        name = resource.file.name
        resource.delete()
        try:
            resource.file.storage.delete(name)
        except OSError:
            pass


def keep_json(value: Any, **options: Any) -> KeptValue:
    """`storable_json(value, **options)` with the handle of the resource it created, for a
    write that may be refused after the value was kept (see KeptValue)."""
    stored, resource = _storable(value, **options)
    return KeptValue(stored, resource.pk if resource is not None else None)


def json_storage_problems(value: Any, path: str = "", *,
                          max_depth: int = 200) -> list[dict[str, str]]:
    """Problems ({path, message}) that keep a JSON value from being stored inline as it is:
    strings or keys holding NUL (PostgreSQL refuses it in text and jsonb) or an unpaired
    surrogate (not UTF-8), non-finite numbers (no JSON column takes them), and containers
    nested more than `max_depth` levels (reading such a row back could exhaust Python's
    recursion limit). The rule for what comes from outside and is stored as given, never
    offloaded: a run's input, a request body. Walked without recursion; at most 50 listed,
    in document order."""
    problems: list[dict[str, str]] = []
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack and len(problems) < 50:
        item, where, depth = stack.pop()
        shown = where or "(body)"
        if isinstance(item, str):
            if not text_storable(item):
                problems.append({"path": shown, "message": "must not contain NUL characters "
                                                           "or unpaired surrogates"})
        elif isinstance(item, float):
            if not math.isfinite(item):
                problems.append({"path": shown, "message": "must be a finite number"})
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                problems.append({"path": shown, "message": f"nested more than {max_depth} "
                                                           "levels deep"})
                continue
            children: list[tuple[Any, str, int]] = []
            if isinstance(item, dict):
                for key, child in item.items():
                    if not text_storable(str(key)):
                        problems.append({"path": shown, "message": "keys must not contain NUL "
                                                                   "characters or unpaired "
                                                                   "surrogates"})
                        continue
                    children.append((child, f"{where}.{key}" if where else str(key),
                                     depth + 1))
            else:
                children = [(child, f"{where}[{index}]", depth + 1)
                            for index, child in enumerate(item)]
            stack.extend(reversed(children))
    return problems[:50]


def _deeper_than(value: Any, limit: int) -> bool:
    """True when `value` nests containers more than `limit` levels deep (walked without
    recursion, stopping at the first branch past the limit)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list | tuple))
    return False


def _offload(content: bytes, *, preview: str | None, reason: str, name: str, content_type: str,
             run: Any, step_run: Any, attempt: Any) -> tuple[dict[str, Any], Resource]:
    try:
        resource = resource_create(content=content, name=name, content_type=content_type,
                                   run=run, step_run=step_run, attempt=attempt,
                                   kind=ResourceKind.VALUE)
    except WorkflowError:
        raise
    except Exception as exc:  # noqa: BLE001 - storage errors vary by backend
        raise OutputNotStorable(f"{name}: the value could not be kept as a resource: "
                                f"{type(exc).__name__}: {exc}") from exc
    return describe_resource(resource, preview=preview, reason=reason), resource


def storable_json(value: Any, *, run: Any = None, step_run: Any = None, attempt: Any = None,
                  name: str = "value.json", content_type: str = "",
                  limit: int | None = None) -> Any:
    """`value` if both databases can store it inline and its compact JSON is at most `limit`
    bytes (WF_INLINE_OUTPUT_BYTES), else the descriptor of a resource that keeps it whole.

    Call it outside any transaction that holds locks (storing a resource may take a while) and
    after redaction (the resource keeps what it is given). `run`, `step_run` and `attempt` are
    attached to the resource, so retention prunes it with its run; `name` is what a download is
    called. Raises OutputNotStorable when neither is possible (not JSON, circular or nested
    deeper than Python's JSON encoder goes, or the storage failed).
    """
    return _storable(value, run=run, step_run=step_run, attempt=attempt, name=name,
                     content_type=content_type, limit=limit)[0]


def _storable(value: Any, *, run: Any = None, step_run: Any = None, attempt: Any = None,
              name: str = "value.json", content_type: str = "",
              limit: int | None = None) -> tuple[Any, Resource | None]:
    limit = settings.WF_INLINE_OUTPUT_BYTES if limit is None else limit
    where = {"run": run, "step_run": step_run, "attempt": attempt}
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return _offload(data, preview=_bytes_preview(data), reason="binary",
                        name=name.removesuffix(".json") + ".bin" if name.endswith(".json")
                        else name, content_type=content_type or "application/octet-stream",
                        **where)
    reason = ""
    try:
        text = _compact(value)
    except ValueError as exc:  # NaN / Infinity (allow_nan=False), or a circular value
        if "ircular" in str(exc):
            raise OutputNotStorable(f"{name}: the value is circular") from exc
        reason = "unstorable"
    except TypeError as exc:
        if not _has_bytes(value):
            raise OutputNotStorable(f"{name}: the value is not JSON: {exc}") from exc
        reason = "binary"
    except RecursionError as exc:
        raise OutputNotStorable(f"{name}: the value is nested too deeply to store") from exc
    if not reason:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            reason = "unstorable"
        else:
            if _ESCAPED_NUL.search(text) and _has_unstorable_string(value):
                reason = "unstorable"
            elif len(data) > limit:
                reason = "size"
            elif _deeper_than(value, INLINE_MAX_DEPTH):
                reason = "depth"
            else:
                return value, None
    if reason in ("size", "depth") and '"$' not in text:
        content = data  # plain JSON: nothing needs a tag
    else:
        try:
            content = _encode_offloaded(value)
        except RecursionError as exc:
            raise OutputNotStorable(f"{name}: the value is nested too deeply to store") from exc
        except (TypeError, ValueError) as exc:
            raise OutputNotStorable(f"{name}: the value is not JSON: {exc}") from exc
    preview_source = text if reason in ("size", "depth") else content[:PREVIEW_CHARS * 8].decode(
        "utf-8", "ignore")
    return _offload(content, preview=_preview(preview_source), reason=reason, name=name,
                    content_type=content_type or JSON_CONTENT_TYPE, **where)


def value_load(ref: Any, *, max_bytes: int | None = None) -> Any:
    """The value an offloaded descriptor (or a `res://` uri) keeps, read back exactly: JSON
    resources decoded with their tags, any other content type as bytes. Refuses a resource over
    `max_bytes` (WF_REFERENCE_LOAD_BYTES) with ValueTooLargeToLoad before reading it; raises
    NotFound when the resource is gone."""
    uri = ref["$resource"] if isinstance(ref, dict) else str(ref)
    limit = settings.WF_REFERENCE_LOAD_BYTES if max_bytes is None else max_bytes
    resource = resource_from_uri(uri)
    if resource.size > limit:
        raise ValueTooLargeToLoad(uri=resource.uri, size=resource.size, limit=limit)
    with resource.file.open("rb") as handle:
        data = handle.read(limit + 1)
    if not is_json_type(resource.content_type):
        return data
    value = json.loads(data)
    return _untagged(value) if b'"$' in data else value  # no tag, nothing to undo


def is_json_type(content_type: str) -> bool:
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return base == JSON_CONTENT_TYPE or base.endswith("+json")
