"""The decision page a link in the approval email opens (approvals/decision_links.py).

No admin session is needed: the token in the URL names the approval and the assignee. GET only
shows (the instructions, the values shown to the reviewer, the run's summary, a comment box and
the buttons `data-action="approve|reject"`); the POST decides.

CSRF: the POST is protected twice. The token itself is a secret only its assignee has, which
a forged cross-site form cannot know. The page also sets Django's CSRF cookie and the form
carries the matching token, checked by `CsrfViewMiddleware` as on every POST of the site, so
the page needs no exemption. A POST that fails the CSRF check gets Django's 403 page and
decides nothing; the link stays unused.

Every refusal is this page with the refusal's status (403, 404, 409, 410) and, when the token
was genuine, who decided what and when — never the buttons.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

from approvals.decision_links import (
    DecisionLinkRefused,
    decision_link_decide,
    decision_link_open,
)
from approvals.models import DecisionLink
from workflows.errors import WorkflowError
from workflows.templatetags.wf_render import json_html, status_label

TEMPLATE = "approvals/decision_page.html"


def _shown(data: Any) -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        return [(str(label), json_html(value)) for label, value in data.items()]
    return [] if data in (None, [], {}) else [("", json_html(data))]


def _context(link: DecisionLink | None, **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"link": link}
    if link is not None:
        approval = link.approval
        context.update(
            approval=approval, run=approval.run, step_key=approval.step_run.key,
            run_status_label=status_label(approval.run.status),
            shown=_shown(approval.data), assignee=link.user)
    context.update(extra)
    return context


def _refused(request: HttpRequest, exc: WorkflowError) -> HttpResponse:
    link = getattr(exc, "link", None)
    return TemplateResponse(request, TEMPLATE, _context(link, refusal=str(exc), code=exc.code),
                            status=exc.http_status)


@never_cache
@ensure_csrf_cookie
@require_http_methods(["GET", "HEAD", "POST"])
def decision_page(request: HttpRequest, approval_id: int, token: str) -> HttpResponse:
    if request.method == "POST":
        decision = request.POST.get("decision", "")
        try:
            link = decision_link_decide(approval_id=approval_id, token=token, decision=decision,
                                        comment=request.POST.get("comment", "").strip())
        except (DecisionLinkRefused, WorkflowError) as exc:
            return _refused(request, exc)
        return TemplateResponse(request, TEMPLATE, _context(link, done=True))
    try:
        link = decision_link_open(approval_id=approval_id, token=token)
    except DecisionLinkRefused as exc:
        return _refused(request, exc)
    action = request.GET.get("action", "")
    return TemplateResponse(request, TEMPLATE, _context(
        link, open=True, action=action if action in ("approve", "reject") else ""))
