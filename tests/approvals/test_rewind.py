"""Rewind (redo) through an approval: the target step runs again and the approval asks again."""

import pytest

from approvals.models import Approval
from approvals.services import (
    approval_approve,
    approval_redo,
)
from tests.factories import (
    approval_definition,
    drain,
    kinds,
    start,
    steps_of,
)

pytestmark = pytest.mark.django_db


def test_redo_requeues_the_target_step_and_asks_again(reviewer):
    run = start(approval_definition())
    drain()
    first = Approval.objects.get(run=run)
    approval_redo(approval=first, actor=reviewer, comment="try again")
    steps = steps_of(run)
    assert steps["build"].status == "queued"
    assert steps["agent"].status == "not_started" and steps["review"].status == "not_started"
    drain()
    run.refresh_from_db()
    assert run.status == "waiting_for_approval"
    assert steps_of(run)["build"].attempt_count == 2
    second = Approval.objects.get(run=run, status="pending")
    assert second.pk != first.pk
    first.refresh_from_db()
    assert first.status == "redone" and first.redo_step == "build"
    approval_approve(approval=second, actor=reviewer)
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert "step_redo" in kinds(run)
