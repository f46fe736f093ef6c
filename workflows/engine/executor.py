"""Running one attempt of a step run in a worker (DESIGN.md §5, steps 2–4).

`advance(step_run_id)` is what a django-q2 task calls. It claims the step run with a conditional
update (a duplicate or stale task finds it no longer queued and exits quietly), runs the step
type's handler in a thread while this thread heartbeats the lease, flushes logs and enforces the
timeout, then records the outcome and queues the next ready steps in one transaction. When the
outcome makes another step ready, the same worker goes on with it instead of a round trip
through the broker (WF_CONTINUE_INLINE); the other ready steps are enqueued.

Claim, supervision and outcome share the Claimed/Result types and one transaction protocol
(lock, recheck, write, claim the next), and reading them together is how the exactly-once
argument is checked. This module orders the writes of a worker's attempt and makes none
itself but the lease's heartbeat: statuses move through `transitions`, the Attempt row is
written by `attempts`, tasks are sent by `dispatch`. What a handler sees is
`context.AttemptContext`; the storage rule for its values is `attempt_values`, its log
`attempt_logs`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DataError
from django.utils import timezone

from connections.errors import SecretDecryptionError
from connections.selectors import (
    connection_redactor,
    connection_secrets_for_step,
    connections_for_step,
)
from ops.logs import log_context_update
from resources.payloads import storable_text
from resources.services import resource_record
from workflows.engine import (
    agents,
    attempt_values,
    attempts,
    dispatch,
    fan_out,
    handler_threads,
    progress,
    repeat,
)
from workflows.engine.attempt_logs import LogWriter
from workflows.engine.callback_tokens import callback_token
from workflows.engine.context import AttemptContext, resolution_context, resource_scope
from workflows.engine.locking import lock_run_and_load_steps
from workflows.engine.resolve import Completed, step_resolve
from workflows.engine.step_conditions import optional
from workflows.engine.tracing import attempt_traceparent, log_fields
from workflows.engine.transitions import (
    pipelined_or_portable,
    run_transition,
    step_transition,
)
from workflows.engine.versions import step_definitions
from workflows.models import ActorKind, Attempt, Run, StepRun
from workflows.prepared_queries import PreparedQuery
from workflows.references import ReferenceUnresolved, resolve
from workflows.states import (
    READY_REASON,
    RUN_TERMINAL,
    AttemptStatus,
    EventKind,
    RunStatus,
    StepStatus,
)
from workflows.steps import StepCanceled, StepFailed, StepOutcome, StepType, get_step_type

logger = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
CANCEL_GRACE_SECONDS = 5.0
LOG_FLUSH_SECONDS = 0.25


def worker_id() -> str:
    return f"{WORKER_ID}/{threading.current_thread().name}"


def _name_this_process() -> None:
    # The engine package (and so this module) is imported when the apps are ready, before
    # django-q2 forks its workers: each forked worker names its own process, not the cluster's.
    global WORKER_ID
    WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


os.register_at_fork(after_in_child=_name_this_process)


@dataclass
class Claimed:
    run: Run
    step: StepRun
    attempt: Attempt
    definition: dict[str, Any]
    resolved: dict[str, Any] | None
    connections: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    redactor: Any = None
    setup_error: StepFailed | None = None


@dataclass
class Result:
    outcome: StepOutcome | None = None
    error: BaseException | None = None
    timed_out: bool = False
    lost: bool = False  # canceled or lease taken back while running
    trace: str = ""
    error_doc: dict[str, Any] | None = None  # the failure, redacted and storable
    output: Any = None  # a failure's output, redacted and storable


# --- entry point -------------------------------------------------------------------------------

def advance(step_run_id: int) -> None:
    """Run the queued step run `step_run_id`, then any step it makes ready (see module doc)."""
    claimed = claim(step_run_id)
    while claimed is not None:
        log_context_update(step_run_id=claimed.step.pk,  # ops.logs: lines name this step
                           **log_fields(claimed.run, claimed.step.pk,
                                                claimed.attempt.number))
        nxt = finish_guarded(claimed, execute(claimed))
        claimed = claim(nxt) if isinstance(nxt, int) else nxt


def finish_guarded(claimed: Claimed, result: Result) -> Claimed | int | None:
    """`finish`, with the last resort of the storage rule: when the database still refuses
    the outcome's data (DataError, or a ValueError from encoding it), the transaction rolled
    back and the attempt is recorded as failed with OutputNotStorable in a fresh one — never
    left running for the sweeper to call WorkerLost; the run moves on."""
    written = claimed.attempt.pk is not None
    try:
        return finish(claimed, result)
    except (DataError, ValueError) as exc:
        logger.warning("the database refused the outcome of step run %s: %s",
                       claimed.step.pk, exc)
        if not written:
            claimed.attempt.pk = None  # its INSERT was rolled back with the rest
        claimed.attempt.output = None
        failure = attempt_values.not_storable(
            f"the database refused the step's outcome: {type(exc).__name__}: "
            f"{storable_text(str(exc))[:500]}")
        fallback = Result(error=failure)
        fallback.error_doc = {"type": "OutputNotStorable", "message": str(failure),
                              "traceback": ""}
        return finish(claimed, fallback)


# --- claim -------------------------------------------------------------------------------------

# What a task reads first of the step it names (compiled once, prepared on PostgreSQL).
_claim_check = PreparedQuery(
    StepRun, lambda pk: StepRun.objects.filter(pk=pk)
    .values_list("status", "not_before", "run_id", "run__flow__slug"), sentinel=-7_319_103)


def claim(step_run_id: int) -> Claimed | None:
    """queued → running with a lease, and a new Attempt holding the resolved input.
    Returns None when the step run is not (or no longer) queued: a duplicate or stale task."""
    while True:
        rows = _claim_check.rows(step_run_id)
        if not rows:
            return None
        status, not_before, run_id, flow = rows[0]
        log_context_update(run_id=run_id, flow=flow)  # ops.logs: lines name the run
        if status != StepStatus.QUEUED:
            return None
        if not_before is None:
            break
        delay = (not_before - timezone.now()).total_seconds()
        if delay <= 0:
            break
        if delay > settings.WF_INLINE_DELAY_SECONDS:
            return None  # the sweeper hands it to a worker when it is due
        time.sleep(delay)

    def locked() -> Claimed | None:
        run, steps = lock_run_and_load_steps(run_id)
        if run.status in RUN_TERMINAL:
            return None
        step = next((s for s in steps.values() if s.pk == step_run_id), None)
        if step is None or step.status != StepStatus.QUEUED:
            return None
        return claim_locked(run, steps, step)

    return pipelined_or_portable(locked)


def claim_locked(run: Run, steps: dict[str, StepRun], step: StepRun) -> Claimed | None:
    """The claim itself, inside a transaction holding the run lock. A step that is ready but
    still not_started (this worker goes on with it) is queued and claimed in one statement.

    The Attempt is not written here: a fast attempt is written once, when it ends; a slower
    one when the worker first checks on it (`execute`)."""
    definition = step_definitions(run)[step.key]
    if fan_out.is_fan_out(definition):
        fan_out.fan_out_start(run, steps, step, definition, worker=worker_id())
        return None  # its instances run as their own tasks (engine/instances.py)
    step_type = get_step_type(step.type)
    setup_error: StepFailed | None = None
    resolved: dict[str, Any] | None = None
    connections: dict[str, Any] = {}
    secrets: dict[str, dict[str, Any]] = {}
    redactor = connection_redactor(secrets=[])
    try:
        connections, secrets, redactor = step_connections(step, step_type, definition, steps)
        deferred = {k: v for k, v in definition.items() if k in step_type.deferred_keys}
        immediate = {k: v for k, v in definition.items() if k not in step_type.deferred_keys}
        resolved = resolve(immediate, resolution_context(run, steps.values(), immediate),
                           scope=resource_scope(run))
        resolved.update(deferred)
    except ReferenceUnresolved as exc:
        setup_error = StepFailed(str(exc), error_type="ReferenceUnresolved", retryable=False)
    except StepFailed as exc:
        setup_error = exc
    now = timezone.now()
    number = step.attempt_count + 1
    fields = {"attempt_count": number, "worker": worker_id(), "not_before": None,
              "lease_until": now + timedelta(seconds=settings.WF_LEASE_SECONDS)}
    if step.status == StepStatus.NOT_STARTED:
        fields["enqueued_at"] = now
    if not step_transition(
        step, StepStatus.RUNNING, actor_kind=ActorKind.WORKER, actor=worker_id(),
        data={"attempt": number}, fields=fields,
        via=StepStatus.QUEUED if step.status == StepStatus.NOT_STARTED else None,
        via_reason=READY_REASON,
    ):
        return None
    attempt = attempts.attempt_open(
        step=step, number=number, worker=worker_id(),
        input=redactor.redact(resolved) if resolved is not None else None, started_at=now,
    )
    if run.status != RunStatus.RUNNING:
        run_transition(run, RunStatus.RUNNING, actor_kind=ActorKind.WORKER, actor=worker_id(),
                       reason=f"step {step.key} started")
    return Claimed(run=run, step=step, attempt=attempt, definition=definition, resolved=resolved,
                   connections=connections, secrets=secrets, redactor=redactor,
                   setup_error=setup_error)


def step_connections(
    step: StepRun, step_type: StepType | None, definition: dict[str, Any],
    steps: dict[str, StepRun],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], Any]:
    """The connections `step` uses, their secrets, and the redactor that hides those secrets and
    the run's callback tokens from what an attempt stores. Raises StepFailed for an unknown step
    type or a connection that cannot be loaded (the attempt then fails with it)."""
    if step_type is None:
        raise StepFailed(f"unknown step type {step.type!r}", error_type="UnknownStepType",
                         retryable=False)
    connections, secrets = _load_connections(step_type.connections_to_load(definition))
    redactor = connection_redactor(
        secrets=secrets.values(), configs=[c["config"] for c in connections.values()])
    redactor.add(_callback_tokens(steps))
    return connections, secrets, redactor


def _callback_tokens(steps: dict[str, StepRun]) -> list[str]:
    """The run's wait-step callback tokens: redacted like secrets from what an attempt stores
    (its input, logs, output, error), since whoever holds one can complete the wait. The step
    itself still gets the URL; only operators see it again, on the wait step's panel."""
    return [callback_token(s.callback_nonce) for s in steps.values()
            if s.type == "wait" and s.callback_nonce]


def _load_connections(names: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The named connections (no secrets) and their decrypted secrets."""
    if not names:
        return {}, {}
    documents = connections_for_step(names=names)
    missing = [n for n in names if n not in documents]
    if missing:
        raise StepFailed(f"connection(s) {', '.join(missing)} do not exist",
                         error_type="ConnectionMissing", retryable=False)
    try:
        secrets = connection_secrets_for_step(names=names)
    except SecretDecryptionError as exc:
        raise StepFailed(str(exc), error_type="SecretDecryptionError", retryable=False) from exc
    return documents, secrets


# --- execute -----------------------------------------------------------------------------------

def execute(claimed: Claimed) -> Result:
    """Run the handler in a thread; heartbeat, flush logs and watch the timeout meanwhile."""
    if claimed.setup_error is None:
        claimed.setup_error = attempt_values.input_storable(claimed)
    if claimed.setup_error is not None:
        result = Result(error=claimed.setup_error)
        attempt_values.result_storable(claimed, result)
        return result
    step_type = get_step_type(claimed.step.type)
    ctx = AttemptContext(
        step=claimed.resolved or {}, run_id=claimed.run.pk, step_key=claimed.step.key,
        attempt_number=claimed.attempt.number, connections=claimed.connections,
        secrets=claimed.secrets,
        traceparent=attempt_traceparent(claimed.run, claimed.step.pk,
                                                claimed.attempt.number),
        tracestate=claimed.run.trace_state or None,
    )
    result = Result()
    timeout = float(claimed.definition.get("timeout_seconds") or attempts.default_step_timeout())
    started = time.monotonic()
    last_beat = started
    done = handler_threads.handler_start(lambda: step_type.execute(ctx), ctx, result,
                                         name=f"step-{claimed.step.pk}")
    log_writer = LogWriter(step_run=claimed.step, run=claimed.run, attempt=claimed.attempt,
                           redactor=claimed.redactor,
                           ensure_attempt=lambda: _ensure_attempt(claimed))
    cancel_noticed_at: float | None = None
    while True:
        ctx.wait_for_work(LOG_FLUSH_SECONDS)
        log_writer.write(ctx.take_logs())
        if done.is_set():
            break
        _ensure_attempt(claimed)  # a slow attempt: show it while it runs
        now = time.monotonic()
        if cancel_noticed_at is not None:
            if now - cancel_noticed_at > CANCEL_GRACE_SECONDS:
                break
            continue
        if now - started > timeout:
            result.timed_out = True
            ctx.cancel()
            cancel_noticed_at = now
            continue
        if now - last_beat >= settings.WF_HEARTBEAT_SECONDS:
            last_beat = now
            if not heartbeat(claimed):
                result.lost = True
                ctx.cancel()
                cancel_noticed_at = now
    log_writer.write(ctx.take_logs(), final=True)
    log_writer.close()
    _store_resources(claimed, ctx)
    if result.timed_out:
        result.outcome = None
        result.error = StepFailed(f"the step ran past its timeout of {timeout:g}s",
                                  error_type="StepTimeout")
    attempt_values.result_storable(claimed, result)
    return result


def _ensure_attempt(claimed: Claimed) -> None:
    if claimed.attempt.pk is None:
        attempts.attempt_write(claimed.attempt)


def _store_resources(claimed: Claimed, ctx: AttemptContext) -> None:
    """Record the rows of what the handler streamed into storage (this thread owns the
    database work)."""
    for content, kind in ctx.take_stored():
        resource_record(stored=content, run=claimed.run, step_run=claimed.step, kind=kind)


def heartbeat(claimed: Claimed) -> bool:
    """Extend the lease. False when the step run is no longer this attempt's (canceled, or the
    sweeper took the lease back)."""
    lease = timezone.now() + timedelta(seconds=settings.WF_LEASE_SECONDS)
    return bool(StepRun.objects.filter(
        pk=claimed.step.pk, status=StepStatus.RUNNING, attempt_count=claimed.attempt.number,
    ).update(lease_until=lease))


# --- finish ------------------------------------------------------------------------------------

def finish(claimed: Claimed, result: Result) -> Claimed | int | None:
    """Record the attempt's outcome and move the run on, in one transaction. Returns what this
    worker goes on with: the next step, already claimed in the same transaction, or the id of a
    step to claim after a retry delay, or None."""
    number = claimed.attempt.number
    written = claimed.attempt.pk

    def locked() -> Claimed | int | None:
        claimed.attempt.pk = written  # a first try that rolled back (WritesRaced) wrote none
        run, steps = lock_run_and_load_steps(claimed.run.pk)
        step = steps[claimed.step.key]
        if step.status != StepStatus.RUNNING or step.attempt_count != number:
            # Canceled meanwhile, or the lease was taken back: this late outcome is not applied.
            attempts.attempt_close(claimed.attempt, AttemptStatus.CANCELED, may_exist=True, error={
                "type": "AttemptAbandoned",
                "message": f"the step run moved on ({step.status}) before this attempt ended",
            })
            return None
        if result.outcome is not None and result.error is None:
            return _record_outcome(run, steps, step, claimed, result.outcome)
        return _record_failure(run, steps, step, claimed, result)

    return pipelined_or_portable(locked)


def _record_outcome(run: Run, steps: dict[str, StepRun], step: StepRun, claimed: Claimed,
                    outcome: StepOutcome) -> Claimed | int | None:
    number = claimed.attempt.number
    actor = worker_id()
    if outcome.kind == "completed":
        output = outcome.output  # redacted and storable (attempt_values.result_storable)
        until = claimed.definition.get("until")
        if until is not None:
            after = repeat.until_outcome(run, steps, step, claimed.attempt, until, output,
                                         actor=actor)
            if after is not repeat.HOLDS:
                return after
        step_transition(step, StepStatus.COMPLETED, actor_kind=ActorKind.WORKER, actor=actor,
                        fields={"output": output, "error": None}, expected_attempt=number,
                        data={"attempt": number})
        attempts.attempt_close(claimed.attempt, AttemptStatus.COMPLETED, output=output,
                               exit_code=outcome.exit_code)
        return _continue(run, steps)
    step_type = get_step_type(step.type)
    if outcome.kind == "wait":
        fields: dict[str, Any] = {"timeout_at": attempts.timeout_at(outcome.timeout_seconds)}
        if outcome.wake_at is not None:
            fields["not_before"] = outcome.wake_at
        deadline = agents.heartbeat_deadline_of(claimed.resolved or {}, timezone.now())
        if deadline is not None:  # a remote agent's heartbeat deadline (engine/agents.py)
            fields["heartbeat_deadline"] = max(deadline, step.heartbeat_deadline or deadline)
        step_transition(step, StepStatus.WAITING, actor_kind=ActorKind.WORKER, actor=actor,
                        fields=fields, expected_attempt=number,
                        reason="timer" if outcome.wake_at else "waiting for a callback")
        attempts.attempt_write(claimed.attempt, status=AttemptStatus.WAITING)
        step_type.on_pause(run=run, step_run=step, steps=steps, params=claimed.resolved or {},
                           attempt_number=number)
        if step.status != StepStatus.WAITING:
            return None  # on_pause ended it through step_resolve (a subflow that cannot start)
        if step.callback_received_at is not None:
            step_resolve(run=run, step_run=step, actor_kind=ActorKind.CALLBACK, outcome=Completed(
                output=step.callback_payload,
                reason="callback had arrived before the wait was reached"))
            return None
        dispatch.wake_later(step, fields.get("not_before"), fields["timeout_at"],
                            fields.get("heartbeat_deadline"))
        progress.run_settle(run, steps)
        return None
    if outcome.kind == "approval":
        timeout = attempts.timeout_at(outcome.timeout_seconds)
        step_transition(step, StepStatus.WAITING_FOR_APPROVAL, actor_kind=ActorKind.WORKER,
                        actor=actor, expected_attempt=number, fields={"timeout_at": timeout})
        attempts.attempt_write(claimed.attempt, status=AttemptStatus.WAITING)
        step_type.on_pause(run=run, step_run=step, steps=steps, params=claimed.resolved or {},
                           attempt_number=number)
        dispatch.wake_later(step, timeout)
        progress.run_settle(run, steps)
        return None
    raise ValueError(f"unknown outcome kind {outcome.kind!r}")


def _record_failure(run: Run, steps: dict[str, StepRun], step: StepRun, claimed: Claimed,
                    result: Result) -> Claimed | int | None:
    exc = result.error
    number = claimed.attempt.number
    if isinstance(exc, StepCanceled):
        attempts.attempt_close(claimed.attempt, AttemptStatus.CANCELED, error={
            "type": "StepCanceled", "message": storable_text(str(exc))})
        return None
    # Redacted and storable by attempt_values.result_storable, outside this transaction.
    error = result.error_doc or attempt_values.error_document(claimed, exc, result.trace)
    output = result.output
    exit_code = getattr(exc, "exit_code", None)
    attempts.attempt_close(claimed.attempt, AttemptStatus.FAILED, output=output, error=error,
                           exit_code=exit_code)
    retry = claimed.definition.get("retry") or {}
    failures = number - step.retry_base
    retryable = getattr(exc, "retryable", True)
    if retryable and failures < int(retry.get("max_attempts") or 1):
        delay = attempts.backoff_seconds(retry, failures)
        step_transition(
            step, StepStatus.QUEUED, actor_kind=ActorKind.WORKER, actor=worker_id(),
            kind=EventKind.STEP_RETRY_SCHEDULED, expected_attempt=number,
            reason=f"attempt {number} failed ({error['type']}: {error['message']}); "
                   f"retrying in {delay:g}s",
            data={"attempt": number, "delay_seconds": delay},
            fields={"not_before": timezone.now() + timedelta(seconds=delay) if delay else None,
                    "enqueued_at": timezone.now(), "error": error, "lease_until": None},
        )
        if settings.WF_CONTINUE_INLINE:
            return step.pk
        dispatch.enqueue([step.pk])
        return None
    step_transition(step, StepStatus.FAILED, actor_kind=ActorKind.WORKER, actor=worker_id(),
                    reason=f"{error['type']}: {error['message']}", expected_attempt=number,
                    fields={"error": error, "output": output}, data={"attempt": number})
    if optional(claimed.definition):
        return _continue(run, steps)  # continue_on_error: the steps after it still run
    progress.run_settle(run, steps)
    return None


def _continue(run: Run, steps: dict[str, StepRun]) -> Claimed | None:
    """Claim the first ready step for this worker (WF_CONTINUE_INLINE); queue and enqueue the
    others for any worker."""
    ready = progress.ready_steps(run, steps)
    claimed = None
    if ready and settings.WF_CONTINUE_INLINE and not fan_out.is_fan_out(
            step_definitions(run)[ready[0].key]):
        claimed = claim_locked(run, steps, ready[0])
        if claimed is not None:
            ready = ready[1:]
    dispatch.enqueue([s.pk for s in progress.queue_steps(ready)])
    progress.run_settle(run, steps)
    return claimed
