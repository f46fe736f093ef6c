"""Validation of a flow definition, one module per part (metadata, inputs, triggers, steps,
references, connections, promotion). Each check is a function that takes what it needs, appends the
problems it finds to a shared list and returns its normalized part; `validate_definition` runs
them in document order and raises DefinitionInvalid with every problem.
"""

from __future__ import annotations

from typing import Any

from workflows.definitions.base import DOCUMENT
from workflows.definitions.check.connections import check_connections_exist
from workflows.definitions.check.inputs import check_input_declarations
from workflows.definitions.check.metadata import (
    check_concurrency,
    check_name,
    check_optional_text,
    check_retention_days,
    check_slug,
    check_top_level_keys,
)
from workflows.definitions.check.notify import check_notify, check_notify_targets, yaml_on_read
from workflows.definitions.check.promotion import check_promotion
from workflows.definitions.check.references import ConnectionUses
from workflows.definitions.check.steps import check_steps
from workflows.definitions.check.triggers import check_triggers
from workflows.definitions.parse import json_problems
from workflows.errors import DefinitionInvalid
from workflows.steps.base import Problem, problem

__all__ = ["validate_definition"]


def validate_definition(
    definition: dict[str, Any], *, check_connections: bool = False
) -> dict[str, Any]:
    """The normalized copy of `definition`, or DefinitionInvalid listing every problem found.

    Problems carry paths such as `slug`, `input.limit.default`, `steps[2].args.x`,
    `steps[0].needs[1]`, `triggers[0].cron`, `concurrency.policy`, `notify[0].webhook`. The normalized form has every
    top-level field (`description` "", `input` {}, `concurrency` None or filled, `triggers` []; `notify` and `promotion`
    only when given, filled);
    each input declaration has type, required (False), default (None) and description (""); each
    step has `needs` as a list (default: the previous step; none for the first; `needs: []` means
    none) and `retry` with max_attempts, backoff_seconds, backoff_factor. `notify` is
    present only when the definition has rules (so definitions without it keep their hash),
    each rule with `on`, `email` ([]) and `webhook` (None). Validating a normalized
    definition again returns an equal one. `definition` is not mutated.

    With `check_connections`, connections that steps name or refer to must exist, and a step's
    connection must be of a kind its type accepts: one query. Literal http step URLs and notify
    webhooks must pass the outbound policy (connections/outbound.py), and a notify webhook may
    not point at this platform. This is the release and promotion check.
    """
    if not isinstance(definition, dict):
        raise DefinitionInvalid([problem(DOCUMENT, "must be a mapping")])
    definition = yaml_on_read(definition)
    problems: list[Problem] = json_problems(definition, "")
    connection_uses: ConnectionUses | None = [] if check_connections else None
    check_top_level_keys(problems, definition)
    normalized: dict[str, Any] = {
        "slug": check_slug(problems, definition.get("slug")),
        "name": check_name(problems, definition.get("name")),
        "description": check_optional_text(problems, definition.get("description"), "description"),
    }
    inputs = normalized["input"] = check_input_declarations(problems, definition.get("input"))
    normalized["concurrency"] = check_concurrency(
        problems, definition.get("concurrency"), inputs=inputs
    )
    retention_days = check_retention_days(problems, definition.get("retention_days"))
    if retention_days is not None:
        normalized["retention_days"] = retention_days
    normalized["triggers"] = check_triggers(problems, definition.get("triggers"), inputs=inputs)
    normalized["steps"] = check_steps(
        problems, definition.get("steps"), inputs=inputs, connection_uses=connection_uses
    )
    notify = check_notify(problems, definition.get("notify"))
    if notify:
        normalized["notify"] = notify
        if check_connections:
            check_notify_targets(problems, notify)
    promotion = check_promotion(problems, definition.get("promotion"))
    if promotion is not None:
        normalized["promotion"] = promotion
    if connection_uses:
        check_connections_exist(problems, connection_uses)
    if problems:
        raise DefinitionInvalid(problems)
    return normalized
