"""The sweeper: timers and timeouts, expired leases, lost enqueues, due schedules."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import (
    drain,
    echo,
    kinds,
    make_flow,
    simple_definition,
    start,
    steps_of,
)
from workflows.engine import executor, sweeper
from workflows.models import Attempt, Run
from workflows.services.maintenance import sweep_all

pytestmark = pytest.mark.django_db


def test_timer_wait_pauses_the_run_until_due():
    run = start(simple_definition(steps=[
        echo("a"), {"key": "pause", "type": "wait", "duration_seconds": 3600}, echo("b")]))
    drain()
    run.refresh_from_db()
    assert run.status == "waiting"
    pause = steps_of(run)["pause"]
    assert pause.status == "waiting"
    sweeper.sweep(now=timezone.now() + timedelta(hours=2))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert "waited_seconds" in steps_of(run)["pause"].output


def test_a_wait_can_continue_on_timeout():
    run = start(simple_definition(steps=[
        {"key": "hold", "type": "wait", "timeout_seconds": 1, "on_timeout": "continue"},
        {"key": "b", "type": "python", "action": "core.echo",
         "args": {"timed_out": "{{ steps.hold.output.timed_out }}"}},
    ]))
    drain()
    sweeper.sweep(now=timezone.now() + timedelta(seconds=5))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["b"].output == {"timed_out": True}


def test_an_expired_lease_is_taken_back_and_the_step_runs_again():
    run = start(simple_definition(steps=[echo("only")]))
    step = steps_of(run)["only"]
    claimed = executor.claim(step.pk)  # the worker claims it ... and dies
    assert claimed is not None
    counts = sweeper.sweep(now=timezone.now() + timedelta(minutes=5))
    assert counts["expired_leases"] == 1
    step.refresh_from_db()
    assert step.status == "queued"
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    attempts = list(Attempt.objects.filter(step_run=step).order_by("number"))
    assert [a.status for a in attempts] == ["failed", "completed"]
    assert attempts[0].error["type"] == "WorkerLost"
    assert "lease_expired" in kinds(run)


def test_a_late_outcome_from_a_worker_that_lost_its_lease_is_not_applied():
    run = start(simple_definition(steps=[echo("only")]))
    step = steps_of(run)["only"]
    claimed = executor.claim(step.pk)
    result = executor.execute(claimed)
    sweeper.sweep(now=timezone.now() + timedelta(minutes=5))
    executor.finish(claimed, result)  # too late: the step is queued for attempt 2
    step.refresh_from_db()
    assert step.status == "queued"
    assert Attempt.objects.get(step_run=step, number=1).status == "failed"


def test_a_queued_step_whose_task_was_lost_is_enqueued_again():
    run = start(simple_definition(steps=[echo("only")]))
    counts = sweeper.sweep(now=timezone.now() + timedelta(minutes=5))
    assert counts["requeued"] == 1
    assert "step_requeued" in kinds(run)


def test_a_retry_with_a_long_backoff_is_handed_out_by_the_sweeper_when_due(settings):
    settings.WF_INLINE_DELAY_SECONDS = 1
    run = start(simple_definition(steps=[
        {"key": "flaky", "type": "python", "action": "core.flaky", "args": {"fail_times": 1},
         "retry": {"max_attempts": 2, "backoff_seconds": 120}}]))
    drain()
    step = steps_of(run)["flaky"]
    assert step.status == "queued" and step.not_before is not None
    assert sweeper.sweep()["requeued"] == 0  # not due yet
    counts = sweeper.sweep(now=step.not_before + timedelta(seconds=1))
    assert counts["requeued"] == 1


def test_a_schedule_trigger_starts_one_run_per_due_time():
    from workflows.models import ScheduleState

    flow = make_flow(simple_definition(
        triggers=[{"type": "schedule", "cron": "*/5 * * * *"}]))
    state = ScheduleState.objects.get(flow=flow)
    due = state.next_fire_at
    assert sweep_all(now=due - timedelta(seconds=1))["schedules_fired"] == 0
    assert sweep_all(now=due + timedelta(seconds=1))["schedules_fired"] == 1
    assert sweep_all(now=due + timedelta(seconds=2))["schedules_fired"] == 0
    run = Run.objects.get(flow=flow)
    assert run.trigger_kind == "schedule"
    assert run.trigger_payload["cron"] == "*/5 * * * *"
    state.refresh_from_db()
    assert state.next_fire_at == due + timedelta(minutes=5)
