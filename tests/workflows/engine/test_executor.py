"""The executor: claiming, running and recording attempts, driven in-process through the same
claim/execute/finish code the workers run (tests/e2e runs the same flows through a real qcluster)."""

import multiprocessing
import os
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import (
    callback_definition,
    drain,
    echo,
    kinds,
    simple_definition,
    start,
    steps_of,
)
from workflows.engine import executor, sweeper
from workflows.models import Attempt, Event, LogChunk, Run, StepRun
from workflows.services.runs import run_cancel

pytestmark = pytest.mark.django_db


def test_a_sequential_run_completes_and_passes_outputs_along():
    run = start(simple_definition())
    assert run.status == "queued"
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    steps = steps_of(run)
    assert steps["second"].output == {"prev": 1}
    assert run.output == {"prev": 1}
    assert Attempt.objects.get(step_run=steps["second"]).input["args"] == {"prev": 1}
    assert kinds(run)[0] == "run_created" and kinds(run)[-1] == "run_completed"
    assert run.started_at and run.finished_at and run.duration_ms is not None


def test_every_transition_leaves_an_event_with_from_and_to():
    run = start(simple_definition())
    drain()
    # "second" is claimed by the worker that finished "first", in one statement: its events
    # still record both moves.
    for key in ("first", "second"):
        step_events = Event.objects.filter(run=run, step_run__key=key).order_by("id")
        assert [(e.from_status, e.to_status) for e in step_events] == [
            ("not_started", "queued"), ("queued", "running"), ("running", "completed"),
        ]


def test_a_failing_step_is_retried_with_backoff_then_succeeds():
    run = start(simple_definition(steps=[
        {"key": "flaky", "type": "python", "action": "core.flaky", "args": {"fail_times": 2},
         "retry": {"max_attempts": 3, "backoff_seconds": 0.05}},
        echo("after"),
    ]))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    flaky = steps_of(run)["flaky"]
    attempts = list(Attempt.objects.filter(step_run=flaky).order_by("number"))
    assert [a.status for a in attempts] == ["failed", "failed", "completed"]
    assert attempts[0].error["type"] == "Transient"
    assert flaky.attempt_count == 3
    assert kinds(run).count("step_retry_scheduled") == 2
    # A retried step keeps its first start (kept in SQL: the state read does not load it).
    assert flaky.started_at < attempts[1].started_at  # the retries did not move it
    assert abs(flaky.started_at - attempts[0].started_at) < timedelta(seconds=1)


def test_a_step_that_keeps_failing_fails_the_run_with_its_error():
    run = start(simple_definition(steps=[
        {"key": "boom", "type": "python", "action": "core.fail", "args": {"message": "nope"},
         "retry": {"max_attempts": 2}},
        echo("never"),
    ]))
    drain()
    run.refresh_from_db()
    steps = steps_of(run)
    assert run.status == "failed"
    assert run.error["step"] == "boom" and run.error["message"] == "nope"
    assert steps["boom"].status == "failed" and steps["boom"].attempt_count == 2
    assert steps["never"].status == "not_started"


def test_an_unexpected_exception_keeps_its_traceback_on_the_attempt(monkeypatch):
    from workflows.steps import actions

    def explode(ctx, **args):
        raise KeyError("missing")

    monkeypatch.setitem(actions._ACTIONS, "test.explode", explode)
    run = start(simple_definition(steps=[
        {"key": "x", "type": "python", "action": "test.explode"}]))
    drain()
    attempt = Attempt.objects.get(step_run__run=run)
    assert attempt.error["type"] == "KeyError"
    assert "explode" in attempt.error["traceback"]


def test_parallel_branches_run_and_join_after_both():
    run = start(simple_definition(steps=[
        echo("start"),
        echo("left", needs=["start"], side="L"),
        echo("right", needs=["start"], side="R"),
        {"key": "join", "type": "python", "action": "core.echo", "needs": ["left", "right"],
         "args": {"l": "{{ steps.left.output.side }}", "r": "{{ steps.right.output.side }}"}},
    ]))
    executor.advance(steps_of(run)["start"].pk)
    steps = steps_of(run)
    # After start, both branches are ready at once: one continues inline, one is queued.
    assert {steps["left"].status, steps["right"].status} <= {"completed", "queued"}
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["join"].output == {"l": "L", "r": "R"}


def test_a_duplicate_task_finds_the_step_claimed_and_does_nothing():
    run = start(simple_definition(steps=[echo("only")]))
    step = steps_of(run)["only"]
    executor.advance(step.pk)
    executor.advance(step.pk)
    assert Attempt.objects.filter(step_run=step).count() == 1


def test_when_condition_false_skips_the_step_and_dependents_still_run():
    run = start(simple_definition(
        input={"go": {"type": "boolean", "default": False}},
        steps=[echo("a"), {**echo("maybe"), "when": "{{ input.go }}"}, echo("b")],
    ))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["maybe"].status == "skipped"
    assert steps_of(run)["b"].status == "completed"


def test_a_running_handler_notices_cancel_at_its_heartbeat(settings):
    settings.WF_HEARTBEAT_SECONDS = 0.1
    run = start(simple_definition(steps=[
        {"key": "nap", "type": "python", "action": "core.sleep", "args": {"seconds": 30}}]))
    step = steps_of(run)["nap"]
    claimed = executor.claim(step.pk)
    # The operator cancels while the handler sleeps (the run row is changed underneath).
    run_cancel(run=Run.objects.get(pk=run.pk))
    result = executor.execute(claimed)
    assert result.lost
    executor.finish(claimed, result)
    attempt = Attempt.objects.get(step_run=step)
    assert attempt.status == "canceled"
    assert StepRun.objects.get(pk=step.pk).status == "canceled"


def test_a_step_past_its_timeout_fails_with_step_timeout():
    run = start(simple_definition(steps=[
        {"key": "nap", "type": "python", "action": "core.sleep", "args": {"seconds": 5},
         "timeout_seconds": 0.3}]))
    drain()
    run.refresh_from_db()
    assert run.status == "failed"
    assert Attempt.objects.get(step_run__run=run).error["type"] == "StepTimeout"


def test_logs_are_chunked_and_numbered():
    run = start(simple_definition(steps=[
        {"key": "nap", "type": "python", "action": "core.sleep", "args": {"seconds": 0}}]))
    drain()
    chunks = list(LogChunk.objects.filter(step_run__run=run).order_by("seq"))
    assert [c.seq for c in chunks] == list(range(1, len(chunks) + 1))
    assert "sleeping" in chunks[0].text


def test_a_reference_that_cannot_be_resolved_fails_the_attempt_with_the_reason():
    run = start(callback_definition(timeout_seconds=1, on_timeout="continue"))
    drain()
    sweeper.sweep(now=timezone.now() + timedelta(seconds=5))
    drain()
    run.refresh_from_db()
    assert run.status == "failed"
    error = steps_of(run)["b"].error
    assert error["type"] == "ReferenceUnresolved" and "pr_url" in error["message"]


def test_a_large_artifact_becomes_a_resource_and_the_output_keeps_its_ref():
    from resources.models import Resource

    run = start(simple_definition(steps=[
        {"key": "report", "type": "python", "action": "core.write_resource",
         "args": {"content": "x" * 5000, "name": "report.txt"}}]))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    output = steps_of(run)["report"].output
    assert output["ref"].startswith("res://") and output["size"] == 5000
    resource = Resource.objects.get(pk=output["ref"].removeprefix("res://"))
    assert resource.size == 5000 and resource.run_id == run.pk
    assert resource.file.read() == b"x" * 5000


def _worker_identity():
    return executor.worker_id(), os.getpid()


def test_a_forked_worker_names_its_own_process_not_the_clusters():
    # The engine is imported when the apps are ready, before django-q2 forks its workers.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child_id, child_pid = pool.apply(_worker_identity)
    assert child_pid != os.getpid()
    assert f":{child_pid}/" in child_id and f":{os.getpid()}/" in executor.worker_id()
