"""Declared inputs at run time: the complete input of a run, or every problem with it.

The declarations themselves are checked by `check/inputs.py`; a schedule trigger's input is
checked against them with `run_input_problems` as well.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from resources.payloads import INLINE_MAX_DEPTH, json_storage_problems
from workflows.definitions.base import TYPE_DESCRIPTIONS, InputType, is_int, is_number, type_name
from workflows.errors import InputInvalid
from workflows.steps.base import Problem, problem

# A run's input is stored inline as given (never offloaded: steps read it by path and its types
# are checked), so it must be storable and small: at most the API's body cap of compact JSON.
INPUT_MAX_BYTES = 1024 * 1024


def has_input_type(value: Any, declared_type: Any) -> bool:
    """Whether `value` is of the declared input type (True for an unknown type: reported elsewhere)."""
    checks = {
        InputType.STRING: lambda v: isinstance(v, str),
        InputType.INTEGER: is_int,
        InputType.NUMBER: is_number,
        InputType.BOOLEAN: lambda v: isinstance(v, bool),
        InputType.OBJECT: lambda v: isinstance(v, dict),
        InputType.ARRAY: lambda v: isinstance(v, list),
    }
    check = checks.get(declared_type) if isinstance(declared_type, str) else None
    return check is None or check(value)


def run_input_problems(declared: dict[str, Any], value: Any, path: str) -> list[Problem]:
    """Problems with `value` as the input of a run, at `path.NAME` (see validate_run_input)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return [problem(path, f"must be a mapping of input name to value, got {type_name(value)}")]
    problems = [
        problem(f"{path}.{name}", f"unknown input; declared: {', '.join(declared) or 'none'}")
        for name in value
        if name not in declared
    ]
    for name, declaration in declared.items():
        given = value.get(name)
        declared_type = declaration.get("type")
        if given is None:
            if declaration.get("required"):
                problems.append(problem(f"{path}.{name}", "required"))
        elif not has_input_type(given, declared_type):
            problems.append(
                problem(
                    f"{path}.{name}",
                    f"must be {TYPE_DESCRIPTIONS[declared_type]}, got {type_name(given)}",
                )
            )
        elif "enum" in declaration and given not in declaration["enum"]:
            allowed = ", ".join(json.dumps(choice) for choice in declaration["enum"])
            problems.append(problem(f"{path}.{name}", f"must be one of {allowed}"))
    return problems


def validate_run_input(definition: dict[str, Any], value: Any) -> dict[str, Any]:
    """The complete input for a run of `definition` (normalized), from the caller's `value`.

    `value` is a mapping of declared input names (None counts as {}); a None value counts as not
    given. Unknown names, missing required ones and values of the wrong type raise InputInvalid
    with every problem at `input.NAME` (a value outside a declared `enum` too). Booleans are not integers; integers are numbers. Missing
    optional inputs get their default, or None when they have none, so every declared name is
    present in the result. The storage rule of inputs is checked here too, so every door (API,
    admin form, webhook, schedule) refuses the same values: NUL, unpaired surrogates,
    non-finite numbers, more than INLINE_MAX_DEPTH levels, more than INPUT_MAX_BYTES of JSON.
    """
    declared = definition.get("input") or {}
    problems = run_input_problems(declared, value, "input")
    if isinstance(value, dict):
        problems += [p for p in json_storage_problems(value, "input", max_depth=INLINE_MAX_DEPTH)
                     if p not in problems]
    if problems:
        raise InputInvalid(problems)
    value = value or {}
    complete: dict[str, Any] = {}
    for name, declaration in declared.items():
        given = value.get(name)
        complete[name] = copy.deepcopy(declaration.get("default") if given is None else given)
    size = _json_size(complete)
    if size is None or size > INPUT_MAX_BYTES:
        raise InputInvalid([problem("input", f"must be at most {INPUT_MAX_BYTES} bytes of JSON"
                                             + (f", got {size}" if size else ""))])
    return complete


def _json_size(value: dict[str, Any]) -> int | None:
    """The bytes of `value` as compact UTF-8 JSON, or None when it cannot be written (an
    integer past Python's 4,300-digit conversion limit)."""
    try:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    except ValueError:
        return None
