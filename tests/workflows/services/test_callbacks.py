"""Receiving a callback: resuming a wait, single use, early and late callbacks."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import (
    callback_definition,
    drain,
    kinds,
    start,
    steps_of,
    token_of,
)
from workflows.engine import sweeper
from workflows.errors import (
    CallbackExpired,
    CallbackUnknown,
    CallbackUsed,
)
from workflows.models import Event
from workflows.services.callbacks import callback_receive

pytestmark = pytest.mark.django_db


def test_a_callback_resumes_the_wait_with_its_body_as_output():
    run = start(callback_definition())
    drain()
    run.refresh_from_db()
    assert run.status == "waiting"
    url = steps_of(run)["a"].output["url"]
    # The step got the URL; what is stored has the token redacted (it is a credential).
    assert url.endswith("/api/v1/callbacks/***") and token_of(run) not in url
    callback_receive(token=token_of(run), payload={"pr_url": "http://pr/1"},
                     remote_addr="10.0.0.1", user_agent="curl")
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["b"].output == {"got": "http://pr/1"}
    event = Event.objects.get(run=run, step_run__key="hold", to_status="completed")
    assert event.actor_kind == "callback" and event.data["remote_addr"] == "10.0.0.1"


def test_a_callback_is_single_use_and_unknown_tokens_are_refused():
    run = start(callback_definition())
    drain()
    callback_receive(token=token_of(run), payload={"pr_url": "x"})
    with pytest.raises(CallbackUsed):
        callback_receive(token=token_of(run), payload={"pr_url": "y"})
    with pytest.raises(CallbackUnknown):
        callback_receive(token="not-a-token", payload={})


def test_a_callback_that_arrives_early_completes_the_wait_when_reached():
    run = start(callback_definition())
    callback_receive(token=token_of(run), payload={"pr_url": "early"})
    assert "callback_received_early" in kinds(run)
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["b"].output == {"got": "early"}


def test_a_callback_after_the_wait_timed_out_is_expired():
    run = start(callback_definition(timeout_seconds=1))
    drain()
    sweeper.sweep(now=timezone.now() + timedelta(seconds=5))
    run.refresh_from_db()
    assert run.status == "failed"
    assert steps_of(run)["hold"].error["type"] == "WaitTimeout"
    with pytest.raises(CallbackExpired):
        callback_receive(token=token_of(run), payload={})
