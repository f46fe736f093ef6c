"""`instance_resolve`: end a paused `for_each` instance from outside its worker (a fanned-out
`flow` step's child run ended). See engine/instance_pauses.py for how an instance pauses.

One short transaction without the run's lock, in the order of an instance's end in
engine/instances.py: the instance's move `waiting → completed / failed` (compare-and-set on
status and attempt: a canceled instance, or one already resolved, writes nothing), its open
attempt closed, the window moved by its end (`instances.instances_ended`), the window's next
instances sent on commit; then, after that transaction, the step settled when
this was its last instance (or a failure under `fail_fast`), under the run's lock
(`instances.step_settle`). A child's failure is not retried: the instance fails with the
outcome's error (after its retries means "its one child").
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from workflows.engine import dispatch
from workflows.engine.instance_states import instance_transition
from workflows.engine.instances import instances_ended, step_settle
from workflows.engine.resolve import Completed, Failed
from workflows.engine.transitions import events_batched
from workflows.models import ActorKind, Attempt, StepInstance
from workflows.states import AttemptStatus, StepStatus

__all__ = ["instance_resolve"]


def instance_resolve(*, instance_id: int, outcome: Completed | Failed,
                     actor_kind: str = ActorKind.SYSTEM, actor: str = "") -> bool:
    """End the waiting instance `instance_id` with `outcome` (`Completed`: its output;
    `Failed`: its error). Opens its own transaction (call it after the transaction that
    decided the outcome commits); takes no run lock but to settle the step. False when the
    instance was not waiting (nothing written)."""
    row = (StepInstance.objects.filter(pk=instance_id)
           .values("step_run_id", "step_run__run_id", "index", "status", "attempt_count")
           .first())
    if row is None or row["status"] != StepStatus.WAITING:
        return False
    completed = isinstance(outcome, Completed)
    output: Any = outcome.output if completed else None
    error = None if completed else outcome.error
    run_id, step_run_id = row["step_run__run_id"], row["step_run_id"]
    with transaction.atomic(), events_batched():
        if not instance_transition(
            instance_id=instance_id, run_id=run_id, step_run_id=step_run_id,
            index=row["index"], from_status=StepStatus.WAITING,
            to=StepStatus.COMPLETED if completed else StepStatus.FAILED,
            expected_attempt=row["attempt_count"], actor_kind=actor_kind, actor=actor,
            reason=outcome.reason, data=outcome.data,
            fields={"output": output, "error": error},
        ):
            return False
        _attempt_close(instance_id, row["attempt_count"],
                       AttemptStatus.COMPLETED if completed else AttemptStatus.FAILED,
                       output=output, error=error)
        nxt, settle = instances_ended(run_id, step_run_id, failed=not completed)
        dispatch.enqueue_instances(nxt)
    if settle is not None:
        step_settle(settle)
    return True


def _attempt_close(instance_id: int, number: int, status: str, *, output: Any,
                   error: dict[str, Any] | None) -> None:
    now = timezone.now()
    attempt = (Attempt.objects.filter(instance_id=instance_id, number=number,
                                      status=AttemptStatus.WAITING)
               .only("pk", "started_at").first())
    if attempt is not None:
        Attempt.objects.filter(pk=attempt.pk).update(
            status=status, output=output, error=error, finished_at=now,
            duration_ms=int((now - attempt.started_at).total_seconds() * 1000))
