"""django-q2 task entry points. A task is only a courier: it names a step run; the tables say
what to do with it (DESIGN.md §1).

The engine sends `advance_step` and `wake_step` as the functions registered here
(`@engine.task`), never by a dotted name; `WorkflowsConfig.ready()` imports this module so
they are registered in every process before anything is sent. `sweep` is named by the
django-q2 Schedule row (migration workflows.0002), which can only hold a name."""

import time

from django.conf import settings
from django.utils import timezone

from ops.logs import log_context
from workflows import engine
from workflows.models import StepRun
from workflows.services.maintenance import sweep_all
from workflows.states import StepStatus


def _step_log_context(step_run_id: int):
    """Log records inside the task carry the step run, its run and its flow (ops.logs)."""
    row = (StepRun.objects.filter(pk=step_run_id)
           .values_list("run_id", "run__flow__slug").first())
    run_id, flow = row if row is not None else (None, None)
    return log_context(run_id=run_id, step_run_id=step_run_id, flow=flow)


@engine.task(engine.ADVANCE_STEP)
def advance_step(step_run_id: int) -> None:
    # The claim names the run and the flow from the row it reads anyway (no query here).
    with log_context(step_run_id=step_run_id, run_id=None, flow=None):
        engine.advance(step_run_id)


@engine.task(engine.ADVANCE_INSTANCE)
def advance_instance(instance_id: int) -> None:
    """Run a queued instance of a for_each step (and the ones its end queues)."""
    with log_context(step_run_id=None, run_id=None, flow=None, instance_id=instance_id):
        engine.advance_instance(instance_id)


@engine.task(engine.WAKE_STEP)
def wake_step(step_run_id: int) -> None:
    """Resolve a paused step's short timer or timeout when it is due (longer ones are the
    sweeper's)."""
    with _step_log_context(step_run_id):
        _wake_step(step_run_id)


def _wake_step(step_run_id: int) -> None:
    step = StepRun.objects.filter(pk=step_run_id).first()
    if step is None:
        return
    if step.status not in (StepStatus.WAITING, StepStatus.WAITING_FOR_APPROVAL):
        if step.on_cancel_state == "due":  # a wait that ended without its callback
            engine.step_wake(step_run_id)
        return
    due = wake_due(step)
    if due is None:
        return
    delay = (due - timezone.now()).total_seconds()
    # A heartbeat deadline is sent by the sweeper up to one pass ahead (engine/agents.py).
    limit = settings.WF_INLINE_DELAY_SECONDS
    if due == step.heartbeat_deadline:
        limit = max(limit, settings.WF_SWEEP_INTERVAL_MINUTES * 60)
    if delay > limit:
        return
    if delay > 0:
        time.sleep(delay)
    engine.step_wake(step_run_id)


def wake_due(step: StepRun):
    """When something is next due on a paused step: its timer or its timeout."""
    times = [t for t in (step.not_before, step.timeout_at, step.heartbeat_deadline)
             if t is not None]
    return min(times) if times else None


def sweep() -> dict:
    return sweep_all()
