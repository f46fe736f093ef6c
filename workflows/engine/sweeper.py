"""The periodic repair pass (DESIGN.md §5, step 5). Runs as a django-q2 schedule every minute
and can be run by hand (`python manage.py sweep`). Every repair writes an Event.

- running steps whose lease expired (the worker died) go back to queued, or fail once the
  step has lost MAX_WORKER_LOSSES workers;
- queued steps that are due but whose task never claimed them (a lost enqueue: the Redis
  broker drops tasks when a worker dies) are enqueued again;
- timer waits that are due complete; waits and approvals past their timeout are resolved as
  the step says (`on_timeout`);
- the log parts a dead worker left in storage become its attempt's log resource;
- (due schedule triggers start their runs: a service, `workflows.services.maintenance`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from resources.logs import log_parts_assemble
from workflows.engine import progress
from workflows.engine.executor import MAX_WORKER_LOSSES
from workflows.engine.transitions import event_record, step_transition
from workflows.models import ActorKind, Attempt, Run, StepRun
from workflows.states import AttemptStatus, EventKind, StepStatus
from workflows.steps import get_step_type

logger = logging.getLogger(__name__)


def sweep(now=None) -> dict[str, int]:
    """One repair pass of the engine. Returns how many of each repair it made. (The periodic
    task also fires due schedules: `workflows.services.maintenance.sweep_all`.)"""
    now = now or timezone.now()
    counts = {
        "expired_leases": _expired_leases(now),
        "requeued": _lost_enqueues(now),
        **{
            name: _repair_each(
                StepRun.objects.filter(status=status, **{f"{due_field}__lte": now}),
                lambda run, step, repair=repair: repair(run, step, now),
            )
            for name, status, due_field, repair in PAUSED_REPAIRS
        },
        "orphan_attempts": _orphan_attempts(now),
    }
    return counts


def _repair_each(rows, repair: Callable[[Run, StepRun], bool]) -> int:
    """For each step run in `rows` (a query of the candidates), lock its run, read the step run
    again under the lock and call `repair(run, step)`, which checks the step is still due and
    repairs it; one transaction each, so one bad row does not hold back the others. Returns how
    many were repaired."""
    repaired = 0
    for step_id in list(rows.values_list("id", flat=True)):
        with transaction.atomic():
            run_id = StepRun.objects.filter(pk=step_id).values_list("run_id", flat=True).first()
            if run_id is None:
                continue
            run = progress.lock_run(run_id)
            step = StepRun.objects.get(pk=step_id)
            if repair(run, step):
                repaired += 1
    return repaired


def _expired_leases(now) -> int:
    lost: list[tuple[Run, StepRun, int]] = []

    def repair(run: Run, step: StepRun) -> bool:
        if step.status != StepStatus.RUNNING or not step.lease_until or step.lease_until >= now:
            return False
        number = step.attempt_count
        error = {"type": "WorkerLost",
                 "message": f"the worker ({step.worker}) stopped heartbeating; lease expired"}
        progress.attempt_finish(step, AttemptStatus.FAILED, error=error, record_missing=True)
        lost.append((run, step, number))
        losses = Attempt.objects.filter(step_run=step, error__type="WorkerLost").count()
        if losses < MAX_WORKER_LOSSES:
            # A lost worker is not the step's failure: it does not use up a retry.
            step_transition(
                step, StepStatus.QUEUED, kind=EventKind.LEASE_EXPIRED, expected_attempt=number,
                reason=error["message"] + "; queued again",
                data={"attempt": number, "worker": step.worker},
                fields={"retry_base": step.retry_base + 1, "enqueued_at": now,
                        "lease_until": None, "not_before": None},
            )
            progress.enqueue([step.pk])
        else:
            step_transition(step, StepStatus.FAILED, kind=EventKind.LEASE_EXPIRED,
                            expected_attempt=number, fields={"error": error},
                            reason=f"{error['message']}; {losses} workers lost, giving up")
            progress.run_settle(run, progress.load_steps(run))
        return True

    repaired = _repair_each(
        StepRun.objects.filter(status=StepStatus.RUNNING, lease_until__lt=now), repair)
    for run, step, number in lost:  # storage work, outside the repair's transaction
        _assemble_lost_log(run, step, number)
    return repaired


def _assemble_lost_log(run: Run, step: StepRun, number: int) -> None:
    """The whole log of a dead worker's attempt, from the parts it spilled to storage (what
    it had not spilled yet is lost; the database window has it up to its last flush)."""
    try:
        log_parts_assemble(step_run=step, attempt_number=number, run=run)
    except Exception:  # noqa: BLE001 - a storage failure must not stop the repair pass
        logger.exception("could not assemble the log of step run %s attempt %s",
                         step.pk, number)


def _lost_enqueues(now) -> int:
    stale = now - timedelta(seconds=settings.WF_REQUEUE_AFTER_SECONDS)
    ids = list(
        StepRun.objects.filter(status=StepStatus.QUEUED)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        # never handed out, handed out long ago, or handed out before it was due (a retry
        # whose backoff was too long for its worker to wait out)
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale)
                | Q(not_before__isnull=False, enqueued_at__lt=F("not_before")))
        .values_list("id", "run_id")
    )
    for step_id, run_id in ids:
        with transaction.atomic():
            updated = StepRun.objects.filter(pk=step_id, status=StepStatus.QUEUED).update(
                enqueued_at=now)
            if updated:
                event_record(run_id=run_id, step_run_id=step_id, kind=EventKind.STEP_REQUEUED,
                             reason="queued but not claimed by any worker; enqueued again")
                progress.enqueue([step_id])
    return len(ids)


def _timer_repair(run: Run, step: StepRun, now) -> bool:
    if step.status != StepStatus.WAITING or not step.not_before or step.not_before > now:
        return False
    waited = (now - (step.started_at or now)).total_seconds()
    progress.wait_complete(run=run, step_run=step, output={"waited_seconds": round(waited, 3)},
                           actor_kind=ActorKind.SCHEDULE, reason="timer elapsed")
    return True


def _wait_timeout_repair(run: Run, step: StepRun, now) -> bool:
    if step.status != StepStatus.WAITING or not step.timeout_at or step.timeout_at > now:
        return False
    on_timeout = _step_param(run, step.key, "on_timeout", "fail")
    reason = f"wait timed out; on_timeout={on_timeout}"
    if on_timeout == "continue":
        progress.wait_complete(run=run, step_run=step, output={"timed_out": True},
                               actor_kind=ActorKind.SYSTEM, reason=reason)
        return True
    error = {"type": "WaitTimeout", "message": reason}
    step_transition(step, StepStatus.FAILED, kind=EventKind.WAIT_TIMED_OUT, reason=reason,
                    fields={"error": error})
    progress.attempt_finish(step, AttemptStatus.FAILED, error=error)
    progress.run_settle(run, progress.load_steps(run), reason=reason)
    return True


def _approval_timeout_repair(run: Run, step: StepRun, now) -> bool:
    """Its step type resolves it (`StepType.on_timeout`; the approvals app's for approvals)."""
    if (step.status != StepStatus.WAITING_FOR_APPROVAL or not step.timeout_at
            or step.timeout_at > now):
        return False
    step_type = get_step_type(step.type)
    if step_type is None:
        return False
    params = progress.step_definitions(run).get(step.key, {})
    return step_type.on_timeout(run=run, step_run=step, params=params)


# What comes due on a paused step: (count name, status, the column saying when, repair). Each
# repair checks again, under the run lock, that its step is still paused and due.
PAUSED_REPAIRS = (
    ("timers", StepStatus.WAITING, "not_before", _timer_repair),
    ("wait_timeouts", StepStatus.WAITING, "timeout_at", _wait_timeout_repair),
    ("approval_timeouts", StepStatus.WAITING_FOR_APPROVAL, "timeout_at",
     _approval_timeout_repair),
)


def step_wake(step_run_id: int, *, now=None) -> bool:
    """Resolve whatever is due on one paused step: its timer, or its wait's or approval's
    timeout. False when nothing is (or is any longer) due."""
    now = now or timezone.now()

    def repair(run: Run, step: StepRun) -> bool:
        return any(repair(run, step, now) for *_, repair in PAUSED_REPAIRS)

    return bool(_repair_each(StepRun.objects.filter(pk=step_run_id), repair))


def _orphan_attempts(now) -> int:
    """Attempts left running by a worker that died after its step had already ended."""
    return Attempt.objects.filter(
        status=AttemptStatus.RUNNING,
        step_run__status__in=[StepStatus.CANCELED, StepStatus.FAILED, StepStatus.COMPLETED],
        step_run__lease_until__isnull=True,
        started_at__lt=now - timedelta(seconds=settings.WF_LEASE_SECONDS),
    ).update(status=AttemptStatus.CANCELED, finished_at=now)


def _step_param(run, key: str, name: str, default: Any) -> Any:
    return progress.step_definitions(run).get(key, {}).get(name, default)
