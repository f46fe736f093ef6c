"""Checks of a step's CEL parts: `when` (a `{{ ref }}`, truthy, or a CEL expression over
`input`, `steps` and `item`), `until` (polling: a CEL expression over `output` and `input`,
`every_seconds`, `max_times`) and `continue_on_error`.

A CEL expression is compiled here (workflows.conditions) so a syntax error is a problem at
draft time, at its path; so is a variable the expression reads that is none of its roots
(the library lists the variables an expression reads; a comprehension's own variable, as `x`
in `list.all(x, x > 0)`, is not a root).
"""

from __future__ import annotations

import re
from typing import Any

from workflows.conditions import ConditionInvalid, condition_compile
from workflows.definitions.base import add, is_int, is_number, type_name, unknown_keys
from workflows.references import is_single_reference
from workflows.steps.base import Problem

WHEN_ROOTS = ("input", "steps", "item")
UNTIL_ROOTS = ("output", "input")
UNTIL_DEFAULTS = {"every_seconds": 10, "max_times": 10}
MAX_TIMES = 10_000
_BOUND = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")


def check_cel(problems: list[Problem], source: Any, path: str, roots: tuple[str, ...]) -> bool:
    """A problem at `path` when `source` is not CEL over `roots`. True when it is."""
    try:
        condition = condition_compile(source)
    except ConditionInvalid as exc:
        add(problems, path, str(exc))
        return False
    bound = set(_BOUND.findall(source))
    unknown = sorted(v for v in condition.program.variables() if v not in roots and v not in bound)
    if unknown:
        add(problems, path, f"reads {', '.join(repr(v) for v in unknown)}: a condition may "
                            f"read only {', '.join(roots)}")
        return False
    return True


def check_when(problems: list[Problem], when: Any, path: str) -> None:
    if when is None or (isinstance(when, str) and is_single_reference(when)):
        return
    if not isinstance(when, str):
        add(problems, path, "must be a CEL expression such as 'steps.check.output.count > 10' "
                            "or a single reference such as '{{ steps.check.output.ok }}', got "
                            f"{type_name(when)}")
        return
    if "{{" in when:
        add(problems, path, "must be either a single reference such as "
                            "'{{ steps.check.output.ok }}' (truthy) or a CEL expression without "
                            "{{ }}, such as 'steps.check.output.count > 10'")
        return
    check_cel(problems, when, path, WHEN_ROOTS)


def check_until(problems: list[Problem], raw: Any, path: str) -> dict[str, Any] | None:
    """The normalized `until` ({condition, every_seconds, max_times}); a string is its
    condition with the defaults."""
    if raw is None:
        return None
    until = {"condition": raw} if isinstance(raw, str) else raw
    if not isinstance(until, dict):
        add(problems, path, "must be a CEL expression over `output`, or a mapping with "
                            f"condition, every_seconds and max_times, got {type_name(raw)}")
        return None
    unknown_keys(problems, until, ("condition", "every_seconds", "max_times"), path)
    normalized = {**UNTIL_DEFAULTS, **until}
    if "condition" not in until:
        add(problems, f"{path}.condition", "required: a CEL expression over `output`, such as "
                                           "'output.status == \"healthy\"'")
    else:
        check_cel(problems, until["condition"], f"{path}.condition", UNTIL_ROOTS)
    every = normalized["every_seconds"]
    if not is_number(every) or every < 0:
        add(problems, f"{path}.every_seconds", "must be a number of seconds, 0 or more")
    times = normalized["max_times"]
    if not is_int(times) or not 1 <= times <= MAX_TIMES:
        add(problems, f"{path}.max_times", f"must be a whole number from 1 to {MAX_TIMES:,}")
    return normalized


def check_continue_on_error(problems: list[Problem], raw: Any, path: str) -> None:
    if raw is not None and not isinstance(raw, bool):
        add(problems, path, f"must be true or false, got {type_name(raw)}")
