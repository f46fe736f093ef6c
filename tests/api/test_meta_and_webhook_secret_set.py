"""GET /meta (the server's version, anonymous), GET /me (who the caller is), and PUT
/flows/{slug}/webhook-secret (a secret chosen outside, never returned)."""

from __future__ import annotations

import pytest

from tests.api.test_webhooks import deliver
from tests.factories import make_flow, simple_definition
from workflows.api.meta import server_version
from workflows.models import FlowHistory, Run

pytestmark = pytest.mark.django_db


def test_meta_answers_the_server_and_api_versions_without_credentials(anon_api):
    response = anon_api.get("/meta")
    assert response.status == 200
    assert response.body == {"version": server_version(), "api": "1"}
    assert response.body["version"][0].isdigit()


def test_me_names_the_caller_with_roles_and_permissions(as_user, anon_api):
    operator = as_user("operator").get("/me")
    assert operator.status == 200
    assert operator.body["username"] == "operator" and operator.body["roles"] == ["operators"]
    assert operator.body["is_superuser"] is False
    assert "workflows.operate_run" in operator.body["permissions"]
    assert "workflows.edit_draft" not in operator.body["permissions"]
    admin = as_user("admin").get("/me").body
    assert admin["roles"] == ["admin"] and admin["is_superuser"] is True
    assert as_user("nobody").get("/me").body["roles"] == []
    refused = anon_api.get("/me")
    assert refused.status == 401 and refused.error["code"] == "unauthorized"


@pytest.fixture
def hooked(db):
    return make_flow(simple_definition("hooked", triggers=[{"type": "webhook"}]))


def test_an_operator_sets_the_webhook_secret_and_deliveries_follow_it(as_user, anon_api,
                                                                       hooked):
    old = hooked.webhook_signing_secret()
    chosen = "a-secret-the-sender-chose-4711"
    response = as_user("operator").put("/flows/hooked/webhook-secret", {"secret": chosen})
    assert response.status == 200, response.body
    assert set(response.body) == {"set", "webhook_url"} and response.body["set"] is True
    assert response.body["webhook_url"].endswith("/api/v1/hooks/hooked")
    assert chosen not in str(response.body)
    hooked.refresh_from_db()
    assert hooked.webhook_signing_secret() == chosen and chosen not in hooked.webhook_secret
    entry = FlowHistory.objects.get(flow=hooked, kind="webhook_secret_rotated")
    assert entry.actor_name == "operator"
    assert chosen not in str(entry.data) + entry.comment
    assert deliver(anon_api, hooked, {}, secret=old).status == 401
    assert deliver(anon_api, hooked, {}, secret=chosen).status == 202
    assert Run.objects.count() == 1


@pytest.mark.parametrize("secret, message", [
    ("short", "16 to 256 characters"),
    ("x" * 257, "16 to 256 characters"),
    ("tab\tinside-the-secret", "printable ASCII"),
    (" leading-space-secret", "printable ASCII"),
    ("whsec_not*base64*at*all", "base64"),
])
def test_an_unusable_secret_is_a_422_and_changes_nothing(as_user, hooked, secret, message):
    before = hooked.webhook_secret
    response = as_user("operator").put("/flows/hooked/webhook-secret", {"secret": secret})
    assert response.status == 422 and response.error["code"] == "validation_error"
    assert response.error["details"][0]["path"] == "secret"
    assert message in response.error["details"][0]["message"]
    hooked.refresh_from_db()
    assert hooked.webhook_secret == before
    assert not FlowHistory.objects.filter(kind="webhook_secret_rotated").exists()


def test_setting_the_secret_needs_the_operator_role_and_a_flow(as_user, hooked):
    body = {"secret": "a-secret-the-sender-chose-4711"}
    for role in ("builder", "support", "reviewer"):
        refused = as_user(role).put("/flows/hooked/webhook-secret", body)
        assert refused.status == 403 and refused.error["code"] == "forbidden"
    assert as_user("operator").put("/flows/nope/webhook-secret", body).status == 404
    assert as_user("operator").put("/flows/hooked/webhook-secret", {}).status == 422
    assert not FlowHistory.objects.filter(kind="webhook_secret_rotated").exists()


def test_events_after_an_id_gives_only_the_newer_ones(as_user):
    make_flow(simple_definition("evented"))
    api = as_user("operator")
    run = api.post("/flows/evented/runs", {"input": {}}).body
    every = api.get(f"/runs/{run['id']}/events").body["items"]
    assert len(every) >= 2
    newer = api.get(f"/runs/{run['id']}/events", after=every[0]["id"]).body
    assert [e["id"] for e in newer["items"]] == [e["id"] for e in every[1:]]
    assert api.get(f"/runs/{run['id']}/events", after=every[-1]["id"]).body["items"] == []
    assert api.get(f"/runs/{run['id']}/events", after=-1).status == 422
