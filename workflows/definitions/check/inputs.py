"""Checks of the declared inputs (`input: {NAME: {type, required, default, description,
enum}}`)."""

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
    description (""); `enum` (the allowed values, of the declared type) only when given. A declaration with a valid name stays listed even when broken (type None),
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
        if "enum" in declaration:
            choices = _check_enum(problems, declaration["enum"], entry["type"], f"{path}.enum")
            if choices is not None:
                entry["enum"] = choices
                if default is not None and default not in choices:
                    add(problems, f"{path}.default", "must be one of the enum values")
        entry["description"] = check_optional_text(
            problems, declaration.get("description"), f"{path}.description"
        )
    return declarations


def _check_enum(problems: list[Problem], raw: Any, declared_type: str | None,
                path: str) -> list[Any] | None:
    """The allowed values of a string, integer or number input: a non-empty list of distinct
    values of that type."""
    if declared_type not in (InputType.STRING, InputType.INTEGER, InputType.NUMBER):
        add(problems, path, "only string, integer and number inputs take an enum")
        return None
    if not isinstance(raw, list) or not raw:
        add(problems, path, "must be a non-empty list of the allowed values")
        return None
    choices: list[Any] = []
    for index, value in enumerate(raw):
        if not has_input_type(value, declared_type):
            add(problems, f"{path}[{index}]",
                f"must be {TYPE_DESCRIPTIONS[declared_type]}, got {type_name(value)}")
        elif value in choices:
            add(problems, f"{path}[{index}]", f"{value!r} is listed twice")
        else:
            choices.append(copy.deepcopy(value))
    return choices
