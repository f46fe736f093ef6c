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


def definition_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """What changed from normalized definition `a` to `b`, as JSON-serializable data:

        {"metadata": {field: {"from", "to"}},            # slug, name, description
         "input": {name: {"from", "to"}},                # a declaration, None when absent
         "concurrency": {"from", "to"} or {},
         "triggers": {"from", "to"} or {},
         "steps": {"added": [keys], "removed": [keys],
                   "changed": {key: {field: {"from", "to"}}},   # a field absent is None
                   "order": {"from": [keys], "to": [keys]} or {}}}  # steps in both, reordered

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
        }
    )
