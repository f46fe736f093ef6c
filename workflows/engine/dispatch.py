"""Every django-q2 send the engine makes, and the one column a send writes (`enqueued_at` of a
lost task sent again).

A task only names a step run; the tables say what to do with it (DESIGN.md §1), so a lost,
duplicated or late task cannot corrupt a run. Tasks are sent when the transaction that made
them due commits (`transaction.on_commit`): a rolled-back change sends nothing, and a worker
never picks up a step before the row saying it is queued is visible.

The task functions live at the edge (`workflows/tasks.py`), above the engine, which may not
import them. They register here (`@engine.task(engine.ADVANCE_STEP)`), imported by
`WorkflowsConfig.ready()`, and the send hands django-q2 the function itself rather than its
dotted name: a renamed or moved task fails at import and in the tests, not in a worker that
cannot locate a string. (django-q2 pickles the function by reference; the worker imports it.)
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workflows.engine.transitions import event_record
from workflows.models import StepRun
from workflows.states import EventKind, StepStatus

# The engine's tasks, each taking one step run id.
ADVANCE_STEP = "advance_step"  # run a queued step run (executor.advance)
WAKE_STEP = "wake_step"  # resolve a paused step's short timer or timeout (sweeper.step_wake)
ADVANCE_INSTANCE = "advance_instance"  # run a queued for_each instance (instances.advance_instance)
TASKS = (ADVANCE_STEP, WAKE_STEP, ADVANCE_INSTANCE)
# django-q2's group of every task the engine sends.
GROUP = "workflow-steps"

_registered: dict[str, Callable[[int], Any]] = {}


def task(name: str) -> Callable[[Callable[[int], Any]], Callable[[int], Any]]:
    """Register the decorated function as the engine's task `name` (one of TASKS)."""
    if name not in TASKS:
        raise ValueError(f"the engine sends no task {name!r}; it sends {', '.join(TASKS)}")

    def register(function: Callable[[int], Any]) -> Callable[[int], Any]:
        _registered[name] = function
        return function

    return register


def task_function(name: str) -> Callable[[int], Any]:
    """The function registered for the task `name`."""
    try:
        return _registered[name]
    except KeyError:
        raise LookupError(
            f"no function is registered for the engine's task {name!r}: workflows.tasks "
            "registers them when the workflows app is ready") from None


def _send(name: str, step_run_id: int, task_name: str) -> None:
    # Lazy: django-q2 is loaded only when a task is actually sent (not a cycle).
    from django_q.tasks import async_task

    # save=False: a task's success is recorded in our tables, not django-q2's (whose
    # bookkeeping of successes, a locked read of up to Q_SAVE_LIMIT rows per task, cost more
    # than the step itself); failures of the task itself are still saved.
    async_task(task_function(name), step_run_id, task_name=task_name, group=GROUP, save=False)


def enqueue(step_run_ids: list[int]) -> None:
    """Hand queued steps to django-q2 once the transaction that queued them commits."""
    if not step_run_ids:
        return

    def send() -> None:
        for step_run_id in step_run_ids:
            _send(ADVANCE_STEP, step_run_id, f"step-{step_run_id}")

    transaction.on_commit(send)


def enqueue_instances(instance_ids: list[int]) -> None:
    """Hand queued for_each instances to django-q2 once the transaction that queued them
    commits (the same rule as `enqueue`)."""
    if not instance_ids:
        return

    def send() -> None:
        for instance_id in instance_ids:
            _send(ADVANCE_INSTANCE, instance_id, f"instance-{instance_id}")

    transaction.on_commit(send)


def wake_later(step: StepRun, *times: datetime | None) -> None:
    """A paused step's short timer or timeout (the earliest of `times`) is waited out by a
    task, sent when the pause commits; a long one (over WF_INLINE_DELAY_SECONDS) by the
    sweeper."""
    due = min((t for t in times if t is not None), default=None)
    if due is None or (due - timezone.now()).total_seconds() > settings.WF_INLINE_DELAY_SECONDS:
        return
    step_run_id = step.pk
    transaction.on_commit(lambda: _send(WAKE_STEP, step_run_id, f"wake-{step_run_id}"))


def wake_now(step_run_id: int) -> None:
    """Send a step's wake task now (a wait's due `on_cancel`; the caller sends it on commit)."""
    _send(WAKE_STEP, step_run_id, f"wake-{step_run_id}")


def step_requeue(*, step_run_id: int, run_id: int, now: datetime) -> bool:
    """Send a queued step's task again (its first was lost: the Redis broker drops tasks when
    a worker dies), in its own transaction: `enqueued_at` moves to `now` only while the step
    is still queued, with a `step_requeued` Event. False when it is no longer queued."""
    with transaction.atomic():
        updated = StepRun.objects.filter(pk=step_run_id, status=StepStatus.QUEUED).update(
            enqueued_at=now)
        if not updated:
            return False
        event_record(run_id=run_id, step_run_id=step_run_id, kind=EventKind.STEP_REQUEUED,
                     reason="queued but not claimed by any worker; enqueued again")
        enqueue([step_run_id])
    return True
