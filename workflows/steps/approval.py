from __future__ import annotations

from typing import Any

from workflows.steps.base import (
    Problem,
    StepContext,
    StepOutcome,
    StepType,
    problem,
    register_step_type,
)


@register_step_type
class ApprovalStep(StepType):
    """Pauses the run for a human decision by one of `assignees` (groups and users).
    Output: {decision, actor, comment, decided_at}."""

    name = "approval"
    param_keys = frozenset({"assignees", "instructions", "redo_to", "on_timeout"})

    def validate(self, step: dict[str, Any], path: str) -> list[Problem]:
        problems = super().validate(step, path)
        assignees = step.get("assignees", {})
        if not isinstance(assignees, dict):
            return problems + [problem(f"{path}.assignees", "must be {groups: [...], users: [...]}")]
        for key in assignees:
            if key not in ("groups", "users"):
                problems.append(problem(f"{path}.assignees.{key}", "unknown; use groups or users"))
        for key in ("groups", "users"):
            names = assignees.get(key, [])
            if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
                problems.append(problem(f"{path}.assignees.{key}", "must be a list of names"))
        if "instructions" in step and not isinstance(step["instructions"], str):
            problems.append(problem(f"{path}.instructions", "must be text"))
        if step.get("on_timeout", "fail") not in ("fail", "reject", "approve"):
            problems.append(problem(f"{path}.on_timeout", "must be fail, reject or approve"))
        return problems

    def execute(self, ctx: StepContext) -> StepOutcome:
        ctx.log("waiting for approval\n")
        return StepOutcome("approval", timeout_seconds=ctx.step.get("timeout_seconds"))
