"""Instances resolved from outside their worker: the `for_each` instances of a step type that
`pauses_instances` (the `flow` step: one child run per item).

Such an instance's handler returns a "wait" outcome; in the worker's outcome transaction
(engine/instances.py, no run lock) `instance_pause`:

1. moves the instance `running → waiting` (compare-and-set on its attempt, event
   `instance_waiting`; no lease: nothing heartbeats it and the sweeper's lease repair looks at
   running instances only), so a canceled instance never starts anything;
2. calls the step type's `on_instance_pause` (the subflow service starts the child run, in
   the same transaction: both commit or neither) and writes the fields it returns
   (`child_run`) on the instance row.

The worker is free at once; the instance keeps its slot of the `max_parallel` window until it
is resolved by `engine.instance_resolve` (engine/instance_resolve.py), which counts its end
like any instance's. A hook that raises `StepFailed` fails the instance instead (its end).

`instances_released`: a fanned-out step of such a type that ends early (canceled, its run
failed, `fail_fast`) has its type's `on_cancel` called once its instances are canceled, so
the children its waiting instances hold are canceled too (the caller holds the run's lock;
the subflow service locks each child after it).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from workflows.engine.instance_states import instance_transition
from workflows.models import Attempt, Run, StepInstance, StepRun
from workflows.states import AttemptStatus, EventKind, StepStatus
from workflows.steps import StepFailed, get_step_type

__all__ = ["instance_pause", "instances_released", "pauses"]


def pauses(step_type_name: str) -> bool:
    """Whether instances of steps of this type may pause (StepType.pauses_instances)."""
    step_type = get_step_type(step_type_name)
    return bool(step_type is not None and step_type.pauses_instances)


def instance_pause(*, run: Run, step_run: StepRun, instance: StepInstance,
                   params: dict[str, Any],
                   where: dict[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """Pause `instance` (running, at its attempt: `where` are instance_transition's keys) and
    let its step type start what resolves it. In the caller's transaction. Returns (whether
    the instance moved: False when it had moved on, canceled or taken back; the error
    document it failed with instead of pausing, already moved `waiting → failed`, or None)."""
    if not instance_transition(**where, to=StepStatus.WAITING, kind=EventKind.INSTANCE_WAITING,
                               reason="paused; resolved from outside its worker",
                               fields={"lease_until": None},
                               data={"attempt": instance.attempt_count}):
        return False, None
    step_type = get_step_type(step_run.type)
    try:
        if step_type is None:
            raise StepFailed(f"unknown step type {step_run.type!r}", error_type="UnknownStepType")
        fields = step_type.on_instance_pause(run=run, step_run=step_run, instance=instance,
                                             params=params)
    except StepFailed as exc:
        error = {"type": exc.error_type, "message": str(exc)}
        instance_transition(**{**where, "from_status": StepStatus.WAITING}, to=StepStatus.FAILED,
                            reason=f"{error['type']}: {error['message']}",
                            fields={"error": error}, data={"attempt": instance.attempt_count})
        return True, error
    if fields:
        StepInstance.objects.filter(pk=instance.pk).update(**fields)
    return True, None


def instances_released(run: Run, step: StepRun) -> None:
    """A fanned-out step ended early and its instances were canceled: the attempts of its
    paused instances are closed canceled (one UPDATE) and its type releases what they hold
    (`on_cancel`). Needs the run's lock. Nothing for other types."""
    step_type = get_step_type(step.type)
    if step_type is not None and step_type.pauses_instances:
        Attempt.objects.filter(step_run_id=step.pk, instance__isnull=False,
                               status=AttemptStatus.WAITING).update(
            status=AttemptStatus.CANCELED, finished_at=timezone.now())
        step_type.on_cancel(run=run, step_run=step)
