"""Deliveries from each sender through /hooks/{slug}: verified, filtered, mapped onto the
declared inputs, deduplicated and logged (CONTRACT "Webhooks from any sender")."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from standardwebhooks import Webhook

from tests.factories import drain, make_flow, simple_definition
from workflows.models import Run, WebhookDelivery

pytestmark = pytest.mark.django_db

GITHUB_SECRET = "gh-secret-for-tests-0123"


def hex_hmac(secret, message):
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_flow(slug, trigger, inputs=None):
    flow = make_flow(simple_definition(
        slug, triggers=[{"type": "webhook", **trigger}],
        input=inputs or {"repo": {"type": "string"}, "pr": {"type": "integer"}},
        steps=[{"key": "echo", "type": "python", "action": "core.echo",
                "args": {"repo": "{{ input.repo }}"}}]))
    return flow


def set_secret(as_user, flow, secret):
    response = as_user("operator").put(f"/flows/{flow.slug}/webhook-secret", {"secret": secret})
    assert response.status == 200, response.body
    return secret


@pytest.fixture
def github(db, as_user):
    flow = webhook_flow("repo-events", {
        "verify": "github", "events": ["pull_request"],
        "when": 'body.action in ["opened", "synchronize"]',
        "input": {"repo": "{{ webhook.body.repository.full_name }}",
                  "pr": "{{ webhook.body.number }}"}})
    set_secret(as_user, flow, GITHUB_SECRET)
    return flow


def github_post(api, flow, payload, *, event="pull_request", delivery=None, secret=GITHUB_SECRET,
                form=False):
    raw = json.dumps(payload).encode()
    body = urlencode({"payload": raw.decode()}).encode() if form else raw
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "X-Hub-Signature-256": "sha256=" + hex_hmac(secret, body)}
    return api.post(f"/hooks/{flow.slug}", raw=body, headers=headers,
                    content_type="application/x-www-form-urlencoded" if form
                    else "application/json")


PR = {"action": "opened", "number": 42, "repository": {"full_name": "acme/core"},
      "sender": {"login": "octo"}}


def test_a_github_pull_request_starts_a_run_with_the_mapped_input(anon_api, github):
    response = github_post(anon_api, github, PR, delivery="gh-1")
    assert response.status == 202, response.body
    run = Run.objects.get(pk=response.body["id"])
    assert run.input == {"repo": "acme/core", "pr": 42}
    assert run.trigger_delivery_id == response.body["delivery"]
    assert run.idempotency_key == "webhook:gh-1"
    row = WebhookDelivery.objects.get(pk=response.body["delivery"])
    assert (row.outcome, row.verify, row.event, row.delivery_id, row.run_id) == (
        "started", "github", "pull_request", "gh-1", run.pk)
    drain()
    run.refresh_from_db()
    assert run.status == "completed" and run.output == {"repo": "acme/core"}


def test_a_github_form_body_carries_the_json_in_payload(anon_api, github):
    response = github_post(anon_api, github, PR, form=True)
    assert response.status == 202, response.body
    assert Run.objects.get().input == {"repo": "acme/core", "pr": 42}
    body = urlencode({"other": "x"}).encode()
    missing = anon_api.post("/hooks/repo-events", raw=body,
                            content_type="application/x-www-form-urlencoded",
                            headers={"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d",
                                     "X-Hub-Signature-256": "sha256=" + hex_hmac(GITHUB_SECRET,
                                                                                 body)})
    assert missing.status == 400 and "payload" in missing.error["message"]


def test_github_redeliver_signed_anew_is_a_duplicate(anon_api, github):
    first = github_post(anon_api, github, PR, delivery="gh-dup")
    # "Redeliver" sends the same delivery id; a sender may re-sign with a rotated secret.
    again = github_post(anon_api, github, {**PR, "resent": True}, delivery="gh-dup")
    assert (first.status, again.status) == (202, 200)
    assert again.body == {"delivery": again.body["delivery"], "outcome": "duplicate",
                          "run": first.body["id"]}
    assert Run.objects.count() == 1


def test_filtered_deliveries_answer_200_with_the_reason(anon_api, github):
    ping = github_post(anon_api, github, {"zen": "Keep it logically awesome."}, event="ping")
    assert ping.status == 200 and ping.body["outcome"] == "filtered"
    assert "not in events" in ping.body["reason"]
    closed = github_post(anon_api, github, {**PR, "action": "closed"})
    assert closed.body == {"delivery": closed.body["delivery"], "outcome": "filtered",
                           "reason": "when is false"}
    broken = github_post(anon_api, github, {"number": 1})
    assert broken.status == 200 and broken.body["reason"].startswith("when could not be")
    assert not Run.objects.exists()
    assert set(WebhookDelivery.objects.values_list("outcome", flat=True)) == {"filtered"}


def test_github_ping_is_filtered_unless_listed(anon_api, as_user):
    flow = webhook_flow("pings", {"verify": "github"})
    set_secret(as_user, flow, GITHUB_SECRET)
    ping = github_post(anon_api, flow, {"zen": "z"}, event="ping")
    assert ping.body["outcome"] == "filtered" and "ping" in ping.body["reason"]
    listed = webhook_flow("listed-pings", {"verify": "github", "events": ["ping"]})
    set_secret(as_user, listed, GITHUB_SECRET)
    assert github_post(anon_api, listed, {"zen": "z"}, event="ping").status == 202


def test_an_unresolvable_mapping_is_a_422_naming_the_path(anon_api, github):
    response = github_post(anon_api, github, {"action": "opened", "number": 1})
    assert response.status == 422
    assert response.error["details"][0]["path"] == "input.repo"
    assert "repository" in response.error["details"][0]["message"]
    row = WebhookDelivery.objects.get()
    assert row.outcome == "invalid" and row.payload == {"action": "opened", "number": 1}


@pytest.mark.parametrize("headers, reason", [
    ({}, "missing X-Hub-Signature-256"),
    ({"X-Hub-Signature-256": "garbage"}, "malformed"),
    ({"X-Hub-Signature-256": "sha256=" + hex_hmac("wrong-secret-000000", b"{}")},
     "does not match"),
])
def test_forged_github_deliveries_are_401_and_logged_without_their_body(anon_api, github,
                                                                         headers, reason):
    response = anon_api.post("/hooks/repo-events", raw=b"{}", headers={
        "X-GitHub-Event": "pull_request", **headers})
    assert response.status == 401 and response.error["code"] == "signature_invalid"
    assert reason in response.error["message"]
    row = WebhookDelivery.objects.get()
    assert (row.outcome, row.payload, row.headers) == ("rejected", None, {})
    assert reason in row.reason and not Run.objects.exists()


def test_rejected_rows_are_rate_limited_per_flow(anon_api, github, settings):
    settings.WF_WEBHOOK_REJECTED_PER_MINUTE = 3
    for _ in range(6):
        assert anon_api.post("/hooks/repo-events", raw=b"{}").status == 401
    assert WebhookDelivery.objects.filter(outcome="rejected").count() == 3


def test_gitlab_token_and_event_uuid(anon_api, as_user):
    flow = webhook_flow("gl", {"verify": "gitlab", "events": ["Merge Request Hook"],
                               "input": {"repo": "{{ webhook.body.project.path_with_namespace }}",
                                         "pr": "{{ webhook.body.object_attributes.iid }}"}})
    token = set_secret(as_user, flow, "gitlab-token-abcdef")
    payload = {"object_kind": "merge_request", "project": {"path_with_namespace": "g/p"},
               "object_attributes": {"iid": 7}}
    headers = {"X-Gitlab-Token": token, "X-Gitlab-Event": "Merge Request Hook",
               "X-Gitlab-Event-UUID": "gl-uuid-1"}
    first = anon_api.post("/hooks/gl", payload, headers=headers)
    assert first.status == 202 and Run.objects.get().input == {"repo": "g/p", "pr": 7}
    assert anon_api.post("/hooks/gl", payload, headers=headers).body["outcome"] == "duplicate"
    wrong = anon_api.post("/hooks/gl", payload, headers={**headers, "X-Gitlab-Token": "nope"})
    assert wrong.status == 401
    # The token is a credential: never kept with the delivery, never readable by a mapping.
    assert all("x-gitlab-token" not in row.headers for row in WebhookDelivery.objects.all())


def test_stripe_event_with_a_rolled_secret(anon_api, as_user):
    flow = webhook_flow("billing", {"verify": "stripe", "events": ["invoice.paid"],
                                    "input": {"repo": "{{ webhook.body.data.object.customer }}"}})
    secret = set_secret(as_user, flow, "whsec_" + "s" * 32)
    body = json.dumps({"id": "evt_1", "type": "invoice.paid",
                       "data": {"object": {"customer": "cus_9"}}}).encode()
    ts = int(time.time())
    header = f"t={ts},v1={hex_hmac('whsec_old_old_old_old', f'{ts}.'.encode() + body)}," \
             f"v1={hex_hmac(secret, f'{ts}.'.encode() + body)}"
    response = anon_api.post("/hooks/billing", raw=body, headers={"Stripe-Signature": header})
    assert response.status == 202, response.body
    assert Run.objects.get().input == {"repo": "cus_9", "pr": None}
    # Stripe's retry: a new signature, the same event id.
    later = f"t={ts + 1},v1={hex_hmac(secret, f'{ts + 1}.'.encode() + body)}"
    again = anon_api.post("/hooks/billing", raw=body, headers={"Stripe-Signature": later})
    assert again.body["outcome"] == "duplicate" and again.body["run"] == response.body["id"]
    stale = f"t={ts - 600},v1={hex_hmac(secret, f'{ts - 600}.'.encode() + body)}"
    refused = anon_api.post("/hooks/billing", raw=body, headers={"Stripe-Signature": stale})
    assert refused.status == 401 and "stale timestamp" in refused.error["message"]


def slack_headers(secret, body, ts=None):
    ts = ts or int(time.time())
    return {"X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": "v0=" + hex_hmac(secret, f"v0:{ts}:".encode() + body)}


def test_slack_url_verification_and_slash_commands(anon_api, as_user):
    flow = webhook_flow("chatops", {"verify": "slack", "input": {
        "repo": "{{ webhook.body.text }}"}}, inputs={"repo": {"type": "string"}})
    secret = set_secret(as_user, flow, "8f742231b10e8888abcd99yyyzzz85a5")
    challenge = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aB"}).encode()
    forged = anon_api.post("/hooks/chatops", raw=challenge,
                           headers=slack_headers("wrong-secret-000000", challenge))
    assert forged.status == 401  # the challenge is answered only after the signature verified
    answered = anon_api.post("/hooks/chatops", raw=challenge,
                             headers=slack_headers(secret, challenge))
    assert answered.status == 200 and answered.body == {"challenge": "3eZbrw1aB"}
    command = urlencode({"command": "/deploy", "text": "acme/core", "user_name": "rita"}).encode()
    response = anon_api.post("/hooks/chatops", raw=command,
                             content_type="application/x-www-form-urlencoded",
                             headers=slack_headers(secret, command))
    assert response.status == 202, response.body
    run = Run.objects.get()
    assert run.input == {"repo": "acme/core"}
    assert run.trigger_payload == {"command": "/deploy", "text": "acme/core", "user_name": "rita"}
    assert WebhookDelivery.objects.get(run=run).event == "/deploy"


def test_standard_webhooks_with_a_whsec_secret(anon_api, as_user):
    flow = webhook_flow("std", {"verify": "standard", "when": 'event == "user.created"',
                                "input": {"repo": "{{ webhook.delivery_id }}"}})
    key = base64.b64encode(b"standard-webhooks-key-bytes!").decode()
    secret = set_secret(as_user, flow, "whsec_" + key)
    body = json.dumps({"type": "user.created", "data": {}}).encode()
    now = int(time.time())
    signed = Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, tz=UTC), body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(now),
               "webhook-signature": f"v1,AAAA {signed}"}
    response = anon_api.post("/hooks/std", raw=body, headers=headers)
    assert response.status == 202, response.body
    assert Run.objects.get().input == {"repo": "msg_1", "pr": None}
    assert anon_api.post("/hooks/std", raw=body, headers=headers).body["outcome"] == "duplicate"


def test_bodies_that_are_not_json_or_too_large(anon_api, github, settings):
    body = b"not json"
    response = anon_api.post("/hooks/repo-events", raw=body, content_type="text/plain", headers={
        "X-GitHub-Event": "pull_request", "X-Hub-Signature-256": "sha256=" + hex_hmac(
            GITHUB_SECRET, body)})
    assert response.status == 400 and "not valid JSON" in response.error["message"]
    assert WebhookDelivery.objects.get().outcome == "invalid"
    settings.WF_INBOUND_MAX_BYTES = 100
    big = github_post(anon_api, github, {**PR, "pad": "x" * 200})
    assert big.status == 413
    assert not Run.objects.exists()


def test_a_filtered_or_duplicate_delivery_costs_at_most_three_queries(
        anon_api, github, django_assert_max_num_queries):
    github_post(anon_api, github, PR, delivery="warm")  # the release is cached per process
    with django_assert_max_num_queries(3):
        assert github_post(anon_api, github, {**PR, "action": "closed"}).status == 200
    with django_assert_max_num_queries(3):
        assert github_post(anon_api, github, PR, delivery="warm").body["outcome"] == "duplicate"


def test_a_run_keyed_before_the_delivery_log_makes_its_delivery_a_duplicate(anon_api, github):
    from workflows.services.runs import run_start

    older, _ = run_start(flow=github, input={"repo": "acme/core"}, idempotency_key="webhook:old-1")
    response = github_post(anon_api, github, PR, delivery="old-1")
    assert response.status == 200 and response.body["outcome"] == "duplicate"
    assert response.body["run"] == older.pk and Run.objects.count() == 1
    assert list(WebhookDelivery.objects.values_list("outcome", flat=True)) == ["duplicate"]


def test_a_body_that_looks_like_a_descriptor_never_loads_another_runs_resource(
        anon_api, as_user, github):
    from resources.services import resource_create

    victim = resource_create(content=b'{"repository": {"full_name": "victim/secret"}}',
                             content_type="application/json")
    forged = {**PR, "repository": {"$resource": f"res://{victim.pk}"}}
    response = github_post(anon_api, github, forged)
    # The mapping walks into the body as data: no key full_name there, nothing loaded.
    assert response.status == 422 and "victim" not in json.dumps(response.body)
    whole = {"$resource": f"res://{victim.pk}"}
    flow = webhook_flow("plain", {"verify": "github", "events": ["pull_request"]},
                        inputs={"repo": {"type": "string"}})
    set_secret(as_user, flow, GITHUB_SECRET)
    filtered = github_post(anon_api, flow, whole, event="push")
    assert filtered.body["outcome"] == "filtered"
    again = as_user("operator").post(
        f"/flows/plain/deliveries/{filtered.body['delivery']}/redeliver")
    assert again.status == 201
    assert again.body["trigger"]["payload"] == whole  # data, not the victim's content


def test_a_delivery_id_with_a_nul_is_a_400_not_a_500(anon_api, as_user):
    flow = webhook_flow("nul", {"verify": "stripe"})
    secret = set_secret(as_user, flow, "whsec_" + "n" * 32)
    body = json.dumps({"id": "evt_\u0000", "type": "x\u0000"}).encode()
    ts = int(time.time())
    response = anon_api.post("/hooks/nul", raw=body, headers={
        "Stripe-Signature": f"t={ts},v1={hex_hmac(secret, f'{ts}.'.encode() + body)}"})
    assert response.status == 400 and "NUL" in response.error["message"]
    assert WebhookDelivery.objects.get().outcome == "invalid"


def test_odd_bodies_are_kept_not_a_500(anon_api, github):
    odd = {**PR, "action": "closed", "note": "nul\u0000", "k\u0000": 1}
    response = github_post(anon_api, github, odd)
    assert response.status == 200 and response.body["outcome"] == "filtered"
    row = WebhookDelivery.objects.get()
    assert row.payload_resource_id is not None  # kept as a resource: PostgreSQL refuses NUL
    event = github_post(anon_api, github, PR, event="pull_request\u0000")
    assert event.status == 400
