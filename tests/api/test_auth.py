import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django.utils.crypto import get_random_string

from tests.api.conftest import ApiClient
from workflows.models import ApiToken
from workflows.services.tokens import (
    api_token_authenticate,
    api_token_create,
    api_token_revoke,
)

pytestmark = pytest.mark.django_db


def test_a_token_is_stored_only_as_its_hash_and_authenticates_its_user(users):
    token, raw = api_token_create(user=users["support"], name="laptop")
    assert len(raw) >= 43 and raw.startswith("wf_")
    assert raw not in token.token_hash and token.prefix == raw[:10]
    assert api_token_authenticate(raw) == users["support"]
    assert api_token_authenticate(raw + "x") is None
    assert api_token_authenticate("") is None


def test_authentication_records_last_use_at_most_once_a_minute(users):
    token, raw = api_token_create(user=users["support"])
    api_token_authenticate(raw)
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    api_token_authenticate(raw)
    token.refresh_from_db()
    assert token.last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    api_token_authenticate(raw)
    token.refresh_from_db()
    assert token.last_used_at > first - timedelta(minutes=2)


def test_revoked_tokens_and_inactive_users_are_refused(users):
    token, raw = api_token_create(user=users["support"])
    api_token_revoke(token=token)
    assert api_token_authenticate(raw) is None
    _, other = api_token_create(user=users["operator"])
    users["operator"].is_active = False
    users["operator"].save()
    assert api_token_authenticate(other) is None


def test_no_token_is_a_401(anon_api):
    response = anon_api.get("/flows")
    assert response.status == 401
    assert response.error["code"] == "unauthorized"
    assert "Bearer" in response.error["message"]


def test_a_wrong_token_is_a_401(users):
    response = ApiClient("wf_not-a-real-token").get("/flows")
    assert response.status == 401
    assert response.error == {"code": "unauthorized", "message": "invalid or revoked API token",
                              "details": []}


def test_a_revoked_token_is_a_401(users):
    token, raw = api_token_create(user=users["admin"])
    assert ApiClient(raw).get("/flows").status == 200
    api_token_revoke(token=token)
    assert ApiClient(raw).get("/flows").status == 401


def test_a_post_without_credentials_is_a_401_not_a_csrf_error(anon_api):
    response = anon_api.post("/flows", {"definition": {}})
    assert response.status == 401


def test_the_browser_session_works_and_unsafe_methods_need_csrf(users, flow):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["admin"])
    assert client.get("/api/v1/flows/simple").status_code == 200
    refused = client.post("/api/v1/flows/simple/runs", json.dumps({"input": {}}),
                          content_type="application/json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    csrf = get_random_string(32)  # what the CSRF cookie holds (unmasked)
    client.cookies["csrftoken"] = csrf
    accepted = client.post("/api/v1/flows/simple/runs", json.dumps({"input": {}}),
                           content_type="application/json", headers={"X-CSRFToken": csrf})
    assert accepted.status_code == 201


def test_create_api_token_prints_the_token_once(users):
    out = StringIO()
    call_command("create_api_token", "support", stdout=out)
    raw = json.loads(out.getvalue())["token"]
    assert api_token_authenticate(raw) == users["support"]
    assert ApiToken.objects.filter(user=users["support"]).count() == 1


def test_a_token_last_used_long_ago_still_works(users):
    token, raw = api_token_create(user=users["support"])
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now() - timedelta(days=30))
    assert ApiClient(raw).get("/flows").status == 200


def test_taking_a_permission_or_the_user_away_counts_from_the_next_request(as_user, users,
                                                                            flow):
    """Nothing about a token, its user or their permissions is kept between requests."""
    from django.contrib.auth.models import Group

    api = as_user("operator")
    assert api.post("/flows/simple/runs", {"input": {}}).status == 201
    users["operator"].groups.remove(Group.objects.get(name="operators"))
    refused = api.post("/flows/simple/runs", {"input": {}})
    assert refused.status == 403 and refused.error["code"] == "forbidden"
    users["operator"].groups.add(Group.objects.get(name="operators"))
    assert api.post("/flows/simple/runs", {"input": {}}).status == 201
    users["operator"].is_active = False
    users["operator"].save()
    assert api.post("/flows/simple/runs", {"input": {}}).status == 401
