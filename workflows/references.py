"""The small safe resolver for `{{ expr }}` references in flow definitions (DESIGN.md §6).

A reference is a dotted path into a context, never code: no eval, no template engine, no
operators, calls or filters. The context a run builds is

    {"input": {...},
     "steps": {key: {"output": ..., "callback_url": "..."}},
     "connections": {name: name}}

A step output (or a part of one) that was too big or too odd to store inline is a resource
descriptor `{"$resource": "res://…", …}` (resources/payloads.py). A path that ends at the
descriptor gives the descriptor itself (a compact ref to pass on); a path that goes on into it
loads the resource, up to WF_REFERENCE_LOAD_BYTES, once per resolve() call, and walks on in the
loaded value. Beyond that size the reference fails with ReferenceTooLarge, naming the limit.

Only a resource of the resolving run, or of a run one of its reused steps came from (a retry or
a replay), is ever loaded (`ResourceScope`): a descriptor-shaped value can arrive from outside
(a webhook or callback body, an API run input, an http response body), and a path into one that
names another run's resource is unresolved, never read. The engine always passes the scope.

Paths are written `steps.fetch.output.items.0.id` or `steps.fetch.output.items[0].id`. A segment
after a dot that is all digits is an index (on a mapping it looks up the key of the same digits);
any other segment is a name, `[A-Za-z0-9_][A-Za-z0-9_-]*` (step keys and connection names may start
with a digit). The first segment, the root, is an identifier `[A-Za-z_][A-Za-z0-9_-]*`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Collection, Iterator
from typing import Any

from resources.payloads import ValueTooLargeToLoad, is_descriptor, value_load
from resources.selectors import resource_from_uri
from workflows.errors import NotFound, WorkflowError

Loader = Callable[[dict[str, Any]], Any]

__all__ = [
    "ReferenceSyntaxError",
    "ResourceScope",
    "ReferenceTooLarge",
    "ReferenceUnresolved",
    "find_references",
    "find_unclosed",
    "format_path",
    "is_single_reference",
    "parse_reference",
    "resolve",
]

Segment = str | int

# `{{` then anything up to the first `}}`. What is inside is checked by parse_reference.
REFERENCE_PATTERN = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_SEGMENT = re.compile(r"\.([A-Za-z0-9_][A-Za-z0-9_-]*)|\[(\d+)\]")


class ReferenceSyntaxError(ValueError):
    """The text inside `{{ }}` is not a dotted path."""


class ReferenceUnresolved(WorkflowError):
    """A reference names something the context does not hold (a missing key or index)."""

    code = "reference_unresolved"
    http_status = 422

    def __init__(self, expr: str, message: str):
        self.expr = expr
        self.message = message
        super().__init__(f"{{{{ {expr} }}}}: {message}")


class ReferenceTooLarge(ReferenceUnresolved):
    """A reference goes into an offloaded value larger than WF_REFERENCE_LOAD_BYTES."""

    def __init__(self, expr: str, exc: ValueTooLargeToLoad):
        self.limit = exc.limit
        self.setting = exc.setting
        super().__init__(expr, str(exc))


def parse_reference(expr: str) -> list[Segment]:
    """Split a reference expression (the text between the braces) into its segments.

    `"steps.fetch.output.items[0].id"` -> `["steps", "fetch", "output", "items", 0, "id"]`.
    Surrounding whitespace is ignored. Raises ReferenceSyntaxError for anything that is not a
    dotted path of names and non-negative integer indices.
    """
    text = expr.strip()
    if not text:
        raise ReferenceSyntaxError("empty reference")
    root = _ROOT.match(text)
    if root is None:
        raise ReferenceSyntaxError(
            f"{text!r} must start with a name such as input, steps or connections"
        )
    segments: list[Segment] = [root.group(0)]
    pos = root.end()
    while pos < len(text):
        match = _SEGMENT.match(text, pos)
        if match is None:
            raise ReferenceSyntaxError(
                f"unexpected {text[pos : pos + 10]!r} at position {pos + 1} of {text!r}; a reference"
                " is a dotted path like steps.fetch.output.items[0] (no operators, calls or filters)"
            )
        name, index = match.groups()
        if index is not None:
            segments.append(int(index))
        elif name.isdigit():
            segments.append(int(name))
        else:
            segments.append(name)
        pos = match.end()
    return segments


def format_path(segments: list[Segment]) -> str:
    """Write segments back as a path: `["a", "b", 0, "c"]` -> `"a.b[0].c"`."""
    out = ""
    for segment in segments:
        if isinstance(segment, int):
            out += f"[{segment}]"
        else:
            out += f".{segment}" if out else segment
    return out


def _walk_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_strings(item, f"{path}[{index}]")


def find_references(value: Any) -> list[tuple[str, str]]:
    """Every reference in a value tree, in document order, as (path within value, expression).

    Paths use `.` between mapping keys and `[i]` for list items; a reference in `value` itself
    (a bare string) has the path "". The expression is the stripped text between the braces and
    is not checked here (see parse_reference). Mapping keys are never searched.

    `{"args": {"x": "{{ input.a }}", "l": ["{{ steps.s.output }}"]}}`
    -> `[("args.x", "input.a"), ("args.l[0]", "steps.s.output")]`
    """
    return [
        (path, match.group(1).strip())
        for path, text in _walk_strings(value, "")
        for match in REFERENCE_PATTERN.finditer(text)
    ]


def find_unclosed(value: Any) -> list[str]:
    """Paths of strings holding a `{{` that no `}}` closes (most likely a typo)."""
    return [
        path for path, text in _walk_strings(value, "") if "{{" in REFERENCE_PATTERN.sub("", text)
    ]


def is_single_reference(text: str) -> bool:
    """True when the whole string is exactly one `{{ ... }}` (so it keeps the value's type)."""
    matches = list(REFERENCE_PATTERN.finditer(text))
    return len(matches) == 1 and matches[0].span() == (0, len(text))


class ResourceScope:
    """The runs whose resources a reference may load. `runs` is called on the first load only
    (most resolutions load nothing, so the query it makes is rarely paid)."""

    def __init__(self, runs: Callable[[], Collection[int]]):
        self._runs = runs
        self._allowed: Collection[int] | None = None

    def allows(self, run_id: int | None) -> bool:
        if self._allowed is None:
            self._allowed = frozenset(self._runs())
        return run_id is not None and run_id in self._allowed


def _load(descriptor: dict[str, Any], expr: str, loads: dict[str, Any],
          scope: ResourceScope | None = None) -> Any:
    uri = descriptor["$resource"]
    if uri not in loads:
        try:
            if scope is not None and not scope.allows(resource_from_uri(uri).run_id):
                raise ReferenceUnresolved(
                    expr, f"{uri} does not belong to this run: a reference loads only the "
                          "resources of its own run (and of the runs its reused steps came "
                          "from); refer to the value whole to pass it on")
            loads[uri] = value_load(descriptor)
        except ValueTooLargeToLoad as exc:
            raise ReferenceTooLarge(expr, exc) from exc
        except NotFound as exc:
            raise ReferenceUnresolved(expr, f"{uri} is gone: {exc}") from exc
        except ValueError as exc:
            raise ReferenceUnresolved(expr, f"{uri} does not hold valid JSON: {exc}") from exc
    loaded = loads[uri]
    if isinstance(loaded, bytes):
        raise ReferenceUnresolved(
            expr, f"{uri} is {descriptor.get('content_type') or 'binary'} content, not JSON; "
                  "refer to it whole to pass it on")
    return loaded


def _lookup(context: Any, expr: str, loads: dict[str, Any] | None = None,
            scope: ResourceScope | None = None, follow: bool = True) -> Any:
    loads = {} if loads is None else loads
    try:
        segments = parse_reference(expr)
    except ReferenceSyntaxError as exc:
        raise ReferenceUnresolved(expr, f"invalid reference: {exc}") from exc
    current = context
    for depth, segment in enumerate(segments):
        where = format_path(segments[:depth]) or "the context"
        if follow and is_descriptor(current):
            current = _load(current, expr, loads, scope)
        if isinstance(current, dict):
            key: Any = segment
            if isinstance(segment, int) and segment not in current:
                key = str(segment)
            if key not in current:
                if depth == 0:
                    roots = ", ".join(sorted(str(k) for k in current)) or "none"
                    message = f"unknown root {segment!r}; available: {roots}"
                elif segments[0] == "steps" and depth == 1:
                    message = f"no step {segment!r} here: it has not run yet or does not exist"
                else:
                    message = f"{where} has no key {segment!r}"
                raise ReferenceUnresolved(expr, message)
            current = current[key]
        elif isinstance(current, list):
            if not isinstance(segment, int):
                raise ReferenceUnresolved(
                    expr, f"{where} is a list; expected an index, got {segment!r}"
                )
            if segment >= len(current):
                raise ReferenceUnresolved(
                    expr, f"{where} has no index {segment} (it has {len(current)} items)"
                )
            current = current[segment]
        else:
            kind = "null" if current is None else type(current).__name__
            raise ReferenceUnresolved(expr, f"{where} is {kind}, so it has no {segment!r}")
    return current


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _resolve_string(text: str, context: dict[str, Any], loads: dict[str, Any],
                    scope: ResourceScope | None, follow: bool) -> Any:
    if "{{" not in text:
        return text
    if is_single_reference(text):
        expr = REFERENCE_PATTERN.match(text).group(1).strip()
        return copy.deepcopy(_lookup(context, expr, loads, scope, follow))
    return REFERENCE_PATTERN.sub(
        lambda match: _as_text(_lookup(context, match.group(1).strip(), loads, scope, follow)),
        text,
    )


def resolve(value: Any, context: dict[str, Any], *, scope: ResourceScope | None = None,
            follow_resources: bool = True, _loads: dict[str, Any] | None = None) -> Any:
    """A copy of `value` with every reference replaced by what it names in `context`.

    A string that is exactly one reference becomes the referenced value itself, with its type
    (int, dict, list, None...). References with text around them are interpolated: strings as
    they are, None as "", anything else as compact JSON. Mapping keys are left alone, and resolved
    values are data: a `{{ }}` inside an input value is not resolved again. The input is not
    mutated and no resolved value is shared with the context.

    A path into an offloaded value loads its resource (see the module docstring); each resource
    is loaded at most once per call, and only when `scope` allows its run (None, for values
    that belong to no run, allows any: every caller resolving for a run passes its scope).
    With `follow_resources=False` nothing is loaded: a descriptor-shaped value is data (a
    webhook body's), walked like any mapping.

    Raises ReferenceUnresolved, naming the missing part, when a key or index does not exist (or
    when a reference is not valid syntax, which validation reports earlier); ReferenceTooLarge
    (a ReferenceUnresolved) when it would load more than WF_REFERENCE_LOAD_BYTES.
    """
    loads = {} if _loads is None else _loads
    if isinstance(value, str):
        return _resolve_string(value, context, loads, scope, follow_resources)
    options = {"scope": scope, "follow_resources": follow_resources, "_loads": loads}
    if isinstance(value, dict):
        return {key: resolve(item, context, **options) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, context, **options) for item in value]
    return copy.deepcopy(value)
