"""The step panel: the side panel of one step run on the flow and run pages.

- `step_panel`: input (what the step received) apart from its configuration (collapsed),
  attempts, output, error, pending approvals, the step a reused output came from, a wait's
  callback (issued, expires, received from which address and user agent), and the tail of its
  logs.
- `step_live`: the panel's own poll: log chunks after `after` (appended), and the attempts /
  output part only when the step changed (so an expanded traceback does not snap shut).
- `step_logs_earlier`: the page of log chunks before `before` ("earlier" button).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from approvals.admin_views import approval_card
from approvals.selectors import approvals_pending_for_step
from resources.selectors import resource_get
from resources.services import resource_signed_path
from workflows import selectors
from workflows.admin_views.edge import get_step, poll_response, positive_int, run_url
from workflows.admin_views.instances_panel import instances_context
from workflows.investigation import wait_step_info
from workflows.models import StepRun
from workflows.permissions import OPERATE_RUN, has_permission
from workflows.states import RUN_TERMINAL, STEP_TERMINAL
from workflows.steps import get_step_type
from workflows.steps.base import StepType
from workflows.templatetags.wf_render import duration_label, json_html, status_label

LOG_PAGE = 200  # chunks shown when a panel opens, and per "earlier" click
LOG_LIVE_LIMIT = 500  # chunks sent per poll of a running step
LOG_CHUNK_MAX_CHARS = 20_000


def _state_token(step: StepRun) -> str:
    # A remote agent's heartbeat changes the panel without touching updated_at (its write is
    # one conditional UPDATE of the liveness columns), so its time is part of the token.
    beat = step.heartbeat_at.timestamp() if step.heartbeat_at else 0
    return f"{step.status}.{step.attempt_count}.{step.updated_at.timestamp():.6f}.{beat:.6f}"


def agent_context(step: StepRun) -> dict[str, Any] | None:
    """What a wait's remote agent reported, for the panel: its last sign of life ("12 s ago"),
    message, progress (a percentage for the bar), usage and cost, artifacts (with download
    links) and what its on_cancel command did. None when it reported nothing."""
    if step.type != "wait" or not (step.heartbeat_at or step.on_cancel_state):
        return None
    age = None
    if step.heartbeat_at:
        age = max(int((timezone.now() - step.heartbeat_at).total_seconds()), 0)
    progress = step.agent_progress or {}
    percent = None
    if progress.get("total"):
        percent = max(0, min(100, round(100 * progress.get("done", 0) / progress["total"])))
    artifacts = []
    for name, descriptor in sorted((step.agent_artifacts or {}).items()):
        resource = resource_get(uri=descriptor.get("$resource", ""))
        artifacts.append({"name": name, "size": descriptor.get("size"),
                          "sha256": descriptor.get("sha256", ""),
                          "content_type": descriptor.get("content_type", ""),
                          "url": resource_signed_path(resource=resource) if resource else None})
    return {"heartbeat_at": step.heartbeat_at, "age_seconds": age,
            "message": step.agent_message, "progress": progress or None, "percent": percent,
            "usage": step.agent_usage, "artifacts": artifacts,
            "on_cancel_state": step.on_cancel_state, "on_cancel": step.on_cancel_result}


def step_panel(request: HttpRequest, model_admin: Any, run_id: Any, key: str) -> HttpResponse:
    """The side panel of one step run: input, attempts, output, error, approvals, and the tail
    of its logs (earlier pages on demand, new chunks while it runs)."""
    step = get_step(request, model_admin, run_id, key)
    chunks = selectors.step_logs_tail(step_run=step, limit=LOG_PAGE)
    context = step_state_context(request, step)
    context.update(log_context(step, chunks, context["attempt_numbers"]))
    context["instances"] = instances_context(step)
    return TemplateResponse(request, "workflows/_step_panel.html", context)


def step_state_context(request: HttpRequest, step: StepRun) -> dict[str, Any]:
    """The part of the panel that changes with the step: status, input (what the latest attempt
    received, redacted as stored) apart from the configuration, attempts, output, error,
    approvals, and where a reused output came from."""
    run = step.run
    step_type = get_step_type(step.type)
    attempts = selectors.step_attempts(step_run=step)
    logs = selectors.step_log_resources(step_run=step)
    attempt_rows = []
    for attempt in attempts:
        running_for = None
        if attempt.finished_at is None:
            running_for = duration_label(
                int((timezone.now() - attempt.started_at).total_seconds() * 1000))
        received = received_input(step_type, attempt.input)
        attempt_rows.append({
            "attempt": attempt,
            "duration": duration_label(attempt.duration_ms), "running_for": running_for,
            "error": error_parts(attempt.error),
            "output": json_html(attempt.output) if attempt.output is not None else None,
            "input": json_html(received) if received is not None else None,
            "log": logs.get(attempt.number),
            "log_url": (resource_signed_path(resource=logs[attempt.number])
                        if attempt.number in logs else None),
        })
    latest = attempts[-1] if attempts else None
    received = received_input(step_type, latest.input) if latest else None
    pending = []
    if step.type == "approval":
        for approval in approvals_pending_for_step(step_run=step):
            approval.step_run = step
            pending.append(approval_card(request, approval, run=run))
    source = selectors.step_reused_source(step_run=step)
    wait = wait_step_info(step_run=step) if step.type == "wait" else None
    return {
        "step": step, "run": run, "status_label": status_label(step.status),
        "duration": duration_label(step.duration_ms), "attempt_rows": attempt_rows,
        "attempt_numbers": {a.pk: a.number for a in attempts},
        "input_html": json_html(received) if received is not None else None,
        "input_empty": received == {},
        "config_html": json_html(step_configuration(step_type, run.definition, step.key)),
        "output_html": json_html(step.output) if step.output is not None else None,
        "error": error_parts(step.error),
        "pending": pending, "terminal": step.status in STEP_TERMINAL,
        "run_terminal": run.status in RUN_TERMINAL, "token": _state_token(step),
        "run_url": run_url(run.pk),
        "wait": wait, "timer_at": step.not_before if step.type == "wait" else None,
        "agent": agent_context(step),
        "reused_from": source,
        "reused_url": step_url(source.run_id, source.key) if source else None,
        # Whoever holds the URL can complete the wait: operators only (support only reads).
        "callback_url": selectors.step_callback_url(step_run=step)
        if has_permission(request.user, OPERATE_RUN) else None,
    }


def step_url(run_id: int, key: str) -> str:
    """The run page with this step's panel open (admin.js opens `#step=KEY`)."""
    return f"{run_url(run_id)}#step={key}"


def received_input(step_type: StepType | None, params: Any) -> Any:
    """What an attempt received: its resolved, redacted parameters without the configuration."""
    if params is None:
        return None
    if step_type is None or not isinstance(params, dict):
        return params
    return step_type.split_input(params)[0]


def step_configuration(step_type: StepType | None, definition: dict[str, Any],
                       key: str) -> dict[str, Any]:
    """The step as the pinned definition configures it (key, type, needs, retry, timeout...),
    without its input parameters (shown resolved, as received, apart)."""
    entry = next((s for s in definition.get("steps", []) if s.get("key") == key), {})
    if step_type is None:
        return entry
    return step_type.split_input(entry)[1]


def error_parts(error: Any) -> dict[str, Any] | None:
    """An error as type, message, traceback (None when empty) and any other fields."""
    if not error:
        return None
    if not isinstance(error, dict):
        return {"type": "", "message": str(error), "traceback": None, "extra": None}
    extra = {k: v for k, v in error.items() if k not in ("type", "message", "traceback")}
    return {
        "type": error.get("type") or "", "message": error.get("message") or "",
        "traceback": (error.get("traceback") or "").strip() or None,
        "extra": json_html(extra) if extra else None,
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
    before = positive_int(request.GET.get("before")) or 1
    chunks = selectors.step_logs_before(step_run=step, before=before, limit=LOG_PAGE)
    numbers = selectors.step_attempt_numbers(step_run=step)
    html, _ = log_lines_html(chunks, numbers)
    earlier = _earlier_url(step, chunks[0].seq if chunks else None)
    context = {"log_html": mark_safe(html), "earlier_url": earlier}
    return TemplateResponse(request, "workflows/_step_logs_earlier.html", context)


def step_live(request: HttpRequest, model_admin: Any, run_id: Any, key: str) -> HttpResponse:
    """The panel's own poll: log chunks after `after` (appended), and the attempts/output part
    only when the step changed (so an expanded traceback does not snap shut)."""
    step = get_step(request, model_admin, run_id, key)
    after = positive_int(request.GET.get("after")) or 0
    previous_attempt = positive_int(request.GET.get("a"))
    chunks = selectors.step_logs(step_run=step, after=after, limit=LOG_LIVE_LIMIT)
    token = _state_token(step)
    state_changed = request.GET.get("v") != token
    state = step_state_context(request, step) if state_changed else None
    numbers = (state["attempt_numbers"] if state
               else selectors.step_attempt_numbers(step_run=step))
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
    return poll_response(request, "workflows/_step_live.html", context, live=live, changed=True)
