"""Identity and comparison of normalized definitions: the content hash and the diff."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any


def content_hash(definition: dict[str, Any]) -> str:
    """SHA-256 hex of the definition as canonical JSON (sorted keys, compact separators, UTF-8),
    so equal definitions hash equally whatever their key order."""
    canonical = json.dumps(
        definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _changes(a: dict[str, Any], b: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    return {
        field: {"from": a.get(field), "to": b.get(field)}
        for field in fields
        if a.get(field) != b.get(field)
    }


def _union(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return list(a) + [key for key in b if key not in a]


_ABSENT = object()


def _value_path(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _value_changes(before: Any, after: Any, path: str, out: list[dict[str, Any]]) -> None:
    """Append `{path, before, after}` for every leaf that differs between `before` and `after`.
    Dicts are walked key by key; a list of steps (dicts with a "key") is matched by key, so
    `steps.transform.action` names the step, not its position; other lists by index
    (`triggers[0].cron`). A value that is absent on one side is None there."""
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in _union(before, after):
            _value_changes(before.get(key, _ABSENT), after.get(key, _ABSENT),
                           _value_path(path, str(key)), out)
        return
    if isinstance(before, list) and isinstance(after, list):
        if _keyed(before) and _keyed(after):
            by_key_a = {item["key"]: item for item in before}
            by_key_b = {item["key"]: item for item in after}
            for key in _union(by_key_a, by_key_b):
                _value_changes(by_key_a.get(key, _ABSENT), by_key_b.get(key, _ABSENT),
                               _value_path(path, str(key)), out)
            return
        for index in range(max(len(before), len(after))):
            _value_changes(before[index] if index < len(before) else _ABSENT,
                           after[index] if index < len(after) else _ABSENT,
                           f"{path}[{index}]", out)
        return
    out.append({
        "path": path,
        "before": None if before is _ABSENT else copy.deepcopy(before),
        "after": None if after is _ABSENT else copy.deepcopy(after),
    })


def _keyed(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, dict) and "key" in item for item in items)


def definition_value_changes(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Every value that differs from normalized definition `a` to `b`, as a list of
    `{"path", "before", "after"}` in definition order, e.g.
    `{"path": "steps.transform.action", "before": "core.flaky", "after": "core.fail"}`.
    A step added or removed is one entry whose other side is None."""
    out: list[dict[str, Any]] = []
    _value_changes(a, b, "", out)
    return out


def definition_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What changed from normalized definition `a` to `b`, as JSON-serializable data:

        {"metadata": {field: {"from", "to"}},            # slug, name, description
         "input": {name: {"from", "to"}},                # a declaration, None when absent
         "concurrency": {"from", "to"} or {},
         "triggers": {"from", "to"} or {},
         "steps": {"added": [keys], "removed": [keys],
                   "changed": {key: {field: {"from", "to"}}},   # a field absent is None
                   "order": {"from": [keys], "to": [keys]} or {}},  # steps in both, reordered
         "values": [{"path", "before", "after"}]}        # every changed value, see below


    Only what differs is listed; keys come in definition order (changed fields sorted), so the
    same two definitions always give the same diff.
    """
    a_steps = {step["key"]: step for step in a.get("steps") or []}
    b_steps = {step["key"]: step for step in b.get("steps") or []}
    changed: dict[str, Any] = {}
    for key, step in b_steps.items():
        if key in a_steps:
            fields = sorted(set(a_steps[key]) | set(step))
            step_changes = _changes(a_steps[key], step, fields)
            if step_changes:
                changed[key] = step_changes
    common_a = [key for key in a_steps if key in b_steps]
    common_b = [key for key in b_steps if key in a_steps]
    a_input = a.get("input") or {}
    b_input = b.get("input") or {}

    def whole(field: str) -> dict[str, Any]:
        if a.get(field) == b.get(field):
            return {}
        return {"from": a.get(field), "to": b.get(field)}

    return copy.deepcopy(
        {
            "metadata": _changes(a, b, ["slug", "name", "description"]),
            "input": _changes(a_input, b_input, _union(a_input, b_input)),
            "concurrency": whole("concurrency"),
            "triggers": whole("triggers"),
            "steps": {
                "added": [key for key in b_steps if key not in a_steps],
                "removed": [key for key in a_steps if key not in b_steps],
                "changed": changed,
                "order": {"from": common_a, "to": common_b} if common_a != common_b else {},
            },
            "values": definition_value_changes(a, b),
        }
    )
