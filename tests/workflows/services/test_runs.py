"""Run services: input, cancel, retry, replay, idempotency, pinned versions, rehearsals."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import (
    drain,
    echo,
    failing_then_fixed_definition,
    kinds,
    make_flow,
    simple_definition,
    start,
    steps_of,
)
from workflows.engine import sweeper
from workflows.errors import (
    Conflict,
    InputInvalid,
    TransitionNotAllowed,
)
from workflows.models import Attempt, Run
from workflows.services.runs import run_cancel, run_replay, run_retry, run_start

pytestmark = pytest.mark.django_db


def test_input_is_validated_and_defaults_applied():
    definition = simple_definition(input={"repo": {"type": "string", "required": True},
                                          "limit": {"type": "integer", "default": 10}})
    flow = make_flow(definition)
    with pytest.raises(InputInvalid) as info:
        run_start(flow=flow, input={"limit": "x", "extra": 1})
    paths = {p["path"] for p in info.value.problems}
    assert {"input.repo", "input.limit", "input.extra"} <= paths
    assert Run.objects.count() == 0
    run, _ = run_start(flow=flow, input={"repo": "core"})
    assert run.input == {"repo": "core", "limit": 10}


def test_cancel_marks_the_run_and_every_open_step_canceled():
    run = start(simple_definition(steps=[
        {"key": "nap", "type": "python", "action": "core.sleep", "args": {"seconds": 30}},
        echo("after"),
    ]))
    run_cancel(run=run, reason="operator said so")
    run.refresh_from_db()
    assert run.status == "canceled"
    assert {s.status for s in steps_of(run).values()} == {"canceled"}
    drain()  # the queued task, if it ever arrives, finds nothing to do
    assert Attempt.objects.filter(step_run__run=run).count() == 0
    with pytest.raises(TransitionNotAllowed):
        run_cancel(run=run)


def test_retry_reuses_completed_steps_and_starts_at_the_failed_one(outage):
    run = start(failing_then_fixed_definition())
    drain()
    run.refresh_from_db()
    assert run.status == "failed"
    outage["on"] = False
    retried = run_retry(run=run)
    assert retried.retry_of_id == run.pk and retried.version_id == run.version_id
    steps = steps_of(retried)
    assert steps["a"].status == "completed" and steps["a"].reused_from_id == steps_of(run)["a"].pk
    assert steps["a"].output == {"v": 1}
    assert steps["c"].status == "queued"
    drain()
    retried.refresh_from_db()
    assert retried.status == "completed"
    assert Attempt.objects.filter(step_run__run=retried, step_run__key="a").count() == 0
    assert kinds(retried).count("step_reused") == 2


def test_retry_from_a_step_reuses_only_what_comes_before_it(outage):
    run = start(failing_then_fixed_definition())
    drain()
    retried = run_retry(run=run, from_step="b")
    steps = steps_of(retried)
    assert steps["a"].status == "completed" and steps["a"].is_reused
    assert steps["b"].status == "queued" and not steps["b"].is_reused
    with pytest.raises(Conflict):
        run_retry(run=retried)  # still running: cancel it or wait for it first


def test_replay_starts_from_the_beginning_with_the_same_version_and_input():
    run = start(simple_definition())
    drain()
    replay = run_replay(run=run)
    assert replay.replay_of_id == run.pk and replay.input == run.input
    assert all(not s.is_reused for s in steps_of(replay).values())
    drain()
    replay.refresh_from_db()
    assert replay.status == "completed"


def test_a_repeated_idempotency_key_returns_the_same_run():
    flow = make_flow(simple_definition())
    first, created = run_start(flow=flow, input={}, idempotency_key="k-1")
    again, created_again = run_start(flow=flow, input={}, idempotency_key="k-1")
    assert created and not created_again and first.pk == again.pk
    assert Run.objects.count() == 1


def test_runs_are_pinned_to_the_release_they_started_on():
    from workflows.services.flows import flow_promote, flow_release, flow_update_draft

    definition = simple_definition()
    flow = make_flow(definition)
    old, _ = run_start(flow=flow, input={})
    definition["steps"].append(echo("third"))
    flow_update_draft(flow=flow, definition=definition)
    flow_promote(flow=flow, number=flow_release(flow=flow).number)
    flow.refresh_from_db()
    new, _ = run_start(flow=flow, input={})
    drain()
    assert set(steps_of(old)) == {"first", "second"}
    assert set(steps_of(new)) == {"first", "second", "third"}
    assert old.version.number == 1 and new.version.number == 2


def test_a_rehearsal_runs_the_draft():
    flow = make_flow(simple_definition(), promote=False)
    run, _ = run_start(flow=flow, input={}, draft=True)
    assert run.is_rehearsal and run.version.number is None
    with pytest.raises(Conflict):
        run_start(flow=flow, input={})


def test_a_rehearsal_keeps_the_draft_it_started_on_when_the_draft_changes():
    from workflows.services.flows import flow_update_draft

    definition = simple_definition(steps=[
        {"key": "hold", "type": "wait", "duration_seconds": 3600}, echo("after", v="old")])
    flow = make_flow(definition, promote=False)
    run, _ = run_start(flow=flow, input={}, draft=True)
    drain()
    definition["steps"] = [echo("other", v="new")]
    flow_update_draft(flow=flow, definition=definition)
    sweeper.sweep(now=timezone.now() + timedelta(hours=2))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["after"].output == {"v": "old"}
    replay = run_replay(run=run)
    assert set(steps_of(replay)) == {"hold", "after"}
