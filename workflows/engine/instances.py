"""Running the instances of a `for_each` step (DESIGN.md §9 "Instances").

`advance_instance(instance_id)` is what an `advance_instance` task calls. It claims a batch:
the instance and up to WF_FOR_EACH_BATCH - 1 queued neighbours (queued → running, with a
lease; a duplicate or late task finds it no longer queued and exits), runs their handlers at
once (engine/instance_execute.py) on the step's parameters resolved with `item` and
`item_index` (engine/instance_prepared.py), and records the batch's outcomes in one short
transaction (`_finish`):

1. the instances' ends in one UPDATE ... FROM (VALUES ...), conditional on each instance's
   status and attempt number; their Attempts, log lines and Events in one multi-row INSERT
   each (engine/instance_writes.py), pipelined on PostgreSQL;
2. the `max_parallel` window moves by as many as ended: one UPDATE queues the lowest
   not-started instances (`SKIP LOCKED`: rows another batch is queueing are left to it), and
   this worker goes on with them.

None of this takes a lock that the other batches of the step need: not the run's row, not the
step run's, not a counter row. Whether the step is over is not counted per batch either: a
batch that finds no instance left to queue (or a failure under `fail_fast`) asks, after its
commit, whether any instance is still active (`step_settle`); the last batch to commit sees
none, reads the outcome without a lock (`fan_out.fan_out_outcome`), then locks the run and ends
the step through `step_resolve` like any paused step. Two batches finding it over at once both
try; the second finds the step ended.

A batch in which an instance moved on meanwhile (canceled, taken back by the sweeper) or that
retries an instance is recorded row by row instead (`_finish_rows`), each move its own
conditional UPDATE with its Event (`instance_states.instance_transition`). The sweeper
(engine/instance_repairs.py) takes back instances whose worker died (lease expired), sends
again the tasks of queued instances nobody claimed, and settles steps whose settler died.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from resources.payloads import storable_text
from workflows.engine import attempt_values, attempts, dispatch, statements
from workflows.engine.executor import Result, worker_id
from workflows.engine.fan_out import fan_out_outcome, step_settle_locked
from workflows.engine.instance_execute import execute as _execute
from workflows.engine.instance_pauses import instance_pause
from workflows.engine.instance_prepared import Claim, claimed, prepared
from workflows.engine.instance_states import ACTIVE, instance_transition
from workflows.engine.instance_writes import claim_update, outcomes_update, window_take
from workflows.engine.locking import load_steps, lock_run
from workflows.engine.transitions import (
    WritesRaced,
    event_record,
    events_batched,
    write_checked,
    writes_pipelined,
)
from workflows.models import ActorKind, Attempt, FanOut, LogChunk, StepInstance, StepRun
from workflows.states import AttemptStatus, EventKind, StepStatus
from workflows.steps import StepCanceled

logger = logging.getLogger(__name__)

__all__ = ["advance_instance", "instances_ended", "step_settle", "worker_losses"]


# --- entry point -------------------------------------------------------------------------------

def advance_instance(instance_id: int) -> None:
    """Run the queued instance `instance_id` with up to WF_FOR_EACH_BATCH - 1 of its queued
    neighbours (one batch: claimed in one transaction, their handlers run at once in this
    worker's handler threads, their outcomes recorded in one transaction), then the instances
    their ends queued; settle the step when this worker may have ended its last instance."""
    batch = _claim_first(instance_id)
    while batch:
        nxt, settle = _finish(batch, _execute(batch))
        if settle is not None:
            step_settle(settle)
        batch = _claim_ids(nxt) if nxt else []


# --- claim -------------------------------------------------------------------------------------

def _claim_first(instance_id: int) -> list[Claim]:
    """A task's batch: its instance (waited for when a short retry delay is not over) and the
    queued instances after it, of the same step, that no other worker is claiming."""
    while True:
        row = (StepInstance.objects.filter(pk=instance_id).order_by()
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


def _claim_ids(ids: list[int]) -> list[Claim]:
    return _claim(*ids[:1], extra=ids[1:]) if ids else []


def _claim(instance_id: int, *, neighbours: tuple[int, int] | None = None,
           extra: list[int] | None = None) -> list[Claim]:
    """queued → running with a lease, for `instance_id`, the `extra` ids and (with
    `neighbours`: step run id and index) the next queued instances of the step, up to
    WF_FOR_EACH_BATCH in all, in one transaction: the rows are locked `SKIP LOCKED` (two
    workers never wait for each other's batch), then moved by one UPDATE with one INSERT of
    their Events (pipelined on PostgreSQL), so a duplicate or late task claims nothing."""
    try:
        return _claim_batch(instance_id, neighbours, extra, together=True)
    except WritesRaced:  # rolled back; cannot happen to locked rows, but stay exact
        return _claim_batch(instance_id, neighbours, extra, together=False)


def _claim_batch(instance_id: int, neighbours: tuple[int, int] | None,
                 extra: list[int] | None, *, together: bool) -> list[Claim]:
    size = max(1, settings.WF_FOR_EACH_BATCH)
    now = timezone.now()
    wanted = [instance_id, *(extra or [])][:size]
    claims: list[Claim] = []
    with transaction.atomic(), (writes_pipelined() if together else events_batched()):
        # of=("self",): lock the instance rows only. Locking the joined step run row too
        # would make every concurrent claim of the step skip every instance.
        query = (StepInstance.objects.select_for_update(skip_locked=True, of=("self",))
                 .filter(status=StepStatus.QUEUED, step_run__status=StepStatus.RUNNING)
                 .annotate(step_started_at=F("step_run__started_at")))
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
        shared = prepared(rows[0].step_run_id, rows[0].step_started_at)
        rows = [r for r in rows if r.step_run_id == shared.step.pk]  # a batch is one step's
        lease = now + timedelta(seconds=settings.WF_LEASE_SECONDS)
        if together:
            claim_update([r.pk for r in rows], worker=worker_id(), lease=lease, now=now)
        for instance in rows:
            number = instance.attempt_count + 1
            if together:
                event_record(run_id=shared.run.pk, step_run_id=instance.step_run_id,
                             instance_id=instance.pk, kind=EventKind.INSTANCE_RUNNING,
                             actor_kind=ActorKind.WORKER, actor=worker_id(),
                             from_status=StepStatus.QUEUED, to_status=StepStatus.RUNNING,
                             data={"instance": instance.index, "attempt": number})
            elif not instance_transition(
                instance_id=instance.pk, run_id=shared.run.pk,
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
            instance.started_at = instance.started_at or now
            claims.append(claimed(shared, instance, now))
    return claims


# --- finish ------------------------------------------------------------------------------------

@dataclass
class _Outcome:
    """What became of one instance of the batch: `end` is completed, failed (after its
    retries), retry (queued again, after `delay` seconds), paused (its type resolves it from
    outside: engine/instance_pauses.py) or lost (canceled, or no longer this worker's); the
    rest is its attempt's."""

    claim: Claim
    end: str
    status: str
    output: Any = None
    error: dict[str, Any] | None = None
    exit_code: int | None = None
    delay: float = 0.0


def _finish(batch: list[Claim], results: list[Result]) -> tuple[list[int], int | None]:
    """Record the batch's outcomes in one transaction without a lock the step's other batches
    need (module doc). Returns (the instances this worker goes on with, the step run to
    settle once this has committed, if it may be over)."""
    outcomes = [_outcome(claim, result) for claim, result in zip(batch, results, strict=True)]
    if all(o.end in ("completed", "failed") for o in outcomes):
        try:
            return _finish_together(outcomes)
        except (WritesRaced, IntegrityError):
            # An instance moved on meanwhile (its UPDATE row count fell short, or the sweeper
            # recorded its attempt first): rolled back, nothing of it was written.
            for o in outcomes:
                o.claim.claimed.attempt.pk = None
    return _finish_rows(outcomes)


def _outcome(claim: Claim, result: Result) -> _Outcome:
    instance = claim.instance
    claimed_ = claim.claimed
    attempt = claimed_.attempt
    if result.outcome is not None and result.error is None and result.outcome.kind == "wait":
        # A type that pauses its instances (engine/instance_pauses.py): resolved from outside,
        # its attempt left open.
        return _Outcome(claim, "paused", AttemptStatus.WAITING)
    now = timezone.now()
    attempt.finished_at = now
    attempt.duration_ms = int((now - attempt.started_at).total_seconds() * 1000)
    if result.outcome is not None and result.error is None:
        return _Outcome(claim, "completed", AttemptStatus.COMPLETED,
                        output=result.outcome.output, exit_code=result.outcome.exit_code)
    if isinstance(result.error, StepCanceled) or result.lost:
        return _Outcome(claim, "lost", AttemptStatus.CANCELED)
    exc = result.error
    error = result.error_doc or attempt_values.error_document(claimed_, exc, result.trace)
    retry = claimed_.definition.get("retry") or {}
    failures = instance.attempt_count - worker_losses(instance.pk)
    if getattr(exc, "retryable", True) and failures < int(retry.get("max_attempts") or 1):
        return _Outcome(claim, "retry", AttemptStatus.FAILED, output=result.output,
                        error=error, delay=attempts.backoff_seconds(retry, failures))
    return _Outcome(claim, "failed", AttemptStatus.FAILED, output=result.output, error=error)


def _finish_together(outcomes: list[_Outcome]) -> tuple[list[int], int | None]:
    """Every instance of the batch ended: their moves in one UPDATE, their attempts, log lines
    and events in one INSERT each, and the window moved, pipelined on PostgreSQL. Raises
    WritesRaced (rolled back) when an instance had moved on."""
    first = outcomes[0].claim
    run_id, step_run_id = first.claimed.run.pk, first.instance.step_run_id
    now = timezone.now()
    with transaction.atomic(), writes_pipelined():
        outcomes_update([
            (o.claim.instance.pk, o.claim.instance.attempt_count, o.end,
             o.output, o.error, now) for o in outcomes])
        for o in outcomes:
            error = o.error or {}
            event_record(run_id=run_id, step_run_id=step_run_id, instance_id=o.claim.instance.pk,
                         kind=(EventKind.INSTANCE_COMPLETED if o.end == "completed"
                               else EventKind.INSTANCE_FAILED),
                         actor_kind=ActorKind.WORKER, actor=worker_id(),
                         from_status=StepStatus.RUNNING, to_status=o.end,
                         reason=f"{error['type']}: {error['message']}" if o.error else "",
                         data={"instance": o.claim.instance.index,
                               "attempt": o.claim.instance.attempt_count})
        _attempts_insert(outcomes)
        failed = sum(o.end == "failed" for o in outcomes)
        return instances_ended(run_id, step_run_id, count=len(outcomes), failed=failed > 0)


def _attempts_insert(outcomes: list[_Outcome]) -> None:
    """The batch's attempts in one INSERT, and their log lines in another (which needs the
    attempts' ids: read back only when there are lines)."""
    rows = []
    logs = []
    for o in outcomes:
        attempt = o.claim.claimed.attempt
        attempt.status, attempt.output, attempt.error, attempt.exit_code = (
            o.status, o.output, o.error, o.exit_code)
        rows.append(attempt)
        logs.append(_log_pieces(o.claim))
    if not any(logs):
        write_checked(statements.insert(rows), len(rows), f"insert {len(rows)} attempts")
        return
    cursor = statements.insert(rows, returning=True)
    try:
        for attempt, (pk,) in zip(rows, cursor.fetchall(), strict=True):
            attempt.pk = pk
    finally:
        cursor.close()
    chunks = [chunk for o, pieces in zip(outcomes, logs, strict=True)
              for chunk in _log_chunks(o.claim, o.claim.claimed.attempt, pieces)]
    if chunks:
        write_checked(statements.insert(chunks), len(chunks), f"insert {len(chunks)} log lines")


def _finish_rows(outcomes: list[_Outcome]) -> tuple[list[int], int | None]:
    """The batch recorded instance by instance (an instance moved on, or one is retried)."""
    ended = failed = 0
    again: list[int] = []
    first = outcomes[0].claim
    with transaction.atomic(), events_batched():
        for o in outcomes:
            end = _record(o)
            if end == "retry_now":
                again.append(o.claim.instance.pk)
            elif end in ("completed", "failed"):
                ended += 1
                failed += end == "failed"
        if not ended:
            return again, None
        nxt, settle = instances_ended(first.claimed.run.pk, first.instance.step_run_id,
                                      count=ended, failed=failed > 0)
    return again + nxt, settle


def _record(o: _Outcome) -> str:
    """One instance's outcome: its move and its attempt. Returns what became of it:
    completed, failed, retry_now, retry_later, paused (waiting, its slot kept) or lost."""
    instance = o.claim.instance
    number = instance.attempt_count
    where = {"instance_id": instance.pk, "run_id": o.claim.claimed.run.pk,
             "step_run_id": instance.step_run_id, "index": instance.index,
             "from_status": StepStatus.RUNNING, "expected_attempt": number,
             "actor": worker_id()}
    if o.end == "completed":
        moved = instance_transition(**where, to=StepStatus.COMPLETED,
                                    fields={"output": o.output, "error": None},
                                    data={"attempt": number})
        _attempt_record(o, moved)
        return "completed" if moved else "lost"
    if o.end == "lost":
        _attempt_record(o, False)
        return "lost"
    if o.end == "paused":
        claimed_ = o.claim.claimed
        moved, error = instance_pause(run=claimed_.run, step_run=claimed_.step,
                                      instance=instance, params=claimed_.resolved or {},
                                      where=where)
        if error is not None:  # its type could not start what resolves it: the instance failed
            attempt = claimed_.attempt
            attempt.finished_at = timezone.now()
            attempt.duration_ms = int((attempt.finished_at - attempt.started_at)
                                      .total_seconds() * 1000)
            o.status, o.error = AttemptStatus.FAILED, error
        _attempt_record(o, moved)
        return "lost" if not moved else "paused" if error is None else "failed"
    error = o.error or {}
    if o.end == "retry":
        now = timezone.now()
        moved = instance_transition(
            **where, to=StepStatus.QUEUED, kind=EventKind.INSTANCE_RETRY_SCHEDULED,
            reason=f"attempt {number} failed ({error['type']}: {error['message']}); "
                   f"retrying in {o.delay:g}s",
            data={"attempt": number, "delay_seconds": o.delay},
            fields={"error": o.error, "lease_until": None, "enqueued_at": now,
                    "not_before": now + timedelta(seconds=o.delay) if o.delay else None})
        _attempt_record(o, moved)
        if moved and o.delay:
            dispatch.enqueue_instances([instance.pk])  # its task waits the delay out
        return ("retry_later" if o.delay else "retry_now") if moved else "lost"
    moved = instance_transition(**where, to=StepStatus.FAILED,
                                reason=f"{error['type']}: {error['message']}",
                                fields={"error": o.error, "output": o.output},
                                data={"attempt": number})
    _attempt_record(o, moved)
    return "failed" if moved else "lost"


def _attempt_record(o: _Outcome, moved: bool) -> None:
    """INSERT the instance's attempt (once, when it ends) and its log lines. An attempt whose
    instance moved on without it (canceled, or taken back by the sweeper) is closed as
    abandoned, unless the sweeper already recorded it."""
    claim = o.claim
    attempt = claim.claimed.attempt
    status, output, error = o.status, o.output, o.error
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
        status, output, error, o.exit_code)
    attempt.save(force_insert=True)
    chunks = _log_chunks(claim, attempt, _log_pieces(claim))
    if chunks:
        LogChunk.objects.bulk_create(chunks)


def _log_pieces(claim: Claim) -> list[tuple[str, str]]:
    redactor = claim.claimed.redactor
    pieces = [(stream, storable_text(redactor.redact(text))) for stream, text in claim.logs]
    return [(stream, text) for stream, text in pieces if text]


def _log_chunks(claim: Claim, attempt: Attempt, pieces: list[tuple[str, str]]) -> list[LogChunk]:
    """The instance's log lines, redacted, as LogChunks numbered per instance; at most
    WF_LOG_INLINE_BYTES of them are kept (an instance's log is short by design: a step whose
    items need long logs is better a subflow)."""
    if not pieces:
        return []
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
    return chunks


def worker_losses(instance_id: int) -> int:
    return Attempt.objects.filter(instance_id=instance_id, error__type="WorkerLost").count()


def instances_ended(run_id: int, step_run_id: int, *, count: int = 1,
                    failed: bool) -> tuple[list[int], int | None]:
    """`count` instances of `step_run_id` ended (in the caller's transaction): queue as many
    of the window's next instances (`instance_writes.window_take`). Returns (the queued
    instances' ids, for this worker to go on with; the step run to settle once this
    transaction commits, when the step may be over: no instance was left to queue, or a
    failure under fail_fast). `step_settle` tells whether it is."""
    if failed and FanOut.objects.filter(step_run_id=step_run_id, fail_fast=True).exists():
        return [], step_run_id
    taken = window_take(step_run_id, count, now=timezone.now())
    for pk, index in taken:
        event_record(run_id=run_id, step_run_id=step_run_id, instance_id=pk,
                     kind=EventKind.INSTANCE_QUEUED, actor_kind=ActorKind.WORKER,
                     actor=worker_id(), from_status=StepStatus.NOT_STARTED,
                     to_status=StepStatus.QUEUED,
                     reason="a slot of max_parallel freed up", data={"instance": index})
    return [pk for pk, _ in taken], (step_run_id if len(taken) < count else None)


# --- settle ------------------------------------------------------------------------------------

def step_settle(step_run_id: int) -> bool:
    """End a fanned-out step whose instances have all ended (or one failed under fail_fast):
    its outcome read without a lock, then the step resolved under the run's lock. False when
    the step had already ended or still has instances to end."""
    step = StepRun.objects.select_related("run").filter(pk=step_run_id).first()
    if step is None or step.status != StepStatus.RUNNING or not _over(step_run_id):
        return False
    outcome = fan_out_outcome(step.run, step)
    with transaction.atomic(), events_batched():
        run = lock_run(step.run_id)
        current = load_steps(run).get(step.key)
        if current is None or current.pk != step_run_id:
            return False
        return step_settle_locked(run, current, outcome)


def _over(step_run_id: int) -> bool:
    """No instance of the step is still to end, or one failed under fail_fast. Read after the
    caller's batch committed: of two batches ending the last instances at once, the second to
    commit sees the first's ends."""
    instances = StepInstance.objects.filter(step_run_id=step_run_id)
    if not instances.filter(status__in=ACTIVE).exists():
        return True
    return (FanOut.objects.filter(step_run_id=step_run_id, fail_fast=True).exists()
            and instances.filter(status=StepStatus.FAILED).exists())
