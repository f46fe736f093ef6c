"""The flow page (the Flow admin's change view) and what hangs off it.

- `flow_page`: metadata, live release and draft (with the diff between them), triggers,
  inputs, counts by status and the run matrix; builders edit the draft here.
- `matrix_context` / `matrix_fragment`: the run matrix (steps down, runs across, newest left)
  and its polled fragment (with the counts by status, out of band).
- flow actions, each calling the same service as the API: `flow_update_draft_view`,
  `flow_release_view`, `flow_start_view` (promotion and its confirmation: `diff_page.py`).
- `release_rows` / `history_rows`: the Releases table ("live since … by …", "diff vs
  previous") and the flow history section.
- `flow_add`: the add-flow page (`flow_create`, as POST /flows).
"""

from __future__ import annotations

import hashlib
import json
from html import escape as html_escape
from typing import Any
from urllib.parse import urlencode

import yaml
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from approvals.selectors import promotion_request_pending
from workflows import selectors
from workflows.admin_views.cost_chart import agent_cost_chart
from workflows.admin_views.diff_page import diff_url
from workflows.admin_views.edge import (
    admin_context,
    call_service,
    flow_url,
    get_flow,
    poll_response,
    positive_int,
    refused,
    role_context,
    run_url,
)
from workflows.admin_views.flow_graph import flow_graph_context
from workflows.admin_views.flow_webhooks import deliveries_context
from workflows.admin_views.run_form import RunInputForm, json_value, start_context
from workflows.definitions import definition_diff, validate_run_input
from workflows.errors import DefinitionInvalid, InputInvalid, NotPermitted
from workflows.models import Flow
from workflows.permissions import EDIT_DRAFT, has_permission
from workflows.services.flows import flow_create, flow_release, flow_update_draft
from workflows.services.runs import run_start
from workflows.services.webhooks import webhook_url
from workflows.states import RUN_TERMINAL, RunStatus, StepStatus
from workflows.templatetags.wf_render import STATUS_LABELS, ago, duration_label, status_label

RUNS_PER_PAGE = 50
# Cells per matrix page: 50 runs of up to 50 steps; a flow with more steps shows fewer runs per
# page (at least 5), so a 500-step flow's page stays small and fast (docs/performance.md).
MATRIX_CELL_BUDGET = 2500


def flow_page(request: HttpRequest, model_admin: Any, flow_id: Any, *,
              draft_text: str | None = None, draft_problems: list | None = None,
              start_bound: dict[str, Any] | None = None, status: int = 200) -> HttpResponse:
    """The flow page (the Flow admin's change view): metadata, live release and draft, triggers,
    counts by status and the run matrix. Builders edit the draft here."""
    flow = get_flow(request, model_admin, flow_id)
    live = flow.live_version
    draft = selectors.flow_draft(flow=flow)
    releases = selectors.flow_releases(flow=flow, limit=16)
    more_releases = len(releases) > 15
    releases = releases[:15]
    current = live.definition if live else (draft.definition if draft else {})
    counts = selectors.flow_status_counts(flow=flow)
    matrix = matrix_context(request, flow, counts=counts)
    draft_diff = None
    if draft is not None and live is not None and draft.content_hash != live.content_hash:
        draft_diff = diff_summary(definition_diff(live.definition, draft.definition))
    if draft_text is None and draft is not None:
        draft_text = definition_yaml(draft.definition)
    roles = role_context(request.user)
    release_history = release_context(flow, releases)
    context = admin_context(
        request, model_admin, flow.name,
        flow=flow, live=live, draft=draft, releases=releases, more_releases=more_releases,
        draft_diff=draft_diff, draft_text=draft_text or "", draft_problems=draft_problems or [],
        triggers=describe_triggers(flow, current), inputs=describe_inputs(current),
        **start_context(request, flow, live=live, draft=draft, bound=start_bound),
        **flow_graph_context(flow, live=live, draft=draft, newest=matrix["newest"],
                             instances=matrix["newest_instances"]),
        counts=count_items(counts, flow, matrix["status"]), matrix=matrix,
        agent_costs=agent_cost_chart(selectors.flow_agent_costs(flow=flow)),
        subtitle=flow.slug, draft_edited=ago(draft.updated_at) if draft else "",
        live_released=ago(live.released_at) if live else "", **release_history, **roles,
        release_facts=selectors.flow_release_facts(flow=flow),
        **deliveries_context(flow),
    )
    return TemplateResponse(request, "workflows/flow_page.html", context, status=status)


# --- releases and history (issue 13) ------------------------------------------------------------

HISTORY_ROWS = 30
HISTORY_LABELS = {
    "released": "released", "draft_edited": "draft edited", "promoted": "promoted",
    "rolled_back": "rolled back", "webhook_secret_rotated": "webhook secret rotated",
    "notification_secret_rotated": "notification secret rotated",
    "promotion_requested": "promotion requested", "promotion_rejected": "promotion rejected",
    "promotion_expired": "promotion request expired",
}


def release_context(flow: Flow, releases: list) -> dict[str, Any]:
    """The Releases table's extra columns and the flow history section: two queries."""
    numbers = [r.number for r in releases]
    entries, went_live = selectors.flow_history(flow=flow, limit=HISTORY_ROWS, numbers=numbers)
    rows = []
    for index, release in enumerate(releases):
        entry = went_live.get(release.number)
        previous = numbers[index + 1] if index + 1 < len(numbers) else None
        rows.append({
            "release": release, "live": release.pk == flow.live_version_id,
            "went_live_at": entry.at if entry else None,
            "went_live_by": entry.actor_name if entry else "",
            "diff_url": diff_url(flow, str(previous), str(release.number))
            if previous else None,
            "promote_url": reverse("admin:workflows_flow_promote", args=[flow.pk])
            + f"?number={release.number}",
        })
    history = [{
        "entry": e, "label": HISTORY_LABELS.get(e.kind, e.kind),
        "actor": e.actor_name or "system",
        "versions": _versions_label(e.from_version, e.to_version),
        "approval": (e.data or {}).get("approval"),
    } for e in entries]
    return {"release_rows": rows, "history": history,
            "pending_promotion": promotion_request_pending(flow=flow),
            "draft_diff_url": diff_url(flow, "live", "draft") if flow.live_version_id else None}


def _versions_label(a: int | None, b: int | None) -> str:
    if a is None and b is None:
        return ""
    if a is None:
        return f"v{b}"
    return f"v{a} → v{b}"


# libyaml's emitter when present: the same text, ten times faster (a 500-step draft).
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def definition_yaml(definition: dict[str, Any]) -> str:
    return yaml.dump(definition, Dumper=_YAML_DUMPER, sort_keys=False, allow_unicode=True,
                     width=100)


def describe_inputs(definition: dict[str, Any]) -> list[dict[str, Any]]:
    items = []
    for name, spec in (definition.get("input") or {}).items():
        spec = spec if isinstance(spec, dict) else {}
        items.append({
            "name": name, "type": spec.get("type", ""), "required": bool(spec.get("required")),
            # A required input has no default: the normalized `default: null` is not one.
            "default": json.dumps(spec["default"]) if "default" in spec and not (
                spec.get("required") and spec["default"] is None) else "",
        })
    return items


def describe_triggers(flow: Flow, definition: dict[str, Any]) -> list[dict[str, Any]]:
    scheduled = any(isinstance(t, dict) and t.get("type") == "schedule"
                    for t in definition.get("triggers") or [])
    states = selectors.flow_schedule_states(flow=flow) if scheduled else {}
    triggers = [{"type": "manual", "detail": "from the admin, the API or the CLI"}]
    for index, trigger in enumerate(definition.get("triggers") or []):
        if not isinstance(trigger, dict):
            continue
        kind = trigger.get("type", "")
        if kind == "schedule":
            state = states.get(index)
            detail = trigger.get("cron", "")
            if trigger.get("timezone"):
                detail += f" ({trigger['timezone']})"
            triggers.append({
                "type": "schedule", "detail": detail,
                "next": state.next_fire_at if state else None,
                "last": state.last_fired_at if state else None,
                "input": json.dumps(trigger.get("input") or {}),
            })
        elif kind == "webhook":
            triggers.append({"type": "webhook", "detail": webhook_url(flow=flow),
                             "live": flow.live_version_id is not None})
        elif kind != "manual":
            triggers.append({"type": kind, "detail": json.dumps(trigger)})
    return triggers


def diff_summary(diff: dict[str, Any]) -> list[str]:
    """One line per change in a definition_diff, for people."""
    lines = []
    for field, change in diff.get("metadata", {}).items():
        lines.append(f"{field}: {change['from']!r} → {change['to']!r}")
    for name in diff.get("input", {}):
        lines.append(f"input {name} changed")
    if diff.get("concurrency"):
        lines.append("concurrency changed")
    if diff.get("triggers"):
        lines.append("triggers changed")
    steps = diff.get("steps", {})
    for key in steps.get("added", []):
        lines.append(f"step {key} added")
    for key in steps.get("removed", []):
        lines.append(f"step {key} removed")
    for key, fields in steps.get("changed", {}).items():
        lines.append(f"step {key}: {', '.join(fields)} changed")
    if steps.get("order"):
        lines.append("steps reordered")
    return lines


def count_items(counts: dict[str, int], flow: Flow, selected: str | None) -> list[dict]:
    base = flow_url(flow.pk)
    items = [{"status": "", "label": "all", "n": sum(counts.values()), "url": base,
              "selected": not selected}]
    for status, n in counts.items():
        if n or status == selected:
            items.append({"status": status, "label": status_label(status), "n": n,
                          "url": f"{base}?{urlencode({'status': status})}",
                          "selected": status == selected})
    return items


def _matrix_filters(request: HttpRequest) -> tuple[int | None, str | None]:
    before = positive_int(request.GET.get("before"))
    status = request.GET.get("status") or None
    if status not in RunStatus.values:
        status = None
    return before, status


def matrix_context(request: HttpRequest, flow: Flow, *,
                   counts: dict[str, int] | None = None) -> dict[str, Any]:
    """The run matrix as rows of prebuilt cells (steps down, runs across, newest left).

    Three queries (selectors.run_matrix) plus one for the "newer" link on older pages. Cells are
    built as HTML strings here: 30 steps x 50 runs is 1,500 cells, which the template engine
    would take tens of milliseconds to render one tag at a time.
    """
    before, status = _matrix_filters(request)
    data = selectors.run_matrix(flow=flow, limit=RUNS_PER_PAGE, before=before, status=status,
                                cell_budget=MATRIX_CELL_BUDGET)
    runs = data["runs"]
    panel_base = reverse("admin:workflows_run_step", args=[0, "__key__"])
    longest: dict[str, int] = {}
    for run in runs:
        for key, cell in run["cells"].items():
            if cell["duration_ms"]:
                longest[key] = max(longest.get(key, 0), cell["duration_ms"])
    columns = []
    for index, run in enumerate(runs):
        older = runs[index + 1] if index + 1 < len(runs) else None
        label = "draft" if run["rehearsal"] or run["version"] is None else f"v{run['version']}"
        columns.append({
            "id": run["id"], "status": run["status"],
            "url": run_url(run["id"]), "version": label,
            "version_changed": older is not None and older["version"] != run["version"],
            "rehearsal": run["rehearsal"], "trigger_kind": run["trigger_kind"],
            "created_at": run["created_at"], "ago": ago(run["created_at"]),
            "duration": duration_label(run["duration_ms"]),
            "retry_of": run["retry_of"], "replay_of": run["replay_of"],
            # continue_on_error steps failed, yet the run completed
            "optional_failed": run["status"] == RunStatus.COMPLETED and any(
                c["status"] == StepStatus.FAILED for c in run["cells"].values()),
        })
    rows = []
    for step in data["steps"]:
        key = step["key"]
        cells = []
        for run in runs:
            cells.append(_cell_html(run, key, run["cells"].get(key), longest.get(key, 0),
                                    panel_base))
        rows.append({"key": key, "type": step["type"], "cells": mark_safe("".join(cells))})
    live = any(r["status"] not in RUN_TERMINAL for r in runs)
    if counts is not None and before is None:
        live = live or any(counts.get(s, 0) for s in RunStatus.values if s not in RUN_TERMINAL)
    signature = hashlib.sha1(
        json.dumps([[(r["id"], r["status"], sorted(
            (k, c["status"], c["attempts"], c["duration_ms"], c.get("progress"))
            for k, c in r["cells"].items()))
            for r in runs], counts], default=str).encode()
    ).hexdigest()[:16]
    base = flow_url(flow.pk)
    query = {k: v for k, v in {"status": status}.items() if v}
    older_url = (f"{base}?{urlencode({**query, 'before': data['next_before']})}"
                 if data["next_before"] else None)
    newer_url = None
    if before is not None:
        newer_url = f"{base}?{urlencode(query)}" if query else base
        if runs:
            newer_before = selectors.run_matrix_newer_before(
                flow=flow, newest_shown=runs[0]["id"], status=status, page=data["limit"])
            if newer_before:
                newer_url = f"{base}?{urlencode({**query, 'before': newer_before})}"
    poll_query = {**query, "sig": signature}
    if before:
        poll_query["before"] = before
    return {
        "columns": columns, "rows": rows, "live": live, "signature": signature,
        "poll_url": reverse("admin:workflows_flow_matrix", args=[flow.pk]) + "?"
        + urlencode(poll_query),
        "older_url": older_url, "newer_url": newer_url, "status": status, "before": before,
        # The flow's newest run and its step statuses, when this page shows the newest runs
        # unfiltered (the graph colours by them without asking again); else None.
        "newest": ((runs[0]["id"], {k: c["status"] for k, c in runs[0]["cells"].items()})
                   if runs else (None, {})) if before is None and not status else None,
        "newest_instances": {k: c["instances"] for k, c in runs[0]["cells"].items()
                             if c.get("instances")} if runs else {},
        "empty": not runs, "filtered": bool(status or before),
    }


def _cell_html(run: dict, key: str, cell: dict | None, longest: int, panel_base: str) -> str:
    # stdlib html.escape: Django's escape() goes through keep_lazy, 5x slower per call, and
    # this runs 1,500 times per matrix.
    run_id = run["id"]
    safe_key = html_escape(key)
    if cell is None:
        return (f'<td class="mx-td"><span class="mx-cell mx-absent" data-run="{run_id}" '
                f'data-step="{safe_key}" data-status="absent" '
                f'title="step {safe_key} is not in this run&#x27;s version"></span></td>')
    status = cell["status"]
    duration = cell["duration_ms"]
    attempts = cell["attempts"]
    url = panel_base.replace("/0/", f"/{run_id}/", 1).replace("__key__", key)
    title = f"run {run_id} · {key}: {STATUS_LABELS.get(status, status)}"
    extra = ""
    if duration is not None:
        label = duration_label(duration)
        title += f" in {label}"
        width = max(4, round(100 * duration / longest)) if longest else 4
        extra += (f'<span class="mx-bar"><span style="width:{width}%"></span></span>'
                  f'<span class="mx-dur">{label}</span>')
    if attempts > 1:
        title += f" · {attempts} attempts"
        extra += f'<span class="mx-att" title="{attempts} attempts">×{attempts}</span>'
    progress = cell.get("progress") or {}
    if progress.get("total"):
        percent = max(0, min(100, round(100 * progress.get("done", 0) / progress["total"])))
        title += f" · agent progress {percent}%"
        extra += (f'<span class="mx-bar mx-progress" data-progress="{percent}">'
                  f'<span style="width:{percent}%"></span></span>'
                  f'<span class="mx-dur">{percent}%</span>')
    instances = cell.get("instances")
    if instances:
        worst = instances["worst"] or status
        title += (f" · {instances['done']:,}/{instances['total']:,} instances done, worst "
                  f"{STATUS_LABELS.get(worst, worst)}")
        extra += (f'<span class="mx-inst st-{worst}" data-instances="{instances["total"]}" '
                  f'data-instances-done="{instances["done"]}" data-worst="{worst}">'
                  f'{instances["done"]:,}/{instances["total"]:,}</span>')
    if cell["reused"]:
        title += " · output reused from an earlier run"
        extra += '<span class="mx-reused" title="reused from an earlier run">↺</span>'
    return (f'<td class="mx-td"><button type="button" class="mx-cell st-{status}" '
            f'data-run="{run_id}" data-step="{safe_key}" data-status="{status}" '
            f'hx-get="{html_escape(url)}" hx-target="#step-panel" hx-swap="innerHTML" '
            f'title="{html_escape(title)}"><span class="wf-dot st-{status}"></span>{extra}'
            f'</button></td>')


def matrix_fragment(request: HttpRequest, model_admin: Any, flow_id: Any) -> HttpResponse:
    """The polled matrix (and, out of band, the counts by status)."""
    flow = get_flow(request, model_admin, flow_id)
    counts = selectors.flow_status_counts(flow=flow)
    matrix = matrix_context(request, flow, counts=counts)
    changed = request.GET.get("sig") != matrix["signature"]
    context = {"flow": flow, "matrix": matrix, "oob": True,
               "counts": count_items(counts, flow, matrix["status"])}
    return poll_response(request, "workflows/_matrix.html", context, live=matrix["live"],
                          changed=changed)


# --- flow actions -------------------------------------------------------------------------------


@require_POST
def flow_update_draft_view(request: HttpRequest, model_admin: Any, flow_id: Any) -> HttpResponse:
    flow = get_flow(request, model_admin, flow_id)
    text = request.POST.get("definition", "")
    try:
        flow_update_draft(flow=flow, definition=text, actor=request.user)
    except NotPermitted as exc:
        return refused(request, model_admin, str(exc))
    except DefinitionInvalid as exc:
        messages.error(request, "The draft was not saved: the definition has problems.")
        return flow_page(request, model_admin, flow.pk, draft_text=text,
                         draft_problems=exc.problems, status=422)
    messages.success(request, "Draft saved.")
    return HttpResponseRedirect(flow_url(flow.pk) + "#draft")


@require_POST
def flow_release_view(request: HttpRequest, model_admin: Any, flow_id: Any) -> HttpResponse:
    flow = get_flow(request, model_admin, flow_id)
    back = flow_url(flow.pk)
    version, refusal = call_service(request, model_admin, flow_release, back=back, flow=flow,
                                    actor=request.user, notes=request.POST.get("notes", ""))
    if refusal:
        return refusal
    messages.success(request, f"Released v{version.number}. Promote it to make it live.")
    return HttpResponseRedirect(back)


@require_POST
def flow_start_view(request: HttpRequest, model_admin: Any, flow_id: Any) -> HttpResponse:
    """Start a run from the form of declared inputs (`mode` form: the live release's; draft:
    a rehearsal on the draft) or from JSON (`mode` json). A value the validation refuses is
    that field's error on the page again (422) and nothing is started."""
    flow = get_flow(request, model_admin, flow_id)
    back = flow_url(flow.pk)
    mode = request.POST.get("mode", "json")
    if mode in ("form", "draft"):
        rehearsal = mode == "draft"
        version = selectors.flow_draft(flow=flow) if rehearsal else flow.live_version
        definition = version.definition if version is not None else {}
        form = RunInputForm(definition.get("input") or {}, data=request.POST)
        run_input = form.run_input(definition)
        if run_input is None:
            messages.error(request, "Nothing was started: the input has problems.")
            return flow_page(request, model_admin, flow.pk, status=422, start_bound={
                "mode": mode, "form": form})
    else:
        rehearsal = request.POST.get("draft") == "on"
        text = request.POST.get("input", "").strip() or "{}"
        run_input, error = json_value(text)
        errors = [error] if error else []
        version = selectors.flow_draft(flow=flow) if rehearsal else flow.live_version
        if not errors and version is not None:
            try:  # the problems the service would refuse, shown in place
                validate_run_input(version.definition, run_input)
            except InputInvalid as exc:
                errors = [f"{p['path']}: {p['message']}" for p in exc.problems]
        if errors:
            messages.error(request, "Nothing was started: "
                           + ("the input is not valid JSON." if error else "the input has problems."))
            return flow_page(request, model_admin, flow.pk, status=422, start_bound={
                "mode": "json", "json_text": text, "json_draft": rehearsal, "errors": errors})
    result, refusal = call_service(
        request, model_admin, run_start, back=back, flow=flow, input=run_input,
        actor=request.user, draft=rehearsal,
    )
    if refusal:
        return refusal
    run, _created = result
    messages.success(request, f"Run {run.pk} started.")
    return HttpResponseRedirect(run_url(run.pk))


def flow_add(request: HttpRequest, model_admin: Any) -> HttpResponse:
    """Create a flow from a definition (builders): the same service as POST /flows."""
    if not has_permission(request.user, EDIT_DRAFT):
        raise PermissionDenied
    text, problems = "", []
    if request.method == "POST":
        text = request.POST.get("definition", "")
        try:
            flow = flow_create(definition=text, actor=request.user)
        except NotPermitted as exc:
            return refused(request, model_admin, str(exc))
        except DefinitionInvalid as exc:
            problems = exc.problems
        else:
            messages.success(request, f"Flow {flow.slug} created with its draft.")
            return HttpResponseRedirect(flow_url(flow.pk))
    context = admin_context(request, model_admin, "Add flow", definition_text=text,
                            problems=problems, example=EXAMPLE_DEFINITION)
    return TemplateResponse(request, "workflows/flow_add.html", context,
                            status=422 if problems else 200)


EXAMPLE_DEFINITION = """slug: my-flow
name: My flow
input:
  topic: {type: string, default: hello}
steps:
  - key: first
    type: python
    action: core.echo
    args: {topic: "{{ input.topic }}"}
"""

