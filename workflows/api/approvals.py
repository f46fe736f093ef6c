"""/approvals: the caller's inbox, and approve / reject / redo through approvals.services."""

from __future__ import annotations

from typing import Any, Literal

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from ninja import Router

from approvals.models import Approval, ApprovalStatus
from approvals.services import (
    REVIEWERS_GROUP,
    approval_approve,
    approval_redo,
    approval_reject,
)
from workflows.api.documents import approval_document, approvals_queryset
from workflows.api.flows import errors
from workflows.api.lookups import get_approval
from workflows.api.pagination import keyset_page
from workflows.api.schemas import ApprovalOut, ApprovalPage, DecisionIn
from workflows.permissions import VIEW_RUN, require_permission

router = Router(tags=["approvals"])


def _decidable(user: Any) -> tuple[QuerySet[Approval], Any]:
    """The approvals `user` may decide, as a query plus an exact check on the assignee names.

    This mirrors approvals.services.approval_can_decide (which the decisions themselves go
    through) without a query per approval: the assignee relations narrow the rows in the
    database, and the names the definition gave decide, as approval_can_decide does.
    """
    queryset = approvals_queryset()
    if user.is_superuser:
        return queryset, lambda approval: True
    groups = list(user.groups.values_list("id", "name"))
    group_ids = [g[0] for g in groups]
    group_names = {g[1] for g in groups}
    condition = Q(assignee_users=user) | Q(assignee_groups__in=group_ids)
    if REVIEWERS_GROUP in group_names:
        condition |= Q(assignee_users__isnull=True, assignee_groups__isnull=True)
    username = user.get_username()

    def named(approval: Approval) -> bool:
        names = approval.assignees or {}
        users, groups_named = names.get("users") or [], names.get("groups") or []
        if not users and not groups_named:
            return REVIEWERS_GROUP in group_names
        return username in users or bool(group_names.intersection(groups_named))

    return queryset.filter(condition).distinct(), named


@router.get("", response={200: ApprovalPage, **errors(422)},
            summary="Approvals the caller may decide (all, for superusers), newest first")
def approvals_list(request: HttpRequest,
                   status: Literal["pending", "decided", "all"] = "pending",
                   cursor: str | None = None, limit: int = 50):
    queryset, named = _decidable(request.auth)
    if status == "pending":
        queryset = queryset.filter(status=ApprovalStatus.PENDING)
    elif status == "decided":
        queryset = queryset.exclude(status=ApprovalStatus.PENDING)
    page, next_cursor = keyset_page(queryset, cursor=cursor, limit=limit)
    return {"items": [approval_document(a) for a in page if named(a)],
            "next_cursor": next_cursor}


@router.get("/{int:approval_id}", response={200: ApprovalOut, **errors()},
            summary="One approval the caller may decide")
def approvals_get(request: HttpRequest, approval_id: int):
    queryset, named = _decidable(request.auth)
    approval = get_approval(approval_id)
    if not (queryset.filter(pk=approval.pk).exists() and named(approval)):
        require_permission(request.auth, VIEW_RUN)
    return approval_document(approval)


@router.post("/{int:approval_id}/approve", response={200: ApprovalOut, **errors(409, 422)},
             summary="Approve (403 if not an assignee)")
def approvals_approve(request: HttpRequest, approval_id: int, payload: DecisionIn | None = None):
    approval = get_approval(approval_id)
    approval_approve(approval=approval, actor=request.auth,
                     comment=payload.comment if payload else "")
    return approval_document(get_approval(approval_id))


@router.post("/{int:approval_id}/reject", response={200: ApprovalOut, **errors(409, 422)},
             summary="Reject: the step is rejected and the run fails")
def approvals_reject(request: HttpRequest, approval_id: int, payload: DecisionIn | None = None):
    approval = get_approval(approval_id)
    approval_reject(approval=approval, actor=request.auth,
                    comment=payload.comment if payload else "")
    return approval_document(get_approval(approval_id))


@router.post("/{int:approval_id}/redo", response={200: ApprovalOut, **errors(409, 422)},
             summary="Send the run back to an earlier step (to_step, or the step's redo_to)")
def approvals_redo(request: HttpRequest, approval_id: int, payload: DecisionIn | None = None):
    approval = get_approval(approval_id)
    approval_redo(approval=approval, actor=request.auth,
                  comment=payload.comment if payload else "",
                  to_step=(payload.to_step or None) if payload else None)
    return approval_document(get_approval(approval_id))
