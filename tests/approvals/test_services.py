"""Approval requests and decisions: approve, reject, assignees, timeouts."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus
from approvals.services import (
    ApprovalNotAllowed,
    approval_approve,
    approval_reject,
)
from tests.factories import (
    approval_definition,
    drain,
    start,
    steps_of,
)
from workflows.engine import sweeper
from workflows.errors import (
    Conflict,
)

pytestmark = pytest.mark.django_db


def test_an_approval_pauses_the_run_and_approve_continues_it(reviewer):
    run = start(approval_definition())
    drain()
    run.refresh_from_db()
    assert run.status == "waiting_for_approval"
    approval = Approval.objects.get(run=run)
    assert approval.instructions == "Ship a.tgz?"
    assert approval.data == {"agent": {"from": "a.tgz"}}
    approval_approve(approval=approval, actor=reviewer, comment="lgtm")
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    output = steps_of(run)["review"].output
    assert output["decision"] == "approved" and output["actor"] == "rita"
    assert output["comment"] == "lgtm" and output["decided_at"].endswith("Z")


def test_only_assignees_may_decide(reviewer):
    run = start(approval_definition())
    drain()
    approval = Approval.objects.get(run=run)
    outsider = User.objects.create_user("olly")
    with pytest.raises(ApprovalNotAllowed):
        approval_approve(approval=approval, actor=outsider)
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert steps_of(run)["review"].status == "waiting_for_approval"


def test_reject_fails_the_run_and_records_the_actor(reviewer):
    run = start(approval_definition())
    drain()
    approval_reject(approval=Approval.objects.get(run=run), actor=reviewer, comment="no")
    run.refresh_from_db()
    assert run.status == "failed"
    assert steps_of(run)["review"].status == "rejected"
    with pytest.raises(Conflict):
        approval_approve(approval=Approval.objects.get(run=run), actor=reviewer)


def test_an_approval_that_times_out_fails_the_run(reviewer):
    definition = approval_definition()
    definition["steps"][2]["timeout_seconds"] = 60
    run = start(definition)
    drain()
    sweeper.sweep(now=timezone.now() + timedelta(minutes=5))
    run.refresh_from_db()
    assert run.status == "failed"
    assert Approval.objects.get(run=run).status == "expired"


def test_every_approval_kind_is_decided_by_a_handler_of_its_own():
    from approvals.models import ApprovalKind
    from approvals.services import APPROVAL_KINDS

    assert set(APPROVAL_KINDS) == set(ApprovalKind.values)
    for handler in APPROVAL_KINDS.values():
        assert all(callable(getattr(handler, verb)) for verb in ("approve", "reject", "redo"))
