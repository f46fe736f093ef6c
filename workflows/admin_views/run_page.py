"""The run page (the Run admin's change view) and what hangs off it.

- `run_page`: trigger, pinned version, input, the chain of retries and replays, the live part,
  the step panel and the comparison with the last good run.
- `run_live_context` / `run_live`: the polled part (status, actions, pending approvals, steps,
  timeline); unchanged (same last event) answers 204.
- `run_compare_fragment`: what differs from the last good run (or `?to=ID`).
- run actions, each calling the same service as the API: `run_cancel_view`, `run_retry_view`,
  `run_replay_view`, `run_rerun_view` (this input on the live version).
- the "what happens next" box of a failed run and the actions' confirmations: `run_next.py`;
  the timeline's compact and full modes: `timeline.py`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from approvals.admin_views import approval_card
from approvals.selectors import approvals_pending_for_run
from workflows import selectors
from workflows.admin_views.edge import (
    admin_context,
    call_service,
    get_run,
    poll_response,
    positive_int,
    role_context,
    run_url,
    safe_next,
)
from workflows.admin_views.flow_page import diff_summary
from workflows.admin_views.run_next import (
    action_confirmations,
    next_context,
    rerun_again_phrase,
)
from workflows.admin_views.timeline import FULL, timeline_mode, timeline_rows
from workflows.definitions import definition_value_changes
from workflows.investigation import run_baseline, run_next_steps
from workflows.investigation.next_steps import run_reruns
from workflows.investigation.noise import is_volatile
from workflows.models import Run
from workflows.services.runs import run_cancel, run_replay, run_rerun, run_retry
from workflows.states import RUN_TERMINAL, RunStatus, StepStatus
from workflows.templatetags.wf_render import duration_label, json_html, since, status_label

CHAIN_MAX_HOPS = 25
OPTIONAL_FAILED_LABEL = "completed with failed optional steps"


def run_page(request: HttpRequest, model_admin: Any, run_id: Any) -> HttpResponse:
    """The run page (the Run admin's change view): trigger, pinned version, input, the chain of
    retries and replays, the live status part (status, actions, approvals, steps, timeline),
    the step panel and the comparison with the last good run."""
    run = get_run(request, model_admin, run_id)
    context = admin_context(
        request, model_admin, f"Run {run.pk}",
        chain=run_chain(run), trigger_payload=json_html(run.trigger_payload),
        parent=_parent_link(run),
        input_html=json_html(run.input), subtitle=f"{run.flow.name} · {version_label(run)}",
        **run_live_context(request, run),
    )
    return TemplateResponse(request, "workflows/run_page.html", context)


def _parent_link(run: Run) -> dict[str, Any] | None:
    """A subflow's parent run and step, for the link back to it."""
    parent = selectors.subflow_parent(run=run)
    if parent is None:
        return None
    return {**parent, "url": run_url(parent["run"])}


def version_label(run: Run) -> str:
    if run.is_rehearsal or run.version.number is None:
        return "draft (rehearsal)"
    return f"v{run.version.number}"


def error_shown(error: Any) -> Any:
    """A run's error as the page shows it: without an empty traceback (a failure the step
    reported itself has none; the step panel shows one only when there is one)."""
    if isinstance(error, dict) and not error.get("traceback"):
        return {k: v for k, v in error.items() if k != "traceback"}
    return error


def run_live_context(request: HttpRequest, run: Run) -> dict[str, Any]:
    steps = list(selectors.run_steps(run=run))
    # The timeline is the run's and its steps' story; a for_each step's instances have their
    # own events, shown on their step panel (a 10,000-item step would drown the page).
    events = list(selectors.run_events(run=run).filter(instance=None))
    last_event = selectors.run_last_event_id(run=run) or 0
    approvals = approvals_pending_for_run(run=run)
    pending = [approval_card(request, a, run=run) for a in approvals]
    roles = role_context(request.user)
    terminal = run.status in RUN_TERMINAL
    longest = max((s.duration_ms or 0 for s in steps), default=0)
    children = selectors.subflow_children(steps=steps, counted=True)
    # continue_on_error steps that failed in a run that still completed
    optional_failed = ([s.key for s in steps if s.status == StepStatus.FAILED]
                       if run.status == RunStatus.COMPLETED else [])
    rows = []
    for step in steps:
        duration = step.duration_ms
        child = children.get(step.pk)
        fanned = isinstance(child, dict)  # a for_each flow step: {"count": its children}
        rows.append({
            "step": step, "duration": duration_label(duration),
            "bar": max(3, round(100 * duration / longest)) if duration and longest else 0,
            "panel_url": reverse("admin:workflows_run_step", args=[run.pk, step.key]),
            "error": (step.error or {}).get("message", "") if step.error else "",
            "child_run": None if fanned else child,
            "child_url": run_url(child) if child is not None and not fanned else "",
            "child_count": child["count"] if fanned else 0,
        })
    next_box = next_context(run=run) if run.status == RunStatus.FAILED else None
    confirms = action_confirmations(
        run=run, steps=steps,
        next_steps=next_box["steps"] if next_box else (
            run_next_steps(run=run) if terminal and roles["can_operate"] else None))
    mode = timeline_mode(request)
    timeline, timeline_total = timeline_rows(events, full=mode == FULL)
    live_query = urlencode({"v": last_event, **({"timeline": FULL} if mode == FULL else {})})
    return {
        "run": run, "step_rows": rows, "timeline": timeline, "pending": pending,
        "timeline_mode": mode, "timeline_total": timeline_total,
        "next": next_box, "confirms": confirms,
        "can_rerun": roles["can_operate"] and bool(confirms.get("rerun")),
        "terminal": terminal, "live": not terminal,
        "live_url": reverse("admin:workflows_run_live", args=[run.pk]) + "?" + live_query,
        "last_event": last_event,
        "can_cancel": roles["can_operate"] and not terminal,
        "can_retry": roles["can_operate"] and terminal,
        "can_replay": roles["can_operate"],
        "retry_steps": [{"key": s.key, "confirm": confirms.get("retry_from", {}).get(s.key, "")}
                        for s in steps],
        "run_error": json_html(error_shown(run.error)) if run.error else None,
        "run_output": json_html(run.output) if run.output is not None else None,
        "duration": duration_label(run.duration_ms),
        "usage": selectors.usage_total(steps),
        "running_for": since(run.started_at) if run.started_at and not terminal else "",
        "run_status_label": (OPTIONAL_FAILED_LABEL if optional_failed
                             else status_label(run.status)),
        "optional_failed": optional_failed,
        "page_url": run_url(run.pk),
        **roles,
    }


def run_live(request: HttpRequest, model_admin: Any, run_id: Any) -> HttpResponse:
    """The polled part of the run page. Unchanged (same last event) answers 204."""
    run = get_run(request, model_admin, run_id)
    seen = positive_int(request.GET.get("v")) or 0
    last = selectors.run_last_event_id(run=run)
    live = run.status not in RUN_TERMINAL
    if live and (last or 0) == seen:
        return HttpResponse(status=204)
    context = run_live_context(request, run)
    return poll_response(request, "workflows/_run_live.html", context, live=live, changed=True)


def run_chain(run: Run) -> dict[str, Any]:
    """The runs this one retries, replays or reruns (oldest first) and the runs made from it
    that way (breadth first). One query per generation, at most CHAIN_MAX_HOPS each way."""
    ancestors, descendants = selectors.run_chain(run=run, max_hops=CHAIN_MAX_HOPS)
    for entry in (*ancestors, *descendants):
        entry["url"] = run_url(entry["id"])
    # For each ancestor, the link that leads *to the next* run in the chain.
    links = [a["link"] for a in ancestors[1:]] + (
        [selectors.chain_link(run)[0]] if ancestors else [])
    for ancestor, next_link in zip(ancestors, links, strict=False):
        ancestor["next_link"] = next_link
    return {"ancestors": ancestors, "descendants": descendants,
            "any": bool(ancestors or descendants)}


@require_POST
def run_cancel_view(request: HttpRequest, model_admin: Any, run_id: Any) -> HttpResponse:
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
    run = get_run(request, model_admin, run_id)
    back = safe_next(request, run_url(run.pk))
    new, refusal = call_service(request, model_admin, run_replay, back=back, run=run,
                                actor=request.user)
    if refusal:
        return refusal
    messages.success(request, f"Run {new.pk} replays run {run.pk} from the start.")
    return HttpResponseRedirect(run_url(new.pk))


@require_POST
def run_rerun_view(request: HttpRequest, model_admin: Any, run_id: Any) -> HttpResponse:
    """Run this input on the live version (or on release `version`): a new run linked by
    rerun_of. A run already rerun is rerun again only when the form names the latest rerun
    it was shown (`again`; the button's confirmation names it): a page opened before the first
    rerun, or a second click, must not start a second run and its side effects unasked."""
    run = get_run(request, model_admin, run_id)
    back = safe_next(request, run_url(run.pk))
    reruns = run_reruns(run=run)
    if reruns and request.POST.get("again") != str(reruns[-1]["id"]):
        messages.error(request, f"{rerun_again_phrase(reruns)}Confirm on the page to start "
                                "another run.")
        return HttpResponseRedirect(back)
    version = positive_int(request.POST.get("version"))
    new, refusal = call_service(request, model_admin, run_rerun, back=back, run=run,
                                actor=request.user, version=version)
    if refusal:
        return refusal
    where = (f"v{new.version.number}" if version else
             f"the live version, v{new.version.number}")
    messages.success(request, f"Run {new.pk} runs the input of run {run.pk} on {where}.")
    return HttpResponseRedirect(run_url(new.pk))


def run_compare_fragment(request: HttpRequest, model_admin: Any, run_id: Any) -> HttpResponse:
    """What differs from the last good run (or `?to=ID`): version, input, steps, each at the
    value level (path, before, after); the step this run failed at comes first, open. The last
    good run is `run_baseline`, the one the explanation names. Response headers that change on
    every call (`investigation.noise`) are left out of "values changed", behind "show all"."""
    run = get_run(request, model_admin, run_id)
    to = request.GET.get("to", "last_good")
    if to == "last_good":  # the explanation's baseline (one baseline, named: issue 24)
        other = run_baseline(run=run)
    else:
        other = selectors.run_in_flow(run_id=positive_int(to) or 0, flow_id=run.flow_id)
    context: dict[str, Any] = {"run": run, "other": other, "baseline": to == "last_good"}
    if other is not None:
        other = selectors.run_with_version(run_id=other.pk)
        diff = selectors.run_compare(run=run, other=other)
        failing = (run.error or {}).get("step") if run.error else None
        steps = [compare_step_row(entry, failing=failing) for entry in diff["steps"]]
        steps.sort(key=lambda row: not row["failing"])  # stable: the rest keep their order
        context.update(
            diff=diff, steps=steps, other_url=run_url(other.pk),
            version_lines=diff_summary(diff["version"]["definition"]),
            version_values=value_rows(diff["version"]["definition"].get("values", [])),
            inputs=value_rows(definition_value_changes(other.input, run.input)),
        )
    return TemplateResponse(request, "workflows/_compare.html", context)


def value_rows(changes: list[dict[str, Any]]) -> list[dict[str, str]]:
    """{path, before, after} with the values as compact JSON for a table."""
    return [{"path": c["path"] or "(whole value)", "before": compact_json(c["before"]),
             "after": compact_json(c["after"])} for c in changes]


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def compare_step_row(entry: dict[str, Any], *, failing: str | None) -> dict[str, Any]:
    """One step of a comparison: status and duration, and every changed value of its output
    and error as {path, before, after} (paths start at `output` / `error`)."""
    row: dict[str, Any] = {"key": entry["key"], "only_in": entry.get("only_in"),
                           "failing": entry["key"] == failing}
    if "status" in entry:
        row["status"] = entry["status"]
    duration = entry.get("duration_ms") or {}
    row["duration_from"] = duration_label(duration.get("from"))
    row["duration_to"] = duration_label(duration.get("to"))
    changes: list[dict[str, Any]] = []
    for part in ("output", "error"):
        if part in entry:
            changes += definition_value_changes({part: entry[part]["from"]},
                                                {part: entry[part]["to"]})
    row["values"] = value_rows([c for c in changes if not is_volatile(c["path"])])
    row["noise"] = value_rows([c for c in changes if is_volatile(c["path"])])
    row["same"] = not any(k in entry for k in ("status", "error", "only_in")) and not row["values"]
    return row
