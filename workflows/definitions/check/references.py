"""Checks of `{{ ... }}` references: known roots, declared inputs, steps that run before,
wait steps' callback URLs, `redo_to`, and connections named through references.

`connection_uses` collects (path, connection name, None) for `connections.NAME` references when
connections are checked (None otherwise); `check/connections.py` looks them up.
"""

from __future__ import annotations

from typing import Any

from workflows.definitions.base import ITEM_ROOTS, REFERENCE_ROOTS, add
from workflows.references import (
    ReferenceSyntaxError,
    find_references,
    find_unclosed,
    parse_reference,
)
from workflows.steps.base import Problem

# (path, connection name, step type name or None for a reference)
ConnectionUses = list[tuple[str, str, str | None]]


def check_text_references(
    problems: list[Problem],
    text: str,
    path: str,
    *,
    roots: tuple[str, ...],
    inputs: dict[str, dict[str, Any]],
) -> None:
    """The references in one text field that may refer to `roots` only (concurrency.key)."""
    for suffix, expr in find_references(text):
        check_reference(problems, path + suffix, expr, roots=roots, inputs=inputs)
    for suffix in find_unclosed(text):
        add(problems, path + suffix, "a '{{' is not closed by '}}'")


def check_step_references(
    problems: list[Problem],
    step: dict[str, Any],
    path: str,
    *,
    key: str | None,
    ancestors: set[str] | None,
    types: dict[str, Any],
    inputs: dict[str, dict[str, Any]],
    connection_uses: ConnectionUses | None,
) -> None:
    """Check the references in one step. `ancestors` is None when unknown (broken needs);
    `types` maps every valid step key to its type."""
    for suffix, expr in find_references(step):
        check_reference(
            problems,
            f"{path}.{suffix}",
            expr,
            roots=REFERENCE_ROOTS + ITEM_ROOTS if "for_each" in step else REFERENCE_ROOTS,
            inputs=inputs,
            connection_uses=connection_uses,
            step_key=key,
            ancestors=ancestors,
            types=types,
        )
    for suffix in find_unclosed(step):
        add(problems, f"{path}.{suffix}", "a '{{' is not closed by '}}'")
    redo_to = step.get("redo_to")
    if redo_to is not None:
        if not isinstance(redo_to, str) or redo_to not in types:
            add(problems, f"{path}.redo_to", f"no step {redo_to!r} in this flow")
        elif ancestors is not None and redo_to not in ancestors:
            add(
                problems,
                f"{path}.redo_to",
                f"step {redo_to!r} does not run before this one; "
                "redo goes back to a step this one needs (directly "
                "or indirectly)",
            )


def check_reference(
    problems: list[Problem],
    path: str,
    expr: str,
    *,
    roots: tuple[str, ...],
    inputs: dict[str, dict[str, Any]],
    connection_uses: ConnectionUses | None = None,
    step_key: str | None = None,
    ancestors: set[str] | None = None,
    types: dict[str, Any] | None = None,
) -> None:
    """One reference `{{ expr }}` found at `path`, which may refer to `roots`."""
    shown = f"{{{{ {expr} }}}}"
    try:
        segments = parse_reference(expr)
    except ReferenceSyntaxError as exc:
        add(problems, path, f"invalid reference {shown}: {exc}")
        return
    root = segments[0]
    if root in ITEM_ROOTS and root not in roots:
        add(problems, path, f"{shown}: only a step with for_each has an {root}")
        return
    if root not in REFERENCE_ROOTS + ITEM_ROOTS:
        add(problems, path, f"unknown reference root {root!r} in {shown}; use {', '.join(roots)}")
        return
    if root not in roots:
        add(problems, path, f"{shown}: only {', '.join(roots)} may be referred to here")
        return
    if root == "input":
        if len(segments) < 2 or not isinstance(segments[1], str):
            add(problems, path, f"{shown}: name an input, as in {{{{ input.NAME }}}}")
        elif segments[1] not in inputs:
            declared = ", ".join(inputs) or "none"
            add(problems, path, f"{shown}: no declared input {segments[1]!r}; declared: {declared}")
    elif root == "connections":
        if len(segments) != 2:
            add(
                problems,
                path,
                f"{shown}: write {{{{ connections.NAME }}}}; it stands for the "
                "connection's name, and the step gets its settings from the engine",
            )
        elif connection_uses is not None:
            connection_uses.append((path, str(segments[1]), None))
    elif root == "steps":
        _check_step_reference(problems, path, shown, segments, step_key, ancestors, types or {})


def _check_step_reference(
    problems: list[Problem],
    path: str,
    shown: str,
    segments: list[str | int],
    step_key: str | None,
    ancestors: set[str] | None,
    types: dict[str, Any],
) -> None:
    if len(segments) < 3 or segments[2] not in ("output", "callback_url"):
        add(problems, path, f"{shown}: write steps.KEY.output... or steps.KEY.callback_url")
        return
    target = str(segments[1])
    if target not in types:
        add(problems, path, f"{shown}: no step {target!r} in this flow")
    elif segments[2] == "callback_url":
        if types[target] != "wait":
            add(
                problems,
                path,
                f"{shown}: step {target!r} is a {types[target]} step; only wait"
                " steps have a callback_url",
            )
        elif len(segments) > 3:
            add(problems, path, f"{shown}: callback_url is a string; nothing can follow it")
    elif target == step_key:
        add(problems, path, f"{shown}: a step cannot use its own output")
    elif ancestors is not None and target not in ancestors:
        add(
            problems,
            path,
            f"{shown}: step {target!r} is not among the steps this one needs "
            "(directly or indirectly), so its output may not exist yet; add it "
            "to needs",
        )
