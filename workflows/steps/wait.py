from __future__ import annotations

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
    (the posted JSON body becomes the output). `on_timeout: fail | continue`."""

    name = "wait"
    param_keys = frozenset({"duration_seconds", "on_timeout"})
    input_keys = frozenset()

    def validate(self, step: dict[str, Any], path: str) -> list[Problem]:
        problems = super().validate(step, path)
        duration = step.get("duration_seconds")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int | float) or duration < 0
        ):
            problems.append(problem(f"{path}.duration_seconds", "must be a number >= 0"))
        if step.get("on_timeout", "fail") not in ON_TIMEOUT:
            problems.append(problem(f"{path}.on_timeout", "must be fail or continue"))
        return problems

    def execute(self, ctx: StepContext) -> StepOutcome:
        duration = ctx.step.get("duration_seconds")
        if duration is not None:
            ctx.log(f"waiting {duration}s\n")
            return StepOutcome("wait", wake_at=timezone.now() + timedelta(seconds=duration))
        ctx.log("waiting for a callback\n")
        return StepOutcome("wait", timeout_seconds=ctx.step.get("timeout_seconds"))
