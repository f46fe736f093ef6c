"""The sweeper's part of for_each (engine/instances.py): instances whose worker died (lease
expired), queued instances whose task was lost or whose retry delay is over, and steps whose
instances all ended but whose settler died. Each repair is its own short transaction; only a
settle takes the run's lock (through `instances.step_settle`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workflows.engine import attempts, dispatch
from workflows.engine.instance_states import instance_transition
from workflows.engine.instances import instances_ended, step_settle, worker_losses
from workflows.engine.transitions import events_batched
from workflows.models import ActorKind, Attempt, FanOut, StepInstance
from workflows.states import AttemptStatus, EventKind, StepStatus

__all__ = ["instances_sweep"]

MAX_WORKER_LOSSES = attempts.MAX_WORKER_LOSSES


# --- the sweeper's part ------------------------------------------------------------------------

def instances_sweep(now: Any = None) -> dict[str, int]:
    """The repairs of instances (engine.sweep calls it): leases expired (the worker died: the
    instance is queued again, or fails after MAX_WORKER_LOSSES), queued instances whose task
    was lost or whose retry delay has passed (sent again), and steps whose instances all ended
    but whose settler died (settled now)."""
    now = now or timezone.now()
    counts = {"instance_leases": 0, "instances_requeued": 0, "fan_outs_settled": 0}
    to_settle: set[int] = set()
    for pk in list(StepInstance.objects.filter(status=StepStatus.RUNNING, lease_until__lt=now)
                   .values_list("pk", flat=True)):
        settle = _lease_repair(pk, now)
        counts["instance_leases"] += 1 if settle is not False else 0
        if isinstance(settle, int):
            to_settle.add(settle)
    stale = now - timedelta(seconds=settings.WF_REQUEUE_AFTER_SECONDS)
    due = StepInstance.objects.filter(status=StepStatus.QUEUED,
                                      step_run__status=StepStatus.RUNNING)
    lost = list(due.filter(enqueued_at__lt=stale, not_before__isnull=True)
                .values_list("pk", "enqueued_at")) + list(
        due.filter(not_before__lte=now).values_list("pk", "enqueued_at"))
    for pk, enqueued_at in lost:
        with transaction.atomic():
            if StepInstance.objects.filter(pk=pk, status=StepStatus.QUEUED,
                                           enqueued_at=enqueued_at).update(enqueued_at=now):
                counts["instances_requeued"] += 1
                dispatch.enqueue_instances([pk])
    counts["instances_requeued"] += _windows_refilled(now)
    # Every running fan-out: step_settle settles the ones whose instances have all ended.
    to_settle.update(FanOut.objects.filter(step_run__status=StepStatus.RUNNING)
                     .values_list("step_run_id", flat=True))
    for step_run_id in sorted(to_settle):
        counts["fan_outs_settled"] += 1 if step_settle(step_run_id) else 0
    return counts


def _lease_repair(instance_id: int, now: Any) -> bool | int | None:
    """One instance whose lease expired: its attempt recorded failed with WorkerLost, the
    instance queued again (or failed after MAX_WORKER_LOSSES, which counts as its end).
    Returns False when it had moved on, else the step run to settle (or None)."""
    with transaction.atomic(), events_batched():
        row = (StepInstance.objects.filter(pk=instance_id, status=StepStatus.RUNNING,
                                           lease_until__lt=now)
               .values("step_run_id", "step_run__run_id", "index", "attempt_count", "worker",
                       "started_at").first())
        if row is None:
            return False
        number = row["attempt_count"]
        error = {"type": "WorkerLost",
                 "message": f"the worker ({row['worker']}) stopped heartbeating; lease expired"}
        where = {"instance_id": instance_id, "run_id": row["step_run__run_id"],
                 "step_run_id": row["step_run_id"], "index": row["index"],
                 "from_status": StepStatus.RUNNING, "expected_attempt": number,
                 "actor_kind": ActorKind.SYSTEM, "actor": ""}
        losses = worker_losses(instance_id) + 1
        if losses < MAX_WORKER_LOSSES:
            if not instance_transition(**where, to=StepStatus.QUEUED,
                                       kind=EventKind.INSTANCE_REQUEUED,
                                       reason=error["message"] + "; queued again",
                                       fields={"enqueued_at": now, "lease_until": None}):
                return False
            settle = None
            dispatch.enqueue_instances([instance_id])
        else:
            if not instance_transition(**where, to=StepStatus.FAILED, fields={"error": error},
                                       reason=f"{error['message']}; {losses} workers lost"):
                return False
            nxt, settle = instances_ended(row["step_run__run_id"], row["step_run_id"], failed=True)
            dispatch.enqueue_instances(nxt)
        if not Attempt.objects.filter(instance_id=instance_id, number=number).exists():
            started = row["started_at"] or now
            Attempt.objects.create(
                step_run_id=row["step_run_id"], instance_id=instance_id, number=number,
                status=AttemptStatus.FAILED, worker=row["worker"], error=error,
                started_at=started, finished_at=now,
                duration_ms=int((now - started).total_seconds() * 1000))
        return settle


def _windows_refilled(now: Any) -> int:
    """A running fan-out with instances not started but none queued or running (its window
    was lost: a worker died between ending instances and queueing the next) gets its window
    back: up to max_parallel of its lowest not-started instances queued and sent."""
    sent = 0
    for fan_out in FanOut.objects.filter(step_run__status=StepStatus.RUNNING):
        active = StepInstance.objects.filter(
            step_run_id=fan_out.step_run_id,
            status__in=(StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.WAITING)).exists()
        if active:
            continue
        with transaction.atomic():
            ids = list(StepInstance.objects.select_for_update(of=("self",)).filter(
                step_run_id=fan_out.step_run_id, status=StepStatus.NOT_STARTED)
                .order_by("index").values_list("pk", flat=True)[:fan_out.max_parallel])
            StepInstance.objects.filter(pk__in=ids, status=StepStatus.NOT_STARTED).update(
                status=StepStatus.QUEUED, enqueued_at=now)
            dispatch.enqueue_instances(ids)
        sent += len(ids)
    return sent
