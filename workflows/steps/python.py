from __future__ import annotations

from typing import Any

from workflows.steps.actions import action_names, get_action
from workflows.steps.base import (
    Problem,
    StepContext,
    StepFailed,
    StepOutcome,
    StepType,
    problem,
    register_step_type,
)


@register_step_type
class PythonStep(StepType):
    """Runs a registered action with `args`; the action's return value is the output."""

    name = "python"
    param_keys = frozenset({"action", "args"})
    input_keys = frozenset({"args"})

    def split_input(self, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The input is the action's keyword arguments themselves."""
        _, configuration = super().split_input(params)
        args = params.get("args")
        return (args if isinstance(args, dict) else {}), configuration

    def validate(self, step: dict[str, Any], path: str) -> list[Problem]:
        problems = super().validate(step, path)
        name = step.get("action")
        if not isinstance(name, str) or not name:
            problems.append(problem(f"{path}.action", "required: the name of a registered action"))
        elif get_action(name) is None:
            problems.append(problem(
                f"{path}.action",
                f"unknown action {name!r}; registered: {', '.join(action_names())}",
            ))
        if "args" in step and not isinstance(step["args"], dict):
            problems.append(problem(f"{path}.args", "must be a mapping"))
        return problems

    def execute(self, ctx: StepContext) -> StepOutcome:
        func = get_action(ctx.step["action"])
        if func is None:
            raise StepFailed(f"action {ctx.step['action']!r} is not registered on this worker",
                             error_type="UnknownAction", retryable=False)
        return StepOutcome.completed(func(ctx, **(ctx.step.get("args") or {})))
