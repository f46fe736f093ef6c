"""Running the instances of a `for_each` step (DESIGN.md §9 "Instances").

`advance_instance(instance_id)` is what an `advance_instance` task calls. It claims the
instance with a conditional UPDATE (queued → running, with a lease; a duplicate or late task
finds it no longer queued and exits), runs the step type's handler on the step's parameters
resolved with `item` and `item_index`, and records the outcome in one short transaction:

1. the instance's move (`instance_states.instance_transition`, conditional on its status and
   attempt number: a canceled instance or one the sweeper took back writes nothing more but
   its attempt, closed as abandoned);
2. its Attempt and its log lines (numbered per instance);
3. on its end (completed, or failed after its retries): one UPDATE of the step's `FanOut`
   row, `left = left - 1, next_index = next_index + 1 ... RETURNING` — which tells this
   worker whether it ended the last instance, and which index it starts next (the
   `max_parallel` window moves by one; that instance is queued and this worker goes on with it).

None of this takes the run's row lock: instances of one step contend only on their step's
`FanOut` row, for one UPDATE at the end of each instance. Only the instance that brings
`left` to 0 (or the first that fails under `fail_fast`) settles the step, after its
transaction commits: it reads the outcome without a lock (`fan_out.fan_out_outcome`), then
locks the run and ends the step through `step_resolve` like any paused step. The sweeper
(`instances_sweep`) takes back instances whose worker died (lease expired), sends again the
tasks of queued instances nobody claimed, and settles steps whose settler died.

What a handler sees per instance (the run's input, the referenced outputs, connections and
their secrets) does not change during the fan-out, so each worker process computes it once
per step run (`_prepared`) and resolves only the parameters per item.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from connections.selectors import connection_redactor
from resources.payloads import storable_text
from resources.services import resource_record
from workflows.engine import attempt_values, attempts, dispatch, handler_threads
from workflows.engine.context import AttemptContext, resolution_context, resource_scope
from workflows.engine.executor import (
    Claimed,
    Result,
    _callback_tokens,
    _load_connections,
    worker_id,
)
from workflows.engine.fan_out import fan_out_outcome, step_settle_locked
from workflows.engine.instance_pauses import instance_pause, pauses
from workflows.engine.instance_states import instance_transition
from workflows.engine.locking import load_steps, lock_run
from workflows.engine.transitions import event_record, events_batched
from workflows.engine.versions import step_definitions, version_get
from workflows.models import ActorKind, Attempt, FanOut, LogChunk, Run, StepInstance, StepRun
from workflows.references import ReferenceUnresolved, resolve
from workflows.states import AttemptStatus, EventKind, StepStatus
from workflows.steps import StepCanceled, StepFailed, get_step_type

logger = logging.getLogger(__name__)

__all__ = ["advance_instance", "instances_ended", "step_settle", "worker_losses"]

CANCEL_GRACE_SECONDS = 5.0
MAX_WORKER_LOSSES = attempts.MAX_WORKER_LOSSES
_PREPARED_KEEP = 8


@dataclass
class _Prepared:
    """What every instance of one step run shares in this process."""

    run: Run
    step: StepRun
    definition: dict[str, Any]
    immediate: dict[str, Any]
    deferred: dict[str, Any]
    context: dict[str, Any]
    connections: dict[str, Any]
    secrets: dict[str, dict[str, Any]]
    redactor: Any
    setup_error: StepFailed | None


_prepared_cache: OrderedDict[tuple[int, Any], _Prepared] = OrderedDict()
_prepared_lock = threading.Lock()


def _prepared(step_run_id: int, started_at: Any) -> _Prepared:
    """Keyed by the step run's id and start: an id SQLite reuses after a prune, or a step run
    started again (a redo), is never served what an earlier one prepared."""
    key = (step_run_id, started_at)
    with _prepared_lock:
        hit = _prepared_cache.get(key)
        if hit is not None:
            _prepared_cache.move_to_end(key)
            return hit
    step = StepRun.objects.select_related("run").get(pk=step_run_id)
    run = step.run
    run.version = version_get(run.version_id)
    definition = step_definitions(run)[step.key]
    step_type = get_step_type(step.type)
    setup_error: StepFailed | None = None
    connections: dict[str, Any] = {}
    secrets: dict[str, dict[str, Any]] = {}
    redactor = connection_redactor(secrets=[])
    deferred = {k: v for k, v in definition.items()
                if step_type is not None and k in step_type.deferred_keys}
    immediate = {k: v for k, v in definition.items() if k not in deferred and k != "for_each"}
    context: dict[str, Any] = {}
    try:
        if step_type is None:
            raise StepFailed(f"unknown step type {step.type!r}", error_type="UnknownStepType",
                             retryable=False)
        connections, secrets = _load_connections(step_type.connections_to_load(definition))
        redactor = connection_redactor(
            secrets=secrets.values(), configs=[c["config"] for c in connections.values()])
        steps = load_steps(run)
        redactor.add(_callback_tokens(steps))
        context = resolution_context(run, steps.values(), immediate)
    except StepFailed as exc:
        setup_error = exc
    prepared = _Prepared(run=run, step=step, definition=definition, immediate=immediate,
                         deferred=deferred, context=context, connections=connections,
                         secrets=secrets, redactor=redactor, setup_error=setup_error)
    with _prepared_lock:
        _prepared_cache[key] = prepared
        while len(_prepared_cache) > _PREPARED_KEEP:
            _prepared_cache.popitem(last=False)
    return prepared


# --- entry point -------------------------------------------------------------------------------

def advance_instance(instance_id: int) -> None:
    """Run the queued instance `instance_id` with up to WF_FOR_EACH_BATCH - 1 of its queued
    neighbours (one batch: claimed in one transaction, their handlers run at once in this
    worker's handler threads, their outcomes recorded in one transaction), then the instances
    their ends queued; settle the step when this worker ended its last instance."""
    batch = _claim_first(instance_id)
    while batch:
        nxt, settle = _finish(batch, _execute(batch))
        if settle is not None:
            step_settle(settle)
            return
        batch = _claim_ids(nxt) if nxt else []


# --- claim -------------------------------------------------------------------------------------

@dataclass
class _Claim:
    prepared: _Prepared
    instance: StepInstance
    claimed: Claimed  # what the storage rule and the error document read (run, step, attempt)
    logs: list[tuple[str, str]] = field(default_factory=list)


def _claim_first(instance_id: int) -> list[_Claim]:
    """A task's batch: its instance (waited for when a short retry delay is not over) and the
    queued instances after it, of the same step, that no other worker is claiming."""
    while True:
        row = (StepInstance.objects.filter(pk=instance_id)
               .values_list("status", "not_before", "step_run__status", "step_run_id",
                            "index").first())
        if row is None or row[0] != StepStatus.QUEUED or row[2] != StepStatus.RUNNING:
            return []
        not_before = row[1]
        delay = (not_before - timezone.now()).total_seconds() if not_before else 0
        if delay <= 0:
            break
        if delay > settings.WF_INLINE_DELAY_SECONDS:
            return []  # the sweeper sends it again when it is due
        time.sleep(delay)
    return _claim(instance_id, neighbours=(row[3], row[4]))


def _claim_ids(ids: list[int]) -> list[_Claim]:
    return _claim(*ids[:1], extra=ids[1:]) if ids else []


def _claim(instance_id: int, *, neighbours: tuple[int, int] | None = None,
           extra: list[int] | None = None) -> list[_Claim]:
    """queued → running with a lease, for `instance_id`, the `extra` ids and (with
    `neighbours`: step run id and index) the next queued instances of the step, up to
    WF_FOR_EACH_BATCH in all, in one transaction: the rows are locked `SKIP LOCKED` (two
    workers never wait for each other's batch) and each moves with its own conditional UPDATE
    and Event, so a duplicate or late task claims nothing."""
    size = max(1, settings.WF_FOR_EACH_BATCH)
    now = timezone.now()
    wanted = [instance_id, *(extra or [])][:size]
    claims: list[_Claim] = []
    with transaction.atomic(), events_batched():
        # of=("self",): lock the instance rows only. Locking the joined step run row too
        # would make every concurrent claim of the step skip every instance.
        query = StepInstance.objects.select_for_update(skip_locked=True, of=("self",)).filter(
            status=StepStatus.QUEUED, step_run__status=StepStatus.RUNNING)
        rows = list(query.filter(pk__in=wanted).order_by("index"))
        # Instances this worker was to go on with but does not claim now (another worker holds
        # their rows, or the batch is full) get a task of their own, sent on commit: none is
        # left queued without one (a task for one no longer queued exits at once).
        got = {r.pk for r in rows}
        dispatch.enqueue_instances([pk for pk in [instance_id, *(extra or [])] if pk not in got])
        if neighbours is not None and rows and len(rows) < size:
            rows += list(query.filter(step_run_id=neighbours[0], index__gt=neighbours[1],
                                      not_before__isnull=True)
                         .order_by("index")[:size - len(rows)])
        if not rows:
            return []
        started = (StepRun.objects.filter(pk=rows[0].step_run_id)
                   .values_list("started_at", flat=True).first())
        prepared = _prepared(rows[0].step_run_id, started)
        lease = now + timedelta(seconds=settings.WF_LEASE_SECONDS)
        for instance in rows:
            if instance.step_run_id != prepared.step.pk:
                continue  # a batch is one step's
            number = instance.attempt_count + 1
            if not instance_transition(
                instance_id=instance.pk, run_id=prepared.run.pk,
                step_run_id=instance.step_run_id, index=instance.index,
                from_status=StepStatus.QUEUED, to=StepStatus.RUNNING,
                expected_attempt=instance.attempt_count, actor=worker_id(),
                data={"attempt": number},
                fields={"attempt_count": number, "worker": worker_id(), "not_before": None,
                        "lease_until": lease, "started_at": instance.started_at or now},
            ):
                continue
            instance.attempt_count = number
            instance.status = StepStatus.RUNNING
            claims.append(_claimed(prepared, instance, now))
    return claims


def _claimed(prepared: _Prepared, instance: StepInstance, now: Any) -> _Claim:
    attempt = Attempt(step_run_id=instance.step_run_id, instance=instance,
                      number=instance.attempt_count, status=AttemptStatus.RUNNING,
                      worker=worker_id(), started_at=now)
    claimed = Claimed(run=prepared.run, step=prepared.step, attempt=attempt,
                      definition=prepared.definition, resolved=None,
                      connections=prepared.connections, secrets=prepared.secrets,
                      redactor=prepared.redactor, setup_error=prepared.setup_error)
    if claimed.setup_error is None:
        try:
            resolved = resolve(
                prepared.immediate,
                {**prepared.context, "item": instance.item, "item_index": instance.index},
                scope=resource_scope(prepared.run))
            resolved.update(prepared.deferred)
            claimed.resolved = resolved
            attempt.input = prepared.redactor.redact(resolved)
        except ReferenceUnresolved as exc:
            claimed.setup_error = StepFailed(str(exc), error_type="ReferenceUnresolved",
                                             retryable=False)
    return _Claim(prepared=prepared, instance=instance, claimed=claimed)


# --- execute -----------------------------------------------------------------------------------

@dataclass
class _Running:
    claim: _Claim
    ctx: AttemptContext
    result: Result
    done: threading.Event
    timeout: float
    canceled_at: float | None = None


def _execute(batch: list[_Claim]) -> list[Result]:
    """The batch's handlers at once, each in a handler thread, while this thread heartbeats
    their leases (one UPDATE for the batch), takes their logs and watches their timeouts (as
    executor.execute does for a step)."""
    results: list[Result] = []
    running: list[_Running] = []
    for claim in batch:
        claimed = claim.claimed
        if claimed.setup_error is None:
            claimed.setup_error = attempt_values.input_storable(claimed)
        if claimed.setup_error is not None:
            result = Result(error=claimed.setup_error)
            attempt_values.result_storable(claimed, result)
            results.append(result)
            continue
        result = Result()
        results.append(result)
        running.append(_start(claim, result))
    started = last_beat = time.monotonic()
    while any(not r.done.is_set() for r in running):
        running[0].ctx.wait_for_work(0.05 if len(running) > 1 else 0.25)
        now = time.monotonic()
        for r in running:
            r.claim.logs.extend(r.ctx.take_logs())
            if r.done.is_set():
                continue
            if r.canceled_at is not None:
                if now - r.canceled_at > CANCEL_GRACE_SECONDS:
                    r.done.set()  # abandoned: its thread ends on its own
                continue
            if now - started > r.timeout:
                r.result.timed_out = True
                r.ctx.cancel()
                r.canceled_at = now
        if now - last_beat >= settings.WF_HEARTBEAT_SECONDS:
            last_beat = now
            for r in _heartbeat([r for r in running if not r.done.is_set()]):
                r.result.lost = True
                r.ctx.cancel()
                r.canceled_at = now
    for r in running:
        _ended_attempt(r)
    return results


def _start(claim: _Claim, result: Result) -> _Running:
    claimed = claim.claimed
    step_type = get_step_type(claimed.step.type)
    ctx = AttemptContext(step=claimed.resolved or {}, run_id=claimed.run.pk,
                         step_key=claimed.step.key, attempt_number=claimed.attempt.number,
                         connections=claimed.connections, secrets=claimed.secrets)
    timeout = float(claimed.definition.get("timeout_seconds") or attempts.default_step_timeout())
    done = handler_threads.handler_start(lambda: step_type.execute(ctx), ctx, result,
                                         name=f"instance-{claim.instance.pk}")
    return _Running(claim=claim, ctx=ctx, result=result, done=done, timeout=timeout)


def _ended_attempt(r: _Running) -> None:
    claimed = r.claim.claimed
    result = r.result
    r.claim.logs.extend(r.ctx.take_logs())
    for content, kind in r.ctx.take_stored():
        resource_record(stored=content, run=claimed.run, step_run=claimed.step, kind=kind)
    if result.timed_out:
        result.outcome = None
        result.error = StepFailed(f"the instance ran past its timeout of {r.timeout:g}s",
                                  error_type="StepTimeout")
    elif result.outcome is not None and result.outcome.kind != "completed" and not (
            result.outcome.kind == "wait" and pauses(claimed.step.type)):
        kind = result.outcome.kind
        result.outcome = None
        result.error = StepFailed(f"an instance of a for_each step cannot pause ({kind})",
                                  error_type="InstanceCannotPause", retryable=False)
    attempt_values.result_storable(claimed, result)


def _heartbeat(running: list[_Running]) -> list[_Running]:
    """Extend the batch's leases; returns the instances no longer this worker's (canceled, or
    taken back by the sweeper)."""
    if not running:
        return []
    lease = timezone.now() + timedelta(seconds=settings.WF_LEASE_SECONDS)
    ids = [r.claim.instance.pk for r in running]
    updated = StepInstance.objects.filter(pk__in=ids, status=StepStatus.RUNNING).update(
        lease_until=lease)
    if updated == len(ids):
        return []
    mine = set(StepInstance.objects.filter(pk__in=ids, status=StepStatus.RUNNING,
                                           worker=worker_id()).values_list("pk", flat=True))
    return [r for r in running if r.claim.instance.pk not in mine]


# --- finish ------------------------------------------------------------------------------------

def _finish(batch: list[_Claim], results: list[Result]) -> tuple[list[int], int | None]:
    """Record the batch's outcomes in one transaction without the run's lock (module doc).
    Returns (the instances this worker goes on with, the step run to settle now)."""
    ended = failed = 0
    again: list[int] = []
    step_run_id = batch[0].instance.step_run_id
    run_id = batch[0].claimed.run.pk
    with transaction.atomic(), events_batched():
        for claim, result in zip(batch, results, strict=True):
            outcome = _record(claim, result)
            if outcome == "retry_now":
                again.append(claim.instance.pk)
            elif outcome in ("completed", "failed"):
                ended += 1
                failed += outcome == "failed"
        if not ended:
            return again, None
        nxt, settle = instances_ended(run_id, step_run_id, count=ended, failed=failed > 0)
    return again + nxt, settle


def _record(claim: _Claim, result: Result) -> str:
    """One instance's outcome: its move and its attempt. Returns what became of it:
    completed, failed, retry_now, retry_later or lost."""
    instance = claim.instance
    claimed = claim.claimed
    number = instance.attempt_count
    where = {"instance_id": instance.pk, "run_id": claimed.run.pk,
             "step_run_id": instance.step_run_id, "index": instance.index,
             "from_status": StepStatus.RUNNING, "expected_attempt": number,
             "actor": worker_id()}
    attempt = claimed.attempt
    if result.outcome is not None and result.error is None and result.outcome.kind == "wait":
        # A type that pauses its instances (engine/instance_pauses.py): resolved from outside.
        moved, error = instance_pause(run=claimed.run, step_run=claimed.step,
                                      instance=instance, params=claimed.resolved or {},
                                      where=where)
        if error is not None:
            attempt.finished_at = timezone.now()
            attempt.duration_ms = int((attempt.finished_at - attempt.started_at)
                                      .total_seconds() * 1000)
        _attempt_record(claim, moved, AttemptStatus.WAITING if error is None
                        else AttemptStatus.FAILED, error=error)
        return "lost" if not moved else "paused" if error is None else "failed"
    now = timezone.now()
    attempt.finished_at = now
    attempt.duration_ms = int((now - attempt.started_at).total_seconds() * 1000)
    if result.outcome is not None and result.error is None:
        output = result.outcome.output
        moved = instance_transition(**where, to=StepStatus.COMPLETED,
                                    fields={"output": output, "error": None},
                                    data={"attempt": number})
        _attempt_record(claim, moved, AttemptStatus.COMPLETED, output=output,
                        exit_code=result.outcome.exit_code)
        return "completed" if moved else "lost"
    if isinstance(result.error, StepCanceled) or result.lost:
        _attempt_record(claim, False, AttemptStatus.CANCELED)
        return "lost"
    exc = result.error
    error = result.error_doc or attempt_values.error_document(claimed, exc, result.trace)
    retry = claimed.definition.get("retry") or {}
    failures = number - worker_losses(instance.pk)
    if getattr(exc, "retryable", True) and failures < int(retry.get("max_attempts") or 1):
        delay = attempts.backoff_seconds(retry, failures)
        moved = instance_transition(
            **where, to=StepStatus.QUEUED, kind=EventKind.INSTANCE_RETRY_SCHEDULED,
            reason=f"attempt {number} failed ({error['type']}: {error['message']}); "
                   f"retrying in {delay:g}s",
            data={"attempt": number, "delay_seconds": delay},
            fields={"error": error, "lease_until": None, "enqueued_at": now,
                    "not_before": now + timedelta(seconds=delay) if delay else None})
        _attempt_record(claim, moved, AttemptStatus.FAILED, output=result.output, error=error)
        if moved and delay:
            dispatch.enqueue_instances([instance.pk])  # its task waits the delay out
        return ("retry_later" if delay else "retry_now") if moved else "lost"
    moved = instance_transition(**where, to=StepStatus.FAILED,
                                reason=f"{error['type']}: {error['message']}",
                                fields={"error": error, "output": result.output},
                                data={"attempt": number})
    _attempt_record(claim, moved, AttemptStatus.FAILED, output=result.output, error=error)
    return "failed" if moved else "lost"


def _attempt_record(claim: _Claim, moved: bool, status: str, *, output: Any = None,
                    error: dict[str, Any] | None = None, exit_code: int | None = None) -> None:
    """INSERT the instance's attempt (once, when it ends) and its log lines. An attempt whose
    instance moved on without it (canceled, or taken back by the sweeper) is closed as
    abandoned, unless the sweeper already recorded it."""
    attempt = claim.claimed.attempt
    if not moved:
        if Attempt.objects.filter(instance_id=claim.instance.pk,
                                  number=attempt.number).exists():
            return
        status = AttemptStatus.CANCELED
        error = {"type": "AttemptAbandoned",
                 "message": "the instance moved on (canceled, or its lease taken back) before "
                            "this attempt ended"}
        output = None
    attempt.status, attempt.output, attempt.error, attempt.exit_code = (
        status, output, error, exit_code)
    attempt.save(force_insert=True)
    _logs_record(claim, attempt)


def _logs_record(claim: _Claim, attempt: Attempt) -> None:
    """The instance's log lines, redacted, as LogChunks numbered per instance; at most
    WF_LOG_INLINE_BYTES of them are kept (an instance's log is short by design: a step whose
    items need long logs is better a subflow)."""
    redactor = claim.claimed.redactor
    pieces = [(stream, storable_text(redactor.redact(text))) for stream, text in claim.logs]
    pieces = [(stream, text) for stream, text in pieces if text]
    if not pieces:
        return
    budget = settings.WF_LOG_INLINE_BYTES
    first = 1
    if attempt.number > 1:
        last = (LogChunk.objects.filter(instance_id=claim.instance.pk).order_by("-seq")
                .values_list("seq", flat=True).first())
        first = (last or 0) + 1
    chunks = []
    for offset, (stream, text) in enumerate(pieces):
        if budget <= 0:
            break
        text = text[:budget]
        budget -= len(text.encode())
        chunks.append(LogChunk(step_run_id=claim.instance.step_run_id, attempt=attempt,
                               instance_id=claim.instance.pk, seq=first + offset,
                               stream=stream, text=text))
    LogChunk.objects.bulk_create(chunks)


def worker_losses(instance_id: int) -> int:
    return Attempt.objects.filter(instance_id=instance_id, error__type="WorkerLost").count()


def instances_ended(run_id: int, step_run_id: int, *, count: int = 1,
           failed: bool) -> tuple[list[int], int | None]:
    """`count` instances of `step_run_id` ended (in the caller's transaction): count them on
    the step's FanOut row and queue as many of the window's next instances. Returns (the
    queued instances' ids, for this worker to go on with; the step run to settle once this
    transaction commits, when these were the last instances or a fail_fast failure)."""
    left, taken, total, fail_fast = _count_end(step_run_id, count)
    settle = step_run_id if left <= 0 or (failed and fail_fast) else None
    if failed and fail_fast:
        return [], settle
    return _queue_next(run_id, step_run_id, taken, count, total), settle


def _count_end(step_run_id: int, count: int) -> tuple[int, int, int, bool]:
    """One UPDATE of the step's FanOut row: `left` down and `next_index` up by `count`;
    returns the new `left` and the first index taken."""
    table = connection.ops.quote_name(FanOut._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f'UPDATE {table} SET "left" = "left" - %s, next_index = next_index + %s '
            f'WHERE step_run_id = %s RETURNING "left", next_index - %s, total, fail_fast',
            [count, count, step_run_id, count])
        row = cursor.fetchone()
    return int(row[0]), int(row[1]), int(row[2]), bool(row[3])


def _take_next(step_run_id: int, count: int) -> int:
    table = connection.ops.quote_name(FanOut._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET next_index = next_index + %s WHERE step_run_id = %s "
                       "RETURNING next_index - %s", [count, step_run_id, count])
        return int(cursor.fetchone()[0])


def _queue_next(run_id: int, step_run_id: int, start: int, count: int, total: int) -> list[int]:
    """Queue `count` not-started instances from index `start` on (the window moves by the
    instances that ended); instances a run retry reused are already completed, so more
    indexes are taken until `count` are queued or the list ends. One UPDATE and one batch of
    Events per range."""
    queued: list[int] = []
    while count > 0 and start < total:
        end = min(start + count, total)
        # Not SKIP LOCKED: a skipped row of this range would never be queued by anyone.
        rows = list(StepInstance.objects.select_for_update().filter(
            step_run_id=step_run_id, index__gte=start, index__lt=end,
            status=StepStatus.NOT_STARTED).values_list("pk", "index"))
        if rows:
            StepInstance.objects.filter(pk__in=[pk for pk, _ in rows]).update(
                status=StepStatus.QUEUED, enqueued_at=timezone.now())
            for pk, index in rows:
                event_record(run_id=run_id, step_run_id=step_run_id, instance_id=pk,
                             kind=EventKind.INSTANCE_QUEUED, actor_kind=ActorKind.WORKER,
                             actor=worker_id(), from_status=StepStatus.NOT_STARTED,
                             to_status=StepStatus.QUEUED,
                             reason="a slot of max_parallel freed up", data={"instance": index})
            queued += [pk for pk, _ in rows]
        count -= len(rows)
        if count <= 0 or end >= total:
            break
        start = _take_next(step_run_id, count)
    return queued


# --- settle ------------------------------------------------------------------------------------

def step_settle(step_run_id: int) -> bool:
    """End a fanned-out step whose instances have ended (or one failed under fail_fast): its
    outcome read without a lock, then the step resolved under the run's lock. False when the
    step had already ended."""
    step = StepRun.objects.select_related("run").filter(pk=step_run_id).first()
    if step is None or step.status != StepStatus.RUNNING:
        return False
    outcome = fan_out_outcome(step.run, step)
    with transaction.atomic(), events_batched():
        run = lock_run(step.run_id)
        current = load_steps(run).get(step.key)
        if current is None or current.pk != step_run_id:
            return False
        return step_settle_locked(run, current, outcome)
