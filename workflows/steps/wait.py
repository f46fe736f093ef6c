from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.utils import timezone

from workflows.steps.base import (
    Problem,
    StepContext,
    StepOutcome,
    StepType,
    problem,
    register_step_type,
)

ON_TIMEOUT = ("fail", "continue")


@register_step_type
class WaitStep(StepType):
    """Pauses the run: for `duration_seconds`, or until its single-use callback URL is posted to
    (the posted JSON body becomes the output). `on_timeout: fail | continue`.

    A wait handed to a remote agent may also say `heartbeat_timeout_seconds`, `budget:
    {cost_usd, tokens}` and `on_cancel: {connection, command}` (CONTRACT.md "Remote agents";
    the engine enforces them: workflows/engine/agents.py)."""

    name = "wait"
    param_keys = frozenset({"duration_seconds", "on_timeout", "heartbeat_timeout_seconds",
                            "budget", "on_cancel"})
    input_keys = frozenset()
    connection_kinds = frozenset({"ssh"})

    def connection_names(self, step: dict[str, Any]) -> list[str]:
        on_cancel = step.get("on_cancel")
        name = on_cancel.get("connection") if isinstance(on_cancel, dict) else None
        return [name] if isinstance(name, str) and name else []

    def validate(self, step: dict[str, Any], path: str) -> list[Problem]:
        problems = super().validate(step, path)
        duration = step.get("duration_seconds")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0
        ):
            problems.append(problem(f"{path}.duration_seconds", "must be a number >= 0"))
        if step.get("on_timeout", "fail") not in ON_TIMEOUT:
            problems.append(problem(f"{path}.on_timeout", "must be fail or continue"))
        return problems + _agent_problems(step, path)

    def execute(self, ctx: StepContext) -> StepOutcome:
        duration = ctx.step.get("duration_seconds")
        if duration is not None:
            ctx.log(f"waiting {duration}s\n")
            return StepOutcome("wait", wake_at=timezone.now() + timedelta(seconds=duration))
        ctx.log("waiting for a callback\n")
        return StepOutcome("wait", timeout_seconds=ctx.step.get("timeout_seconds"))


def _positive(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and math.isfinite(value) and value > 0)


def _agent_problems(step: dict[str, Any], path: str) -> list[Problem]:
    """The remote agent's fields: checked at draft time, each problem at its own path."""
    problems: list[Problem] = []
    seconds = step.get("heartbeat_timeout_seconds")
    if seconds is not None and not _positive(seconds):
        problems.append(problem(f"{path}.heartbeat_timeout_seconds", "must be a number > 0"))
    if "budget" in step:
        budget = step["budget"]
        if not isinstance(budget, dict) or not budget:
            problems.append(problem(f"{path}.budget", "must be an object with cost_usd and/or "
                                                      "tokens"))
        else:
            for key in budget:
                if key not in ("cost_usd", "tokens"):
                    problems.append(problem(f"{path}.budget.{key}",
                                            "unknown field (cost_usd, tokens)"))
                elif not _positive(budget[key]) or (
                        key == "tokens" and not isinstance(budget[key], int)):
                    problems.append(problem(f"{path}.budget.{key}", "must be a number > 0"
                                            if key == "cost_usd" else "must be an integer > 0"))
    if "on_cancel" in step:
        on_cancel = step["on_cancel"]
        if not isinstance(on_cancel, dict):
            problems.append(problem(f"{path}.on_cancel", "must be an object with connection "
                                                         "and command"))
        else:
            for key in on_cancel:
                if key not in ("connection", "command"):
                    problems.append(problem(f"{path}.on_cancel.{key}",
                                            "unknown field (connection, command)"))
            for key in ("connection", "command"):
                value = on_cancel.get(key)
                if not isinstance(value, str) or not value.strip():
                    problems.append(problem(f"{path}.on_cancel.{key}",
                                            "required: a non-empty string"))
                elif "\x00" in value:
                    problems.append(problem(f"{path}.on_cancel.{key}", "must not hold NUL"))
    if step.get("duration_seconds") is not None and any(
            k in step for k in ("heartbeat_timeout_seconds", "budget", "on_cancel")):
        problems.append(problem(f"{path}.duration_seconds",
                                "a timer wait has no remote agent: drop heartbeat_timeout_seconds, "
                                "budget and on_cancel, or duration_seconds"))
    return problems
