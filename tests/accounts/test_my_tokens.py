"""API tokens for people who sign in with OpenID Connect: the admin's "API tokens" page creates
one for oneself (shown once), lists and revokes one's own, and the token works on the API."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.accounts.conftest import sign_in
from workflows.models import ApiToken
from workflows.services.tokens import api_token_create

pytestmark = pytest.mark.django_db

RAW = re.compile(r"<code data-token>(wf_[A-Za-z0-9_-]+)</code>")


def csrf(client: Client) -> str:
    client.get("/admin/tokens/")
    return client.cookies["csrftoken"].value


def test_a_user_signed_in_with_oidc_creates_an_api_token_shown_once(oidc):
    client = Client(enforce_csrf_checks=True)
    sign_in(client, oidc)
    user = User.objects.get(username="ada")
    assert not user.has_usable_password()
    page = client.get("/admin/tokens/")
    assert page.status_code == 200 and 'data-action="create-token"' in page.content.decode()
    assert 'data-link="my-tokens"' in page.content.decode()
    created = client.post("/admin/tokens/", {"name": "laptop", "csrfmiddlewaretoken": csrf(client)})
    assert created.status_code == 200 and "no-store" in created["Cache-Control"]
    raw = RAW.search(created.content.decode()).group(1)
    token = ApiToken.objects.get(user=user)
    assert token.name == "laptop" and raw not in str(ApiToken.objects.values().first())
    # Shown once: the page does not show it again.
    assert raw not in client.get("/admin/tokens/").content.decode()
    # It works on the API, as that user.
    api = Client().get("/api/v1/approvals?status=pending", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.status_code == 200
    # Revoke it: the API refuses it from then on.
    revoked = client.post(f"/admin/tokens/{token.pk}/revoke/",
                          {"csrfmiddlewaretoken": csrf(client)})
    assert revoked.status_code == 302
    api = Client().get("/api/v1/approvals?status=pending", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.status_code == 401


def test_a_token_needs_a_name_and_another_users_token_cannot_be_revoked(oidc):
    client = Client()
    sign_in(client, oidc)
    response = client.post("/admin/tokens/", {"name": "  "})
    assert response.status_code == 422 and "give the token a name" in response.content.decode()
    assert not ApiToken.objects.exists()
    other = User.objects.create_user("bob")
    token, _ = api_token_create(user=other, name="bob's")
    assert client.post(f"/admin/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post("/admin/tokens/%C2%B2/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert client.get("/admin/tokens/").content.decode().count("data-token-id") == 0
