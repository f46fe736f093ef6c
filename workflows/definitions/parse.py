"""Reading a definition: YAML or JSON text in, a fresh dict out; and what JSON cannot hold.

`parse_definition` checks only the document's shape (it parses, it is a mapping, it stays within
MAX_DOCUMENT_NODES / MAX_DOCUMENT_DEPTH). `json_problems` lists the values a stored definition
cannot carry (YAML dates, non-text keys, NaN, NUL characters); validation starts with it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml
from django.conf import settings

from workflows.definitions.base import (
    DOCUMENT,
    MAX_DOCUMENT_DEPTH,
    MAX_DOCUMENT_NODES,
    type_name,
)
from workflows.errors import DefinitionInvalid
from workflows.steps.base import Problem, problem


def parse_definition(source: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """The definition in `source` (YAML or JSON text, or an already parsed dict) as a new dict.

    Only the document's shape is checked here: it must parse and be a mapping (and stay within
    MAX_DOCUMENT_NODES / MAX_DOCUMENT_DEPTH once YAML aliases are expanded; the result shares no
    objects). Raises DefinitionInvalid with one problem at path "(document)" otherwise; YAML errors
    carry their line and column. Everything else is validate_definition's job.
    """
    if isinstance(source, dict):
        data: Any = source
    else:
        if isinstance(source, bytes):
            try:
                source = source.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise DefinitionInvalid([problem(DOCUMENT, f"not UTF-8 text: {exc}")]) from exc
        if not isinstance(source, str):
            raise DefinitionInvalid([problem(DOCUMENT, "expected YAML or JSON text")])
        _check_size(len(source.encode("utf-8", "surrogatepass")))
        try:
            _check_yaml_depth(source)
            data = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise DefinitionInvalid([problem(DOCUMENT, _yaml_error_message(exc))]) from exc
    if data is None:
        raise DefinitionInvalid([problem(DOCUMENT, "the document is empty")])
    if not isinstance(data, dict):
        raise DefinitionInvalid(
            [
                problem(
                    DOCUMENT,
                    f"the top level must be a mapping (slug, name, steps, ...), got {type_name(data)}",
                )
            ]
        )
    copied = _copy_tree(data)
    if isinstance(source, dict):
        _check_size(len(json.dumps(copied, separators=(",", ":"), default=str,
                                   ensure_ascii=False).encode("utf-8", "surrogatepass")))
    return copied


def _check_size(size: int) -> None:
    """WF_MAX_DEFINITION_BYTES bounds a definition's text (or a parsed one's compact JSON)."""
    limit = settings.WF_MAX_DEFINITION_BYTES
    if size > limit:
        raise DefinitionInvalid([problem(
            DOCUMENT, f"the definition is {size:,} bytes; WF_MAX_DEFINITION_BYTES allows at most "
                      f"{limit:,}")])


_OPENING = (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken,
            yaml.BlockSequenceStartToken, yaml.BlockMappingStartToken)
_CLOSING = (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken, yaml.BlockEndToken)
# libyaml's scanner when present: ten times faster than the pure-Python one.
_SCAN_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_yaml_depth(source: str) -> None:
    """Refuse text nesting deeper than MAX_DOCUMENT_DEPTH before composing it: PyYAML's composer
    recurses once per level, so 1.6 KB of `[[[[…` would be a RecursionError. The scanner is not
    recursive. (Indentless sequences open no token, so this never counts more than the tree
    depth that `_copy_tree` checks exactly afterwards.)"""
    depth = 0
    for token in yaml.scan(source, Loader=_SCAN_LOADER):
        if isinstance(token, _OPENING):
            depth += 1
            if depth > MAX_DOCUMENT_DEPTH + 1:
                raise DefinitionInvalid(
                    [problem(DOCUMENT, f"the document nests deeper than {MAX_DOCUMENT_DEPTH} levels")]
                )
        elif isinstance(token, _CLOSING):
            depth -= 1


def _yaml_error_message(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        what = "; ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        return f"YAML error at line {mark.line + 1}, column {mark.column + 1}: {what}"
    return f"YAML error: {exc}"


def _copy_tree(data: Any) -> Any:
    """A fresh copy of a parsed tree, refusing recursive or oversized (alias-expanded) ones."""
    count = 0

    def copy_node(value: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > MAX_DOCUMENT_NODES:
            raise DefinitionInvalid(
                [
                    problem(
                        DOCUMENT,
                        f"the document is too large (more than {MAX_DOCUMENT_NODES} values)",
                    )
                ]
            )
        if depth > MAX_DOCUMENT_DEPTH and isinstance(value, dict | list):
            raise DefinitionInvalid(
                [problem(DOCUMENT, f"the document nests deeper than {MAX_DOCUMENT_DEPTH} levels")]
            )
        if isinstance(value, dict):
            return {key: copy_node(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list):
            return [copy_node(item, depth + 1) for item in value]
        return value

    return copy_node(data, 0)


def json_problems(value: Any, path: str) -> list[Problem]:
    """Values a JSON document cannot hold (YAML dates, non-text keys such as `on:`, NaN)."""
    problems: list[Problem] = []
    if isinstance(value, dict):
        for key, item in value.items():
            item_path = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str):
                problems.append(
                    problem(item_path, f"keys must be text, got {type_name(key)} {key!r}; quote it")
                )
            elif "\x00" in key:
                problems.append(problem(item_path, "keys cannot contain NUL characters"))
            problems += json_problems(item, item_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += json_problems(item, f"{path}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        problems.append(problem(path, f"{value} is not a JSON number"))
    elif isinstance(value, str) and "\x00" in value:
        # PostgreSQL cannot store NUL in text or JSON.
        problems.append(problem(path, "text cannot contain NUL characters"))
    elif value is not None and not isinstance(value, bool | int | float | str):
        problems.append(problem(path, f"a {type_name(value)} is not JSON data; quote it"))
    return problems
