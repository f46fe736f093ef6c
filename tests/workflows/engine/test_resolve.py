"""workflows.engine.resolve: what ends a step from outside its worker, through one door."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from approvals.models import Approval
from approvals.services import approval_reject
from tests.factories import approval_definition, callback_definition, drain, start, token_of
from workflows.models import Event
from workflows.services.callbacks import callback_receive

pytestmark = pytest.mark.django_db


def _run_events(run):
    return {e.kind: (e.actor_kind, e.actor)
            for e in Event.objects.filter(run=run, step_run__isnull=True)}


def test_a_reviewers_decision_moves_the_run_in_their_name():
    reviewer = User.objects.create_user("rita")
    reviewer.groups.add(Group.objects.get(name="reviewers"))
    run = start(approval_definition())
    drain()
    approval_reject(approval=Approval.objects.get(run=run), actor=reviewer, comment="no")
    assert _run_events(run)["run_failed"] == ("user", "rita")
    failed = Event.objects.get(run=run, kind="run_failed")
    assert failed.reason == "approval rejected by rita"


def test_a_callback_moves_the_run_in_the_systems_name():
    run = start(callback_definition())
    drain()
    callback_receive(token=token_of(run), payload={"pr_url": "x"}, remote_addr="10.0.0.9")
    step_event = Event.objects.get(run=run, step_run__key="hold", to_status="completed")
    assert (step_event.actor_kind, step_event.actor) == ("callback", "10.0.0.9")
    assert _run_events(run)["run_running"] == ("system", "")
