"""`until:` polling: a step whose attempt completed runs again, every `every_seconds`, until
its CEL condition over the output holds, at most `max_times` times (DESIGN.md §9).

Each repetition is an attempt of the same step run. A repetition that is not due yet is the
step run queued with `not_before`, exactly as a retry's backoff: a short one is waited out by
the worker that goes on with it (`claim`), a longer one (over WF_INLINE_DELAY_SECONDS) waits in
the database and the sweeper hands it to a worker when it is due, so no worker sleeps through
a long poll. Runs inside the executor's outcome transaction (the run's row lock held).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from workflows.engine import attempts, dispatch, progress
from workflows.engine.step_conditions import ConditionError, until_holds
from workflows.engine.transitions import step_transition
from workflows.models import ActorKind, Attempt, Run, StepRun
from workflows.states import AttemptStatus, EventKind, StepStatus

__all__ = ["HOLDS", "until_outcome"]

HOLDS = object()  # the condition holds: the executor completes the step as usual


def until_outcome(run: Run, steps: dict[str, StepRun], step: StepRun, attempt: Attempt,
                  until: dict[str, Any], output: Any, *, actor: str) -> Any:
    """HOLDS, or what the worker goes on with (the step's id to claim again, or None) once the
    repetition is scheduled or the step failed (`condition_error`, `condition_not_met`)."""
    number = attempt.number
    try:
        if until_holds(run, until, output):
            return HOLDS
    except ConditionError as exc:
        return _fail(run, steps, step, attempt, exc.error, output, actor=actor)
    # The repetitions so far are the attempts that completed (retries in between do not count).
    done = Attempt.objects.filter(step_run_id=step.pk, status=AttemptStatus.COMPLETED).count() + 1
    max_times = int(until.get("max_times") or 1)
    if done >= max_times:
        error = {"type": "condition_not_met",
                 "message": f"until condition {until['condition']!r} did not hold after "
                            f"{done} attempt(s) (max_times {max_times})",
                 "expression": until["condition"]}
        return _fail(run, steps, step, attempt, error, output, actor=actor)
    attempts.attempt_close(attempt, AttemptStatus.COMPLETED, output=output)
    delay = float(until.get("every_seconds", 10))
    now = timezone.now()
    step_transition(
        step, StepStatus.QUEUED, actor_kind=ActorKind.WORKER, actor=actor,
        kind=EventKind.STEP_REPEAT_SCHEDULED, expected_attempt=number,
        reason=f"until {until['condition']!r} does not hold yet ({done} of {max_times}); "
               f"repeating in {delay:g}s",
        data={"attempt": number, "delay_seconds": delay, "repetition": done},
        # retry_base: a later repetition's retries count from its own first attempt.
        fields={"not_before": now + timedelta(seconds=delay) if delay else None,
                "enqueued_at": now, "output": output, "error": None, "lease_until": None,
                "retry_base": number},
    )
    if settings.WF_CONTINUE_INLINE:
        return step.pk
    dispatch.enqueue([step.pk])
    return None


def _fail(run: Run, steps: dict[str, StepRun], step: StepRun, attempt: Attempt,
          error: dict[str, Any], output: Any, *, actor: str) -> None:
    attempts.attempt_close(attempt, AttemptStatus.FAILED, output=output, error=error)
    step_transition(step, StepStatus.FAILED, actor_kind=ActorKind.WORKER, actor=actor,
                    reason=error["message"], expected_attempt=attempt.number,
                    fields={"error": error, "output": output}, data={"attempt": attempt.number})
    dispatch.enqueue([s.pk for s in progress.failed_settle(run, steps, step)])
    return None
