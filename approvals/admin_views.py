"""The approvals pages (mounted in the admin by `approvals.admin`) and the approval cards.

They live in the approvals app (issue 18) and build on the workflows admin's edge helpers
(`workflows.admin_views.edge`); the run page and the step panel import `approval_card` from here.

- `approval_card`: what a decision form needs; the inbox, the detail page, the run page and
  the step panel all show these cards.
- `inbox`: pending approvals this user may decide (tab `pending`), every pending approval
  read-only for those who may view approvals (tab `all`), and decisions taken (tab `decided`);
  filtered by flow, status and decider (decided ones) and searched (`q`), all GET parameters.
- `approval_detail`: one approval, its data, and its decision, prominent (or, while it is
  pending, the form to decide); a decided approval shows no form and no timeout.
- `approval_decide`: approve / reject / redo, calling `approvals.services.approval_approve /
  approval_reject / approval_redo`, the same functions as the API and the CLI; the service
  checks the assignee, so a forged POST from someone else gets the 403 page and changes nothing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timeuntil
from django.views.decorators.http import require_POST

from approvals.models import Approval, ApprovalKind, ApprovalStatus
from approvals.selectors import (
    DECIDED_STATUSES,
    NOBODY,
    InboxFilter,
    approval_get,
    approval_get_for_decision,
    approval_ids_decidable_pending,
    approval_readable,
    approvals_decided,
    approvals_pending,
    inbox_filter_choices,
)
from approvals.services import (
    approval_approve,
    approval_can_decide,
    approval_redo,
    approval_reject,
)
from workflows.admin_views.diff_page import diff_url, shown
from workflows.admin_views.edge import (
    admin_context,
    call_service,
    page_url,
    positive_int,
    run_url,
    safe_next,
)
from workflows.definitions import step_ancestors
from workflows.models import Run
from workflows.templatetags.wf_render import json_html, since, status_label

NOT_FOUND = "No Approval matches the given query."
INBOX_LIMIT = 200
DECIDED_PER_PAGE = 50
DECISIONS = ("approve", "reject", "redo")


def approval_card(request: HttpRequest, approval: Approval, *, run: Run | None = None,
                  next_url: str | None = None, can_decide: bool | None = None) -> dict[str, Any]:
    """What a decision form needs: may this user decide (pass `can_decide` when the caller
    already knows), and where may redo send the run. A promotion request has no run: its card
    shows the value diff against the live release and links the diff page."""
    if approval.kind == ApprovalKind.PROMOTION:
        return _promotion_card(request, approval, next_url=next_url, can_decide=can_decide)
    run = run or approval.run
    definition = run.definition
    keys = [s["key"] for s in definition.get("steps", [])]
    step_key = approval.step_run.key
    ancestors = step_ancestors(definition, step_key) if step_key in keys else set()
    choices = [k for k in keys if k in ancestors]
    default = approval.redo_to
    if not default and step_key in keys and keys.index(step_key) > 0:
        default = keys[keys.index(step_key) - 1]
    return {
        **_card_base(request, approval, can_decide=can_decide,
                     next_url=next_url or page_url(request, run_url(run.pk))),
        "redo_choices": choices, "redo_default": default,
        "data_items": data_items(approval.data),
    }


def _promotion_card(request: HttpRequest, approval: Approval, *, next_url: str | None,
                    can_decide: bool | None) -> dict[str, Any]:
    data = approval.data or {}
    before = data.get("from_version")
    changes = [{"path": c["path"], "before": shown(c["before"]), "after": shown(c["after"])}
               for c in data.get("changes") or []]
    return {
        **_card_base(request, approval, can_decide=can_decide,
                     next_url=next_url or inbox_url()),
        "promotion": True,
        "own_request": approval.requested_by_id is not None
        and approval.requested_by_id == request.user.pk,
        "redo_choices": [], "redo_default": "",
        "changes": changes, "from_version": before,
        "diff_url": diff_url(approval.flow_id, str(before) if before else "draft",
                             str(approval.version.number)) if before else None,
    }


def _card_base(request: HttpRequest, approval: Approval, *, can_decide: bool | None,
               next_url: str) -> dict[str, Any]:
    """What every card shows: the decision rights (none once decided, whoever reads it), how
    long it has waited, its timeout while pending, who it is for, where to go after."""
    pending = approval.status == ApprovalStatus.PENDING
    return {
        "approval": approval, "pending": pending,
        "can_decide": pending and (approval_can_decide(approval=approval, actor=request.user)
                                   if can_decide is None else can_decide),
        "age": since(approval.created_at, depth=2),
        "timeout_in": timeuntil(approval.timeout_at, depth=2)
        if pending and approval.timeout_at else "",
        "overdue": bool(pending and approval.timeout_at
                        and approval.timeout_at <= timezone.now()),
        "next": next_url,
        "assignees": approval.assignees or {},
    }


def data_items(data: Any) -> list[tuple[str, Any]]:
    """What the reviewer sees as (label, HTML): each `show` reference or needed step's output
    under its label (approvals.services.approval_data)."""
    if isinstance(data, dict) and data:
        return [(str(label), json_html(value)) for label, value in data.items()]
    if data in (None, {}, []):
        return []
    return [("", json_html(data))]


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
    filters, problems = inbox_filters(request, decided=tab == "decided")
    context: dict[str, Any] = {
        "tab": tab, "see_all": see_all, "now": timezone.now(), "filters": filters,
        "filter_problems": problems, "nobody": NOBODY, "statuses": DECIDED_STATUSES,
        "choices": inbox_filter_choices(actor=None if see_all else request.user),
        "query": inbox_query(filters),
    }
    if tab in ("pending", "all"):
        cards = []
        decidable = approval_ids_decidable_pending(actor=request.user)
        pending = approvals_pending(ids=decidable if tab == "pending" else None,
                                    limit=INBOX_LIMIT, filters=filters)
        for approval in pending:
            card = approval_card(request, approval, next_url=_next(request),
                                 can_decide=approval.pk in decidable)
            if tab == "pending" and not card["can_decide"]:
                continue
            if tab == "all" and not (see_all or card["can_decide"]):
                continue
            if approval.run_id:
                card["run_status_label"] = status_label(approval.run.status)
            cards.append(card)
        context["cards"] = cards
    else:
        decided = approvals_decided(actor=None if see_all else request.user, filters=filters)
        page = Paginator(decided, DECIDED_PER_PAGE).get_page(request.GET.get("page"))
        context["page"] = page
    title = {"pending": "Approvals waiting for you", "all": "All pending approvals",
             "decided": "Decided approvals"}[tab]
    context.update(admin_context(request, model_admin, title))
    return TemplateResponse(request, "approvals/inbox.html", context)


def inbox_filters(request: HttpRequest, *, decided: bool) -> tuple[InboxFilter, list[str]]:
    """The inbox's filters from GET (flow, status, decider, q); status and decider apply to
    decided approvals only. A value the menus do not offer is named in the page and ignored."""
    problems = []
    status = request.GET.get("status", "").strip() if decided else ""
    if status and status not in DECIDED_STATUSES:
        problems.append(f"unknown status {status!r}; use {', '.join(DECIDED_STATUSES)}")
        status = ""
    return InboxFilter(
        flow=request.GET.get("flow", "").strip()[:100], status=status,
        decider=request.GET.get("decider", "").strip()[:150] if decided else "",
        q=request.GET.get("q", "").strip()[:200],
    ), problems


def inbox_query(filters: InboxFilter) -> str:
    """The filters as a query string, for the tabs and the pages to keep them."""
    return urlencode({k: v for k, v in (("flow", filters.flow), ("status", filters.status),
                                        ("decider", filters.decider), ("q", filters.q)) if v})


def _next(request: HttpRequest) -> str:
    return request.get_full_path()


def _approval_pk(approval_id: Any) -> int:
    return positive_int(approval_id) or 0


def approval_detail(request: HttpRequest, model_admin: Any, approval_id: Any) -> HttpResponse:
    """One approval: its request, its data, and its decision (or the form to decide)."""
    approval = approval_get(approval_id=_approval_pk(approval_id))
    if approval is None:
        raise Http404(NOT_FOUND)
    if not approval_readable(approval=approval, actor=request.user):  # the API's rule too
        raise PermissionDenied
    card = approval_card(request, approval, next_url=request.get_full_path())
    if approval.run_id:
        card["run_status_label"] = status_label(approval.run.status)
    context = admin_context(request, model_admin, f"Approval {approval.pk}", card=card)
    return TemplateResponse(request, "approvals/approval_detail.html", context)


@require_POST
def approval_decide(request: HttpRequest, model_admin: Any, approval_id: Any,
                    decision: str) -> HttpResponse:
    approval = approval_get_for_decision(approval_id=_approval_pk(approval_id))
    if approval is None:
        raise Http404(NOT_FOUND)
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
    what = (f"promotion of v{approval.version.number} of {approval.flow.slug}"
            if approval.kind == ApprovalKind.PROMOTION
            else f"{approval.step_run.key} of run {approval.run_id}")
    messages.success(request, f"Approval {approval.pk} ({what}) {done}{where}.")
    return HttpResponseRedirect(back)
