"""/approvals: the caller's inbox, and approve / reject / redo through approvals.services."""

from __future__ import annotations

from typing import Literal

from django.http import HttpRequest
from ninja import Router

from approvals.models import ApprovalStatus
from approvals.selectors import approval_readable, approvals_decidable, approvals_queryset
from approvals.services import approval_approve, approval_redo, approval_reject
from workflows.api.documents import approval_document
from workflows.api.lookups import get_approval
from workflows.api.openapi import errors
from workflows.api.pagination import keyset_page
from workflows.api.params import ApprovalId, Cursor, Limit
from workflows.api.schemas import ApprovalOut, ApprovalPage, DecisionIn
from workflows.errors import NotPermitted

router = Router(tags=["approvals"])


@router.get("", response={200: ApprovalPage, **errors()},
            summary="Approvals the caller may decide (all, for superusers), newest first",
            operation_id="approvals_list")
def approvals_list(request: HttpRequest,
                   status: Literal["pending", "decided", "all"] = "pending",
                   kind: Literal["step", "promotion"] | None = None,
                   cursor: Cursor = None, limit: Limit = 50):
    queryset = approvals_queryset().filter(
        pk__in=approvals_decidable(user=request.auth).values("pk"))
    if kind:
        queryset = queryset.filter(kind=kind)
    if status == "pending":
        queryset = queryset.filter(status=ApprovalStatus.PENDING)
    elif status == "decided":
        queryset = queryset.exclude(status=ApprovalStatus.PENDING)
    page, next_cursor = keyset_page(queryset, cursor=cursor, limit=limit)
    return {"items": [approval_document(a) for a in page], "next_cursor": next_cursor}


@router.get("/{int:approval_id}", response={200: ApprovalOut, **errors()},
            summary="One approval the caller may read (decide, decided or requested it, or a "
                    "role that reads approvals; the admin's rule)", operation_id="approvals_get")
def approvals_get(request: HttpRequest, approval_id: ApprovalId):
    approval = get_approval(approval_id)
    if not approval_readable(approval=approval, actor=request.auth):
        raise NotPermitted("you are not allowed to read this approval")
    return approval_document(approval)


@router.post("/{int:approval_id}/approve", response={200: ApprovalOut, **errors(409)},
             summary="Approve (403 if not an assignee, or for the requester of a promotion)",
             operation_id="approvals_approve")
def approvals_approve(request: HttpRequest, approval_id: ApprovalId, payload: DecisionIn | None = None):
    approval = get_approval(approval_id)
    approval_approve(approval=approval, actor=request.auth,
                     comment=payload.comment if payload else "")
    return approval_document(get_approval(approval_id))


@router.post("/{int:approval_id}/reject", response={200: ApprovalOut, **errors(409)},
             operation_id="approvals_reject",
             summary="Reject: the step is rejected and the run fails (a promotion request: nothing "
                     "goes live)")
def approvals_reject(request: HttpRequest, approval_id: ApprovalId, payload: DecisionIn | None = None):
    approval = get_approval(approval_id)
    approval_reject(approval=approval, actor=request.auth,
                    comment=payload.comment if payload else "")
    return approval_document(get_approval(approval_id))


@router.post("/{int:approval_id}/redo", response={200: ApprovalOut, **errors(409)},
             summary="Send the run back to an earlier step (to_step, or the step's redo_to)",
             operation_id="approvals_redo")
def approvals_redo(request: HttpRequest, approval_id: ApprovalId, payload: DecisionIn | None = None):
    approval = get_approval(approval_id)
    approval_redo(approval=approval, actor=request.auth,
                  comment=payload.comment if payload else "",
                  to_step=(payload.to_step or None) if payload else None)
    return approval_document(get_approval(approval_id))
