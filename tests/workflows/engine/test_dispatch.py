"""workflows.engine.dispatch: every task the engine sends is a function registered by
workflows.tasks, handed to django-q2 as itself (not a dotted name) when the transaction commits."""

from __future__ import annotations

from unittest import mock

import pytest
from django_q.signing import SignedPackage

from tests.factories import echo, make_flow, simple_definition
from workflows import engine, tasks
from workflows.engine import dispatch
from workflows.models import StepRun
from workflows.services.runs import run_start

pytestmark = pytest.mark.django_db


def test_every_task_the_engine_sends_is_a_function_of_workflows_tasks():
    assert dispatch.task_function(engine.ADVANCE_STEP) is tasks.advance_step
    assert dispatch.task_function(engine.WAKE_STEP) is tasks.wake_step
    assert dispatch.task_function(engine.ADVANCE_INSTANCE) is tasks.advance_instance
    assert set(dispatch.TASKS) == {engine.ADVANCE_STEP, engine.WAKE_STEP, engine.ADVANCE_INSTANCE}


def test_a_task_the_engine_does_not_send_cannot_be_registered():
    with pytest.raises(ValueError, match="sends no task 'advnace_step'"):
        engine.task("advnace_step")


def test_a_queued_step_is_sent_as_the_registered_function_once_its_start_commits(
        django_capture_on_commit_callbacks):
    flow = make_flow(simple_definition(slug="sent", steps=[echo("one"), echo("two")]))
    with mock.patch("django_q.tasks.async_task") as async_task:
        with django_capture_on_commit_callbacks() as callbacks:
            run, _ = run_start(flow=flow, input={})
        assert async_task.call_count == 0  # nothing is sent before the commit
        for callback in callbacks:
            callback()
    first = StepRun.objects.get(run=run, key="one")
    async_task.assert_called_once_with(
        tasks.advance_step, first.pk, task_name=f"step-{first.pk}", group=dispatch.GROUP,
        save=False)


def test_django_q2_carries_a_registered_function_by_reference():
    # What the broker stores and a worker loads: the same function, not a copy or a name.
    package = SignedPackage.loads(SignedPackage.dumps({"func": tasks.advance_step, "args": (1,)}))
    assert package["func"] is tasks.advance_step
