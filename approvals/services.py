"""Approval requests and decisions. The admin, the API and the CLI all decide through here."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus
from approvals.selectors import REVIEWERS_GROUP, approvals_decidable
from workflows.definitions import step_ancestors, step_descendants
from workflows.engine import progress
from workflows.errors import Conflict, NotPermitted
from workflows.models import ActorKind, Run, StepRun
from workflows.permissions import actor_name
from workflows.services.callbacks import callback_mint
from workflows.services.transitions import event_record, run_transition, step_transition
from workflows.states import AttemptStatus, RunStatus, StepStatus

__all__ = ["REVIEWERS_GROUP", "ApprovalNotAllowed", "approval_approve", "approval_can_decide",
           "approval_redo", "approval_reject", "approval_request"]


class ApprovalNotAllowed(NotPermitted):
    """The actor is not an assignee of this approval."""

    code = "not_an_assignee"


def approval_request(*, run: Run, step_run: StepRun, steps: dict[str, StepRun],
                     params: dict[str, Any], attempt_number: int) -> Approval:
    """Create the pending Approval for a step that just reached waiting_for_approval.
    Runs in the executor's transaction (run lock held)."""
    assignees = params.get("assignees") or {}
    users = list(assignees.get("users") or [])
    groups = list(assignees.get("groups") or [])
    data = {key: steps[key].output for key in step_run.needs if key in steps}
    approval = Approval.objects.create(
        run=run, step_run=step_run, attempt_number=attempt_number,
        instructions=str(params.get("instructions") or ""), data=data,
        assignees={"users": users, "groups": groups}, for_reviewers=not users and not groups,
        redo_to=params.get("redo_to") or "",
        timeout_at=step_run.timeout_at,
    )
    if users:
        approval.assignee_users.set(get_user_model().objects.filter(username__in=users))
    if groups:
        approval.assignee_groups.set(Group.objects.filter(name__in=groups))
    event_record(run_id=run.pk, step_run_id=step_run.pk, kind="approval_requested",
                 reason=approval.instructions[:500],
                 data={"approval": approval.pk, "assignees": approval.assignees})
    return approval


def approval_can_decide(*, approval: Approval, actor) -> bool:
    """The rule of `approvals.selectors.approvals_decidable`, for one approval."""
    if actor is None or not getattr(actor, "is_active", False):
        return False
    return actor.is_superuser or approvals_decidable(user=actor).filter(pk=approval.pk).exists()


def _decide(approval: Approval, actor, status: str, comment: str) -> tuple[Run, StepRun]:
    """Lock, check the actor and the pending state, and record the decision."""
    if not approval_can_decide(approval=approval, actor=actor):
        raise ApprovalNotAllowed("you are not an assignee of this approval")
    run = progress.lock_run(approval.run_id)
    fresh = Approval.objects.select_for_update().get(pk=approval.pk)
    if fresh.status != ApprovalStatus.PENDING:
        raise Conflict(f"approval {approval.pk} is already {fresh.status}")
    step_run = StepRun.objects.get(pk=approval.step_run_id)
    if step_run.status != StepStatus.WAITING_FOR_APPROVAL:
        raise Conflict(f"step {step_run.key} is {step_run.status}, not waiting for approval")
    now = timezone.now()
    Approval.objects.filter(pk=approval.pk).update(
        status=status, decision_actor=actor, comment=comment, decided_at=now
    )
    approval.status, approval.decision_actor, approval.comment, approval.decided_at = (
        status, actor, comment, now)
    return run, step_run


def _decision_output(approval: Approval, decision: str) -> dict[str, Any]:
    return {
        "decision": decision,
        "actor": actor_name(approval.decision_actor),
        "comment": approval.comment,
        "decided_at": approval.decided_at.isoformat().replace("+00:00", "Z"),
    }


def approval_approve(*, approval: Approval, actor, comment: str = "") -> Approval:
    """Approve: the step completes with {decision, actor, comment, decided_at}; the run goes on."""
    with transaction.atomic():
        run, step_run = _decide(approval, actor, ApprovalStatus.APPROVED, comment)
        output = _decision_output(approval, "approved")
        step_transition(step_run, StepStatus.COMPLETED, actor_kind=ActorKind.USER,
                        actor=actor_name(actor), kind="approval_approved", reason=comment,
                        fields={"output": output}, data={"approval": approval.pk})
        progress.attempt_finish(step_run, AttemptStatus.COMPLETED, output=output)
        steps = progress.load_steps(run)
        queued = progress.queue_ready(run, steps)
        progress.run_settle(run, steps, actor_kind=ActorKind.USER, actor=actor_name(actor))
        progress.enqueue([s.pk for s in queued])
    return approval


def approval_reject(*, approval: Approval, actor, comment: str = "") -> Approval:
    """Reject: the step is rejected and the run fails."""
    with transaction.atomic():
        run, step_run = _decide(approval, actor, ApprovalStatus.REJECTED, comment)
        output = _decision_output(approval, "rejected")
        step_transition(step_run, StepStatus.REJECTED, actor_kind=ActorKind.USER,
                        actor=actor_name(actor), kind="approval_rejected", reason=comment,
                        data={"approval": approval.pk},
                        fields={"output": output, "error": {
                            "type": "Rejected",
                            "message": f"rejected by {actor_name(actor)}"
                                       + (f": {comment}" if comment else "")}})
        progress.attempt_finish(step_run, AttemptStatus.REJECTED, output=output)
        steps = progress.load_steps(run)
        progress.run_settle(run, steps, actor_kind=ActorKind.USER, actor=actor_name(actor),
                            reason=f"approval rejected by {actor_name(actor)}")
    return approval


def redo_target(*, approval: Approval, step_run: StepRun, definition: dict[str, Any],
                to_step: str | None) -> str:
    keys = [s["key"] for s in definition["steps"]]
    target = to_step or approval.redo_to
    if not target:
        position = keys.index(step_run.key)
        if position == 0:
            raise Conflict("the approval is the first step; there is nothing to redo")
        target = keys[position - 1]
    if target not in keys:
        raise Conflict(f"there is no step {target!r} to redo")
    if target not in step_ancestors(definition, step_run.key):
        raise Conflict(f"step {target!r} does not come before {step_run.key!r}")
    return target


def approval_redo(*, approval: Approval, actor, comment: str = "",
                  to_step: str | None = None) -> Approval:
    """Send the run back: the target step (`to_step`, the step's `redo_to`, or the previous
    step) gets a new attempt, the steps between it and this approval start again, and a new
    approval is requested when the run reaches this step again."""
    with transaction.atomic():
        run, step_run = _decide(approval, actor, ApprovalStatus.REDONE, comment)
        definition = run.definition
        target = redo_target(approval=approval, step_run=step_run, definition=definition,
                             to_step=to_step)
        Approval.objects.filter(pk=approval.pk).update(redo_step=target)
        approval.redo_step = target
        between = step_descendants(definition, target) & step_ancestors(definition, step_run.key)
        steps = progress.load_steps(run)
        progress.attempt_finish(step_run, AttemptStatus.CANCELED,
                                output=_decision_output(approval, "redo"))
        actor_label = actor_name(actor)
        reason = f"redo to {target} by {actor_label}" + (f": {comment}" if comment else "")
        for key in [k for k in steps if k in between or k == step_run.key]:
            _reset_for_redo(steps[key], actor_label, reason)
        _reset_for_redo(steps[target], actor_label, reason, queue=True)
        if run.status != RunStatus.RUNNING:
            run_transition(run, RunStatus.RUNNING, actor_kind=ActorKind.USER, actor=actor_label,
                           kind="run_redo", reason=reason)
        progress.enqueue([steps[target].pk])
    return approval


def _reset_for_redo(step: StepRun, actor: str, reason: str, *, queue: bool = False) -> None:
    fields: dict[str, Any] = {
        "retry_base": step.attempt_count, "output": None, "error": None, "started_at": None,
        "finished_at": None, "timeout_at": None, "not_before": None,
    }
    if step.type == "wait":
        nonce, digest = callback_mint()
        fields.update(callback_nonce=nonce, callback_token_hash=digest, callback_payload=None,
                      callback_received_at=None)
    if queue:
        fields["enqueued_at"] = timezone.now()
    step_transition(step, StepStatus.QUEUED if queue else StepStatus.NOT_STARTED,
                    actor_kind=ActorKind.USER, actor=actor, kind="step_redo", reason=reason,
                    fields=fields, redo=True)


def approvals_cancel_for_step(*, step_run: StepRun) -> None:
    Approval.objects.filter(step_run=step_run, status=ApprovalStatus.PENDING).update(
        status=ApprovalStatus.CANCELED, decided_at=timezone.now()
    )


def approval_expire(*, approval: Approval, run: Run, step_run: StepRun, on_timeout: str) -> None:
    """The approval timed out: fail (default), reject or approve as the step says.
    Called by the sweeper with the run lock held."""
    now = timezone.now()
    Approval.objects.filter(pk=approval.pk, status=ApprovalStatus.PENDING).update(
        status=ApprovalStatus.EXPIRED, decided_at=now
    )
    reason = f"approval timed out; on_timeout={on_timeout}"
    if on_timeout == "approve":
        output = {"decision": "approved", "actor": "system", "comment": reason,
                  "decided_at": now.isoformat().replace("+00:00", "Z")}
        step_transition(step_run, StepStatus.COMPLETED, kind="approval_timed_out", reason=reason,
                        fields={"output": output})
        progress.attempt_finish(step_run, AttemptStatus.COMPLETED, output=output)
        steps = progress.load_steps(run)
        queued = progress.queue_ready(run, steps)
        progress.run_settle(run, steps)
        progress.enqueue([s.pk for s in queued])
        return
    error = {"type": "ApprovalTimeout", "message": reason}
    to = StepStatus.REJECTED if on_timeout == "reject" else StepStatus.FAILED
    step_transition(step_run, to, kind="approval_timed_out", reason=reason,
                    fields={"error": error})
    progress.attempt_finish(step_run, AttemptStatus.FAILED, error=error)
    progress.run_settle(run, progress.load_steps(run), reason=reason)
