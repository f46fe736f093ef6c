"""The delivery log (GET /flows/{slug}/deliveries), redelivery, the sender's secret (PUT), and
the definition checks of a webhook trigger."""

import json
import time

import pytest

from tests.factories import make_flow, simple_definition
from workflows.models import FlowHistory, Run, WebhookDelivery
from workflows.services.webhooks import webhook_sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def hooked(db):
    return make_flow(simple_definition(
        "hooked", triggers=[{"type": "webhook", "when": 'body.event == "push"',
                             "input": {"repo": "{{ webhook.body.repo }}"}}],
        input={"repo": {"type": "string", "required": True}},
        steps=[{"key": "echo", "type": "python", "action": "core.echo"}]))


def deliver(api, flow, payload, *, event="push", key=None, secret=None):
    body = json.dumps({"event": event, **payload}).encode()
    headers = {"X-Signature": webhook_sign(secret=secret or flow.webhook_signing_secret(),
                                           body=body)}
    if key:
        headers["Idempotency-Key"] = key
    return api.post(f"/hooks/{flow.slug}", raw=body, headers=headers)


def test_the_log_lists_every_outcome_newest_first_with_a_cursor(anon_api, as_user, db):
    flow = make_flow(simple_definition(
        "logged", triggers=[{"type": "webhook", "when": 'body.event == "push"',
                             "input": {"repo": "{{ webhook.body.repo }}"}}],
        input={"repo": {"type": "string", "required": True}},
        steps=[{"key": "echo", "type": "python", "action": "core.echo"}]))
    started = deliver(anon_api, flow, {"repo": "a"}, key="k1")
    assert started.status == 202
    assert deliver(anon_api, flow, {"repo": "a"}, key="k1").body["outcome"] == "duplicate"
    assert deliver(anon_api, flow, {"repo": "a"}, event="tag").body["outcome"] == "filtered"
    assert deliver(anon_api, flow, {}).status == 422
    assert deliver(anon_api, flow, {"repo": "a"}, secret="forged-secret-0000").status == 401
    support = as_user("support")
    page = support.get("/flows/logged/deliveries", limit=3)
    assert page.status == 200
    assert [d["outcome"] for d in page.body["items"]] == ["rejected", "invalid", "filtered"]
    rest = support.get("/flows/logged/deliveries", cursor=page.body["next_cursor"])
    assert [d["outcome"] for d in rest.body["items"]] == ["duplicate", "started"]
    first = rest.body["items"][-1]
    assert first == {"id": started.body["delivery"], "received_at": first["received_at"],
                     "verify": "signature", "event": "", "delivery_id": "k1",
                     "outcome": "started", "reason": "", "run": started.body["id"]}
    only = support.get("/flows/logged/deliveries", outcome="filtered").body["items"]
    assert [d["reason"] for d in only] == ["when is false"]
    bad = support.get("/flows/logged/deliveries", outcome="lost")
    assert bad.status == 422
    assert as_user("nobody").get("/flows/logged/deliveries").status == 403


def test_listing_deliveries_costs_the_same_for_many(as_user, hooked,
                                                    django_assert_max_num_queries):
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(flow=hooked, outcome="filtered", reason="x") for _ in range(60))
    support = as_user("support")
    support.get("/flows/hooked/deliveries")
    with django_assert_max_num_queries(4):
        assert len(support.get("/flows/hooked/deliveries").body["items"]) == 50


def test_redeliver_starts_a_new_run_on_the_live_release(anon_api, as_user, hooked):
    filtered = deliver(anon_api, hooked, {"repo": "web"}, event="tag")
    assert filtered.body["outcome"] == "filtered"
    delivery = filtered.body["delivery"]
    operator = as_user("operator")
    response = operator.post(f"/flows/hooked/deliveries/{delivery}/redeliver")
    assert response.status == 201, response.body
    assert response.body["trigger"]["delivery"] == delivery
    assert response.body["input"] == {"repo": "web"}
    run = Run.objects.get(pk=response.body["id"])
    assert run.trigger_kind == "webhook" and run.trigger_actor == "operator"
    assert as_user("support").get(f"/runs/{run.pk}").body["trigger"]["delivery"] == delivery
    assert as_user("support").post(f"/flows/hooked/deliveries/{delivery}/redeliver"
                                   ).status == 403
    assert operator.post("/flows/hooked/deliveries/999999/redeliver").status == 404


def test_a_rejected_delivery_cannot_be_redelivered(anon_api, as_user, hooked):
    deliver(anon_api, hooked, {"repo": "web"}, secret="forged-secret-0000")
    rejected = WebhookDelivery.objects.get()
    response = as_user("operator").post(f"/flows/hooked/deliveries/{rejected.pk}/redeliver")
    assert response.status == 409 and "keeps no body" in response.error["message"]


def test_put_sets_the_senders_secret_and_records_it(anon_api, as_user, hooked):
    operator = as_user("operator")
    response = operator.put("/flows/hooked/webhook-secret", {"secret": "typed-into-github-1"})
    assert response.status == 200
    assert response.body == {"set": True, "webhook_url": response.body["webhook_url"]}
    assert "typed-into-github-1" not in json.dumps(response.body)
    assert deliver(anon_api, hooked, {"repo": "a"}, secret="typed-into-github-1").status == 202
    entry = FlowHistory.objects.filter(flow=hooked).first()
    assert (entry.kind, entry.data, entry.actor_name) == (
        "webhook_secret_rotated", {"source": "set"}, "operator")
    history = operator.get("/flows/hooked/history").body["items"][0]
    assert "typed-into-github-1" not in json.dumps(history)
    rotated = operator.post("/flows/hooked/webhook-secret").body["webhook_secret"]
    assert FlowHistory.objects.filter(flow=hooked).first().data == {"source": "random"}
    assert deliver(anon_api, hooked, {"repo": "b"}, secret="typed-into-github-1").status == 401
    assert deliver(anon_api, hooked, {"repo": "b"}, secret=rotated).status == 202


@pytest.mark.parametrize("secret, message", [
    ("short", "16 to 256"),
    ("x" * 257, "16 to 256"),
    ("has spaces in it, sadly", "printable ASCII"),
    ("whsec_not*base64*at*all!!", "base64"),
    (12345678901234567, None),
])
def test_put_refuses_unusable_secrets(as_user, hooked, secret, message):
    response = as_user("operator").put("/flows/hooked/webhook-secret", {"secret": secret})
    assert response.status == 422
    if message:
        assert response.error["details"] == [{"path": "secret", "message":
                                              response.error["details"][0]["message"]}]
        assert message in response.error["details"][0]["message"]
    assert not FlowHistory.objects.filter(flow=hooked, kind="webhook_secret_rotated").exists()


def test_only_operators_set_the_secret(as_user, hooked):
    assert as_user("support").put("/flows/hooked/webhook-secret",
                                  {"secret": "0123456789abcdef"}).status == 403
    assert as_user("builder").put("/flows/hooked/webhook-secret",
                                  {"secret": "0123456789abcdef"}).status == 403


@pytest.mark.parametrize("trigger, path, message", [
    ({"verify": "bitbucket"}, "triggers[0].verify", "unknown verify preset"),
    ({"when": "body.action =="}, "triggers[0].when", "not valid CEL"),
    ({"events": []}, "triggers[0].events", "non-empty list"),
    ({"events": ["push"]}, "triggers[0].events", "name no event"),
    ({"verify": "github", "events": "push"}, "triggers[0].events", "non-empty list"),
    ({"input": {"repo": "{{ input.repo }}"}}, "triggers[0].input.repo", "webhook.body"),
    ({"input": {"nope": "{{ webhook.body.x }}"}}, "triggers[0].input.nope", "unknown input"),
    ({"input": {}}, "triggers[0].input.repo", "required"),
    ({"input": {"repo": 5}}, "triggers[0].input.repo", "must be a string"),
    ({"secret": "x"}, "triggers[0].secret", "unknown field"),
])
def test_a_bad_webhook_trigger_is_a_422_at_draft_time_naming_its_path(as_user, trigger, path,
                                                                       message):
    definition = simple_definition("drafted", triggers=[{"type": "webhook", **trigger}],
                                   input={"repo": {"type": "string", "required": True}})
    response = as_user("builder").post("/flows", {"definition": definition})
    assert response.status == 422, response.body
    problems = {p["path"]: p["message"] for p in response.error["details"]}
    assert path in problems and message in problems[path], problems


def test_a_good_webhook_trigger_is_kept_as_written(as_user):
    trigger = {"type": "webhook", "verify": "github", "events": ["pull_request"],
               "when": 'body.action in ["opened", "synchronize"]',
               "input": {"repo": "{{ webhook.body.repository.full_name }}",
                         "title": "PR {{ webhook.body.number }} by {{ webhook.headers.x-user }}"}}
    definition = simple_definition("drafted", triggers=[trigger], input={
        "repo": {"type": "string", "required": True}, "title": {"type": "string"}})
    response = as_user("builder").post("/flows", {"definition": definition})
    assert response.status == 201, response.body
    draft = as_user("builder").get("/flows/drafted").body["draft"]["definition"]
    assert draft["triggers"] == [trigger]


def test_a_stale_delivery_is_refused_and_logged(anon_api, hooked):
    body = json.dumps({"event": "push", "repo": "a"}).encode()
    old = webhook_sign(secret=hooked.webhook_signing_secret(), body=body,
                       timestamp=int(time.time()) - 400)
    response = anon_api.post("/hooks/hooked", raw=body, headers={"X-Signature": old})
    assert response.status == 401 and "stale timestamp" in response.error["message"]
    assert WebhookDelivery.objects.get().reason.startswith("stale timestamp")


def test_a_started_delivery_is_redelivered_from_its_runs_payload(anon_api, as_user, hooked):
    started = deliver(anon_api, hooked, {"repo": "web"}, key="s-1")
    assert started.status == 202
    assert WebhookDelivery.objects.get().payload is None  # the run holds the body
    again = as_user("operator").post(
        f"/flows/hooked/deliveries/{started.body['delivery']}/redeliver")
    assert again.status == 201 and again.body["input"] == {"repo": "web"}
    assert again.body["id"] != started.body["id"]
    assert again.body["trigger"]["payload"] == {"event": "push", "repo": "web"}


def test_a_verify_of_the_wrong_type_is_a_422_not_a_500(as_user):
    definition = simple_definition("typed", triggers=[
        {"type": "webhook", "verify": [None], "events": [""], "when": 5}])
    response = as_user("builder").post("/flows", {"definition": definition})
    assert response.status == 422
    paths = {p["path"] for p in response.error["details"]}
    assert {"triggers[0].verify", "triggers[0].events", "triggers[0].when"} <= paths
