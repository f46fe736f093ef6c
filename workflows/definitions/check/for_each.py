"""Checks of `for_each`, `max_parallel` and `fail_fast` (a step fanned out over a list).

`for_each` is a single reference to a list (`{{ input.repos }}`, `{{ steps.list.output }}`);
whether it resolves to a list is only known at run time (`for_each_not_a_list` then). Approval
steps take no for_each (one decision per step run), nor wait steps. `{{ item }}` and
`{{ item_index }}` may appear in the step's other parameters only (check/references.py).
A `flow` step fans out (one child run per item: engine/instance_pauses.py); a wait step does
not (docs/architecture.md "for_each instances" says why).
"""

from __future__ import annotations

from typing import Any

from workflows.definitions.base import ITEM_ROOTS, add, is_int, type_name
from workflows.references import (
    ReferenceSyntaxError,
    find_references,
    is_single_reference,
    parse_reference,
)
from workflows.steps.base import Problem

MAX_PARALLEL = 1000
# Step types that cannot be fanned out, and why.
NOT_FANNED_OUT = {
    "approval": "an approval step cannot have for_each: it asks for one decision",
    "wait": "a wait step cannot have for_each: its callback URL, heartbeat, log and artifacts "
            "belong to the step run, not to an instance; fan out a flow step whose flow "
            "has the wait step instead (one child run, so one callback URL, per item)",
}


def check_for_each(problems: list[Problem], step: dict[str, Any], path: str) -> None:
    """for_each (a single reference), max_parallel (1..MAX_PARALLEL) and fail_fast (a
    boolean); the last two only beside a for_each."""
    has = step.get("for_each") is not None
    if has:
        kind = step.get("type")
        why = NOT_FANNED_OUT.get(kind) if isinstance(kind, str) else None
        if why is not None:
            add(problems, f"{path}.for_each", why)
        value = step["for_each"]
        if not (isinstance(value, str) and is_single_reference(value)):
            add(problems, f"{path}.for_each",
                "must be a single reference to a list, such as '{{ input.repos }}', got "
                + (repr(value) if isinstance(value, str) else type_name(value)))
        elif _root(value) in ITEM_ROOTS:
            add(problems, f"{path}.for_each", "cannot refer to item or item_index: it makes them")
    for name in ("max_parallel", "fail_fast"):
        if step.get(name) is not None and not has:
            add(problems, f"{path}.{name}", "only a step with for_each takes it")
    if step.get("max_parallel") is not None:
        value = step["max_parallel"]
        if not is_int(value) or not 1 <= value <= MAX_PARALLEL:
            add(problems, f"{path}.max_parallel",
                f"must be an integer from 1 to {MAX_PARALLEL:,}, got {value!r}")
    if step.get("fail_fast") is not None and not isinstance(step["fail_fast"], bool):
        add(problems, f"{path}.fail_fast", f"must be true or false, got {type_name(step['fail_fast'])}")


def _root(text: str) -> str | None:
    try:
        return str(parse_reference(find_references(text)[0][1])[0])
    except (ReferenceSyntaxError, IndexError):
        return None  # reported by the reference checks
