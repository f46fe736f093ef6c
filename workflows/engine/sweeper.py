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

This module finds what is due and checks it again under the run's lock; the writes are the
engine's usual owners': a paused or lost step ends through `resolve.step_resolve`, a lost task
is sent again by `dispatch.step_requeue`, orphaned attempts are closed by `attempts`.
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
from workflows.engine import agents, attempts, dispatch, instance_repairs
from workflows.engine.locking import lock_run
from workflows.engine.resolve import Completed, Failed, WaitEnded, WorkerLost, step_resolve
from workflows.engine.versions import step_definitions
from workflows.models import ActorKind, Run, StepRun
from workflows.states import EventKind, StepStatus
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
        "orphan_attempts": attempts.attempts_orphaned_close(now),
        "heartbeat_wakes": _heartbeat_wakes(now),
        "on_cancel": _on_cancel_due(),
        **instance_repairs.instances_sweep(now),
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
            run = lock_run(run_id)
            step = StepRun.objects.get(pk=step_id)
            if repair(run, step):
                repaired += 1
    return repaired


def _expired_leases(now) -> int:
    lost: list[tuple[Run, StepRun, int]] = []

    def repair(run: Run, step: StepRun) -> bool:
        if step.status != StepStatus.RUNNING or not step.lease_until or step.lease_until >= now:
            return False
        lost.append((run, step, step.attempt_count))
        return step_resolve(run=run, step_run=step, outcome=WorkerLost(now=now))

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
        dispatch.step_requeue(step_run_id=step_id, run_id=run_id, now=now)
    return len(ids)


def _timer_repair(run: Run, step: StepRun, now) -> bool:
    if step.status != StepStatus.WAITING or not step.not_before or step.not_before > now:
        return False
    waited = (now - (step.started_at or now)).total_seconds()
    step_resolve(run=run, step_run=step, actor_kind=ActorKind.SCHEDULE, outcome=Completed(
        output={"waited_seconds": round(waited, 3)}, reason="timer elapsed"))
    return True


def _wait_timeout_repair(run: Run, step: StepRun, now) -> bool:
    if step.status != StepStatus.WAITING or not step.timeout_at or step.timeout_at > now:
        return False
    on_timeout = _step_param(run, step.key, "on_timeout", "fail")
    reason = f"wait timed out; on_timeout={on_timeout}"
    if on_timeout == "continue":
        outcome = Completed(output={"timed_out": True}, reason=reason)
    else:
        outcome = Failed(error={"type": "WaitTimeout", "message": reason},
                         kind=EventKind.WAIT_TIMED_OUT, reason=reason, run_reason=reason)
    step_resolve(run=run, step_run=step,
                 outcome=WaitEnded(outcome=outcome, params=step_definitions(run).get(step.key, {})))
    return True


def _heartbeat_timeout_repair(run: Run, step: StepRun, now) -> bool:
    """A wait whose agent sent no heartbeat, log or artifact before its deadline fails
    (`HeartbeatTimeout`, error kind `heartbeat_timeout`); its on_cancel is then due."""
    if (step.status != StepStatus.WAITING or not step.heartbeat_deadline
            or step.heartbeat_deadline > now):
        return False
    params = step_definitions(run).get(step.key, {})
    last = step.heartbeat_at.isoformat() if step.heartbeat_at else "never"
    reason = (f"no heartbeat, log or artifact for {params.get('heartbeat_timeout_seconds')}s "
              f"(last: {last})")
    outcome = Failed(error={"type": "HeartbeatTimeout", "kind": "heartbeat_timeout",
                            "message": reason},
                     kind=EventKind.HEARTBEAT_TIMED_OUT, reason=reason, run_reason=reason)
    step_resolve(run=run, step_run=step, outcome=WaitEnded(outcome=outcome, params=params))
    return True


def _approval_timeout_repair(run: Run, step: StepRun, now) -> bool:
    """Its step type resolves it (`StepType.on_timeout`; the approvals app's for approvals)."""
    if (step.status != StepStatus.WAITING_FOR_APPROVAL or not step.timeout_at
            or step.timeout_at > now):
        return False
    step_type = get_step_type(step.type)
    if step_type is None:
        return False
    params = step_definitions(run).get(step.key, {})
    return step_type.on_timeout(run=run, step_run=step, params=params)


# What comes due on a paused step: (count name, status, the column saying when, repair). Each
# repair checks again, under the run lock, that its step is still paused and due.
PAUSED_REPAIRS = (
    ("timers", StepStatus.WAITING, "not_before", _timer_repair),
    ("wait_timeouts", StepStatus.WAITING, "timeout_at", _wait_timeout_repair),
    ("heartbeat_timeouts", StepStatus.WAITING, "heartbeat_deadline", _heartbeat_timeout_repair),
    ("approval_timeouts", StepStatus.WAITING_FOR_APPROVAL, "timeout_at",
     _approval_timeout_repair),
)


def step_wake(step_run_id: int, *, now=None) -> bool:
    """Resolve whatever is due on one paused step: its timer, or its wait's or approval's
    timeout. False when nothing is (or is any longer) due."""
    now = now or timezone.now()

    def repair(run: Run, step: StepRun) -> bool:
        if any(repair(run, step, now) for *_, repair in PAUSED_REPAIRS):
            return True
        if step.status == StepStatus.WAITING and step.heartbeat_deadline:
            # a heartbeat moved the deadline since this wake was sent: wake for the new one
            dispatch.wake_later(step, step.heartbeat_deadline)
        return False

    woken = bool(_repair_each(StepRun.objects.filter(pk=step_run_id), repair))
    ran = agents.on_cancel_run(step_run_id)  # a wait that ended without its callback
    return woken or ran


def _heartbeat_wakes(now) -> int:
    """Send a wake task for each heartbeat deadline coming due before the next pass, so a
    missed heartbeat is seen within seconds of its deadline, not at the next pass."""
    soon = now + timedelta(seconds=settings.WF_SWEEP_INTERVAL_MINUTES * 60)
    ids = list(StepRun.objects.filter(status=StepStatus.WAITING, heartbeat_deadline__gt=now,
                                      heartbeat_deadline__lte=soon)
               .values_list("id", flat=True))
    for step_run_id in ids:
        dispatch.wake_now(step_run_id)
    return len(ids)


def _on_cancel_due() -> int:
    """Backstop: on_cancel commands marked due whose wake task was lost."""
    ids = list(StepRun.objects.filter(on_cancel_state=agents.ON_CANCEL_DUE)
               .values_list("id", flat=True))
    return sum(agents.on_cancel_run(step_run_id) for step_run_id in ids)


def _step_param(run, key: str, name: str, default: Any) -> Any:
    return step_definitions(run).get(key, {}).get(name, default)
