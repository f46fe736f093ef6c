"""A support desk's history: a release that broke a step, a webhook delivery, an API
idempotency key, a decided approval and a wait step's callback."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from approvals.models import Approval
from approvals.services import approval_approve
from tests.factories import drain, make_flow, simple_definition, steps_of
from tests.history import History, broken_release_history
from workflows.engine import callback_token, callback_url
from workflows.models import Run
from workflows.services.runs import run_start
from workflows.services.webhooks import webhook_receive, webhook_sign


@dataclass
class Desk:
    history: History
    hooked: Run
    delivery_key: str
    keyed: Run
    approved: Run
    approval: Approval
    waiting: Run
    token: str
    url: str
    support: object


def user(name: str, *groups: str):
    account = get_user_model().objects.create_user(username=name, password="pw")
    for group in groups:
        account.groups.add(Group.objects.get(name=group))
    return account


@pytest.fixture
def desk(db) -> Desk:
    history = broken_release_history(good=2, bad=2)
    hooks = make_flow(simple_definition(
        "hooked", triggers=[{"type": "webhook"}], input={"repo": {"type": "string"}},
        steps=[{"key": "echo", "type": "python", "action": "core.echo"}]))
    body = json.dumps({"repo": "widgets"}).encode()
    hooked = webhook_receive(
        flow=hooks, body=body, idempotency_key="dlv-7781",
        signature=webhook_sign(secret=hooks.webhook_signing_secret(), body=body)).run
    keyed, _ = run_start(flow=hooks, input={"repo": "gadgets"}, idempotency_key="order-1234")
    reviewer = user("rita", "reviewers")
    reviewed = make_flow(simple_definition("reviewed", steps=[
        {"key": "build", "type": "python", "action": "core.echo", "args": {"built": True}},
        {"key": "review", "type": "approval", "assignees": {"groups": ["reviewers"]}}]))
    approved, _ = run_start(flow=reviewed)
    drain()
    approval = Approval.objects.get(run=approved)
    approval_approve(approval=approval, actor=reviewer, comment="ship it")
    waits = make_flow(simple_definition("waiting", steps=[
        {"key": "agent_done", "type": "wait", "timeout_seconds": 3600}]))
    waiting, _ = run_start(flow=waits)
    drain()
    nonce = steps_of(waiting)["agent_done"].callback_nonce
    return Desk(history=history, hooked=hooked, delivery_key="dlv-7781", keyed=keyed,
                approved=approved, approval=approval, waiting=waiting,
                token=callback_token(nonce), url=callback_url(nonce),
                support=user("sam", "support"))
