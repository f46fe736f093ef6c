"""Every write to an Attempt row, and the arithmetic of retries and timeouts.

An attempt is written by whoever ends it, always through here:
- the worker (executor): `attempt_open` builds it at the claim; `attempt_write` inserts it
  when the worker first checks on the handler (or once, closed, for a fast attempt) and
  `attempt_close` records the outcome, in the outcome's transaction;
- the end of a paused step (resolve: a decision, a callback, a timer, a timeout) and a worker
  the sweeper found dead: `attempt_finish`, which closes the step's current attempt by number
  and records one its dead worker never wrote;
- the sweeper's last repair: `attempts_orphaned_close`.

Every UPDATE here leaves an attempt already closed (not running or waiting) as it is, so a
late worker cannot overwrite what a cancel or the sweeper recorded. All but
`attempts_orphaned_close` run in a transaction holding the run's lock.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from resources.logs import remote_log_close
from workflows.engine import tracing
from workflows.engine.transitions import row_insert
from workflows.models import Attempt, Run, StepRun
from workflows.states import AttemptStatus, StepStatus

logger = logging.getLogger(__name__)

# A worker that dies mid-step is not the step's fault: its attempts do not count against the
# step's retry policy, up to this many per step run.
MAX_WORKER_LOSSES = 3
OPEN = (AttemptStatus.RUNNING, AttemptStatus.WAITING)


def attempt_open(*, step: StepRun, number: int, worker: str, input: Any,
                 started_at: datetime) -> Attempt:
    """The running attempt a claim starts, not written yet (see `attempt_write`)."""
    return Attempt(step_run=step, number=number, status=AttemptStatus.RUNNING, worker=worker,
                   input=input, started_at=started_at)


def attempt_write(attempt: Attempt, *, may_exist: bool = False, **fields: Any) -> None:
    """Apply `fields` to the attempt: an INSERT the first time, then UPDATEs that leave an
    attempt already closed by someone else (a cancel, the sweeper) as it is. `may_exist`: the
    step run moved on without this worker, so the sweeper may have recorded the attempt."""
    if attempt.pk is None and may_exist:
        attempt.pk = (Attempt.objects.filter(step_run_id=attempt.step_run_id, instance=None,
                                             number=attempt.number)
                      .values_list("pk", flat=True).first())
    if attempt.pk is None:
        for name, value in fields.items():
            setattr(attempt, name, value)
        row_insert(attempt)  # pipeline mode: its id is read with the other answers
        return
    if fields:
        Attempt.objects.filter(pk=attempt.pk, status__in=OPEN).update(**fields)


def attempt_close(attempt: Attempt, status: str, *, output: Any = None,
                  error: dict[str, Any] | None = None, exit_code: int | None = None,
                  may_exist: bool = False) -> None:
    """The worker records how its attempt ended (`attempt_write` with the closing fields)."""
    now = timezone.now()
    attempt_write(
        attempt, may_exist=may_exist, status=status, output=output, error=error,
        exit_code=exit_code, finished_at=now,
        duration_ms=int((now - attempt.started_at).total_seconds() * 1000),
    )
    tracing.attempt_ended(attempt.step_run, attempt.number, attempt.started_at, status, error)


def attempt_finish(step: StepRun, status: str, *, output: Any = None,
                   error: dict[str, Any] | None = None, exit_code: int | None = None,
                   record_missing: bool = False) -> None:
    """Close the step's current attempt (if it is still open). With `record_missing`, an
    attempt its worker never wrote (it died within its first moments) is recorded closed."""
    now = timezone.now()
    attempt = (
        Attempt.objects.filter(step_run_id=step.pk, instance=None, number=step.attempt_count)
        .only("id", "started_at", "status").first()
    )
    if attempt is None:
        if record_missing and step.attempt_count:
            started = step.started_at or now
            Attempt.objects.create(
                step_run_id=step.pk, number=step.attempt_count, status=status,
                worker=step.worker, output=output, error=error, exit_code=exit_code,
                started_at=started, finished_at=now,
                duration_ms=int((now - started).total_seconds() * 1000),
            )
            tracing.attempt_ended(step, step.attempt_count, started, status, error)
        return
    Attempt.objects.filter(pk=attempt.pk, status__in=OPEN).update(
        status=status, output=output, error=error, exit_code=exit_code, finished_at=now,
        duration_ms=int((now - attempt.started_at).total_seconds() * 1000),
    )
    if attempt.status in OPEN:
        tracing.attempt_ended(step, step.attempt_count, attempt.started_at, status, error,
                              paused=attempt.status == AttemptStatus.WAITING)
    if attempt.status == AttemptStatus.WAITING:  # a pause ended: a wait's remote log, if any
        _remote_log_close_on_commit(step, attempt.pk)


def _remote_log_close_on_commit(step: StepRun, attempt_id: int) -> None:
    """Once the outcome commits, the remote agent's log parts of this attempt (if it posted
    any) become one `log` resource (resources.logs.remote_log_close). A storage failure is
    logged: the log's window stays in the database."""
    step_run_id, run_id, key, number = step.pk, step.run_id, step.key, step.attempt_count

    def close() -> None:
        try:
            nonce = StepRun.objects.filter(pk=step_run_id).values_list(
                "callback_nonce", flat=True).first()
            if nonce:  # only a wait has one
                remote_log_close(step_run=StepRun(pk=step_run_id, run_id=run_id, key=key),
                                 attempt_number=number, nonce=nonce, run=Run(pk=run_id),
                                 attempt=Attempt(pk=attempt_id))
        except Exception:  # noqa: BLE001 - the log's resource must not fail the outcome
            logger.exception("could not finish the remote log of step run %s", step_run_id)

    transaction.on_commit(close)


def worker_losses(step: StepRun) -> int:
    """How many of the step run's attempts ended because their worker was lost."""
    return Attempt.objects.filter(step_run=step, instance=None, error__type="WorkerLost").count()


def attempts_orphaned_close(now: datetime) -> int:
    """Cancel the attempts left running by a worker that died after its step had already
    ended (no lock: the step run is terminal, nothing else writes these rows)."""
    return Attempt.objects.filter(
        status=AttemptStatus.RUNNING,
        step_run__status__in=[StepStatus.CANCELED, StepStatus.FAILED, StepStatus.COMPLETED],
        step_run__lease_until__isnull=True,
        started_at__lt=now - timedelta(seconds=settings.WF_LEASE_SECONDS),
    ).update(status=AttemptStatus.CANCELED, finished_at=now)


# --- retries and timeouts ---------------------------------------------------------------------

def backoff_seconds(retry: dict[str, Any], failures: int) -> float:
    """The delay before the next attempt after `failures` failed ones (the step's `retry`)."""
    base = float(retry.get("backoff_seconds") or 0)
    factor = float(retry.get("backoff_factor") or 1)
    return base * (factor ** max(failures - 1, 0))


def timeout_at(seconds: float | None) -> Any:
    """When a pause of `seconds` times out (None: never)."""
    if not seconds:
        return None
    return timezone.now() + timedelta(seconds=float(seconds))


def default_step_timeout() -> float:
    return float(settings.WF_DEFAULT_STEP_TIMEOUT_SECONDS)
