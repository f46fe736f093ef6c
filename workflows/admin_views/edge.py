"""What every admin page shares at the edge (thin edges, STYLE.md).

- `call_service` is the admin's one mapping of service refusals: NotPermitted is the 403 page
  (`refused`), a state refusal, a conflict, a missing object or an invalid definition is an
  error message and a redirect. Services are transactional, so a refusal leaves nothing half done.
- `safe_next` / `page_url`: where to go after an action, only ever on this site.
- `admin_context` / `role_context`: the admin's base context and the buttons a role may use
  (the admin only hides them; the services still refuse a forged POST).
- `poll_response`: live fragments poll every 2 seconds; an unchanged fragment answers 204
  (nothing swapped, so nothing flickers) and one whose runs have all ended answers 286, which
  stops htmx polling.
- `get_flow` / `get_run`: the object a page is about, 404 when missing, 403 when the admin's
  view permission says no.

The pages are mounted inside the admin site (ModelAdmin.get_urls wrapped in
`admin_site.admin_view`), so the admin's login, staff check and CSRF protection apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HTMX_STOP_POLLING

from workflows import selectors
from workflows.errors import WorkflowError
from workflows.models import Flow, Run, StepRun
from workflows.permissions import (
    EDIT_DRAFT,
    OPERATE_RUN,
    PROMOTE_FLOW,
    RELEASE_FLOW,
    has_permission,
)


def refused(request: HttpRequest, model_admin: Any, reason: str) -> HttpResponse:
    """The 403 page for an action the services refused to this user."""
    context = admin_context(request, model_admin, "Not allowed", reason=reason,
                            back=safe_next(request, ""))
    return TemplateResponse(request, "workflows/refused.html", context, status=403)


def call_service(request: HttpRequest, model_admin: Any, service: Callable[..., Any], *,
                 back: str, **kwargs: Any) -> tuple[Any, HttpResponse | None]:
    """Call `service(**kwargs)` and map its refusal by the error's own `http_status` (the same
    attribute the API reads): a 403 is the refused page; anything else (an illegal transition, a
    conflict, a missing object, an invalid definition with its problems) is an error message and
    a redirect to `back`. Services are transactional, so a refusal leaves nothing half done.
    Returns (result, None) on success, (None, response) on refusal."""
    try:
        return service(**kwargs), None
    except WorkflowError as exc:
        if exc.http_status == 403:
            return None, refused(request, model_admin, str(exc))
        messages.error(request, problems_message(exc) if exc.details else str(exc))
        return None, HttpResponseRedirect(back)


def problems_message(exc: WorkflowError) -> str:
    lines = [f"{p['path']}: {p['message']}" for p in exc.details]
    head = str(exc).split(":", 1)[0]
    return head + (": " + "; ".join(lines) if lines else "")


def safe_next(request: HttpRequest, default: str) -> str:
    """Where to go after an action: the form's `next` when it is on this site."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def page_url(request: HttpRequest, default: str) -> str:
    """The URL of the page a fragment sits in (htmx sends it), for forms' `next`."""
    current = getattr(getattr(request, "htmx", None), "current_url_abs_path", None)
    if current and url_has_allowed_host_and_scheme(current, allowed_hosts={request.get_host()}):
        return current
    return default


def admin_context(request: HttpRequest, model_admin: Any, title: str, **extra: Any) -> dict:
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": title,
        "is_nav_sidebar_enabled": False,
    }
    context.update(extra)
    return context


def role_context(user: Any) -> dict[str, bool]:
    return {
        "can_operate": has_permission(user, OPERATE_RUN),
        "can_promote": has_permission(user, PROMOTE_FLOW),
        "can_release": has_permission(user, RELEASE_FLOW),
        "can_edit_draft": has_permission(user, EDIT_DRAFT),
    }


MAX_ID = 2**63 - 1


def positive_int(value: Any) -> int | None:
    """A positive integer (ASCII digits, within a bigint) from a URL or form value, else None
    (so bad input is a 404 or ignored, never a 500): `str.isdigit` accepts "²", which int()
    refuses, and int() refuses more than 4,300 digits."""
    text = str(value) if value is not None else ""
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    number = int(text)
    return number if 0 < number <= MAX_ID else None


def poll_response(request: HttpRequest, template: str, context: dict, *, live: bool,
                  changed: bool) -> HttpResponse:
    """A polled fragment: 204 when nothing changed (htmx swaps nothing and keeps polling),
    286 once nothing will change any more (htmx swaps this last version and stops)."""
    if live and not changed:
        return HttpResponse(status=204)
    response = TemplateResponse(request, template, context)
    if not live:
        response.status_code = HTMX_STOP_POLLING
    return response


def run_url(run_id: int) -> str:
    return reverse("admin:workflows_run_change", args=[run_id])


def flow_url(flow_id: int) -> str:
    return reverse("admin:workflows_flow_change", args=[flow_id])


def get_flow(request: HttpRequest, model_admin: Any, flow_id: Any) -> Flow:
    """The flow a page is about (its live release joined): 404 if missing, 403 if the admin's
    view permission refuses it."""
    return _viewable(request, model_admin, "Flow",
                     selectors.flow_get(flow_id=positive_int(flow_id) or 0))


def get_run(request: HttpRequest, model_admin: Any, run_id: Any) -> Run:
    """The run a page is about (flow and version joined): 404 if missing, 403 if the admin's
    view permission refuses it."""
    return _viewable(request, model_admin, "Run",
                     selectors.run_get(run_id=positive_int(run_id) or 0))


def get_step(request: HttpRequest, model_admin: Any, run_id: Any, key: str) -> StepRun:
    """The step run a panel is about, with its run (as `get_run`): 404 if the run has no such
    step."""
    run = get_run(request, model_admin, run_id)
    step = selectors.step_get(run=run, key=key)
    if step is None:
        raise Http404(f"run {run.pk} has no step {key}")
    step.run = run
    return step


def _viewable(request: HttpRequest, model_admin: Any, name: str, obj: Any) -> Any:
    if obj is None:
        raise Http404(f"No {name} matches the given query.")
    if not model_admin.has_view_or_change_permission(request, obj):
        raise PermissionDenied
    return obj
