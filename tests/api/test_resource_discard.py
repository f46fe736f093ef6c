"""H1 of the probe (issue 25): a request may discard only the resources it stored itself.

A sender holding one flow's webhook secret, or one callback token, used to delete any resource
by its uuid: the cleanup of a refused write deleted whatever resource a descriptor-shaped body
named. Each way in is tried here against another run's resource, which must survive (row and
file).
"""

import json

import pytest

from resources.models import Resource
from resources.payloads import storable_json
from tests.api.conftest import wait_definition
from tests.api.test_webhooks import deliver
from tests.factories import drain, make_flow, simple_definition
from workflows.engine.callback_tokens import callback_token
from workflows.models import Run, StepRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def victim(db):
    """A resource that belongs to another flow's run, and the descriptor a body would carry."""
    flow = make_flow(simple_definition("victim-flow"))
    run = Run.objects.create(flow=flow, version=flow.live_version, status="completed")
    descriptor = storable_json({"secret-report": "x" * 100}, run=run, limit=10)
    resource = Resource.objects.get(pk=descriptor["$resource"].removeprefix("res://"))
    return resource, descriptor


def _survives(resource):
    assert Resource.objects.filter(pk=resource.pk).exists(), "the row was deleted"
    assert resource.file.storage.exists(resource.file.name), "the file was deleted"


@pytest.fixture
def hooked(db):
    return make_flow(simple_definition(
        "hooked", triggers=[{"type": "webhook"}],
        input={"repo": {"type": "string", "required": True}},
        steps=[{"key": "echo", "type": "python", "action": "core.echo",
                "args": {"repo": "{{ input.repo }}"}}],
    ))


def test_a_refused_delivery_naming_another_runs_resource_leaves_it(anon_api, hooked, victim):
    resource, descriptor = victim
    response = deliver(anon_api, hooked, descriptor)  # no `repo`: refused with a 422
    assert response.status == 422
    _survives(resource)


def test_a_repeated_idempotency_key_with_a_descriptor_body_leaves_it(anon_api, victim):
    resource, descriptor = victim
    hooked = make_flow(simple_definition("hooked-default", triggers=[{"type": "webhook"}]))
    first = deliver(anon_api, hooked, {"event": "push"}, key="k-1")
    assert first.status == 202
    again = deliver(anon_api, hooked, descriptor, key="k-1")
    assert again.status == 200 and again.body["run"] == first.body["id"]
    assert again.body["outcome"] == "duplicate"
    _survives(resource)
    # the inline body is data: it was never attached to the run it started either
    assert Resource.objects.get(pk=resource.pk).run_id != first.body["id"]


def test_a_refused_callback_naming_another_runs_resource_leaves_it(anon_api, as_user, victim):
    resource, descriptor = victim
    make_flow(wait_definition())
    run = as_user("operator").post("/flows/waiting/runs", {"input": {}}).body
    drain()
    step = StepRun.objects.get(run_id=run["id"], key="agent_done")
    path = f"/callbacks/{callback_token(step.callback_nonce)}"
    assert anon_api.post(path, {"done": True}).status == 202
    refused = anon_api.post(path, descriptor)  # used: 409
    assert refused.status == 409
    _survives(resource)


def test_the_loser_of_two_concurrent_callbacks_leaves_the_resource_its_body_names(
        anon_api, as_user, victim, monkeypatch):
    """Two callbacks race: both pass the early check, the second finds the token used under the
    run's lock and cleans up what it kept. Its body named another run's resource."""
    from workflows.services import callbacks

    resource, descriptor = victim
    make_flow(wait_definition())
    run = as_user("operator").post("/flows/waiting/runs", {"input": {}}).body
    drain()
    step = StepRun.objects.get(run_id=run["id"], key="agent_done")
    path = f"/callbacks/{callback_token(step.callback_nonce)}"
    assert anon_api.post(path, {"done": True}).status == 202
    locked_check = callbacks._check
    calls = []

    def early_check_before_the_winner_committed(run, step_run):
        calls.append(step_run.pk)
        if len(calls) > 1:  # the check under the run's lock sees the winner's commit
            locked_check(run, step_run)

    monkeypatch.setattr(callbacks, "_check", early_check_before_the_winner_committed)
    refused = anon_api.post(path, descriptor)
    assert refused.status == 409 and len(calls) == 2
    _survives(resource)


def test_a_kept_value_discards_and_attaches_only_its_own_resource(victim):
    from resources.payloads import keep_json

    resource, descriptor = victim
    inline = keep_json(descriptor)
    assert inline.value == descriptor and inline.resource_id is None
    inline.discard()
    assert inline.attach(run=resource.run) == 0
    _survives(resource)
    big = keep_json({"blob": "z" * 100}, limit=10)
    assert big.resource_id is not None
    big.discard()
    assert not Resource.objects.filter(pk=big.resource_id).exists()
    assert json.dumps(descriptor)  # still a plain value
