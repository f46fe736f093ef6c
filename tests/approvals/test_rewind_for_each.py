"""Redo through a `for_each` step: the fan-out starts over, and the earlier round's instances
stay, superseded, with their attempts and events (engine/rewind.py)."""

import pytest

from approvals.models import Approval
from approvals.services import approval_approve, approval_redo
from tests.factories import drain, simple_definition, start, steps_of
from workflows.models import Attempt, Event, FanOut, StepInstance

pytestmark = pytest.mark.django_db


def _definition():
    return simple_definition(
        input={"items": {"type": "array", "default": ["a", "b", "c"]}},
        steps=[
            {"key": "each", "type": "python", "action": "core.echo",
             "for_each": "{{ input.items }}", "args": {"item": "{{ item }}"}},
            {"key": "review", "type": "approval", "assignees": {"groups": ["reviewers"]},
             "instructions": "Ship {{ steps.each.output }}?", "redo_to": "each"},
        ])


def test_redo_through_a_for_each_step_fans_it_out_again_and_keeps_the_first_round(reviewer):
    run = start(_definition())
    drain()
    first = Approval.objects.get(run=run)
    step = steps_of(run)["each"]
    first_round = set(StepInstance.objects.filter(step_run=step).values_list("pk", flat=True))
    assert len(first_round) == 3

    approval_redo(approval=first, actor=reviewer, comment="again")
    assert not FanOut.objects.filter(step_run=step).exists()
    assert StepInstance.objects.filter(step_run=step).count() == 0
    drain()

    run.refresh_from_db()
    assert run.status == "waiting_for_approval"
    step.refresh_from_db()
    assert step.status == "completed"
    assert step.output == [{"item": "a"}, {"item": "b"}, {"item": "c"}]
    current = list(StepInstance.objects.filter(step_run=step).order_by("index"))
    assert [i.status for i in current] == ["completed"] * 3
    assert not first_round & {i.pk for i in current}
    kept = StepInstance.history.filter(step_run=step, superseded=True)
    assert set(kept.values_list("pk", flat=True)) == first_round
    assert Attempt.objects.filter(instance__step_run=step).count() == 6
    assert Event.objects.filter(instance_id__in=first_round).exists()
    redo = Event.objects.get(step_run=step, kind="step_redo")
    assert redo.data["superseded_instances"] == 3

    approval_approve(approval=Approval.objects.get(run=run, status="pending"), actor=reviewer)
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
