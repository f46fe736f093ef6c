"""The admin's flow page, run page, step panel and their HTMX fragments (DESIGN.md §7).

Thin edges (STYLE.md): every page reads through `workflows.selectors` and every action calls the
same service the API calls (`run_cancel`, `run_retry`, `run_replay`, `flow_promote`,
`flow_release`, `flow_update_draft`, `run_start`, and the approval services). The admin only hides
the buttons a role may not use; the services still refuse a forged POST, and `call_service` maps
each refusal in one place: NotPermitted is a 403 page, a state refusal is a message.

These views are mounted inside the admin site by `workflows.admin` (ModelAdmin.get_urls wrapped
in `admin_site.admin_view`), so the admin's login, staff check and CSRF protection apply.

Live updates poll: a fragment of a run that has not ended is asked for again every 2 seconds;
an unchanged fragment answers 204 (nothing swapped, so nothing flickers), and a fragment whose
runs have all ended answers 286, which stops htmx polling.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from html import escape as html_escape
from typing import Any
from urllib.parse import urlencode

import yaml
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil
from django.views.decorators.http import require_POST
from django_htmx.http import HTMX_STOP_POLLING

from approvals.models import Approval, ApprovalStatus
from workflows import selectors
from workflows.definitions import definition_diff, step_ancestors
from workflows.errors import DefinitionInvalid, NotPermitted, TransitionNotAllowed, WorkflowError
from workflows.models import Attempt, Event, Flow, FlowVersion, Run, ScheduleState, StepRun
from workflows.permissions import (
    EDIT_DRAFT,
    OPERATE_RUN,
    PROMOTE_FLOW,
    RELEASE_FLOW,
    has_permission,
)
from workflows.states import (
    RUN_TERMINAL,
    STEP_TERMINAL,
    RunStatus,
)

RUNS_PER_PAGE = 50
LOG_PAGE = 200  # chunks shown when a panel opens, and per "earlier" click
LOG_LIVE_LIMIT = 500  # chunks sent per poll of a running step
LOG_CHUNK_MAX_CHARS = 20_000
POLL_EVERY = "every 2s"
CHAIN_MAX_HOPS = 25
FOLD_STRING_CHARS = 160
FOLD_CONTAINER_ITEMS = 12
JSON_MAX_STRING_CHARS = 50_000
RES_URI = re.compile(r"^res://([0-9a-fA-F-]{32,36})$")

STATUS_LABELS = {
    "waiting_for_approval": "waiting for approval",
    "not_started": "not started",
}


# --- small renderers ------------------------------------------------------------------------


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


def duration_label(ms: int | None) -> str:
    """850 ms, 1.2 s, 3 m 05 s, 2 h 04 m."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def since(when: datetime | None, depth: int = 1) -> str:
    """How long ago, for people: "just now" under a minute, else "3 minutes"."""
    if when is None:
        return ""
    if (timezone.now() - when).total_seconds() < 60:
        return "less than a minute"
    return timesince(when, depth=depth)


def ago(when: datetime | None) -> str:
    if when is None:
        return ""
    text = since(when)
    return "just now" if text == "less than a minute" else text + " ago"


def status_dot(status: str, *, title: str = "") -> SafeString:
    return format_html(
        '<span class="wf-dot st-{}" title="{}"></span>', status, title or status_label(status)
    )


def status_badge(status: str) -> SafeString:
    return format_html(
        '<span class="wf-badge st-{}"><span class="wf-dot st-{}"></span>{}</span>',
        status, status, status_label(status),
    )


def resource_links(resource_id: str) -> SafeString:
    """A `res://` reference as links to the resource's admin page and its download."""
    try:
        page = reverse("admin:resources_resource_change", args=[resource_id])
        download = reverse("admin:resources_resource_download", args=[resource_id])
    except NoReverseMatch:
        return format_html('<span class="j-str">"res://{}"</span>', resource_id)
    return format_html(
        '<span class="j-str">"<a class="j-res" href="{}">res://{}</a>"</span> '
        '<a class="j-download" href="{}" title="Download">&#x2B07;</a>',
        page, resource_id, download,
    )


def json_html(value: Any) -> SafeString:
    """Pretty JSON as HTML: long strings and big objects fold into <details>, `res://`
    references link to the resource. Strings longer than JSON_MAX_STRING_CHARS are cut."""
    if value is None:
        return mark_safe('<div class="wf-json"><span class="j-null">null</span></div>')
    return mark_safe('<div class="wf-json">' + _json_node(value, 0) + "</div>")


def _json_scalar(value: Any) -> str:
    if value is None:
        return '<span class="j-null">null</span>'
    if isinstance(value, bool):
        return f'<span class="j-bool">{"true" if value else "false"}</span>'
    if isinstance(value, int | float):
        return f'<span class="j-num">{escape(json.dumps(value))}</span>'
    text = str(value)
    match = RES_URI.match(text)
    if match:
        return str(resource_links(match.group(1)))
    cut = ""
    if len(text) > JSON_MAX_STRING_CHARS:
        cut = f" … ({len(text):,} characters; the API has the whole value)"
        text = text[:JSON_MAX_STRING_CHARS]
    encoded = escape(json.dumps(text, ensure_ascii=False))
    if len(text) > FOLD_STRING_CHARS or "\n" in text.strip():
        preview = escape(json.dumps(text[:60].split("\n")[0], ensure_ascii=False)[:-1] + "…\"")
        return (f'<details class="j-fold"><summary><span class="j-str">{preview}</span> '
                f'<span class="j-meta">{len(text):,} chars</span></summary>'
                f'<span class="j-str j-long">{encoded}</span>'
                f'<span class="j-meta">{escape(cut)}</span></details>')
    return f'<span class="j-str">{encoded}</span>{escape(cut)}'


def _json_node(value: Any, depth: int) -> str:
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = "  " * (depth + 1)
        items = [
            f'{pad}<span class="j-key">{escape(json.dumps(str(k), ensure_ascii=False))}</span>: '
            f"{_json_node(v, depth + 1)}"
            for k, v in value.items()
        ]
        body = "{\n" + ",\n".join(items) + "\n" + "  " * depth + "}"
        if depth > 0 and len(value) > FOLD_CONTAINER_ITEMS:
            return (f'<details class="j-fold"><summary>{{…}} <span class="j-meta">'
                    f"{len(value)} keys</span></summary>{body}</details>")
        return body
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        pad = "  " * (depth + 1)
        items = [pad + _json_node(v, depth + 1) for v in value]
        body = "[\n" + ",\n".join(items) + "\n" + "  " * depth + "]"
        if depth > 0 and len(value) > FOLD_CONTAINER_ITEMS:
            return (f'<details class="j-fold"><summary>[…] <span class="j-meta">'
                    f"{len(value)} items</span></summary>{body}</details>")
        return body
    return _json_scalar(value)


# --- the edges' one mapping of refusals ---------------------------------------------------------


def refused(request: HttpRequest, model_admin: Any, reason: str) -> HttpResponse:
    """The 403 page for an action the services refused to this user."""
    context = admin_context(request, model_admin, "Not allowed", reason=reason,
                            back=safe_next(request, ""))
    return TemplateResponse(request, "workflows/refused.html", context, status=403)


def call_service(request: HttpRequest, model_admin: Any, service: Callable[..., Any], *,
                 back: str, **kwargs: Any) -> tuple[Any, HttpResponse | None]:
    """Call `service(**kwargs)` and map its refusals: NotPermitted is a 403 page; an illegal
    transition, a conflict, a missing object or an invalid definition is an error message and a
    redirect to `back`. Services are transactional, so a refusal leaves nothing half done.
    Returns (result, None) on success, (None, response) on refusal."""
    try:
        return service(**kwargs), None
    except NotPermitted as exc:
        return None, refused(request, model_admin, str(exc))
    except DefinitionInvalid as exc:
        messages.error(request, problems_message(exc))
        return None, HttpResponseRedirect(back)
    except (TransitionNotAllowed, WorkflowError) as exc:
        messages.error(request, str(exc))
        return None, HttpResponseRedirect(back)


def problems_message(exc: DefinitionInvalid) -> str:
    lines = [f"{p['path']}: {p['message']}" for p in exc.problems]
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


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _poll_response(request: HttpRequest, template: str, context: dict, *, live: bool,
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


# --- flow page ----------------------------------------------------------------------------------


def get_flow(request: HttpRequest, model_admin: Any, flow_id: Any) -> Flow:
    flow = get_object_or_404(Flow.objects.select_related("live_version"), pk=_int(flow_id) or 0)
    if not model_admin.has_view_or_change_permission(request, flow):
        raise PermissionDenied
    return flow


def flow_page(request: HttpRequest, model_admin: Any, flow_id: Any, *,
              draft_text: str | None = None, draft_problems: list | None = None,
              status: int = 200) -> HttpResponse:
    """The flow page (the Flow admin's change view): metadata, live release and draft, triggers,
    counts by status and the run matrix. Builders edit the draft here."""
    flow = get_flow(request, model_admin, flow_id)
    live = flow.live_version
    draft = FlowVersion.objects.filter(flow=flow, number__isnull=True).first()
    releases = list(
        FlowVersion.objects.filter(flow=flow, number__isnull=False).defer("definition")
        .select_related("created_by").order_by("-number")[:16]
    )
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
    context = admin_context(
        request, model_admin, flow.name,
        flow=flow, live=live, draft=draft, releases=releases, more_releases=more_releases,
        draft_diff=draft_diff, draft_text=draft_text or "", draft_problems=draft_problems or [],
        triggers=describe_triggers(flow, current), inputs=describe_inputs(current),
        start_input=json.dumps(default_input(current), indent=2),
        counts=count_items(counts, flow, matrix["status"]), matrix=matrix,
        subtitle=flow.slug, draft_edited=ago(draft.updated_at) if draft else "",
        live_released=ago(live.released_at) if live else "", **roles,
    )
    return TemplateResponse(request, "workflows/flow_page.html", context, status=status)


def definition_yaml(definition: dict[str, Any]) -> str:
    return yaml.safe_dump(definition, sort_keys=False, allow_unicode=True, width=100)


def default_input(definition: dict[str, Any]) -> dict[str, Any]:
    return {
        name: spec.get("default") for name, spec in (definition.get("input") or {}).items()
        if isinstance(spec, dict) and ("default" in spec or spec.get("required"))
    }


def describe_inputs(definition: dict[str, Any]) -> list[dict[str, Any]]:
    items = []
    for name, spec in (definition.get("input") or {}).items():
        spec = spec if isinstance(spec, dict) else {}
        items.append({
            "name": name, "type": spec.get("type", ""), "required": bool(spec.get("required")),
            "default": json.dumps(spec["default"]) if "default" in spec else "",
        })
    return items


def describe_triggers(flow: Flow, definition: dict[str, Any]) -> list[dict[str, Any]]:
    from workflows.services.webhooks import webhook_url

    states = {s.trigger_index: s for s in ScheduleState.objects.filter(flow=flow)}
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
    before = _int(request.GET.get("before"))
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
    data = selectors.run_matrix(flow=flow, limit=RUNS_PER_PAGE, before=before, status=status)
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
            "id": run["id"], "status": run["status"], "status_label": status_label(run["status"]),
            "url": run_url(run["id"]), "version": label,
            "version_changed": older is not None and older["version"] != run["version"],
            "rehearsal": run["rehearsal"], "trigger_kind": run["trigger_kind"],
            "created_at": run["created_at"], "ago": ago(run["created_at"]),
            "duration": duration_label(run["duration_ms"]),
            "retry_of": run["retry_of"], "replay_of": run["replay_of"],
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
            (k, c["status"], c["attempts"], c["duration_ms"]) for k, c in r["cells"].items()))
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
            newer = Run.objects.filter(flow=flow, id__gt=runs[0]["id"])
            if status:
                newer = newer.filter(status=status)
            beyond = list(newer.order_by("id").values_list("id", flat=True)[
                RUNS_PER_PAGE:RUNS_PER_PAGE + 1])
            if beyond:
                newer_url = f"{base}?{urlencode({**query, 'before': beyond[0]})}"
    poll_query = {**query, "sig": signature}
    if before:
        poll_query["before"] = before
    return {
        "columns": columns, "rows": rows, "live": live, "signature": signature,
        "poll_url": reverse("admin:workflows_flow_matrix", args=[flow.pk]) + "?"
        + urlencode(poll_query),
        "older_url": older_url, "newer_url": newer_url, "status": status, "before": before,
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
    return _poll_response(request, "workflows/_matrix.html", context, live=matrix["live"],
                          changed=changed)


# --- flow actions -------------------------------------------------------------------------------


@require_POST
def flow_update_draft_view(request: HttpRequest, model_admin: Any, flow_id: Any) -> HttpResponse:
    from workflows.services.flows import flow_update_draft

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
    from workflows.services.flows import flow_release

    flow = get_flow(request, model_admin, flow_id)
    back = flow_url(flow.pk)
    version, refusal = call_service(request, model_admin, flow_release, back=back, flow=flow,
                                    actor=request.user, notes=request.POST.get("notes", ""))
    if refusal:
        return refusal
    messages.success(request, f"Released v{version.number}. Promote it to make it live.")
    return HttpResponseRedirect(back)


@require_POST
def flow_promote_view(request: HttpRequest, model_admin: Any, flow_id: Any) -> HttpResponse:
    from workflows.services.flows import flow_promote

    flow = get_flow(request, model_admin, flow_id)
    back = flow_url(flow.pk)
    number = _int(request.POST.get("number"))
    if number is None:
        messages.error(request, "Choose a release to promote.")
        return HttpResponseRedirect(back)
    version, refusal = call_service(request, model_admin, flow_promote, back=back, flow=flow,
                                    number=number, actor=request.user)
    if refusal:
        return refusal
    messages.success(request, f"v{version.number} is live.")
    return HttpResponseRedirect(back)


@require_POST
def flow_start_view(request: HttpRequest, model_admin: Any, flow_id: Any) -> HttpResponse:
    from workflows.services.runs import run_start

    flow = get_flow(request, model_admin, flow_id)
    back = flow_url(flow.pk)
    text = request.POST.get("input", "").strip() or "{}"
    try:
        run_input = json.loads(text)
    except ValueError as exc:
        messages.error(request, f"The input is not valid JSON: {exc}")
        return HttpResponseRedirect(back)
    result, refusal = call_service(
        request, model_admin, run_start, back=back, flow=flow, input=run_input,
        actor=request.user, draft=request.POST.get("draft") == "on",
    )
    if refusal:
        return refusal
    run, _created = result
    messages.success(request, f"Run {run.pk} started.")
    return HttpResponseRedirect(run_url(run.pk))


def flow_add(request: HttpRequest, model_admin: Any) -> HttpResponse:
    """Create a flow from a definition (builders): the same service as POST /flows."""
    from workflows.services.flows import flow_create

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


# --- run page -----------------------------------------------------------------------------------


def get_run(request: HttpRequest, model_admin: Any, run_id: Any) -> Run:
    run = get_object_or_404(Run.objects.select_related("flow", "version"), pk=_int(run_id) or 0)
    if not model_admin.has_view_or_change_permission(request, run):
        raise PermissionDenied
    return run


def run_page(request: HttpRequest, model_admin: Any, run_id: Any) -> HttpResponse:
    """The run page (the Run admin's change view): trigger, pinned version, input, the chain of
    retries and replays, the live status part (status, actions, approvals, steps, timeline),
    the step panel and the comparison with the last good run."""
    run = get_run(request, model_admin, run_id)
    context = admin_context(
        request, model_admin, f"Run {run.pk}",
        chain=run_chain(run), trigger_payload=json_html(run.trigger_payload),
        input_html=json_html(run.input), subtitle=f"{run.flow.name} · {version_label(run)}",
        **run_live_context(request, run),
    )
    return TemplateResponse(request, "workflows/run_page.html", context)


def version_label(run: Run) -> str:
    if run.is_rehearsal or run.version.number is None:
        return "draft (rehearsal)"
    return f"v{run.version.number}"


def run_live_context(request: HttpRequest, run: Run) -> dict[str, Any]:
    steps = list(selectors.run_steps(run=run))
    events = list(selectors.run_events(run=run))
    last_event = events[-1].pk if events else 0
    approvals = list(
        Approval.objects.filter(run=run, status=ApprovalStatus.PENDING)
        .select_related("step_run").order_by("id")
    )
    pending = [approval_card(request, a, run=run) for a in approvals]
    roles = role_context(request.user)
    terminal = run.status in RUN_TERMINAL
    longest = max((s.duration_ms or 0 for s in steps), default=0)
    rows = []
    for step in steps:
        duration = step.duration_ms
        rows.append({
            "step": step, "status_label": status_label(step.status),
            "duration": duration_label(duration),
            "bar": max(3, round(100 * duration / longest)) if duration and longest else 0,
            "panel_url": reverse("admin:workflows_run_step", args=[run.pk, step.key]),
            "error": (step.error or {}).get("message", "") if step.error else "",
        })
    timeline = []
    for event in events:
        timeline.append({
            "event": event, "step": event.step_run.key if event.step_run_id else "",
            "dot": event.to_status or "event",
        })
    live_query = urlencode({"v": last_event})
    return {
        "run": run, "step_rows": rows, "timeline": timeline, "pending": pending,
        "terminal": terminal, "live": not terminal,
        "live_url": reverse("admin:workflows_run_live", args=[run.pk]) + "?" + live_query,
        "last_event": last_event,
        "can_cancel": roles["can_operate"] and not terminal,
        "can_retry": roles["can_operate"] and terminal,
        "can_replay": roles["can_operate"],
        "retry_steps": [s.key for s in steps],
        "run_error": json_html(run.error) if run.error else None,
        "run_output": json_html(run.output) if run.output is not None else None,
        "duration": duration_label(run.duration_ms),
        "running_for": since(run.started_at) if run.started_at and not terminal else "",
        "run_status_label": status_label(run.status),
        "page_url": run_url(run.pk),
        **roles,
    }


def run_live(request: HttpRequest, model_admin: Any, run_id: Any) -> HttpResponse:
    """The polled part of the run page. Unchanged (same last event) answers 204."""
    run = get_run(request, model_admin, run_id)
    seen = _int(request.GET.get("v")) or 0
    last = Event.objects.filter(run=run).order_by("-id").values_list("id", flat=True).first()
    live = run.status not in RUN_TERMINAL
    if live and (last or 0) == seen:
        return HttpResponse(status=204)
    context = run_live_context(request, run)
    return _poll_response(request, "workflows/_run_live.html", context, live=live, changed=True)


def run_chain(run: Run) -> dict[str, Any]:
    """The runs this one retries or replays (oldest first) and the runs that retry or replay
    it (breadth first). One query per generation, at most CHAIN_MAX_HOPS each way."""
    fields = ("id", "status", "retry_of_id", "replay_of_id", "created_at", "trigger_kind")
    ancestors: list[dict] = []
    parent_id = run.retry_of_id or run.replay_of_id
    link = "retry" if run.retry_of_id else "replay"
    while parent_id and len(ancestors) < CHAIN_MAX_HOPS:
        parent = Run.objects.filter(pk=parent_id).values(*fields).first()
        if parent is None:
            break
        ancestors.append({**parent, "link": link, "url": run_url(parent["id"]),
                          "status_label": status_label(parent["status"])})
        link = "retry" if parent["retry_of_id"] else "replay"
        parent_id = parent["retry_of_id"] or parent["replay_of_id"]
    ancestors.reverse()
    descendants: list[dict] = []
    frontier = [run.pk]
    while frontier and len(descendants) < CHAIN_MAX_HOPS * 4:
        children = list(
            Run.objects.filter(Q(retry_of_id__in=frontier) | Q(replay_of_id__in=frontier))
            .order_by("id").values(*fields)[: CHAIN_MAX_HOPS * 4]
        )
        for child in children:
            child["link"] = "retry" if child["retry_of_id"] else "replay"
            child["of"] = child["retry_of_id"] or child["replay_of_id"]
            child["url"] = run_url(child["id"])
            child["status_label"] = status_label(child["status"])
        descendants.extend(children)
        frontier = [c["id"] for c in children]
    # For each ancestor, the link that leads *to the next* run in the chain.
    links = [a["link"] for a in ancestors[1:]] + (
        [("retry" if run.retry_of_id else "replay")] if ancestors else [])
    for ancestor, next_link in zip(ancestors, links, strict=False):
        ancestor["next_link"] = next_link
    return {"ancestors": ancestors, "descendants": descendants,
            "any": bool(ancestors or descendants)}


@require_POST
def run_cancel_view(request: HttpRequest, model_admin: Any, run_id: Any) -> HttpResponse:
    from workflows.services.runs import run_cancel

    run = get_run(request, model_admin, run_id)
    back = safe_next(request, run_url(run.pk))
    reason = request.POST.get("comment", "").strip()
    _, refusal = call_service(request, model_admin, run_cancel, back=back, run=run,
                              actor=request.user,
                              reason=reason or f"canceled by {request.user.get_username()}")
    if refusal:
        return refusal
    messages.success(request, f"Run {run.pk} canceled.")
    return HttpResponseRedirect(back)


@require_POST
def run_retry_view(request: HttpRequest, model_admin: Any, run_id: Any) -> HttpResponse:
    from workflows.services.runs import run_retry

    run = get_run(request, model_admin, run_id)
    back = safe_next(request, run_url(run.pk))
    from_step = request.POST.get("from_step") or None
    new, refusal = call_service(request, model_admin, run_retry, back=back, run=run,
                                actor=request.user, from_step=from_step)
    if refusal:
        return refusal
    where = f" from step {from_step}" if from_step else ""
    messages.success(request, f"Run {new.pk} retries run {run.pk}{where}.")
    return HttpResponseRedirect(run_url(new.pk))


@require_POST
def run_replay_view(request: HttpRequest, model_admin: Any, run_id: Any) -> HttpResponse:
    from workflows.services.runs import run_replay

    run = get_run(request, model_admin, run_id)
    back = safe_next(request, run_url(run.pk))
    new, refusal = call_service(request, model_admin, run_replay, back=back, run=run,
                                actor=request.user)
    if refusal:
        return refusal
    messages.success(request, f"Run {new.pk} replays run {run.pk} from the start.")
    return HttpResponseRedirect(run_url(new.pk))


def run_compare_fragment(request: HttpRequest, model_admin: Any, run_id: Any) -> HttpResponse:
    """What differs from the last good run (or `?to=ID`): version, input, steps."""
    run = get_run(request, model_admin, run_id)
    to = request.GET.get("to", "last_good")
    if to == "last_good":
        other = selectors.run_last_good(run=run)
    else:
        other = Run.objects.filter(pk=_int(to) or 0, flow_id=run.flow_id).first()
    context: dict[str, Any] = {"run": run, "other": other}
    if other is not None:
        other = Run.objects.select_related("version").get(pk=other.pk)
        diff = selectors.run_compare(run=run, other=other)
        steps = []
        for entry in diff["steps"]:
            row = {"key": entry["key"], "only_in": entry.get("only_in")}
            if "status" in entry:
                row["status"] = entry["status"]
            duration = entry.get("duration_ms") or {}
            row["duration_from"] = duration_label(duration.get("from"))
            row["duration_to"] = duration_label(duration.get("to"))
            if "output" in entry:
                row["output_from"] = json_html(entry["output"]["from"])
                row["output_to"] = json_html(entry["output"]["to"])
            if "error" in entry:
                row["error_from"] = json_html(entry["error"]["from"])
                row["error_to"] = json_html(entry["error"]["to"])
            row["same"] = not any(k in entry for k in ("status", "output", "error", "only_in"))
            steps.append(row)
        context.update(
            diff=diff, steps=steps, other_url=run_url(other.pk),
            version_lines=diff_summary(diff["version"]["definition"]),
            inputs=[{"name": k, "from": json.dumps(v["from"]), "to": json.dumps(v["to"])}
                    for k, v in diff["input"].items()],
        )
    return TemplateResponse(request, "workflows/_compare.html", context)


# --- step panel ---------------------------------------------------------------------------------


def get_step(request: HttpRequest, model_admin: Any, run_id: Any, key: str) -> StepRun:
    run = get_run(request, model_admin, run_id)
    step = StepRun.objects.filter(run=run, key=key).first()
    if step is None:
        raise Http404(f"run {run.pk} has no step {key}")
    step.run = run
    return step


def _state_token(step: StepRun) -> str:
    return f"{step.status}.{step.attempt_count}.{step.updated_at.timestamp():.6f}"


def step_panel(request: HttpRequest, model_admin: Any, run_id: Any, key: str) -> HttpResponse:
    """The side panel of one step run: input, attempts, output, error, approvals, and the tail
    of its logs (earlier pages on demand, new chunks while it runs)."""
    step = get_step(request, model_admin, run_id, key)
    chunks = selectors.step_logs_tail(step_run=step, limit=LOG_PAGE)
    context = step_state_context(request, step)
    context.update(log_context(step, chunks, context["attempt_numbers"]))
    return TemplateResponse(request, "workflows/_step_panel.html", context)


def step_state_context(request: HttpRequest, step: StepRun) -> dict[str, Any]:
    run = step.run
    attempts = list(Attempt.objects.filter(step_run=step).order_by("number"))
    attempt_rows = []
    for attempt in attempts:
        error = attempt.error or {}
        running_for = None
        if attempt.finished_at is None:
            running_for = duration_label(
                int((timezone.now() - attempt.started_at).total_seconds() * 1000))
        attempt_rows.append({
            "attempt": attempt, "status_label": status_label(attempt.status),
            "duration": duration_label(attempt.duration_ms), "running_for": running_for,
            "error_type": error.get("type", ""), "error_message": error.get("message", ""),
            "traceback": error.get("traceback", ""),
            "output": json_html(attempt.output) if attempt.output is not None else None,
            "input": json_html(attempt.input) if attempt.input is not None else None,
        })
    latest = attempts[-1] if attempts else None
    pending = []
    if step.type == "approval":
        for approval in Approval.objects.filter(step_run=step, status=ApprovalStatus.PENDING):
            approval.step_run = step
            pending.append(approval_card(request, approval, run=run))
    return {
        "step": step, "run": run, "status_label": status_label(step.status),
        "duration": duration_label(step.duration_ms), "attempt_rows": attempt_rows,
        "attempt_numbers": {a.pk: a.number for a in attempts},
        "input_html": json_html(latest.input) if latest and latest.input is not None else None,
        "output_html": json_html(step.output) if step.output is not None else None,
        "error_html": json_html(step.error) if step.error else None,
        "pending": pending, "terminal": step.status in STEP_TERMINAL,
        "run_terminal": run.status in RUN_TERMINAL, "token": _state_token(step),
        "run_url": run_url(run.pk), "reused_from": step.reused_from_id,
    }


def log_lines_html(chunks: Iterable[Any], attempt_numbers: dict[int, int],
                   previous_attempt: int | None = None) -> tuple[str, int | None]:
    """Log chunks as spans, with a marker where a new attempt's output begins."""
    parts = []
    for chunk in chunks:
        if chunk.attempt_id != previous_attempt:
            number = attempt_numbers.get(chunk.attempt_id, "?")
            parts.append(f'<span class="log-sep" data-attempt="{chunk.attempt_id}">'
                         f"── attempt {number} ──</span>")
            previous_attempt = chunk.attempt_id
        text = chunk.text
        if len(text) > LOG_CHUNK_MAX_CHARS:
            text = text[:LOG_CHUNK_MAX_CHARS] + f"\n… ({len(chunk.text):,} characters in this chunk)\n"
        parts.append(f'<span class="log-chunk log-{escape(chunk.stream)}" data-seq="{chunk.seq}" '
                     f'data-attempt="{chunk.attempt_id}">{escape(text)}</span>')
    return "".join(parts), previous_attempt


def log_context(step: StepRun, chunks: list[Any], attempt_numbers: dict[int, int]) -> dict:
    html, last_attempt = log_lines_html(chunks, attempt_numbers)
    first_seq = chunks[0].seq if chunks else None
    last_seq = chunks[-1].seq if chunks else 0
    return {
        "log_html": mark_safe(html), "log_empty": not chunks,
        "earlier_url": _earlier_url(step, first_seq),
        "live_url": _live_url(step, last_seq, _state_token(step), last_attempt),
        "log_live": step.status not in STEP_TERMINAL,
    }


def _earlier_url(step: StepRun, first_seq: int | None) -> str | None:
    if not first_seq or first_seq <= 1:
        return None
    return (reverse("admin:workflows_run_step_logs", args=[step.run_id, step.key]) + "?"
            + urlencode({"before": first_seq}))


def _live_url(step: StepRun, after: int, token: str, attempt: int | None) -> str:
    return (reverse("admin:workflows_run_step_live", args=[step.run_id, step.key]) + "?"
            + urlencode({"after": after, "v": token, "a": attempt or ""}))


def step_logs_earlier(request: HttpRequest, model_admin: Any, run_id: Any,
                      key: str) -> HttpResponse:
    """The page of log chunks before `before`, replacing the "earlier" button."""
    step = get_step(request, model_admin, run_id, key)
    before = _int(request.GET.get("before")) or 1
    chunks = selectors.step_logs_before(step_run=step, before=before, limit=LOG_PAGE)
    numbers = dict(Attempt.objects.filter(step_run=step).values_list("id", "number"))
    html, _ = log_lines_html(chunks, numbers)
    earlier = _earlier_url(step, chunks[0].seq if chunks else None)
    context = {"log_html": mark_safe(html), "earlier_url": earlier}
    return TemplateResponse(request, "workflows/_step_logs_earlier.html", context)


def step_live(request: HttpRequest, model_admin: Any, run_id: Any, key: str) -> HttpResponse:
    """The panel's own poll: log chunks after `after` (appended), and the attempts/output part
    only when the step changed (so an expanded traceback does not snap shut)."""
    step = get_step(request, model_admin, run_id, key)
    after = _int(request.GET.get("after")) or 0
    previous_attempt = _int(request.GET.get("a"))
    chunks = selectors.step_logs(step_run=step, after=after, limit=LOG_LIVE_LIMIT)
    token = _state_token(step)
    state_changed = request.GET.get("v") != token
    state = step_state_context(request, step) if state_changed else None
    numbers = state["attempt_numbers"] if state else dict(
        Attempt.objects.filter(step_run=step).values_list("id", "number"))
    html, last_attempt = log_lines_html(chunks, numbers, previous_attempt)
    last_seq = chunks[-1].seq if chunks else after
    more = len(chunks) >= LOG_LIVE_LIMIT
    live = step.status not in STEP_TERMINAL or more
    if live and not chunks and not state_changed:
        return HttpResponse(status=204)
    context = {
        "step": step, "state": state, "log_html": mark_safe(html), "has_logs": bool(chunks),
        "live_url": _live_url(step, last_seq, token, last_attempt), "log_live": live,
    }
    if state:
        context.update(state)
    return _poll_response(request, "workflows/_step_live.html", context, live=live, changed=True)


# --- approvals (cards shared by the inbox, the run page and the step panel) ---------------------


def approval_card(request: HttpRequest, approval: Approval, *, run: Run | None = None,
                  next_url: str | None = None, can_decide: bool | None = None) -> dict[str, Any]:
    """What a decision form needs: may this user decide (pass `can_decide` when the caller
    already knows), and where may redo send the run."""
    from approvals.services import approval_can_decide

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
        "approval": approval,
        "can_decide": approval_can_decide(approval=approval, actor=request.user)
        if can_decide is None else can_decide,
        "redo_choices": choices, "redo_default": default,
        "data_html": json_html(approval.data),
        "age": since(approval.created_at, depth=2),
        "timeout_in": timeuntil(approval.timeout_at, depth=2) if approval.timeout_at else "",
        "overdue": bool(approval.timeout_at and approval.timeout_at <= timezone.now()),
        "next": next_url or page_url(request, run_url(run.pk)),
        "assignees": approval.assignees or {},
    }


