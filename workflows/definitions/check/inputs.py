"""Checks of the declared inputs (`input: {NAME: {type, required, default, description}}`)."""

from __future__ import annotations

import copy
from typing import Any

from workflows.definitions.base import (
    INPUT_DECLARATION_KEYS,
    INPUT_NAME_PATTERN,
    TYPE_DESCRIPTIONS,
    InputType,
    add,
    type_name,
    unknown_keys,
)
from workflows.definitions.check.metadata import check_optional_text
from workflows.definitions.inputs import has_input_type
from workflows.steps.base import Problem


def check_input_declarations(problems: list[Problem], raw: Any) -> dict[str, dict[str, Any]]:
    """The normalized declarations: each has type, required (False), default (None) and
    description (""). A declaration with a valid name stays listed even when broken (type None),
    so references to it and trigger input using it add no problems of their own."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        add(problems, "input", "must be a mapping of input name to {type, required, default}")
        return {}
    declarations: dict[str, dict[str, Any]] = {}
    for name, declaration in raw.items():
        path = f"input.{name}"
        if not isinstance(name, str) or not INPUT_NAME_PATTERN.fullmatch(name):
            add(problems, path, "an input name is letters, digits and _, not starting with a digit")
            continue
        entry: dict[str, Any] = {
            "type": None,
            "required": False,
            "default": None,
            "description": "",
        }
        declarations[name] = entry
        if not isinstance(declaration, dict):
            add(problems, path, "must be a mapping like {type: string, required: true}")
            continue
        unknown_keys(problems, declaration, INPUT_DECLARATION_KEYS, path)
        declared_type = declaration.get("type")
        if declared_type is None:
            add(problems, f"{path}.type", f"required: one of {', '.join(InputType.values)}")
        elif not isinstance(declared_type, str) or declared_type not in InputType.values:
            add(
                problems,
                f"{path}.type",
                f"unknown type {declared_type!r}; one of {', '.join(InputType.values)}",
            )
        else:
            entry["type"] = declared_type
        required = declaration.get("required", False)
        if not isinstance(required, bool):
            add(problems, f"{path}.required", "must be true or false")
        else:
            entry["required"] = required
        default = declaration.get("default")
        if default is not None:
            if required is True:
                add(problems, f"{path}.default", "a required input takes no default")
            elif not has_input_type(default, entry["type"]):
                add(
                    problems,
                    f"{path}.default",
                    f"must be {TYPE_DESCRIPTIONS[entry['type']]}, got {type_name(default)}",
                )
            entry["default"] = copy.deepcopy(default)
        entry["description"] = check_optional_text(
            problems, declaration.get("description"), f"{path}.description"
        )
    return declarations
