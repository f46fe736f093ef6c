"""Checks of `triggers`: manual, schedule (cron, timezone, input) and at most one webhook."""

from __future__ import annotations

import copy
import zoneinfo
from typing import Any

from croniter import croniter

from workflows.definitions.base import (
    DEFAULT_TIMEZONE,
    TRIGGER_KEYS,
    TriggerType,
    add,
    unknown_keys,
)
from workflows.definitions.inputs import run_input_problems
from workflows.references import find_references
from workflows.steps.base import Problem


def check_triggers(
    problems: list[Problem], raw: Any, *, inputs: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The normalized triggers ([] when absent); a schedule's input is checked against the
    declared `inputs` as a run's input would be."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        add(problems, "triggers", "must be a list of {type: manual | schedule | webhook, ...}")
        return []
    normalized: list[dict[str, Any]] = []
    webhook_at: int | None = None
    for index, trigger in enumerate(raw):
        path = f"triggers[{index}]"
        if not isinstance(trigger, dict):
            add(problems, path, "must be a mapping with a type")
            continue
        trigger_type = trigger.get("type")
        if not isinstance(trigger_type, str) or trigger_type not in TriggerType.values:
            add(problems, f"{path}.type", f"must be one of {', '.join(TriggerType.values)}")
            continue
        unknown_keys(problems, trigger, TRIGGER_KEYS[trigger_type], path)
        entry: dict[str, Any] = {"type": trigger_type}
        if trigger_type == TriggerType.SCHEDULE:
            entry.update(check_schedule(problems, trigger, path, inputs=inputs))
        elif trigger_type == TriggerType.WEBHOOK:
            if webhook_at is not None:
                add(
                    problems,
                    f"{path}.type",
                    f"a flow has one webhook URL; triggers[{webhook_at}]"
                    " is already a webhook trigger",
                )
            webhook_at = index
        normalized.append(entry)
    return normalized


def _valid_timezone(name: Any) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def check_schedule(
    problems: list[Problem],
    trigger: dict[str, Any],
    path: str,
    *,
    inputs: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """A schedule trigger's normalized cron, timezone (default UTC) and input ({})."""
    cron = trigger.get("cron")
    if not isinstance(cron, str) or not cron.strip():
        add(problems, f"{path}.cron", "required: a cron expression such as '0 2 * * *'")
    elif not croniter.is_valid(cron):
        add(problems, f"{path}.cron", f"{cron!r} is not a valid cron expression")
    timezone = trigger.get("timezone")
    if timezone is None:
        timezone = DEFAULT_TIMEZONE
    elif not _valid_timezone(timezone):
        add(
            problems,
            f"{path}.timezone",
            f"unknown time zone {timezone!r}; use a name such as Europe/Paris or UTC",
        )
    run_input = trigger.get("input")
    if run_input is None:
        run_input = {}
    elif isinstance(run_input, dict):
        for suffix, _expr in find_references(run_input):
            add(problems, f"{path}.input.{suffix}", "references are not allowed in trigger input")
    problems += [
        p for p in run_input_problems(inputs, run_input, f"{path}.input") if p not in problems
    ]
    return {"cron": cron, "timezone": timezone, "input": copy.deepcopy(run_input)}
