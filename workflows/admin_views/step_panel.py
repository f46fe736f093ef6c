"""The step panel: the side panel of one step run on the flow and run pages.

- `step_panel`: input, attempts, output, error, pending approvals, and the tail of its logs.
- `step_live`: the panel's own poll: log chunks after `after` (appended), and the attempts /
  output part only when the step changed (so an expanded traceback does not snap shut).
- `step_logs_earlier`: the page of log chunks before `before` ("earlier" button).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import mark_safe

from approvals.selectors import approvals_pending_for_step
from workflows import selectors
from workflows.admin_views.approvals import approval_card
from workflows.admin_views.edge import get_run, poll_response, positive_int, run_url
from workflows.models import StepRun
from workflows.permissions import OPERATE_RUN, has_permission
from workflows.states import RUN_TERMINAL, STEP_TERMINAL
from workflows.templatetags.wf_render import duration_label, json_html, status_label

LOG_PAGE = 200  # chunks shown when a panel opens, and per "earlier" click
LOG_LIVE_LIMIT = 500  # chunks sent per poll of a running step
LOG_CHUNK_MAX_CHARS = 20_000


def get_step(request: HttpRequest, model_admin: Any, run_id: Any, key: str) -> StepRun:
    run = get_run(request, model_admin, run_id)
    step = selectors.step_get(run=run, key=key)
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
    attempts = selectors.step_attempts(step_run=step)
    attempt_rows = []
    for attempt in attempts:
        error = attempt.error or {}
        running_for = None
        if attempt.finished_at is None:
            running_for = duration_label(
                int((timezone.now() - attempt.started_at).total_seconds() * 1000))
        attempt_rows.append({
            "attempt": attempt,
            "duration": duration_label(attempt.duration_ms), "running_for": running_for,
            "error_type": error.get("type", ""), "error_message": error.get("message", ""),
            "traceback": error.get("traceback", ""),
            "output": json_html(attempt.output) if attempt.output is not None else None,
            "input": json_html(attempt.input) if attempt.input is not None else None,
        })
    latest = attempts[-1] if attempts else None
    pending = []
    if step.type == "approval":
        for approval in approvals_pending_for_step(step_run=step):
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
        # Whoever holds the URL can complete the wait: operators only (support only reads).
        "callback_url": selectors.step_callback_url(step_run=step)
        if has_permission(request.user, OPERATE_RUN) else None,
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
