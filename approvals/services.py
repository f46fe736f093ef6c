"""Approval requests and decisions. The admin, the API and the CLI all decide through here.

The approval step type (`approvals.steps`) calls `approval_request`, `approvals_cancel_for_step`
and `approval_expire` from its engine hooks. A decision (`approval_approve`, `approval_reject`,
`approval_redo`) goes to the handler of the approval's kind (`APPROVAL_KINDS`): a step's
approval ends the paused step through the engine (`engine.step_resolve`, `engine.run_rewind`),
which writes the step, its attempt and the run in its one order; a promotion request is decided
in `workflows.services.promotions` (never by its requester; redo does not apply). Both check
here that the actor may decide."""

from __future__ import annotations

import secrets
from typing import Any, Protocol

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from approvals.emails import approval_emails
from approvals.models import Approval, ApprovalKind, ApprovalStatus
from approvals.selectors import REVIEWERS_GROUP, approvals_decidable
from workflows import engine
from workflows.definitions.base import NotifyEvent
from workflows.errors import Conflict, NotPermitted
from workflows.models import ActorKind, Flow, Run, StepRun
from workflows.permissions import actor_name
from workflows.services.notifications import notify_event
from workflows.services.promotions import promotion_approve, promotion_reject
from workflows.states import EventKind, StepStatus

__all__ = ["APPROVAL_KINDS", "REVIEWERS_GROUP", "ApprovalNotAllowed", "approval_approve",
           "approval_can_decide", "approval_redo", "approval_reject", "approval_request",
           "reviewer_ensure"]


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
    data = approval_data(run=run, step_run=step_run, steps=steps, params=params)
    approval = Approval.objects.create(
        kind=ApprovalKind.STEP, flow_id=run.flow_id, run=run, step_run=step_run, attempt_number=attempt_number,
        instructions=str(params.get("instructions") or ""), data=data,
        assignees={"users": users, "groups": groups}, for_reviewers=not users and not groups,
        redo_to=params.get("redo_to") or "",
        timeout_at=step_run.timeout_at,
    )
    if users:
        approval.assignee_users.set(get_user_model().objects.filter(username__in=users))
    if groups:
        approval.assignee_groups.set(Group.objects.filter(name__in=groups))
    engine.event_record(run_id=run.pk, step_run_id=step_run.pk, kind=EventKind.APPROVAL_REQUESTED,
                 reason=approval.instructions[:500],
                 data={"approval": approval.pk, "assignees": approval.assignees})
    admin_url = (settings.PUBLIC_BASE_URL
                 + reverse("admin:approvals_approval_change", args=[approval.pk]))
    notify_event(
        flow=Flow.objects.get(pk=run.flow_id), event=NotifyEvent.APPROVAL_REQUESTED, run=run,
        personal=approval_emails(approval=approval, run=run, step_key=step_run.key,
                                 admin_url=admin_url),
        context={"step": step_run.key, "approval": approval.pk,
                 "instructions": approval.instructions[:1000], "admin_url": admin_url},
    )
    return approval


def approval_data(*, run: Run, step_run: StepRun, steps: dict[str, StepRun],
                  params: dict[str, Any]) -> dict[str, Any]:
    """What the reviewer sees, label → value. With `show`: each reference's value (resolved by
    the engine before the step ran, in `params`), labelled by the reference as the pinned
    definition writes it ("steps.build.output.url"). Without: the outputs of the steps this one
    needs, by step key (a step the run reused or skipped shows what it holds)."""
    shown = params.get("show")
    if isinstance(shown, list) and shown:
        written = next((s.get("show") for s in run.definition.get("steps", [])
                        if s.get("key") == step_run.key), None) or []
        data: dict[str, Any] = {}
        for index, value in enumerate(shown):
            raw = written[index] if index < len(written) else f"show[{index}]"
            label = str(raw).strip().removeprefix("{{").removesuffix("}}").strip()
            while label in data:
                label += "'"
            data[label] = value
        return data
    return {key: steps[key].output for key in step_run.needs if key in steps}


def approval_can_decide(*, approval: Approval, actor) -> bool:
    """The rule of `approvals.selectors.approvals_decidable`, for one approval."""
    if actor is None or not getattr(actor, "is_active", False):
        return False
    return actor.is_superuser or approvals_decidable(user=actor).filter(pk=approval.pk).exists()


def _decide(approval: Approval, actor, status: str, comment: str) -> tuple[Run, StepRun]:
    """Lock, check the actor and the pending state, and record the decision."""
    _check_assignee(approval, actor)
    run = engine.lock_run(approval.run_id)
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


def _check_assignee(approval: Approval, actor) -> None:
    if not approval_can_decide(approval=approval, actor=actor):
        raise ApprovalNotAllowed("you are not an assignee of this approval")


class ApprovalKindHandler(Protocol):
    """How approvals of one kind are decided. Each method checks the actor may decide, and
    raises Conflict when the decision does not apply."""

    def approve(self, *, approval: Approval, actor, comment: str) -> Approval: ...

    def reject(self, *, approval: Approval, actor, comment: str) -> Approval: ...

    def redo(self, *, approval: Approval, actor, comment: str, to_step: str | None) -> Approval:
        ...


class StepApprovals:
    """A run waiting at an approval step: the decision ends that step (`engine.step_resolve`)
    or sends the run back (`engine.run_rewind`), in one transaction that holds the run's lock
    and then the approval's."""

    def approve(self, *, approval: Approval, actor, comment: str) -> Approval:
        with transaction.atomic():
            run, step_run = _decide(approval, actor, ApprovalStatus.APPROVED, comment)
            engine.step_resolve(
                run=run, step_run=step_run, actor_kind=ActorKind.USER, actor=actor_name(actor),
                outcome=engine.Completed(
                    output=_decision_output(approval, "approved"),
                    kind=EventKind.APPROVAL_APPROVED, reason=comment,
                    data={"approval": approval.pk}))
        return approval

    def reject(self, *, approval: Approval, actor, comment: str) -> Approval:
        name = actor_name(actor)
        with transaction.atomic():
            run, step_run = _decide(approval, actor, ApprovalStatus.REJECTED, comment)
            engine.step_resolve(
                run=run, step_run=step_run, actor_kind=ActorKind.USER, actor=name,
                outcome=engine.Rejected(
                    output=_decision_output(approval, "rejected"),
                    error={"type": "Rejected",
                           "message": f"rejected by {name}" + (f": {comment}" if comment else "")},
                    kind=EventKind.APPROVAL_REJECTED, reason=comment,
                    data={"approval": approval.pk},
                    run_reason=f"approval rejected by {name}"))
        return approval

    def redo(self, *, approval: Approval, actor, comment: str, to_step: str | None) -> Approval:
        with transaction.atomic():
            run, step_run = _decide(approval, actor, ApprovalStatus.REDONE, comment)
            target = engine.run_rewind(
                run=run, step_run=step_run, to_step=to_step or approval.redo_to,
                actor=actor_name(actor), comment=comment,
                output=_decision_output(approval, "redo"))
            Approval.objects.filter(pk=approval.pk).update(redo_step=target)
            approval.redo_step = target
        return approval


class PromotionApprovals:
    """A promotion request (the two-person rule): `workflows.services.promotions` decides it."""

    def approve(self, *, approval: Approval, actor, comment: str) -> Approval:
        _check_assignee(approval, actor)
        return promotion_approve(approval=approval, actor=actor, comment=comment)

    def reject(self, *, approval: Approval, actor, comment: str) -> Approval:
        _check_assignee(approval, actor)
        return promotion_reject(approval=approval, actor=actor, comment=comment)

    def redo(self, *, approval: Approval, actor, comment: str, to_step: str | None) -> Approval:
        _check_assignee(approval, actor)
        raise Conflict(f"approval {approval.pk} is a promotion request: approve or reject it")


# One handler per approval kind (a test keeps it complete).
APPROVAL_KINDS: dict[str, ApprovalKindHandler] = {
    ApprovalKind.STEP: StepApprovals(),
    ApprovalKind.PROMOTION: PromotionApprovals(),
}


def approval_approve(*, approval: Approval, actor, comment: str = "") -> Approval:
    """Approve: the step completes with {decision, actor, comment, decided_at}; the run goes on.
    A promotion request: the release goes live (`promotion_approve`; 403 for its requester)."""
    return APPROVAL_KINDS[approval.kind].approve(approval=approval, actor=actor, comment=comment)


def approval_reject(*, approval: Approval, actor, comment: str = "") -> Approval:
    """Reject: the step is rejected and the run fails. A promotion request: nothing goes live."""
    return APPROVAL_KINDS[approval.kind].reject(approval=approval, actor=actor, comment=comment)


def approval_redo(*, approval: Approval, actor, comment: str = "",
                  to_step: str | None = None) -> Approval:
    """Send the run back: the target step (`to_step`, the step's `redo_to`, or the previous
    step) gets a new attempt, the steps between it and this approval start again, and a new
    approval is requested when the run reaches this step again (`engine.run_rewind`).
    A promotion request cannot be sent back (409): approve or reject it."""
    return APPROVAL_KINDS[approval.kind].redo(approval=approval, actor=actor, comment=comment,
                                              to_step=to_step)


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
        outcome: Any = engine.Completed(
            output={"decision": "approved", "actor": "system", "comment": reason,
                    "decided_at": now.isoformat().replace("+00:00", "Z")},
            kind=EventKind.APPROVAL_TIMED_OUT, reason=reason)
    else:
        outcome = engine.Failed(
            error={"type": "ApprovalTimeout", "message": reason},
            status=StepStatus.REJECTED if on_timeout == "reject" else StepStatus.FAILED,
            kind=EventKind.APPROVAL_TIMED_OUT, reason=reason, run_reason=reason)
    engine.step_resolve(run=run, step_run=step_run, outcome=outcome)


def reviewer_ensure(*, username: str, email: str = "") -> tuple[Any, bool, str | None]:
    """Make `username` a reviewer: staff status (needed to sign in to the admin at all) and the
    reviewers group (what a reviewer may see and decide), nothing else: no other group or
    permission is added, and a superuser stays one. Creates the user when missing, with a random
    password returned once (None for an existing user, whose password is not touched).
    Returns (user, created, password). Raises Conflict when the reviewers group is missing
    (the roles migration makes it)."""
    group = Group.objects.filter(name=REVIEWERS_GROUP).first()
    if group is None:
        raise Conflict(f"there is no {REVIEWERS_GROUP!r} group; run `manage.py migrate` first")
    users = get_user_model()._default_manager
    password = None
    with transaction.atomic():
        user = users.select_for_update().filter(username=username).first()
        created = user is None
        if created:
            password = secrets.token_urlsafe(18)
            user = users.create_user(username=username, email=email, password=password,
                                     is_staff=True)
        elif not user.is_staff or (email and not user.email):
            user.is_staff = True
            user.email = user.email or email
            user.save(update_fields=["is_staff", "email"])
        user.groups.add(group)
    return user, created, password
