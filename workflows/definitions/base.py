"""The vocabulary of flow definitions: enums, limits, field lists and small value predicates.

Every other module of the package reads these; this one imports nothing from the package.
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.db import models

from workflows.steps.base import Problem, problem


class InputType(models.TextChoices):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"


class ConcurrencyPolicy(models.TextChoices):
    """What starting a run does when `limit` runs with the same concurrency key are active."""

    ALLOW = "allow"  # start anyway (the limit is not enforced)
    QUEUE = "queue"  # wait until one finishes
    SKIP = "skip"  # do not start the new run
    CANCEL_RUNNING = "cancel_running"  # cancel the active ones and start


class TriggerType(models.TextChoices):
    """Triggers a definition declares. Manual runs are always allowed, declared or not."""

    MANUAL = "manual"
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"


class NotifyEvent(models.TextChoices):
    """What a flow's `notify:` rules can be about."""

    FAILED = "failed"
    COMPLETED = "completed"
    APPROVAL_REQUESTED = "approval_requested"
    PROMOTION_REQUESTED = "promotion_requested"


# The path of a problem with the document as a whole.
DOCUMENT = "(document)"

SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")
STEP_KEY_PATTERN = re.compile(r"[a-z0-9_]+")
INPUT_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_SLUG_LENGTH = 100
MAX_NAME_LENGTH = 200
MAX_STEP_KEY_LENGTH = 100
MAX_ATTEMPTS = 100
# Bounds on a parsed document, so YAML aliases cannot expand into something huge or recursive.
MAX_DOCUMENT_NODES = 100_000
MAX_DOCUMENT_DEPTH = 64

TOP_LEVEL_KEYS = (
    "slug", "name", "description", "input", "concurrency", "triggers", "steps", "notify",
    "promotion", "retention_days",
)
MAX_RETENTION_DAYS = 36_500
INPUT_DECLARATION_KEYS = ("type", "required", "default", "description", "enum")
CONCURRENCY_KEYS = ("key", "limit", "policy")
TRIGGER_KEYS = {
    TriggerType.MANUAL: ("type",),
    TriggerType.SCHEDULE: ("type", "cron", "input", "timezone"),
    TriggerType.WEBHOOK: ("type", "verify", "events", "when", "input"),
}
RETRY_DEFAULTS = {"max_attempts": 1, "backoff_seconds": 0, "backoff_factor": 2}
DEFAULT_CONCURRENCY = {"key": None, "limit": 1, "policy": ConcurrencyPolicy.QUEUE.value}
DEFAULT_TIMEZONE = "UTC"
NOTIFY_KEYS = ("on", "email", "webhook")
REFERENCE_ROOTS = ("input", "steps", "connections")
# Roots a for_each step's parameters may also refer to: the instance's item and its index.
ITEM_ROOTS = ("item", "item_index")

TYPE_DESCRIPTIONS = {
    InputType.STRING: "a string",
    InputType.INTEGER: "an integer",
    InputType.NUMBER: "a number",
    InputType.BOOLEAN: "true or false",
    InputType.OBJECT: "a mapping",
    InputType.ARRAY: "a list",
}


def type_name(value: Any) -> str:
    """How a problem message names the type of a parsed value (YAML/JSON vocabulary)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__


def promotion_approval(definition: Any) -> dict[str, Any] | None:
    """The definition's `promotion` block when it requires a second person's approval (the
    two-person rule), else None."""
    rule = definition.get("promotion") if isinstance(definition, dict) else None
    return rule if isinstance(rule, dict) and rule.get("requires_approval") else None


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return is_int(value)


def add(problems: list[Problem], path: str, message: str) -> None:
    """Append a problem unless the same one is listed already (checks may meet one twice)."""
    entry = problem(path, message)
    if entry not in problems:
        problems.append(entry)


def unknown_keys(
    problems: list[Problem], mapping: dict[str, Any], allowed: tuple[str, ...], path: str
) -> None:
    for key in mapping:
        if key not in allowed:
            add(problems, f"{path}.{key}", f"unknown field; expected one of {', '.join(allowed)}")
