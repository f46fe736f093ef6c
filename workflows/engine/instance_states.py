"""The one place a for_each instance's status changes: a compare-and-set with its Event.

An instance moves through the step's own transition table (`states.step_transition_allowed`:
not_started → queued → running → completed / failed / canceled, running → queued for a retry
or a lost worker). Each move is one conditional UPDATE of the instance row (`WHERE status =
expected [AND attempt_count = n]`) and one Event naming the step run and the instance, in the
caller's transaction. It takes no run lock: two workers, a late duplicate task or the sweeper
racing for one instance are told apart by the row count, as for steps, and the run's row is
left to the moves of steps (docs/architecture.md "for_each instances").
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from workflows.engine.transitions import event_record
from workflows.errors import TransitionNotAllowed
from workflows.models import ActorKind, StepInstance, StepRun
from workflows.states import EventKind, StepStatus, step_transition_allowed

__all__ = ["instance_transition", "instances_cancel", "is_fan_out"]

_KIND = {
    StepStatus.QUEUED: EventKind.INSTANCE_QUEUED,
    StepStatus.RUNNING: EventKind.INSTANCE_RUNNING,
    StepStatus.COMPLETED: EventKind.INSTANCE_COMPLETED,
    StepStatus.FAILED: EventKind.INSTANCE_FAILED,
    StepStatus.CANCELED: EventKind.INSTANCE_CANCELED,
}
# `waiting`: an instance paused until something outside resolves it (engine/instance_pauses.py).
ACTIVE = (StepStatus.NOT_STARTED, StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.WAITING)


def is_fan_out(definition: dict[str, Any]) -> bool:
    """Whether a step definition runs one instance per item (`for_each`)."""
    return bool(definition.get("for_each"))


def instance_transition(
    *, instance_id: int, run_id: int, step_run_id: int, index: int, from_status: str, to: str,
    expected_attempt: int | None = None, fields: dict[str, Any] | None = None,
    actor_kind: str = ActorKind.WORKER, actor: str = "", reason: str = "",
    kind: str | None = None, data: dict[str, Any] | None = None,
) -> bool:
    """Move instance `instance_id` from `from_status` to `to` (with `fields`), and record it.
    False (nothing written) when the row is no longer in `from_status` (or at that attempt)."""
    if not step_transition_allowed(from_status, to):
        raise TransitionNotAllowed("instance", from_status, to)
    now = timezone.now()
    values = dict(fields or {})
    values["status"] = to
    if to in (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.CANCELED):
        values.setdefault("finished_at", now)
        values.setdefault("lease_until", None)
    where: dict[str, Any] = {"pk": instance_id, "status": from_status}
    if expected_attempt is not None:
        where["attempt_count"] = expected_attempt
    if not StepInstance.objects.filter(**where).update(**values):
        return False
    event_record(run_id=run_id, step_run_id=step_run_id, instance_id=instance_id,
                 kind=kind or _KIND[to], actor_kind=actor_kind, actor=actor,
                 from_status=from_status, to_status=to, reason=reason,
                 data={"instance": index, **(data or {})})
    return True


def instances_cancel(step: StepRun, *, reason: str, actor_kind: str = ActorKind.SYSTEM,
                     actor: str = "") -> int:
    """Cancel the instances of `step` that have not ended (not started, queued, running), in
    one UPDATE with one Event on the step saying how many: a running instance's worker sees it
    at its next heartbeat (and stops), and its late outcome is not applied (its conditional
    UPDATE finds the instance canceled). Called by whoever ends the step early (a cancel, a
    fail_fast, a run that failed elsewhere), under the run's lock."""
    count = StepInstance.objects.filter(step_run_id=step.pk, status__in=ACTIVE).update(
        status=StepStatus.CANCELED, finished_at=timezone.now(), lease_until=None)
    if count:
        event_record(run_id=step.run_id, step_run_id=step.pk, kind=EventKind.INSTANCE_CANCELED,
                     actor_kind=actor_kind, actor=actor,
                     reason=f"{count:,} instance(s) canceled: {reason}",
                     data={"count": count})
    return count
