"""The approval step type. Registered by `ApprovalsConfig.ready()`; the engine reaches it only
through the StepType hooks (`on_pause` requests the approval, `on_cancel` cancels it,
`on_timeout` expires it)."""

from __future__ import annotations

from typing import Any

from approvals.models import Approval, ApprovalStatus
from approvals.services import approval_expire, approval_request, approvals_cancel_for_step
from workflows.references import is_single_reference
from workflows.steps.base import (
    Problem,
    StepContext,
    StepOutcome,
    StepType,
    problem,
    register_step_type,
)

SHOW_EXAMPLE = "{{ steps.build.output.url }}"


def show_problems(show: Any, path: str) -> list[Problem]:
    """`show`: a list of single references (what the reviewer sees, each labelled by its
    expression). Whether each names something this step may see (an input, a step it runs
    after) is checked with every other reference of the step (definitions/check/references)."""
    if show is None:
        return []
    if not isinstance(show, list) or not show:
        return [problem(path, f"must be a non-empty list of references such as {SHOW_EXAMPLE}")]
    return [
        problem(f"{path}[{index}]", f"must be one reference such as {SHOW_EXAMPLE}")
        for index, item in enumerate(show)
        if not isinstance(item, str) or not is_single_reference(item.strip())
    ]


@register_step_type
class ApprovalStep(StepType):
    """Pauses the run for a human decision by one of `assignees` (groups and users). The
    reviewer sees `show` (references resolved when the approval is requested), by default the
    outputs of the steps it needs. Output: {decision, actor, comment, decided_at}."""

    name = "approval"
    param_keys = frozenset({"assignees", "instructions", "redo_to", "on_timeout", "show"})
    # What the reviewer reads; who decides and what happens after are configuration.
    input_keys = frozenset({"instructions", "show"})

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
        problems += show_problems(step.get("show"), f"{path}.show")
        return problems

    def execute(self, ctx: StepContext) -> StepOutcome:
        ctx.log("waiting for approval\n")
        return StepOutcome("approval", timeout_seconds=ctx.step.get("timeout_seconds"))

    def on_pause(self, *, run: Any, step_run: Any, steps: dict[str, Any],
                 params: dict[str, Any], attempt_number: int) -> None:
        approval_request(run=run, step_run=step_run, steps=steps, params=params,
                         attempt_number=attempt_number)

    def on_cancel(self, *, run: Any, step_run: Any) -> None:
        approvals_cancel_for_step(step_run=step_run)

    def on_timeout(self, *, run: Any, step_run: Any, params: dict[str, Any]) -> bool:
        approval = Approval.objects.filter(step_run=step_run,
                                           status=ApprovalStatus.PENDING).first()
        if approval is None:
            return False
        approval_expire(approval=approval, run=run, step_run=step_run,
                        on_timeout=params.get("on_timeout", "fail"))
        return True
