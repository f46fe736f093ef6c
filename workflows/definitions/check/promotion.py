"""Check of the optional `promotion` block: the two-person rule of a flow's releases.

    promotion: {requires_approval: true, approvers: {groups: [...], users: [...]},
                timeout_seconds: 259200}

With `requires_approval`, promoting a release creates a promotion request (an approval of kind
`promotion`) that someone other than the requester must approve before the release goes live.
Approvers named nobody: the reviewers group decides, as for an approval step naming nobody.
A request nobody decides expires after `timeout_seconds` (default three days).
"""

from __future__ import annotations

from typing import Any

from workflows.definitions.base import add, is_int, type_name, unknown_keys
from workflows.steps.base import Problem

PROMOTION_KEYS = ("requires_approval", "approvers", "timeout_seconds")
APPROVER_KEYS = ("groups", "users")
DEFAULT_PROMOTION_TIMEOUT_SECONDS = 3 * 24 * 3600
MAX_PROMOTION_TIMEOUT_SECONDS = 365 * 24 * 3600


def check_promotion(problems: list[Problem], raw: Any) -> dict[str, Any] | None:
    """The normalized `promotion` block (None when absent): requires_approval (False),
    approvers {groups: [], users: []} and timeout_seconds filled."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        add(problems, "promotion",
            "must be a mapping {requires_approval, approvers: {groups, users}}")
        return None
    unknown_keys(problems, raw, PROMOTION_KEYS, "promotion")
    required = raw.get("requires_approval", False)
    if not isinstance(required, bool):
        add(problems, "promotion.requires_approval",
            f"must be true or false, got {type_name(required)}")
    approvers = raw.get("approvers")
    normalized_approvers: dict[str, list[str]] = {"groups": [], "users": []}
    if approvers is not None and not isinstance(approvers, dict):
        add(problems, "promotion.approvers", "must be a mapping {groups: [...], users: [...]}")
    elif isinstance(approvers, dict):
        unknown_keys(problems, approvers, APPROVER_KEYS, "promotion.approvers")
        for key in APPROVER_KEYS:
            names = approvers.get(key, [])
            if names is None:
                continue
            if not isinstance(names, list) or not all(isinstance(n, str) and n.strip()
                                                      for n in names):
                add(problems, f"promotion.approvers.{key}", "must be a list of names")
                continue
            normalized_approvers[key] = list(dict.fromkeys(n.strip() for n in names))
    timeout = raw.get("timeout_seconds", DEFAULT_PROMOTION_TIMEOUT_SECONDS)
    if not is_int(timeout) or not 60 <= timeout <= MAX_PROMOTION_TIMEOUT_SECONDS:
        add(problems, "promotion.timeout_seconds",
            f"must be an integer from 60 to {MAX_PROMOTION_TIMEOUT_SECONDS}")
    return {"requires_approval": required is True, "approvers": normalized_approvers,
            "timeout_seconds": timeout}
