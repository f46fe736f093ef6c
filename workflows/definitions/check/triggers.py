"""Checks of `triggers`: manual, schedule (cron, timezone, input) and at most one webhook (its
`verify` preset, `events`, `when` condition and `input` mapping over `webhook.*`)."""

from __future__ import annotations

import copy
import zoneinfo
from typing import Any

from croniter import croniter

from workflows.conditions import ConditionInvalid, condition_compile
from workflows.definitions.base import (
    DEFAULT_TIMEZONE,
    TRIGGER_KEYS,
    TriggerType,
    add,
    unknown_keys,
)
from workflows.definitions.inputs import run_input_problems
from workflows.references import (
    ReferenceSyntaxError,
    find_references,
    is_single_reference,
    parse_reference,
)
from workflows.steps.base import Problem
from workflows.webhook_presets import PRESETS

WEBHOOK_ROOTS = ("body", "headers", "event", "delivery_id")
_PROBES = {"string": "x", "integer": 0, "number": 0, "boolean": False, "object": {}, "array": []}


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
            entry.update(check_webhook(problems, trigger, path, inputs=inputs))
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


def check_webhook(
    problems: list[Problem],
    trigger: dict[str, Any],
    path: str,
    *,
    inputs: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """A webhook trigger's `verify`, `events`, `when` and `input`, as given (absent keys stay
    absent, so a definition without them keeps its content hash)."""
    entry: dict[str, Any] = {}
    if "verify" in trigger:
        verify = trigger["verify"]
        if not isinstance(verify, str) or verify not in PRESETS:
            add(problems, f"{path}.verify",
                f"unknown verify preset {verify!r}; expected one of {', '.join(PRESETS)}")
        entry["verify"] = verify
    if "events" in trigger:
        events = trigger["events"]
        if not isinstance(events, list) or not events or not all(
                isinstance(e, str) and e.strip() and len(e) <= 200 for e in events):
            add(problems, f"{path}.events",
                "must be a non-empty list of event names such as [push, pull_request]")
        verify = trigger.get("verify") or "signature"
        preset = PRESETS.get(verify) if isinstance(verify, str) else None
        if preset is not None and not preset.names_events and isinstance(events, list) \
                and events:
            add(problems, f"{path}.events",
                f"verify: {preset.name} deliveries name no event; filter with when: instead")
        entry["events"] = copy.deepcopy(events)
    if "when" in trigger:
        try:
            condition_compile(trigger["when"])
        except ConditionInvalid as exc:
            add(problems, f"{path}.when", str(exc))
        entry["when"] = trigger["when"]
    if "input" in trigger:
        entry["input"] = copy.deepcopy(trigger["input"])
        _check_webhook_input(problems, trigger["input"], f"{path}.input", inputs=inputs)
    return entry


def _check_webhook_input(problems: list[Problem], mapping: Any, path: str, *,
                         inputs: dict[str, dict[str, Any]]) -> None:
    """Each reference must read `webhook.body…`, `webhook.headers.NAME`, `webhook.event` or
    `webhook.delivery_id`; the mapped names, with what the references will give standing in,
    must make a valid run input (declared names, required ones given, literal types)."""
    if not isinstance(mapping, dict):
        add(problems, path, "must be a mapping of input name to a value or {{ webhook.… }}")
        return
    probe: dict[str, Any] = {}
    for name, template in mapping.items():
        references = find_references(template)
        for suffix, expr in references:
            where = f"{path}.{name}" + (f".{suffix}" if suffix else "")
            try:
                segments = parse_reference(expr)
            except ReferenceSyntaxError as exc:
                add(problems, where, f"invalid reference: {exc}")
                continue
            if segments[0] != "webhook" or len(segments) < 2 or segments[1] not in WEBHOOK_ROOTS:
                add(problems, where, f"{{{{ {expr} }}}}: a webhook trigger's input reads "
                                     "webhook.body, webhook.headers, webhook.event or "
                                     "webhook.delivery_id")
        declared = inputs.get(name) or {}
        if isinstance(template, str) and references:
            if not is_single_reference(template):
                probe[name] = "x" if declared.get("type") == "string" else template
            else:
                probe[name] = (declared.get("enum") or [None])[0] \
                    if declared.get("enum") else _PROBES.get(declared.get("type"), "x")
        else:
            probe[name] = template
    for name, declaration in inputs.items():
        if name not in probe and "default" in declaration:
            probe[name] = declaration["default"]
    for entry in run_input_problems(inputs, probe, path):
        add(problems, entry["path"], entry["message"])
