from datetime import timedelta

import pytest
from django.utils import timezone

from tests.api.conftest import wait_definition
from tests.factories import drain, make_flow, steps_of
from workflows.engine.callback_tokens import callback_token
from workflows.models import Event, Run, StepRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(as_user):
    """(run id, callback path) of a run waiting for its callback."""
    make_flow(wait_definition())
    run = as_user("operator").post("/flows/waiting/runs", {"input": {}}).body
    drain()
    step = StepRun.objects.get(run_id=run["id"], key="agent_done")
    assert step.status == "waiting"
    return run["id"], f"/callbacks/{callback_token(step.callback_nonce)}"


def test_a_callback_resumes_the_wait_with_its_body(anon_api, waiting):
    run_id, path = waiting
    response = anon_api.post(path, {"pr_url": "https://example.com/pr/1"},
                             headers={"User-Agent": "agent/1.0"})
    assert response.status == 202
    assert response.body == {"status": "accepted", "step": "agent_done", "run": run_id}
    drain()
    run = Run.objects.get(pk=run_id)
    assert run.status == "completed"
    assert steps_of(run)["finish"].output == {"pr": "https://example.com/pr/1"}
    event = Event.objects.filter(run=run, step_run__key="agent_done",
                                 to_status="completed").get()
    assert event.actor_kind == "callback" and event.data["user_agent"] == "agent/1.0"
    assert event.data["remote_addr"] == "127.0.0.1"


def test_a_used_callback_is_a_409(anon_api, waiting):
    _, path = waiting
    assert anon_api.post(path, {"n": 1}).status == 202
    again = anon_api.post(path, {"n": 2})
    assert again.status == 409 and again.error["code"] == "callback_used"


def test_an_expired_callback_is_a_410(anon_api, as_user, waiting):
    run_id, path = waiting
    StepRun.objects.filter(run_id=run_id, key="agent_done").update(
        timeout_at=timezone.now() - timedelta(seconds=1))
    response = anon_api.post(path, {})
    assert response.status == 410 and response.error["code"] == "callback_expired"


def test_a_callback_for_an_ended_run_is_a_410(anon_api, as_user, waiting):
    run_id, path = waiting
    as_user("operator").post(f"/runs/{run_id}/cancel")
    assert anon_api.post(path, {}).status == 410


def test_an_unknown_callback_is_a_404(anon_api, db):
    response = anon_api.post("/callbacks/not-a-token", {})
    assert response.status == 404 and response.error["code"] == "callback_unknown"
    assert anon_api.post("/callbacks/" + "x" * 300, {}).status == 404


def test_callback_bodies_must_be_json_objects_within_the_inbound_cap(anon_api, waiting,
                                                                     settings):
    _, path = waiting
    settings.WF_INBOUND_MAX_BYTES = 100 * 1024
    assert anon_api.post(path, raw=b"not json", content_type="text/plain").status == 400
    assert anon_api.post(path, [1, 2]).status == 400
    big = anon_api.post(path, {"blob": "x" * (101 * 1024)})
    assert big.status == 413 and big.error["code"] == "payload_too_large"
    assert "102400 bytes" in big.error["message"]
    # Nothing of the above used the token.
    assert anon_api.post(path, {"ok": True}).status == 202


def test_a_non_finite_number_in_a_callback_body_is_a_400_and_keeps_the_token(anon_api, waiting):
    _, path = waiting
    for body in (b'{"x": 1e400}', b'{"x": -Infinity}'):
        response = anon_api.post(path, raw=body)
        assert response.status == 400 and response.error["code"] == "bad_request"
    assert anon_api.post(path, {"ok": True}).status == 202


def test_an_empty_callback_body_counts_as_an_empty_object(anon_api, waiting):
    run_id, path = waiting
    assert anon_api.post(path, raw=b"", content_type="application/json").status == 202
    assert StepRun.objects.get(run_id=run_id, key="agent_done").callback_payload == {}


def test_anonymous_endpoints_are_throttled(anon_api, settings, db):
    settings.WF_ANON_THROTTLE = "3/m"
    statuses = [anon_api.post("/callbacks/unknown", {}).status for _ in range(5)]
    assert statuses == [404, 404, 404, 429, 429]
    throttled = anon_api.post("/callbacks/unknown", {})
    assert throttled.error["code"] == "throttled"
    spoofed = anon_api.post("/callbacks/unknown", {}, headers={"X-Forwarded-For": "10.9.8.7"})
    assert spoofed.status == 429
