"""Reading approvals: who may decide what. The inbox, the API and the decision services share
this rule, so a list never shows what its reader cannot decide, and the other way round."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from approvals.models import Approval, ApprovalKind, ApprovalStatus

REVIEWERS_GROUP = "reviewers"


def approvals_decidable(*, user: Any) -> QuerySet[Approval]:
    """The approvals `user` may decide, whatever their status: all of them for a superuser;
    otherwise those naming the user or one of the user's groups (the accounts and groups that
    existed when the approval was requested), and, for members of the reviewers group, those
    whose step named nobody."""
    approvals = Approval.objects.all()
    if user is None or not getattr(user, "is_active", False):
        return approvals.none()
    if user.is_superuser:
        return approvals
    groups = dict(user.groups.values_list("id", "name"))
    condition = Q(assignee_users=user) | Q(assignee_groups__in=list(groups))
    if REVIEWERS_GROUP in groups.values():
        condition |= Q(for_reviewers=True)
    return approvals.filter(
        pk__in=Approval.objects.filter(condition).values("pk")
    )


def approval_ids_decidable_pending(*, actor: Any) -> set[int]:
    """The ids of the pending approvals `actor` may decide."""
    return set(approvals_decidable(user=actor).filter(status=ApprovalStatus.PENDING)
               .values_list("pk", flat=True))


def approvals_pending(*, ids: set[int] | None = None, limit: int) -> list[Approval]:
    """Pending approvals, oldest first, with what their cards show joined; only `ids` when
    given."""
    pending = (
        Approval.objects.filter(status=ApprovalStatus.PENDING)
        .select_related("run", "run__flow", "run__version", "step_run", "flow", "version",
                        "requested_by")
        .order_by("created_at", "id")
    )
    if ids is not None:
        pending = pending.filter(pk__in=ids)
    return list(pending[:limit])


def approvals_decided(*, actor: Any | None = None) -> QuerySet[Approval]:
    """Decided approvals, newest decision first (only those `actor` decided, when given), for
    a paginator."""
    decided = (
        Approval.objects.exclude(status=ApprovalStatus.PENDING)
        .select_related("run", "run__flow", "step_run", "decision_actor", "flow", "version")
        .order_by("-decided_at", "-id")
    )
    if actor is not None:
        decided = decided.filter(decision_actor=actor)
    return decided


def approval_get(*, approval_id: int) -> Approval | None:
    """One approval with its run, flow, version, step run and decider joined."""
    return (
        Approval.objects.select_related("run", "run__flow", "run__version", "step_run",
                                        "decision_actor", "flow", "version", "requested_by")
        .filter(pk=approval_id).first()
    )


def approval_get_for_decision(*, approval_id: int) -> Approval | None:
    return (Approval.objects.select_related("run", "step_run", "flow", "version")
            .filter(pk=approval_id).first())


def approvals_pending_for_run(*, run: Any) -> list[Approval]:
    return list(
        Approval.objects.filter(run=run, status=ApprovalStatus.PENDING)
        .select_related("step_run").order_by("id")
    )


def approvals_pending_for_step(*, step_run: Any) -> list[Approval]:
    return list(Approval.objects.filter(step_run=step_run, status=ApprovalStatus.PENDING))


def promotion_request_pending(*, flow: Any) -> Approval | None:
    """The flow's pending promotion request (at most one), with its version."""
    return (Approval.objects.filter(flow=flow, kind=ApprovalKind.PROMOTION,
                                    status=ApprovalStatus.PENDING)
            .select_related("version", "requested_by").first())


def approval_assignee_emails(*, approval: Approval) -> list[str]:
    """The addresses of who may decide `approval`: its users and the members of its groups
    (the reviewers group when it names nobody); active accounts with an address only."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    if approval.for_reviewers:
        users = users.filter(groups__name=REVIEWERS_GROUP)
    else:
        users = users.filter(
            Q(pk__in=approval.assignee_users.values("pk"))
            | Q(groups__in=approval.assignee_groups.values("pk")))
    return sorted(set(users.values_list("email", flat=True)))
