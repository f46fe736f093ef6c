"""The spans of runs, steps, attempts and pauses (ops.tracing does the exporting).

Hooked at the few places where these end, each a one-line call that returns at once when
tracing is off (`ops.tracing.enabled()`), so the off path sends no statement and imports no SDK:
- `run_locked` (locking): the run whose steps this thread is changing, for the hooks below
  (every write to a step run or an attempt holds its run's lock, so this is always the right
  run);
- `attempt_ended` (attempts.attempt_close / attempt_finish): the attempt's span, and the
  pause's span when the attempt was waiting (a wait, an approval);
- `step_ended` (transitions.step_transition, terminal moves of a step that ran);
- `run_ended` (an `on_run_ended` listener).

Spans are emitted when the transaction commits (`transaction.on_commit`): a transaction that
rolls back (a pipelined write that raced and is redone) emits nothing. Their ids are the run's
stored ids and ids derived from them (`ops.tracing.derived_id`): step span ("step", step run id),
attempt span ("attempt", step run id, number), pause span ("pause", step run id, number). What
tracing-on costs in statements: none for a step whose first attempt completes; one read of the
step's start for a step that ends after a retry or a pause, one of the pause's start (its Event).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from ops import tracing as otel
from workflows.models import Event, Flow, Run, StepRun
from workflows.states import RunStatus, StepStatus

_local = threading.local()
_flow_slugs: dict[int, str] = {}
FAILED_ATTEMPTS = ("failed", "rejected")
FAILED_STEPS = (StepStatus.FAILED, StepStatus.REJECTED)


def _run_for(step: StepRun) -> Run | None:
    run = getattr(_local, "run", None)
    if run is None or run.pk != step.run_id or not run.trace_id:
        return None
    return run


def run_locked(run: Run) -> None:
    if otel.enabled():
        _local.run = run


def step_span_id(run: Run, step_run_id: int) -> str:
    # The same formula gives the step panel's link (templatetags.wf_render.trace_url).
    return otel.derived_id(run.trace_id, "step", step_run_id)


def attempt_span_id(run: Run, step_run_id: int, number: int) -> str:
    return otel.derived_id(run.trace_id, "attempt", step_run_id, number)


def pause_span_id(run: Run, step_run_id: int, number: int) -> str:
    return otel.derived_id(run.trace_id, "pause", step_run_id, number)


def attempt_traceparent(run: Run, step_run_id: int, number: int) -> str | None:
    """What an attempt sends outward (http `traceparent`, ssh `TRACEPARENT`)."""
    if not otel.enabled() or not run.trace_id:
        return None
    return otel.traceparent(run.trace_id, attempt_span_id(run, step_run_id, number))


def log_fields(run: Run, step_run_id: int, number: int) -> dict[str, str]:
    """`trace_id` and `span_id` (the attempt's) for the JSON log lines of an attempt."""
    if not otel.enabled() or not run.trace_id:
        return {}
    return {"trace_id": run.trace_id, "span_id": attempt_span_id(run, step_run_id, number)}


def _attributes(run: Run, **extra: Any) -> dict[str, Any]:
    version = getattr(run, "version", None)
    number = getattr(version, "number", None)
    return {"workflow.flow": _flow_slug(run), "workflow.run_id": run.pk,
            "workflow.version": number if number is not None else "draft", **extra}


def _flow_slug(run: Run) -> str:
    """The flow's slug (cached per process: slugs do not change; read once per flow)."""
    if "flow" in run._state.fields_cache:
        return run.flow.slug
    slug = _flow_slugs.get(run.flow_id)
    if slug is None:
        slug = Flow.objects.filter(pk=run.flow_id).values_list("slug", flat=True).first() or ""
        _flow_slugs[run.flow_id] = slug
    return slug


# --- the hooks -----------------------------------------------------------------------------------

def attempt_ended(step: StepRun, number: int, started_at: datetime | None, status: str,
                  error: dict[str, Any] | None = None, *, paused: bool = False) -> None:
    if not otel.enabled():
        return
    run = _run_for(step)
    if run is None or not number:
        return
    if number == 1 and started_at is not None:
        _local.first_start = (step.pk, started_at)
    inbound = getattr(_local, "inbound", None)
    _local.inbound = None
    ended = timezone.now()
    _local.attempt_end = (step.pk, ended)  # a step's span ends after its last attempt's
    transaction.on_commit(lambda: _attempt_emit(run, step, number, started_at, ended, status,
                                                error, paused, inbound))


def _attempt_emit(run: Run, step: StepRun, number: int, started: datetime | None,
                  ended: datetime | None, status: str, error: dict[str, Any] | None,
                  paused: bool, inbound: tuple[str, str] | None) -> None:
    attributes = _attributes(run, **{"workflow.step": step.key, "workflow.attempt": number,
                                     "workflow.status": status,
                                     "workflow.error_kind": (error or {}).get("type")})
    failed = error if status in FAILED_ATTEMPTS and error else (
        {"type": status, "message": f"attempt {status}"} if status in FAILED_ATTEMPTS else None)
    span_id = attempt_span_id(run, step.pk, number)
    otel.span_emit(f"attempt {step.key}#{number}", trace_id=run.trace_id, span_id=span_id,
                   parent_id=step_span_id(run, step.pk), start=started, end=ended,
                   attributes=attributes, error=failed)
    if paused:
        pause_start = (Event.objects.filter(step_run_id=step.pk, to_status__in=[
            StepStatus.WAITING, StepStatus.WAITING_FOR_APPROVAL]).order_by("-at")
            .values_list("at", flat=True).first()) or started
        otel.span_emit(f"{'approval' if step.type == 'approval' else 'wait'} {step.key}",
                       trace_id=run.trace_id, span_id=pause_span_id(run, step.pk, number),
                       parent_id=span_id, start=pause_start, end=ended,
                       attributes={**attributes, "workflow.pause": step.type},
                       links=[inbound] if inbound else ())


def step_ended(step: StepRun, to: str, values: dict[str, Any]) -> None:
    if not otel.enabled() or not step.attempt_count:
        return
    run = _run_for(step)
    if run is None:
        return
    error = values.get("error")
    ended = values.get("finished_at")
    transaction.on_commit(lambda: _step_emit(run, step, to, error, ended))


def _step_emit(run: Run, step: StepRun, status: str, error: Any, ended: Any) -> None:
    first = getattr(_local, "first_start", None)
    first = first[1] if first is not None and first[0] == step.pk else None
    if first is not None and step.attempt_count == 1:
        started = first
    elif "started_at" in step.__dict__ and step.started_at is not None:
        started = step.started_at
    else:
        started = StepRun.objects.filter(pk=step.pk).values_list("started_at", flat=True).first()
    if first is not None and started is not None and first < started:
        started = first  # the claim's clock read comes a moment before the step's move
    last = getattr(_local, "attempt_end", None)
    if last is not None and last[0] == step.pk and ended is not None and last[1] > ended:
        ended = last[1]
    error = error if isinstance(error, dict) else None
    failed = (error or {"type": status, "message": f"step {status}"}) \
        if status in FAILED_STEPS else None
    otel.span_emit(f"step {step.key}", trace_id=run.trace_id, span_id=step_span_id(run, step.pk),
                   parent_id=run.trace_span_id, start=started, end=ended,
                   attributes=_attributes(run, **{
                       "workflow.step": step.key, "workflow.status": status,
                       "workflow.attempt": step.attempt_count,
                       "workflow.error_kind": (error or {}).get("type")}),
                   error=failed)


def run_ended(*, run: Run, from_status: str) -> None:
    if not otel.enabled() or not run.trace_id:
        return
    error = run.__dict__.get("error")
    failed = None
    if run.status == RunStatus.FAILED:
        failed = error if isinstance(error, dict) and error.get("message") else {
            "type": run.error_kind or "Failed", "message": "run failed"}
    transaction.on_commit(lambda: otel.span_emit(
        f"run {_flow_slug(run)}", trace_id=run.trace_id, span_id=run.trace_span_id,
        parent_id=run.trace_parent_id, start=run.created_at, end=run.finished_at,
        attributes=_attributes(run, **{"workflow.status": run.status,
                                       "workflow.error_kind": run.error_kind or None}),
        error=failed))



@contextmanager
def inbound_linked(run: Run, step_run: StepRun, inbound: str | None,
                   name: str) -> Iterator[None]:
    """A callback (heartbeat, log post) to a waiting step carried `inbound` (a traceparent): a
    span in the sender's trace, linked to the pause's span, and — when this request ends the
    pause — the pause span linked back to the sender (`attempt_ended`, same thread)."""
    parent = otel.parse_traceparent(inbound) if otel.enabled() and run.trace_id \
        and step_run.attempt_count else None
    if parent is None:
        yield
        return
    _local.inbound = parent
    try:
        yield
    finally:
        _local.inbound = None
    pause = (run.trace_id, pause_span_id(run, step_run.pk, step_run.attempt_count))
    # Under the request's own span when the Django instrumentation made one (same trace, the
    # child of the sender's span): the sender's trace then reads request > callback.
    request = otel.current_span_ids()
    under = request[1] if request is not None and request[0] == parent[0] else parent[1]
    otel.span_emit(f"{name} {step_run.key}", trace_id=parent[0],
                   span_id=otel.derived_id(parent[0], name, parent[1], step_run.pk),
                   parent_id=under, start=None, links=[pause],
                   kind="internal" if under != parent[1] else "server",
                   attributes=_attributes(run, **{"workflow.step": step_run.key,
                                                  "workflow.attempt": step_run.attempt_count}))
