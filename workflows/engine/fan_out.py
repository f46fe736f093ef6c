"""Starting a `for_each` step: its items, its instance rows and the first window of them.

A worker that claims a queued step whose definition has `for_each` comes here instead of
running a handler (`executor.claim_locked`), under the run's row lock, in the claim's
transaction. The step moves to `running` with no lease (nothing heartbeats the step itself:
the sweeper watches each instance's lease instead, `instances.instances_sweep`), its instances
are INSERTed in batches, the first `max_parallel` of them `queued` and the rest `not_started`,
and the queued ones are sent as `advance_instance` tasks when the transaction commits. From
then on the run's lock is not taken again until the last instance ends (engine/instances.py).

A step whose items cannot be had fails here, in the same transaction: an unresolved reference
(`ReferenceUnresolved`), a value that is not a list (`for_each_not_a_list`, naming its type) or
more than WF_FOR_EACH_MAX_ITEMS items (`too_many_items`). No items completes it with `[]`.

A run retry (`Run.retry_of`) reuses the completed instances of the original run's step run
with the same key whose item is the same at the same index: they are inserted `completed`
(`reused`) with their output, and the window skips them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone

from resources.payloads import storable_json
from workflows.definitions.base import type_name
from workflows.engine import dispatch, progress
from workflows.engine.context import resolution_context, resource_scope
from workflows.engine.instance_pauses import instances_released
from workflows.engine.instance_states import instances_cancel, is_fan_out
from workflows.engine.resolve import Completed, Failed, step_resolve
from workflows.engine.transitions import event_record, run_transition, step_transition
from workflows.errors import OutputNotStorable
from workflows.models import ActorKind, FanOut, Run, StepInstance, StepRun
from workflows.references import ReferenceUnresolved, resolve
from workflows.states import READY_REASON, EventKind, RunStatus, StepStatus

__all__ = ["fan_out_outcome", "fan_out_start", "is_fan_out", "step_settle_locked"]

INSERT_BATCH = 1000


def fan_out_start(run: Run, steps: dict[str, StepRun], step: StepRun,
                  definition: dict[str, Any], *, worker: str) -> None:
    """Claim `step` (queued, or ready and not_started) and fan it out (see the module doc).
    Needs the run's row lock. Writes nothing when the step moved on meanwhile."""
    now = timezone.now()
    fields = {"attempt_count": step.attempt_count + 1, "worker": worker, "not_before": None,
              "lease_until": None}
    if step.status == StepStatus.NOT_STARTED:
        fields["enqueued_at"] = now
    if not step_transition(
        step, StepStatus.RUNNING, actor_kind=ActorKind.WORKER, actor=worker,
        data={"attempt": step.attempt_count + 1}, fields=fields,
        via=StepStatus.QUEUED if step.status == StepStatus.NOT_STARTED else None,
        via_reason=READY_REASON,
    ):
        return
    if run.status != RunStatus.RUNNING:
        run_transition(run, RunStatus.RUNNING, actor_kind=ActorKind.WORKER, actor=worker,
                       reason=f"step {step.key} started")
    expr = definition["for_each"]
    try:
        items = resolve(expr, resolution_context(run, steps.values(), {"for_each": expr}),
                        scope=resource_scope(run))
    except ReferenceUnresolved as exc:
        return _fail(run, steps, step, "ReferenceUnresolved", str(exc), worker)
    if not isinstance(items, list):
        return _fail(run, steps, step, "for_each_not_a_list",
                     f"for_each {expr} resolved to {type_name(items)}, not a list", worker)
    limit = settings.WF_FOR_EACH_MAX_ITEMS
    if len(items) > limit:
        return _fail(run, steps, step, "too_many_items",
                     f"for_each {expr} has {len(items):,} items; WF_FOR_EACH_MAX_ITEMS allows "
                     f"{limit:,}", worker)
    if not items:
        step_resolve(run=run, step_run=step, outcome=Completed(
            output=[], reason="for_each over an empty list"))
        return
    parallel = int(definition.get("max_parallel") or settings.WF_FOR_EACH_PARALLEL)
    reused = _reusable(run, step.key, items)
    rows: list[StepInstance] = []
    queued = 0
    next_index = len(items)
    for index, item in enumerate(items):
        done = reused.get(index)
        if done is not None:
            rows.append(StepInstance(
                step_run=step, index=index, item=item, status=StepStatus.COMPLETED,
                reused=True, output=done["output"], attempt_count=0,
                child_run_id=done["child_run_id"],
                started_at=done["started_at"], finished_at=done["finished_at"]))
        elif queued < parallel:
            queued += 1
            rows.append(StepInstance(step_run=step, index=index, item=item,
                                     status=StepStatus.QUEUED, enqueued_at=now))
        else:
            if next_index == len(items):
                next_index = index
            rows.append(StepInstance(step_run=step, index=index, item=item))
    left = len(items) - len(reused)
    FanOut.objects.create(step_run=step, total=len(items), left=left, next_index=next_index,
                          max_parallel=parallel, fail_fast=bool(definition.get("fail_fast")))
    StepInstance.objects.bulk_create(rows, batch_size=INSERT_BATCH)
    event_record(run_id=run.pk, step_run_id=step.pk, kind=EventKind.INSTANCES_CREATED,
                 actor_kind=ActorKind.WORKER, actor=worker,
                 reason=f"{len(items):,} instances, {parallel} at a time"
                        + (f"; {len(reused):,} reused from run {run.retry_of_id}" if reused else ""),
                 data={"total": len(items), "max_parallel": parallel, "reused": len(reused)})
    if left == 0:
        # Every instance was reused: the step ends now, under this lock.
        step_settle_locked(run, step)
        return
    ids = list(StepInstance.objects.filter(step_run=step, status=StepStatus.QUEUED)
               .order_by("index").values_list("pk", flat=True))
    # One task per batch of the window: each claims its first instance and the queued ones
    # after it (engine/instances.py).
    dispatch.enqueue_instances(ids[::max(1, settings.WF_FOR_EACH_BATCH)])


def _reusable(run: Run, key: str, items: list[Any]) -> dict[int, dict[str, Any]]:
    """Completed instances of the retried run's step `key`, by index, whose item is unchanged."""
    if run.retry_of_id is None:
        return {}
    rows = StepInstance.objects.filter(
        step_run__run_id=run.retry_of_id, step_run__key=key, status=StepStatus.COMPLETED,
    ).values("index", "item", "output", "started_at", "finished_at", "child_run_id")
    return {r["index"]: r for r in rows
            if r["index"] < len(items) and items[r["index"]] == r["item"]}


def _fail(run: Run, steps: dict[str, StepRun], step: StepRun, error_type: str, message: str,
          worker: str) -> None:
    error = {"type": error_type, "message": message}
    step_transition(step, StepStatus.FAILED, actor_kind=ActorKind.WORKER, actor=worker,
                    reason=f"{error_type}: {message}", fields={"error": error})
    progress.run_settle(run, steps)



def fan_out_outcome(run: Run, step: StepRun) -> Completed | Failed:
    """How a fanned-out step whose instances have all ended ends: failed when any instance
    failed (naming how many and the first), else completed with the instances' outputs in
    item order, under the storage rule (one resource when the list is large). Reads without
    the run's lock (the instances have ended, nothing changes them), so a large output is
    stored before the lock is taken."""
    failed = StepInstance.objects.filter(step_run=step, status=StepStatus.FAILED)
    count = failed.count()
    if count:
        first = failed.order_by("index").values("index", "error").first() or {}
        inner = first.get("error") or {}
        error = {"type": "InstancesFailed",
                 "message": f"{count:,} instance(s) failed; the first, instance "
                            f"{first.get('index')}: {inner.get('type', '')}: "
                            f"{inner.get('message', '')}",
                 "instance": first.get("index")}
        if inner.get("child_run"):  # a fanned `flow` step: the link to the failed child run
            error["child_run"] = inner["child_run"]
        return Failed(error=error, reason=error["message"], run_reason=f"step {step.key} failed")
    outputs = list(StepInstance.objects.filter(step_run=step).order_by("index")
                   .values_list("output", flat=True))
    try:
        output = storable_json(outputs, name=f"{step.key}-output.json", run=run, step_run=step,
                               attempt=None)
    except OutputNotStorable as exc:
        error = {"type": "OutputNotStorable",
                 "message": f"the list of the instances' outputs cannot be stored: {exc}"}
        return Failed(error=error, reason=error["message"], run_reason=f"step {step.key} failed")
    return Completed(output=output, reason=f"{len(outputs):,} instances completed")


def step_settle_locked(run: Run, step: StepRun, outcome: Completed | Failed | None = None) -> bool:
    """End the fanned-out `step` with `outcome` (computed now when None) through the engine's
    one verb for ending a step from outside its worker. Needs the run's row lock; False when the
    step had already ended (a fail_fast, a cancel, or another settler won)."""
    if step.status != StepStatus.RUNNING:
        return False
    outcome = outcome or fan_out_outcome(run, step)
    if isinstance(outcome, Failed):
        instances_cancel(step, reason=f"step {step.key} failed: {outcome.error['message']}")
        instances_released(run, step)  # a fanned `flow` step: its children still running
    FanOut.objects.filter(step_run=step).update(left=0)
    return step_resolve(run=run, step_run=step, outcome=outcome)
