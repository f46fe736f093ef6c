"""The workflows home (the admin site's index, workflows/admin_site.py) and the lookup page.

- `home_page`: the pending approvals assigned to me (oldest first, with the time each has
  waited; a superuser also sees how many wait in all, since deciding any is not being asked
  to), runs failed
  in the last 24 hours across flows, runs active now, and each flow's live release and success
  rate. A fixed number of queries (`workflows.home_selectors`, `approvals.selectors`).
- `lookup_page`: the one lookup box (`form[data-lookup]`, input `q`) on top of every page
  submits here; a key that names one run goes straight to it, several list the candidates.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone

from approvals.selectors import (
    approval_ids_assigned_pending,
    approvals_pending,
    approvals_pending_count,
)
from workflows import home_selectors
from workflows.admin_views.edge import flow_url, run_url
from workflows.errors import WorkflowError
from workflows.investigation import lookup_resolve
from workflows.permissions import VIEW_RUN, has_permission

FAILED_WINDOW = timedelta(hours=24)
MY_APPROVALS_LIMIT = 20


def site_context(request: HttpRequest, site: AdminSite, title: str, **extra: Any) -> dict:
    """The admin's base context for a page of the site itself (not of one model)."""
    return {**site.each_context(request), "title": title, "is_nav_sidebar_enabled": False,
            **extra}


def home_page(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """What waits for me, what failed today, what runs now, and how each flow fares."""
    mine = approvals_pending(ids=approval_ids_assigned_pending(actor=request.user),
                             limit=MY_APPROVALS_LIMIT)
    failed, active, flows = _runs_overview(request.user)
    context = site_context(
        request, site, site.site_header,
        window=home_selectors.SUCCESS_WINDOW,
        my_approvals=[{"approval": a, "url": run_url(a.run_id),
                       "instructions": (a.instructions or "").strip().splitlines()[:1]}
                      for a in mine],
        failed=failed, active=active, flows=flows,
        all_waiting=approvals_pending_count() if request.user.is_superuser else None,
        can_view_runs=has_permission(request.user, VIEW_RUN),
    )
    return TemplateResponse(request, "workflows/home.html", context)


def _runs_overview(user: Any) -> tuple[list[dict], list[dict], list[dict]]:
    """Failed in the last day, active now, each flow's health; nothing for a user who may not
    view runs (the selectors refuse them: the check is theirs, not the template's)."""
    if not has_permission(user, VIEW_RUN):
        return [], [], []
    failed = home_selectors.runs_failed_recent(actor=user, since=timezone.now() - FAILED_WINDOW)
    for row in failed:
        row["url"] = run_url(row["id"])
        row["flow_url"] = flow_url(row["flow"].pk)
    active = home_selectors.runs_active(actor=user)
    for row in active:
        row["url"] = run_url(row["run"].pk)
    flows = home_selectors.flows_health(actor=user)
    for row in flows:
        row["url"] = flow_url(row["flow"].pk)
    return failed, active, flows


def lookup_page(request: HttpRequest, site: AdminSite) -> HttpResponse:
    """Where the lookup box goes (`lookup_resolve`): straight to the run an exact key names
    (run id, approval id or URL, callback URL or token, webhook delivery key), else the
    candidates run search finds for the text."""
    query = (request.GET.get("q") or "").strip()
    try:
        found = lookup_resolve(actor=request.user, text=query)
    except WorkflowError as exc:
        if exc.http_status == 403:
            raise PermissionDenied(str(exc)) from exc
        found = {"run": None, "kind": "search", "candidates": [], "message": str(exc)}
    if found["run"] is not None:
        return HttpResponseRedirect(run_url(found["run"].pk))
    context = site_context(
        request, site, "Find a run", lookup_q=query, query=query, kind=found["kind"],
        message=found.get("message", ""),
        candidates=[{"run": run, "url": run_url(run.pk),
                     "match": found.get("matches", {}).get(run.pk) or {"field": found["kind"]}}
                    for run in found["candidates"]],
    )
    return TemplateResponse(request, "workflows/lookup.html", context)
