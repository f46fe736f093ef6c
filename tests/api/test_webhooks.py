import json
import time

import pytest

from resources.models import Resource
from resources.payloads import is_descriptor, value_load
from tests.factories import drain, make_flow, simple_definition
from workflows.models import Run, WebhookDelivery
from workflows.services.webhooks import (
    WebhookSignatureInvalid,
    webhook_sign,
    webhook_verify,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def hooked(db):
    return make_flow(simple_definition(
        "hooked", triggers=[{"type": "webhook"}],
        input={"repo": {"type": "string", "default": "core"}},
        steps=[{"key": "echo", "type": "python", "action": "core.echo",
                "args": {"repo": "{{ input.repo }}"}}],
    ))


def deliver(api, flow, payload, *, secret=None, timestamp=None, key=None, signature=None):
    body = json.dumps(payload).encode()
    headers = {"X-Signature": signature if signature is not None else webhook_sign(
        secret=secret or flow.webhook_signing_secret(), body=body, timestamp=timestamp)}
    if key:
        headers["Idempotency-Key"] = key
    return api.post(f"/hooks/{flow.slug}", raw=body, headers=headers)


def test_a_signed_delivery_starts_a_run_with_the_body_input(anon_api, hooked):
    response = deliver(anon_api, hooked, {"event": "push", "input": {"repo": "web"}})
    assert response.status == 202, response.body
    assert response.body["created"] is True and response.body["status"] == "queued"
    run = Run.objects.get(pk=response.body["id"])
    assert run.trigger_kind == "webhook" and run.input == {"repo": "web"}
    assert run.trigger_payload == {"event": "push", "input": {"repo": "web"}}
    assert response.body["admin_url"].endswith(f"/admin/workflows/run/{run.pk}/change/")
    drain()
    run.refresh_from_db()
    assert run.status == "completed" and run.output == {"repo": "web"}


def test_a_body_without_input_starts_a_run_with_the_defaults(anon_api, hooked):
    response = deliver(anon_api, hooked, {"event": "ping"})
    assert response.status == 202
    assert Run.objects.get(pk=response.body["id"]).input == {"repo": "core"}


def test_a_body_without_input_gives_its_declared_fields_as_input(anon_api, hooked):
    payload = {"repo": "web", "sender": {"login": "octo"}}
    response = deliver(anon_api, hooked, payload)
    assert response.status == 202
    run = Run.objects.get(pk=response.body["id"])
    assert run.input == {"repo": "web"} and run.trigger_payload == payload


def test_a_forged_signature_is_a_401(anon_api, hooked):
    response = deliver(anon_api, hooked, {"x": 1}, secret="not-the-secret")
    assert response.status == 401 and response.error["code"] == "signature_invalid"
    assert "does not match" in response.error["message"]
    assert not Run.objects.exists()


def test_a_stale_or_future_signature_is_a_401(anon_api, hooked):
    # Margins of 30 s around the 300 s tolerance: a slow request on a loaded machine must not
    # carry a timestamp back inside the window.
    stale = deliver(anon_api, hooked, {}, timestamp=int(time.time()) - 330)
    assert stale.status == 401 and "tolerance" in stale.error["message"]
    future = deliver(anon_api, hooked, {}, timestamp=int(time.time()) + 330)
    assert future.status == 401
    assert deliver(anon_api, hooked, {}, timestamp=int(time.time()) - 270).status == 202


def test_a_missing_or_malformed_signature_is_a_401(anon_api, hooked):
    missing = anon_api.post("/hooks/hooked", {})
    assert missing.status == 401 and missing.error["message"] == "missing X-Signature header"
    malformed = deliver(anon_api, hooked, {}, signature="sha256=abc")
    assert malformed.status == 401 and "malformed" in malformed.error["message"]


def test_a_replayed_idempotency_key_returns_the_same_run(anon_api, hooked):
    first = deliver(anon_api, hooked, {"n": 1}, key="delivery-1")
    again = deliver(anon_api, hooked, {"n": 2}, key="delivery-1")
    assert (first.status, again.status) == (202, 200)
    assert again.body == {"delivery": again.body["delivery"], "outcome": "duplicate",
                          "run": first.body["id"]}
    assert first.body["created"] is True
    assert Run.objects.get().idempotency_key == "webhook:delivery-1"
    assert Run.objects.get().trigger_delivery_id == first.body["delivery"]


def _signed(flow, payload, timestamp=None):
    body = json.dumps(payload).encode()
    return body, webhook_sign(secret=flow.webhook_signing_secret(), body=body,
                              timestamp=timestamp)


def test_a_replayed_signature_without_idempotency_key_is_a_409(anon_api, hooked):
    body, signature = _signed(hooked, {"n": 1})
    first = anon_api.post("/hooks/hooked", raw=body, headers={"X-Signature": signature})
    assert first.status == 202
    replay = anon_api.post("/hooks/hooked", raw=body, headers={"X-Signature": signature})
    assert replay.status == 409 and replay.error["code"] == "signature_replayed"
    # An attacker cannot get around it by adding an (unsigned) Idempotency-Key either.
    keyed = anon_api.post("/hooks/hooked", raw=body,
                          headers={"X-Signature": signature, "Idempotency-Key": "fresh"})
    assert keyed.status == 409 and keyed.error["code"] == "signature_replayed"
    assert Run.objects.count() == 1
    # A new delivery (another body, or signed anew) is a new run.
    assert deliver(anon_api, hooked, {"n": 2}).status == 202
    assert Run.objects.count() == 2


def test_the_senders_retry_with_the_same_key_and_signature_gets_the_original_run(anon_api,
                                                                                 hooked):
    body, signature = _signed(hooked, {"n": 1})
    headers = {"X-Signature": signature, "Idempotency-Key": "d-1"}
    first = anon_api.post("/hooks/hooked", raw=body, headers=headers)
    again = anon_api.post("/hooks/hooked", raw=body, headers=headers)
    assert (first.status, again.status) == (202, 200)
    assert again.body["run"] == first.body["id"] and again.body["outcome"] == "duplicate"
    stripped = anon_api.post("/hooks/hooked", raw=body, headers={"X-Signature": signature})
    assert stripped.status == 409
    assert Run.objects.count() == 1


def test_a_refused_delivery_leaves_its_signature_unused(anon_api, hooked):
    body, signature = _signed(hooked, {"input": {"repo": 5}})
    assert anon_api.post("/hooks/hooked", raw=body,
                         headers={"X-Signature": signature}).status == 422
    again = anon_api.post("/hooks/hooked", raw=body, headers={"X-Signature": signature})
    assert again.status == 422  # not a replay: the first one started nothing
    assert list(WebhookDelivery.objects.values_list("outcome", "replay_digest")) == [
        ("invalid", None), ("invalid", None)]


def test_a_flow_without_a_webhook_trigger_is_a_404(anon_api, flow):
    response = deliver(anon_api, flow, {})
    assert response.status == 404
    assert anon_api.post("/hooks/no-such-flow", {}).status == 404


def test_the_webhook_trigger_must_be_in_the_live_release(anon_api, as_user, flow):
    as_user("builder").put("/flows/simple/draft", {
        "definition": simple_definition("simple", triggers=[{"type": "webhook"}])})
    assert deliver(anon_api, flow, {}).status == 404


def test_bad_webhook_bodies_are_4xx(anon_api, hooked):
    secret = hooked.webhook_signing_secret()
    body = b"not json"
    response = anon_api.post("/hooks/hooked", raw=body, content_type="text/plain",
                             headers={"X-Signature": webhook_sign(secret=secret, body=body)})
    assert response.status == 400
    wrong_input = deliver(anon_api, hooked, {"input": {"repo": 5}})
    assert wrong_input.status == 422 and wrong_input.error["code"] == "input_invalid"
    not_object = deliver(anon_api, hooked, {"input": [1]})
    assert not_object.status == 422
    assert not Run.objects.exists()


def test_a_non_finite_number_in_a_webhook_body_is_a_400(anon_api, hooked):
    body = b'{"input": {"repo": "core"}, "size": 1e400}'
    headers = {"X-Signature": webhook_sign(secret=hooked.webhook_signing_secret(), body=body)}
    response = anon_api.post("/hooks/hooked", raw=body, headers=headers)
    assert response.status == 400 and response.error["code"] == "bad_request"
    assert "too large" in response.error["message"]
    assert not Run.objects.exists()


def test_a_rotated_secret_refuses_the_old_one(anon_api, as_user, hooked):
    old = hooked.webhook_signing_secret()
    new = as_user("operator").post("/flows/hooked/webhook-secret").body["webhook_secret"]
    assert deliver(anon_api, hooked, {}, secret=old).status == 401
    assert deliver(anon_api, hooked, {}, secret=new).status == 202


def test_webhook_verify_reasons():
    body, secret, now = b'{"a":1}', "s3cret", 1_700_000_000
    header = webhook_sign(secret=secret, body=body, timestamp=now)
    assert webhook_verify(secret=secret, body=body, header=header, now=now) == now
    assert webhook_verify(secret=secret, body=body, header=f"{header},v1=00ff", now=now) == now
    cases = {
        None: "missing",
        "t=abc,v1=00": "malformed",
        f"t={now}": "malformed",
        header: "tolerance",
        header.replace("v1=", "v1=0"): "does not match",
    }
    for value, reason in cases.items():
        at = now + 1000 if reason == "tolerance" else now
        with pytest.raises(WebhookSignatureInvalid, match=reason):
            webhook_verify(secret=secret, body=body, header=value, now=at)
    with pytest.raises(WebhookSignatureInvalid, match="does not match"):
        webhook_verify(secret=secret, body=body + b" ", header=header, now=now)


def test_a_large_or_odd_payload_is_kept_as_a_resource_of_its_run(anon_api, hooked):
    payload = {"event": "push", "blob": "z" * 200_000, "odd": "nul\u0000", "repo": "web"}
    response = deliver(anon_api, hooked, payload)
    assert response.status == 202, response.body
    run = Run.objects.get(pk=response.body["id"])
    assert run.input == {"repo": "web"}
    assert is_descriptor(run.trigger_payload) and value_load(run.trigger_payload) == payload
    kept = Resource.objects.get(pk=run.trigger_payload["$resource"].removeprefix("res://"))
    assert kept.run_id == run.pk  # attached: pruned with its run
    # A repeated delivery (the sender's retry: same signature, same Idempotency-Key) starts
    # nothing and keeps nothing. Signed at another second than the delivery above, or it would
    # be a replay of it.
    before = Resource.objects.count()
    signed_at = int(time.time()) - 5
    again = deliver(anon_api, hooked, payload, key="same", timestamp=signed_at)
    first = deliver(anon_api, hooked, payload, key="same", timestamp=signed_at)
    assert again.status == 202 and first.status == 200
    assert first.body["run"] == again.body["id"] and first.body["outcome"] == "duplicate"
    assert Resource.objects.count() == before + 1
    drain()
    run.refresh_from_db()
    assert run.status == "completed"


def test_an_input_the_database_cannot_store_is_a_422_naming_it(anon_api, hooked):
    response = deliver(anon_api, hooked, {"input": {"repo": "a\u0000b"}})
    assert response.status == 422 and response.body["error"]["details"][0]["path"] == "input.repo"
