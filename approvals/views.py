"""The approvals inbox and the decision endpoints, mounted in the admin by `approvals.admin`.

Deciding calls `approvals.services.approval_approve / approval_reject / approval_redo`, the same
functions as the API and the CLI; the service checks the assignee, so a forged POST from
someone else gets the 403 page and changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from approvals.models import Approval, ApprovalStatus
from approvals.selectors import approvals_decidable
from workflows.views import (
    admin_context,
    approval_card,
    call_service,
    json_html,
    safe_next,
    status_label,
)

INBOX_LIMIT = 200
DECIDED_PER_PAGE = 50
DECISIONS = ("approve", "reject", "redo")


def inbox_url() -> str:
    return reverse("admin:approvals_approval_changelist")


def can_see_all(user: Any) -> bool:
    return bool(user.is_superuser or user.has_perm("approvals.view_approval"))


def inbox(request: HttpRequest, model_admin: Any) -> HttpResponse:
    """Pending approvals this user may decide (tab `pending`), every pending approval read-only
    for those who may view approvals (tab `all`), and decisions taken (tab `decided`)."""
    tab = request.GET.get("tab", "pending")
    if tab not in ("pending", "all", "decided"):
        tab = "pending"
    see_all = can_see_all(request.user)
    pending_qs = (
        Approval.objects.filter(status=ApprovalStatus.PENDING)
        .select_related("run", "run__flow", "run__version", "step_run")
        .order_by("created_at", "id")
    )
    context: dict[str, Any] = {"tab": tab, "see_all": see_all, "now": timezone.now()}
    if tab in ("pending", "all"):
        cards = []
        decidable = set(approvals_decidable(user=request.user)
                        .filter(status=ApprovalStatus.PENDING).values_list("pk", flat=True))
        if tab == "pending":
            pending_qs = pending_qs.filter(pk__in=decidable)
        for approval in pending_qs[:INBOX_LIMIT]:
            card = approval_card(request, approval, next_url=_next(request),
                                 can_decide=approval.pk in decidable)
            if tab == "pending" and not card["can_decide"]:
                continue
            if tab == "all" and not (see_all or card["can_decide"]):
                continue
            card["run_status_label"] = status_label(approval.run.status)
            cards.append(card)
        context["cards"] = cards
    else:
        decided = (
            Approval.objects.exclude(status=ApprovalStatus.PENDING)
            .select_related("run", "run__flow", "step_run", "decision_actor")
            .order_by("-decided_at", "-id")
        )
        if not see_all:
            decided = decided.filter(decision_actor=request.user)
        page = Paginator(decided, DECIDED_PER_PAGE).get_page(request.GET.get("page"))
        context["page"] = page
    title = {"pending": "Approvals waiting for you", "all": "All pending approvals",
             "decided": "Decided approvals"}[tab]
    context.update(admin_context(request, model_admin, title))
    return TemplateResponse(request, "approvals/inbox.html", context)


def _next(request: HttpRequest) -> str:
    return request.get_full_path()


def approval_detail(request: HttpRequest, model_admin: Any, approval_id: Any) -> HttpResponse:
    """One approval: its request, its data, and its decision (or the form to decide)."""
    approval = get_object_or_404(
        Approval.objects.select_related("run", "run__flow", "run__version", "step_run",
                                        "decision_actor"),
        pk=int(approval_id) if str(approval_id).isdigit() else 0,
    )
    card = approval_card(request, approval, next_url=request.get_full_path())
    if not (card["can_decide"] or can_see_all(request.user)
            or approval.decision_actor_id == request.user.pk):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied
    card["run_status_label"] = status_label(approval.run.status)
    context = admin_context(request, model_admin, f"Approval {approval.pk}", card=card,
                            data_html=json_html(approval.data))
    return TemplateResponse(request, "approvals/approval_detail.html", context)


@require_POST
def approval_decide(request: HttpRequest, model_admin: Any, approval_id: Any,
                    decision: str) -> HttpResponse:
    from approvals.services import approval_approve, approval_redo, approval_reject

    approval = get_object_or_404(
        Approval.objects.select_related("run", "step_run"),
        pk=int(approval_id) if str(approval_id).isdigit() else 0,
    )
    back = safe_next(request, inbox_url())
    comment = request.POST.get("comment", "").strip()
    kwargs: dict[str, Any] = {"approval": approval, "actor": request.user, "comment": comment}
    if decision == "approve":
        service, done = approval_approve, "approved"
    elif decision == "reject":
        service, done = approval_reject, "rejected"
    else:
        service, done = approval_redo, "sent back"
        kwargs["to_step"] = request.POST.get("to_step") or None
    _, refusal = call_service(request, model_admin, service, back=back, **kwargs)
    if refusal:
        return refusal
    where = f" to step {approval.redo_step}" if decision == "redo" and approval.redo_step else ""
    messages.success(
        request, f"Approval {approval.pk} ({approval.step_run.key} of run {approval.run_id}) "
                 f"{done}{where}.")
    return HttpResponseRedirect(back)
