"""Checks of `steps`: keys, types and their parameters, needs and cycles, retry, timeout,
`when`; then each step's references, once the graph of needs is known.

A step's type validates its own parameters (`StepType.validate`); this module checks what every
step has in common and builds the normalized step: `needs` as a list (default: the previous
step; none for the first) and `retry` filled with its defaults.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from django.conf import settings

from workflows.definitions.base import (
    MAX_ATTEMPTS,
    MAX_STEP_KEY_LENGTH,
    RETRY_DEFAULTS,
    STEP_KEY_PATTERN,
    add,
    is_int,
    is_number,
    type_name,
    unknown_keys,
)
from workflows.definitions.check.conditions import (
    check_continue_on_error,
    check_until,
    check_when,
)
from workflows.definitions.check.for_each import check_for_each
from workflows.definitions.check.metadata import check_optional_text
from workflows.definitions.check.references import ConnectionUses, check_step_references
from workflows.definitions.graph import closure, find_cycles
from workflows.steps import get_step_type, step_type_names
from workflows.steps.base import Problem, problem

logger = logging.getLogger("workflows.definitions")


def check_steps(
    problems: list[Problem],
    raw: Any,
    *,
    inputs: dict[str, dict[str, Any]],
    connection_uses: ConnectionUses | None,
) -> list[dict[str, Any]]:
    """The normalized steps. `connection_uses` (None: connections are not checked) collects
    the connections steps name, for `check_connections_exist`."""
    if raw is None:
        add(problems, "steps", "required: a non-empty list of steps")
        return []
    if not isinstance(raw, list):
        add(problems, "steps", f"must be a list of steps, got {type_name(raw)}")
        return []
    if not raw:
        add(problems, "steps", "a flow needs at least one step")
        return []
    if len(raw) > settings.WF_MAX_STEPS:
        # Not checked further: the document is refused anyway, and checking 10,000 steps is
        # what made such a definition slow.
        add(problems, "steps", f"{len(raw):,} steps; WF_MAX_STEPS allows at most "
                               f"{settings.WF_MAX_STEPS:,}")
        return []

    # Keys first: needs may name any step, before or after.
    keys: dict[int, str] = {}  # index -> key, for the first step holding each valid key
    index_of: dict[str, int] = {}
    for index, step in enumerate(raw):
        if isinstance(step, dict):
            key = check_step_key(problems, step.get("key"), f"steps[{index}].key", index_of)
            if key is not None:
                keys[index] = key
                index_of[key] = index

    normalized: list[dict[str, Any]] = []
    needs_at: dict[int, list[str]] = {}
    unsure: set[int] = set()  # steps whose needs had problems: their ancestry is unknown
    for index, step in enumerate(raw):
        path = f"steps[{index}]"
        if not isinstance(step, dict):
            add(problems, path, f"must be a mapping with a key and a type, got {type_name(step)}")
            continue
        previous = raw[index - 1] if index else None
        previous_key = previous.get("key") if isinstance(previous, dict) else None
        default_needs = (
            [previous_key] if isinstance(previous_key, str) and previous_key in index_of else []
        )
        before = len(problems)
        needs = check_needs(problems, step, path, step.get("key"), index_of, default_needs)
        if len(problems) > before:
            unsure.add(index)
        needs_at[index] = needs
        check_step_type_params(problems, step, path, connection_uses=connection_uses)
        entry = copy.deepcopy(step)
        entry["needs"] = needs
        entry["retry"] = check_retry(problems, step.get("retry"), f"{path}.retry")
        check_step_common(problems, step, path)
        until = check_until(problems, step.get("until"), f"{path}.until")
        if until is not None:
            entry["until"] = until
        check_for_each(problems, step, path)
        normalized.append(entry)

    graph = {key: needs_at[index] for index, key in keys.items()}
    for cycle in find_cycles(graph):
        add(
            problems,
            f"steps[{index_of[cycle[0]]}].needs",
            "needs form a cycle: " + " -> ".join(cycle + cycle[:1]),
        )

    types = {key: raw[index].get("type") for index, key in keys.items()}
    unsure_keys = {keys[index] for index in unsure if index in keys}
    for index, step in enumerate(raw):
        if index in needs_at:
            reachable = closure(graph, needs_at[index])
            # Ancestry built on broken needs would only repeat their problem.
            ancestors = (
                None
                if index in unsure or reachable & unsure_keys
                else reachable - {keys.get(index)}
            )
            check_step_references(
                problems,
                step,
                f"steps[{index}]",
                key=keys.get(index),
                ancestors=ancestors,
                types=types,
                inputs=inputs,
                connection_uses=connection_uses,
            )
    return normalized


def check_step_key(
    problems: list[Problem], key: Any, path: str, index_of: dict[str, int]
) -> str | None:
    """The step's key when it is valid and not taken by an earlier step, else None."""
    if key is None:
        add(problems, path, "required")
    elif not isinstance(key, str):
        add(problems, path, f"must be a string, got {type_name(key)}")
    elif not STEP_KEY_PATTERN.fullmatch(key) or len(key) > MAX_STEP_KEY_LENGTH:
        add(
            problems,
            path,
            f"must be lowercase letters, digits and _, at most {MAX_STEP_KEY_LENGTH} characters",
        )
    elif key in index_of:
        add(problems, path, f"duplicate key {key!r}: steps[{index_of[key]}] has it already")
    else:
        return key
    return None


def check_step_type_params(
    problems: list[Problem],
    step: dict[str, Any],
    path: str,
    *,
    connection_uses: ConnectionUses | None,
) -> None:
    """The step's type exists and accepts the step's parameters (its own `validate`)."""
    step_type_name = step.get("type")
    step_type = get_step_type(step_type_name) if isinstance(step_type_name, str) else None
    if step_type is None:
        known = ", ".join(step_type_names())
        if step_type_name is None:
            add(problems, f"{path}.type", f"required: one of {known}")
        else:
            add(problems, f"{path}.type", f"unknown step type {step_type_name!r}; known: {known}")
        return
    try:
        found = step_type.validate(step, path)
    except Exception as exc:  # a step type's bug must not hide the other problems
        logger.exception("step type %s failed validating %s", step_type_name, path)
        found = [problem(path, f"could not be checked by the {step_type_name} step type: {exc}")]
    for entry in found:
        add(problems, entry["path"], entry["message"])
    if connection_uses is not None:
        for name in step_type.connection_names(step):
            if isinstance(name, str) and name:
                where = f"{path}.connection" if step.get("connection") == name else path
                on_cancel = step.get("on_cancel")
                if isinstance(on_cancel, dict) and on_cancel.get("connection") == name:
                    where = f"{path}.on_cancel.connection"  # a wait's (workflows/steps/wait.py)
                connection_uses.append((where, name, step_type_name))
        # Checks a step type can only make against the connections it names (a literal URL
        # outside an http connection's base_url, an ssh proxy_jump chain).
        for entry in step_type.release_problems(step, path):
            add(problems, entry["path"], entry["message"])


def check_needs(
    problems: list[Problem],
    step: dict[str, Any],
    path: str,
    own_key: Any,
    index_of: dict[str, int],
    default: list[str],
) -> list[str]:
    """The step's needs as a list of existing keys (`default` when it has none)."""
    raw = step.get("needs")
    if raw is None:
        return default
    if isinstance(raw, str):
        items = [(f"{path}.needs", raw)]
    elif isinstance(raw, list):
        items = [(f"{path}.needs[{i}]", name) for i, name in enumerate(raw)]
    else:
        add(problems, f"{path}.needs", "must be a step key or a list of step keys")
        return []
    needs: list[str] = []
    for item_path, name in items:
        if not isinstance(name, str):
            add(problems, item_path, f"must be a step key, got {type_name(name)}")
        elif name == own_key:
            add(problems, item_path, "a step cannot need itself")
        elif name not in index_of:
            add(problems, item_path, f"no step {name!r} in this flow")
        elif name in needs:
            add(problems, item_path, f"{name!r} is listed twice")
        else:
            needs.append(name)
    return needs


def check_retry(problems: list[Problem], raw: Any, path: str) -> dict[str, Any]:
    """The retry policy with every field filled (RETRY_DEFAULTS)."""
    if raw is None:
        return dict(RETRY_DEFAULTS)
    if not isinstance(raw, dict):
        add(problems, path, "must be a mapping {max_attempts, backoff_seconds, backoff_factor}")
        return dict(RETRY_DEFAULTS)
    unknown_keys(problems, raw, tuple(RETRY_DEFAULTS), path)
    retry = {**RETRY_DEFAULTS, **{k: v for k, v in raw.items() if k in RETRY_DEFAULTS}}
    attempts = retry["max_attempts"]
    if not is_int(attempts) or not 1 <= attempts <= MAX_ATTEMPTS:
        add(problems, f"{path}.max_attempts", f"must be an integer from 1 to {MAX_ATTEMPTS}")
    if not is_number(retry["backoff_seconds"]) or retry["backoff_seconds"] < 0:
        add(problems, f"{path}.backoff_seconds", "must be a number of 0 or more")
    if not is_number(retry["backoff_factor"]) or retry["backoff_factor"] < 1:
        add(problems, f"{path}.backoff_factor", "must be a number of 1 or more")
    return retry


def check_step_common(problems: list[Problem], step: dict[str, Any], path: str) -> None:
    """timeout_seconds, when, continue_on_error, name and description, which every step may
    carry."""
    timeout = step.get("timeout_seconds")
    if timeout is not None and (not is_number(timeout) or timeout <= 0):
        add(problems, f"{path}.timeout_seconds", "must be a number of seconds above 0")
    check_when(problems, step.get("when"), f"{path}.when")
    check_continue_on_error(problems, step.get("continue_on_error"), f"{path}.continue_on_error")
    for field in ("name", "description"):
        if field in step:
            check_optional_text(problems, step[field], f"{path}.{field}")
