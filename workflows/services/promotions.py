"""Promotion: making a release live, and the two-person rule (issue 13).

`flow_promote` makes a release live, or, when the flow's promotion requires approval, creates a
promotion request: an `Approval` of kind `promotion` that shows in the approvals inbox and is
decided with the same approve / reject calls as a step's approval (`approvals.services`
dispatches those to `promotion_approve` / `promotion_reject` here). Every outcome is a
`FlowHistory` entry written in the same transaction: `promoted` or `rolled_back` (a release
older than the live one), `promotion_requested`, `promotion_rejected`, `promotion_expired`.

Which rule applies: the live release's `promotion` block when it requires approval (a new
release cannot lift the rule that governs its own promotion), else the promoted release's; the
approvers come from the same block. Approvers naming nobody: the reviewers group, as for an
approval step. Configuration checks run when the request is made and again at approval.

Locks: the flow's row (SELECT ... FOR UPDATE) first, then the approval's, in every path here,
so a promotion, a request and a decision on one flow serialize.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from approvals.models import Approval, ApprovalKind, ApprovalStatus
from approvals.selectors import approval_assignee_emails
from workflows.definitions import definition_value_changes, validate_definition
from workflows.definitions.base import NotifyEvent, promotion_approval
from workflows.definitions.check.promotion import DEFAULT_PROMOTION_TIMEOUT_SECONDS
from workflows.errors import Conflict, NotFound, NotPermitted
from workflows.models import Flow, FlowVersion
from workflows.permissions import PROMOTE_FLOW, actor_name, require_permission
from workflows.services.history import flow_history_record
from workflows.services.notifications import notify_event
from workflows.services.schedules import schedules_sync
from workflows.states import FlowHistoryKind


class OwnPromotionRequest(NotPermitted):
    """The requester of a promotion cannot approve it: that is the point of two people."""

    code = "own_promotion_request"


def promotion_rule(*, live: FlowVersion | None, target: FlowVersion) -> dict[str, Any] | None:
    """The `promotion` block that governs promoting `target` while `live` is live, or None
    when no approval is needed (see the module docstring)."""
    for version in (live, target):
        rule = promotion_approval(version.definition) if version is not None else None
        if rule is not None:
            return rule
    return None


def flow_promote(*, flow: Flow, number: int, actor: Any = None,
                 comment: str = "") -> FlowVersion | Approval:
    """Make release `number` live and return it; or, when the flow's promotion requires
    approval, create a pending promotion request and return that Approval (nothing goes live).

    Checks run first (a connection may have gone since the release); DefinitionInvalid lists
    every problem and nothing is written. Promoting the release that is already live changes
    nothing and records nothing. A second request while one is pending is a Conflict naming it.
    """
    require_permission(actor, PROMOTE_FLOW)
    comment = (comment or "").strip()
    with transaction.atomic():
        # of=("self",): PostgreSQL refuses FOR UPDATE on the nullable side of an outer join.
        locked = (Flow.objects.select_for_update(of=("self",)).select_related("live_version")
                  .get(pk=flow.pk))
        try:
            version = FlowVersion.objects.get(flow=locked, number=number)
        except FlowVersion.DoesNotExist as exc:
            raise NotFound(f"flow {flow.slug} has no release {number}") from exc
        if locked.live_version_id == version.pk:
            flow.live_version = version
            return version
        validate_definition(version.definition, check_connections=True)
        rule = promotion_rule(live=locked.live_version, target=version)
        if rule is not None:
            return _request(locked, version, actor=actor, comment=comment, rule=rule)
        _go_live(locked, version, actor=actor, comment=comment)
    flow.live_version = version
    schedules_sync(flow=flow)
    return version


def _go_live(locked: Flow, version: FlowVersion, *, actor: Any, comment: str,
             data: dict[str, Any] | None = None) -> None:
    """Switch the live release and record it. Flow row lock held, inside the transaction."""
    before = locked.live_version.number if locked.live_version_id else None
    kind = (FlowHistoryKind.ROLLED_BACK if before is not None and version.number < before
            else FlowHistoryKind.PROMOTED)
    locked.live_version = version
    locked.save(update_fields=["live_version", "updated_at"])
    flow_history_record(flow=locked, kind=kind, actor=actor, from_version=before,
                        to_version=version.number, comment=comment,
                        data={"content_hash": version.content_hash, **(data or {})})


def _request(locked: Flow, version: FlowVersion, *, actor: Any, comment: str,
             rule: dict[str, Any]) -> Approval:
    pending = Approval.objects.filter(flow=locked, kind=ApprovalKind.PROMOTION,
                                      status=ApprovalStatus.PENDING).first()
    if pending is not None:
        raise Conflict(f"promotion request {pending.pk} of flow {locked.slug} is pending; "
                       f"approve or reject it first")
    live = locked.live_version if locked.live_version_id else None
    approvers = rule.get("approvers") or {}
    users = list(approvers.get("users") or [])
    groups = list(approvers.get("groups") or [])
    label = f"v{version.number}" + (f" (live: v{live.number})" if live else "")
    requester = actor_name(actor) or "the system"
    instructions = f"{requester} asks to make {label} of {locked.name} live."
    if comment:
        instructions += f"\n\n{comment}"
    now = timezone.now()
    approval = Approval.objects.create(
        kind=ApprovalKind.PROMOTION, flow=locked, version=version, requested_by=actor,
        instructions=instructions,
        data={"from_version": live.number if live else None, "to_version": version.number,
              "comment": comment,
              "changes": definition_value_changes(live.definition if live else {},
                                                  version.definition)},
        assignees={"users": users, "groups": groups}, for_reviewers=not users and not groups,
        timeout_at=now + timedelta(
            seconds=rule.get("timeout_seconds") or DEFAULT_PROMOTION_TIMEOUT_SECONDS),
    )
    if users:
        approval.assignee_users.set(get_user_model().objects.filter(username__in=users))
    if groups:
        approval.assignee_groups.set(Group.objects.filter(name__in=groups))
    flow_history_record(flow=locked, kind=FlowHistoryKind.PROMOTION_REQUESTED, actor=actor,
                        from_version=live.number if live else None,
                        to_version=version.number, comment=comment,
                        data={"approval": approval.pk})
    # The live release's rules, never the unapproved one's: whoever wrote the release under
    # review must not pick who hears about the request (issue 25 H3).
    notify_event(
        flow=locked, event=NotifyEvent.PROMOTION_REQUESTED,
        definition=live.definition if live else {},
        also_email=approval_assignee_emails(approval=approval),
        context={"version": version.number, "requested_by": requester,
                 "approval": approval.pk, "instructions": instructions[:1000],
                 "admin_url": settings.PUBLIC_BASE_URL
                 + reverse("admin:approvals_approval_change", args=[approval.pk])},
    )
    return approval


def _lock_pending(approval: Approval) -> tuple[Flow, Approval]:
    locked = Flow.objects.select_for_update(of=("self",)).select_related("live_version").get(
        pk=approval.flow_id)
    fresh = Approval.objects.select_for_update().get(pk=approval.pk)
    if fresh.status != ApprovalStatus.PENDING:
        raise Conflict(f"promotion request {approval.pk} is already {fresh.status}")
    return locked, fresh


def _decided(approval: Approval, status: str, actor: Any, comment: str, now: datetime) -> None:
    Approval.objects.filter(pk=approval.pk).update(
        status=status, decision_actor=actor, comment=comment, decided_at=now)
    approval.status, approval.decision_actor, approval.comment, approval.decided_at = (
        status, actor, comment, now)


def promotion_approve(*, approval: Approval, actor: Any, comment: str = "") -> Approval:
    """Approve a promotion request: the release goes live (`promoted` or `rolled_back`, with
    the approver as actor and the request in `data`). The caller has checked that `actor` may
    decide it (`approvals.services.approval_approve`); here: never the requester (403
    OwnPromotionRequest), still pending (409), and the configuration checks pass again
    (DefinitionInvalid, 422, the request stays pending)."""
    if approval.requested_by_id is not None and actor is not None \
            and approval.requested_by_id == actor.pk:
        raise OwnPromotionRequest("you requested this promotion; someone else must approve it")
    with transaction.atomic():
        locked, fresh = _lock_pending(approval)
        version = FlowVersion.objects.get(pk=fresh.version_id)
        validate_definition(version.definition, check_connections=True)
        _decided(approval, ApprovalStatus.APPROVED, actor, comment, timezone.now())
        requester = get_user_model().objects.filter(pk=fresh.requested_by_id).first()
        _go_live(locked, version, actor=actor, comment=comment, data={
            "approval": approval.pk, "requested_by": actor_name(requester),
            "request_comment": (fresh.data or {}).get("comment", ""),
        })
    schedules_sync(flow=locked)
    return approval


def promotion_reject(*, approval: Approval, actor: Any, comment: str = "") -> Approval:
    """Reject a promotion request: nothing goes live; `promotion_rejected` is recorded."""
    with transaction.atomic():
        locked, fresh = _lock_pending(approval)
        _decided(approval, ApprovalStatus.REJECTED, actor, comment, timezone.now())
        flow_history_record(flow=locked, kind=FlowHistoryKind.PROMOTION_REJECTED, actor=actor,
                            from_version=(fresh.data or {}).get("from_version"),
                            to_version=fresh.version.number, comment=comment,
                            data={"approval": approval.pk})
    return approval


def promotion_requests_expire(*, now: datetime | None = None) -> int:
    """Expire the pending promotion requests past their timeout (`promotion_expired`, actor
    the system); return how many. Called by the periodic pass."""
    now = now or timezone.now()
    due = list(Approval.objects.filter(kind=ApprovalKind.PROMOTION, status=ApprovalStatus.PENDING,
                                       timeout_at__lte=now).values_list("pk", "flow_id"))
    expired = 0
    for pk, flow_id in due:
        with transaction.atomic():
            locked = Flow.objects.select_for_update().get(pk=flow_id)
            fresh = (Approval.objects.select_for_update(of=("self",))
                     .select_related("version").get(pk=pk))
            if fresh.status != ApprovalStatus.PENDING:
                continue
            Approval.objects.filter(pk=pk).update(status=ApprovalStatus.EXPIRED, decided_at=now)
            flow_history_record(
                flow=locked, kind=FlowHistoryKind.PROMOTION_EXPIRED,
                from_version=(fresh.data or {}).get("from_version"),
                to_version=fresh.version.number,
                comment=f"nobody decided before {fresh.timeout_at:%Y-%m-%d %H:%M} UTC",
                data={"approval": pk})
            expired += 1
    return expired
