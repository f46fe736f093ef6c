"""Reading approvals: who may decide what. The inbox, the API and the decision services share
this rule, so a list never shows what its reader cannot decide, and the other way round."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from approvals.models import Approval

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
