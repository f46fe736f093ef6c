"""django-q2 task entry points. A task is only a courier: it names a step run; the tables say
what to do with it (DESIGN.md §1)."""

import time

from django.conf import settings
from django.utils import timezone

from workflows.engine import executor, sweeper
from workflows.models import StepRun
from workflows.states import StepStatus


def advance_step(step_run_id: int) -> None:
    executor.advance(step_run_id)


def wake_step(step_run_id: int) -> None:
    """Complete a short timer wait when it is due (longer ones are the sweeper's)."""
    step = StepRun.objects.filter(pk=step_run_id, status=StepStatus.WAITING).first()
    if step is None or step.not_before is None:
        return
    delay = (step.not_before - timezone.now()).total_seconds()
    if delay > settings.WF_INLINE_DELAY_SECONDS:
        return
    if delay > 0:
        time.sleep(delay)
    sweeper.timer_complete(step_run_id)


def sweep() -> dict:
    return sweeper.sweep()
