"""The version diff page and the promote confirmation, under the flow admin (issue 13).

- `flow_diff_page` (`<flow>/diff/?from=A&to=B`, A and B each `draft`, `live`, `3` or `v3`): every
  changed value between two versions as `{path, before, after}` rows (the same
  `definition_value_changes` as `GET /flows/{slug}/diff`'s `changes.values`). Linked from each
  release row ("diff vs previous"), the run page's compare block and the promote confirmation.
- `flow_promote_page` (`<flow>/promote/`): GET is the confirmation ("v1 → v2: 3 changes", how
  many runs in flight stay pinned to their release, a comment, and the diff link); POST calls
  `flow_promote`, the same service as the API, which either makes the release live or, under
  the two-person rule, creates a promotion request for someone else to approve.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from approvals.models import Approval
from approvals.selectors import promotion_request_pending
from workflows import selectors
from workflows.admin_views.edge import (
    admin_context,
    call_service,
    flow_url,
    get_flow,
    positive_int,
    role_context,
)
from workflows.definitions import definition_value_changes
from workflows.models import Flow, FlowVersion
from workflows.services.promotions import flow_promote, promotion_rule


def diff_url(flow: Flow | int, a: str, b: str) -> str:
    flow_id = flow if isinstance(flow, int) else flow.pk
    return (reverse("admin:workflows_flow_diff", args=[flow_id]) + "?"
            + urlencode({"from": a, "to": b}))


def shown(value: Any) -> str:
    """A value as people read it in a diff cell: text as is, the rest as JSON."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def value_rows(a: FlowVersion, b: FlowVersion) -> list[dict[str, str]]:
    return [{"path": c["path"], "before": shown(c["before"]), "after": shown(c["after"]),
             "added": c["before"] is None, "removed": c["after"] is None}
            for c in definition_value_changes(a.definition, b.definition)]


def _label(version: FlowVersion) -> str:
    return "draft" if version.number is None else str(version.number)


def flow_diff_page(request: HttpRequest, model_admin: Any, flow_id: Any) -> HttpResponse:
    """Every changed value between two versions of the flow (default: live, or the release
    before the newest, against the draft)."""
    flow = get_flow(request, model_admin, flow_id)
    versions = selectors.flow_versions(flow=flow)
    default_from = "live" if flow.live_version_id else next(
        (str(v.number) for v in versions if v.number is not None), "draft")
    a_label = request.GET.get("from") or default_from
    b_label = request.GET.get("to") or "draft"
    a = selectors.flow_version_by_label(flow=flow, label=a_label)
    b = selectors.flow_version_by_label(flow=flow, label=b_label)
    if a is None or b is None:
        raise Http404(f"flow {flow.slug} has no version {a_label if a is None else b_label!r}")
    rows = value_rows(a, b)
    context = admin_context(
        request, model_admin, f"{flow.name}: {a.label} → {b.label}", flow=flow, a=a, b=b,
        rows=rows, versions=versions, a_value=_label(a), b_value=_label(b),
        live_id=flow.live_version_id, summary=f"{a.label} → {b.label}: {_changes(len(rows))}",
    )
    return TemplateResponse(request, "workflows/diff_page.html", context)


def _changes(n: int) -> str:
    return f"{n} change{'' if n == 1 else 's'}" if n else "no changes"


def flow_promote_page(request: HttpRequest, model_admin: Any, flow_id: Any) -> HttpResponse:
    """GET: the promote confirmation of release `number`; POST: promote it (with a comment)."""
    flow = get_flow(request, model_admin, flow_id)
    back = flow_url(flow.pk)
    number = positive_int(request.POST.get("number") if request.method == "POST"
                          else request.GET.get("number"))
    if number is None:
        messages.error(request, "Choose a release to promote.")
        return HttpResponseRedirect(back)
    if request.method == "POST":
        return _promote(request, model_admin, flow, number, back)
    target = selectors.flow_version_by_label(flow=flow, label=str(number))
    if target is None or target.number is None:
        raise Http404(f"flow {flow.slug} has no release {number}")
    live = flow.live_version if flow.live_version_id else None
    rows = value_rows(live, target) if live else []
    from_label = live.label if live else "nothing live"
    rule = promotion_rule(live=live, target=target)
    facts = selectors.flow_release_facts(flow=flow)
    rollback = rollback_reason(flow, target, live, facts, request.GET.get("run"))
    title = (f"Roll back {flow.name} to v{target.number}" if rollback
             else f"Promote v{target.number} of {flow.name}")
    context = admin_context(
        request, model_admin, title, flow=flow, live=live, facts=facts, rollback=rollback,
        target=target, rows=rows, summary=f"{from_label} → {target.label}: "
        + (_changes(len(rows)) if live else f"{len(target.definition.get('steps') or [])} steps"),
        diff_url=diff_url(flow, _label(live) if live else "draft", str(target.number))
        if live else None,
        pinned=selectors.flow_runs_in_flight_elsewhere(flow=flow, version=target),
        requires_approval=rule is not None, approvers=(rule or {}).get("approvers") or {},
        pending=promotion_request_pending(flow=flow), **role_context(request.user),
    )
    return TemplateResponse(request, "workflows/promote_confirm.html", context)


def rollback_reason(flow: Flow, target: FlowVersion, live: FlowVersion | None,
                    facts: dict[str, Any], run_param: str | None) -> dict[str, Any] | None:
    """When the page was opened from a failed run's "Roll back to vN" (`?run=ID`) and vN is
    older than live: `{run, comment}`, the comment kept in the history by default."""
    run_id = positive_int(run_param)
    if run_id is None or live is None or target.number is None or target.number >= live.number:
        return None
    run = selectors.run_in_flow(run_id=run_id, flow_id=flow.pk)
    if run is None:
        return None
    good = facts.get("last_good") or {}
    comment = f"Roll back: run #{run.pk} failed on v{live.number}"
    if good.get("version") == target.number:
        comment += f"; the last good run, #{good['run']}, ran on v{target.number}"
    return {"run": run.pk, "comment": comment + "."}


def _promote(request: HttpRequest, model_admin: Any, flow: Flow, number: int,
             back: str) -> HttpResponse:
    result, refusal = call_service(request, model_admin, flow_promote, back=back, flow=flow,
                                   number=number, actor=request.user,
                                   comment=request.POST.get("comment", ""))
    if refusal:
        return refusal
    if isinstance(result, Approval):
        messages.success(request, f"Promotion of v{number} requested (approval {result.pk}); "
                                  f"it goes live when someone else approves it.")
    else:
        messages.success(request, f"v{result.number} is live.")
    return HttpResponseRedirect(back)
