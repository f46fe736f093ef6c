"""Checks of the flow as a whole: known top-level fields, slug, name, texts and concurrency."""

from __future__ import annotations

from typing import Any

from workflows.definitions.base import (
    CONCURRENCY_KEYS,
    DEFAULT_CONCURRENCY,
    MAX_NAME_LENGTH,
    MAX_RETENTION_DAYS,
    MAX_SLUG_LENGTH,
    SLUG_PATTERN,
    TOP_LEVEL_KEYS,
    ConcurrencyPolicy,
    add,
    is_int,
    type_name,
    unknown_keys,
)
from workflows.definitions.check.references import check_text_references
from workflows.steps.base import Problem


def check_top_level_keys(problems: list[Problem], definition: dict[str, Any]) -> None:
    for key in definition:
        if key not in TOP_LEVEL_KEYS:
            add(problems, str(key), f"unknown field; expected one of {', '.join(TOP_LEVEL_KEYS)}")


def check_slug(problems: list[Problem], value: Any) -> Any:
    if value is None:
        add(problems, "slug", "required")
    elif not isinstance(value, str):
        add(problems, "slug", f"must be a string, got {type_name(value)}")
    elif not SLUG_PATTERN.fullmatch(value) or len(value) > MAX_SLUG_LENGTH:
        add(
            problems,
            "slug",
            f"must be lowercase letters, digits and hyphens, starting with a letter"
            f" or digit, at most {MAX_SLUG_LENGTH} characters",
        )
    return value


def check_name(problems: list[Problem], value: Any) -> Any:
    if value is None:
        add(problems, "name", "required")
    elif not isinstance(value, str) or not value.strip():
        add(problems, "name", "must be a non-empty string")
    elif len(value) > MAX_NAME_LENGTH:
        add(problems, "name", f"at most {MAX_NAME_LENGTH} characters")
    return value


def check_optional_text(problems: list[Problem], value: Any, path: str) -> Any:
    """An optional text field ("" when absent)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        add(problems, path, f"must be a string, got {type_name(value)}")
    return value


def check_retention_days(problems: list[Problem], value: Any) -> int | None:
    """`retention_days`: a whole number of days ≥ 0 (0 keeps the flow's runs forever); None
    when absent (WF_RETENTION_DAYS applies)."""
    if value is None:
        return None
    if not is_int(value) or not 0 <= value <= MAX_RETENTION_DAYS:
        add(problems, "retention_days",
            f"must be a whole number of days from 0 (keep forever) to {MAX_RETENTION_DAYS}")
        return None
    return value


def check_concurrency(
    problems: list[Problem], raw: Any, *, inputs: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The normalized `concurrency` (None when absent); its key may refer to inputs only."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        add(problems, "concurrency", "must be a mapping {key, limit, policy}")
        return None
    unknown_keys(problems, raw, CONCURRENCY_KEYS, "concurrency")
    normalized = dict(DEFAULT_CONCURRENCY)
    key = raw.get("key")
    if key is not None and not isinstance(key, str):
        add(problems, "concurrency.key", f"must be a string, got {type_name(key)}")
    elif key:
        check_text_references(problems, key, "concurrency.key", roots=("input",), inputs=inputs)
        normalized["key"] = key
    limit = raw.get("limit", 1)
    if not is_int(limit) or limit < 1:
        add(problems, "concurrency.limit", "must be an integer of 1 or more")
    normalized["limit"] = limit
    policy = raw.get("policy", DEFAULT_CONCURRENCY["policy"])
    if not isinstance(policy, str) or policy not in ConcurrencyPolicy.values:
        add(problems, "concurrency.policy", f"must be one of {', '.join(ConcurrencyPolicy.values)}")
    normalized["policy"] = policy
    return normalized
