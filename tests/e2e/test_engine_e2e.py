"""The engine through a real qcluster process: completion, retry, cancel, parallel join, and the
faults a worker fleet really has (a killed cluster, a lost task, a duplicated task)."""

import pytest
from django.conf import settings
from django.utils import timezone

from tests.e2e.conftest import wait_for, wait_for_run
from tests.factories import make_flow, simple_definition, steps_of
from workflows.engine import sweeper
from workflows.models import Attempt, Run
from workflows.services.runs import run_cancel, run_start

pytestmark = [pytest.mark.e2e]


def sleep_step(key, seconds, **extra):
    return {"key": key, "type": "python", "action": "core.sleep", "args": {"seconds": seconds},
            **extra}


def echo(key, **extra):
    return {"key": key, "type": "python", "action": "core.echo", "args": {"k": key}, **extra}


def test_a_flow_runs_to_completion(qcluster):
    qcluster()
    flow = make_flow(simple_definition(steps=[echo("a"), echo("b"), echo("c")]))
    run, _ = run_start(flow=flow, input={})
    wait_for_run(run)
    assert run.status == "completed"
    assert run.output == {"k": "c"}
    assert all(s.status == "completed" for s in steps_of(run).values())


def test_a_failing_step_succeeds_on_retry(qcluster):
    qcluster()
    flow = make_flow(simple_definition(steps=[
        {"key": "flaky", "type": "python", "action": "core.flaky", "args": {"fail_times": 1},
         "retry": {"max_attempts": 3, "backoff_seconds": 0.2}},
        echo("after"),
    ]))
    run, _ = run_start(flow=flow, input={})
    wait_for_run(run)
    assert run.status == "completed"
    attempts = Attempt.objects.filter(step_run__run=run, step_run__key="flaky").order_by("number")
    assert [a.status for a in attempts] == ["failed", "completed"]


def test_a_run_canceled_mid_sleep_stops_its_step(qcluster):
    qcluster()
    flow = make_flow(simple_definition(steps=[sleep_step("nap", 60), echo("after")]))
    run, _ = run_start(flow=flow, input={})
    # The worker writes a running attempt at its first check (a fast one only when it ends).
    wait_for(lambda: Attempt.objects.filter(step_run__run=run).exists(),
             what="the sleep to start")
    run_cancel(run=Run.objects.get(pk=run.pk), reason="test")
    attempt = Attempt.objects.get(step_run__run=run)
    wait_for(lambda: Attempt.objects.get(pk=attempt.pk).status == "canceled", timeout=15,
             what="the sleeping handler to notice the cancel")
    run.refresh_from_db()
    assert run.status == "canceled"
    assert {s.status for s in steps_of(run).values()} == {"canceled"}
    assert Attempt.objects.get(pk=attempt.pk).duration_ms < 30_000


def test_parallel_branches_overlap_and_join(qcluster):
    qcluster()
    flow = make_flow(simple_definition(steps=[
        echo("start"),
        sleep_step("left", 1.5, needs=["start"]),
        sleep_step("right", 1.5, needs=["start"]),
        echo("join", needs=["left", "right"]),
    ]))
    run, _ = run_start(flow=flow, input={})
    wait_for_run(run)
    assert run.status == "completed"
    left = Attempt.objects.get(step_run__run=run, step_run__key="left")
    right = Attempt.objects.get(step_run__run=run, step_run__key="right")
    assert left.started_at < right.finished_at and right.started_at < left.finished_at
    join = Attempt.objects.get(step_run__run=run, step_run__key="join")
    assert join.started_at >= max(left.finished_at, right.finished_at)


def test_a_killed_cluster_loses_no_step(qcluster):
    first = qcluster()
    flow = make_flow(simple_definition(steps=[sleep_step("work", 2), echo("after")]))
    run, _ = run_start(flow=flow, input={})
    wait_for(lambda: steps_of(run)["work"].status == "running", what="the step to start")
    first.kill()
    step = steps_of(run)["work"]
    assert step.status == "running"  # nobody is left to finish it
    qcluster()
    # The sweeper (a schedule every minute in production) takes the lease back once it expires.
    wait_for(lambda: StepLeaseExpired(step.pk)(), timeout=15, what="the lease to expire")
    assert sweeper.sweep()["expired_leases"] == 1
    wait_for_run(run)
    assert run.status == "completed"
    attempts = list(Attempt.objects.filter(step_run=step).order_by("number"))
    assert [a.status for a in attempts] == ["failed", "completed"]
    assert attempts[0].error["type"] == "WorkerLost"


class StepLeaseExpired:
    def __init__(self, step_id):
        self.step_id = step_id

    def __call__(self) -> bool:
        from workflows.models import StepRun

        lease = StepRun.objects.get(pk=self.step_id).lease_until
        return lease is not None and lease < timezone.now()


def _purge_broker() -> int:
    from django_q.brokers import get_broker

    broker = get_broker()
    count = broker.queue_size() or 0
    broker.purge_queue()
    return count


def test_a_lost_task_is_enqueued_again_by_the_sweeper(qcluster, settings_override=None):
    flow = make_flow(simple_definition(steps=[echo("only")]))
    run, _ = run_start(flow=flow, input={})
    assert _purge_broker() == 1  # the task is lost before any worker saw it
    qcluster()
    later = timezone.now() + timezone.timedelta(seconds=settings.WF_REQUEUE_AFTER_SECONDS + 1)
    assert sweeper.sweep(now=later)["requeued"] == 1
    wait_for_run(run)
    assert run.status == "completed"
    assert Attempt.objects.filter(step_run__run=run).count() == 1


def test_a_duplicated_task_executes_the_step_once(qcluster):
    from django_q.tasks import async_task

    flow = make_flow(simple_definition(steps=[sleep_step("once", 0.5)]))
    run, _ = run_start(flow=flow, input={})
    step = steps_of(run)["once"]
    async_task("workflows.tasks.advance_step", step.pk)
    async_task("workflows.tasks.advance_step", step.pk)
    qcluster()
    wait_for_run(run)
    assert run.status == "completed"
    assert Attempt.objects.filter(step_run=step).count() == 1


def test_short_timers_and_timeouts_resolve_without_waiting_for_the_sweeper(qcluster):
    qcluster()
    flow = make_flow(simple_definition(steps=[
        {"key": "pause", "type": "wait", "duration_seconds": 1},
        {"key": "hold", "type": "wait", "timeout_seconds": 2},
    ]))
    run, _ = run_start(flow=flow, input={})
    wait_for_run(run, timeout=20)
    assert run.status == "failed"
    steps = steps_of(run)
    assert steps["pause"].status == "completed"
    assert steps["hold"].error["type"] == "WaitTimeout"


def test_a_short_approval_timeout_resolves_as_the_step_says(qcluster):
    qcluster()
    flow = make_flow(simple_definition(steps=[
        echo("build"),
        {"key": "review", "type": "approval", "timeout_seconds": 2, "on_timeout": "approve"},
        echo("ship"),
    ]))
    run, _ = run_start(flow=flow, input={})
    wait_for_run(run, timeout=20)
    assert run.status == "completed"
    assert steps_of(run)["review"].output["decision"] == "approved"
