"""Sign-in with OpenID Connect against a real provider on loopback (tests/accounts/provider.py):
the whole authorization code flow with PKCE through the Django test client, real HTTP to the
provider's token endpoint and JWKS, users by `sub`, groups from the claim, the login page."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from accounts.models import OidcIdentity
from tests.accounts.conftest import BACKENDS, sign_in
from tests.conftest import free_port

pytestmark = pytest.mark.django_db

def messages_of(client: Client) -> str:
    return client.get("/admin/login/").content.decode()


def test_first_sign_in_creates_the_user_with_groups_and_staff_and_pkce(oidc):
    client = Client()
    response = sign_in(client, oidc, next_url="/admin/approvals/approval/")
    assert response.status_code == 302 and response["Location"] == "/admin/approvals/approval/"
    user = User.objects.get(oidc_identities__subject="u-1")
    assert user.username == "ada" and user.email == "ada@example.com"
    assert (user.first_name, user.last_name) == ("Ada", "Lovelace")
    assert user.is_staff and not user.is_superuser and not user.has_usable_password()
    assert sorted(user.groups.values_list("name", flat=True)) == ["reviewers", "wf-staff"]
    assert OidcIdentity.objects.get(user=user).issuer == oidc.issuer
    request = oidc.authorize_requests[-1]
    assert request["code_challenge_method"] == "S256" and len(request["code_challenge"]) >= 43
    assert request["nonce"] and request["state"]
    assert "openid" in request["scope"].split()
    # Signed in: the admin opens.
    assert client.get("/admin/").status_code == 200


def test_groups_follow_the_directory_at_every_sign_in(oidc):
    sign_in(Client(), oidc)
    oidc.user["groups"] = ["builders", "wf-admins"]
    sign_in(Client(), oidc)
    user = User.objects.get(username="ada")
    assert sorted(user.groups.values_list("name", flat=True)) == ["builders", "wf-admins"]
    assert user.is_superuser and user.is_staff
    oidc.user["groups"] = ["reviewers"]
    response = sign_in(Client(), oidc)
    user.refresh_from_db()
    assert not user.is_superuser and not user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == ["reviewers"]
    assert response.status_code == 302  # signed in; the admin then says it is not for them
    assert User.objects.filter(oidc_identities__isnull=False).count() == 1


def test_users_are_matched_by_sub_never_by_email(oidc):
    local = User.objects.create_user("ada", email="ada@example.com", password="pw")
    local.is_superuser = local.is_staff = True
    local.save()
    sign_in(Client(), oidc)
    sso = User.objects.get(oidc_identities__subject="u-1")
    assert sso.pk != local.pk and sso.username == "ada-2"
    local.refresh_from_db()
    assert local.is_superuser  # untouched
    # Same email, another subject: another user.
    oidc.user = {**oidc.user, "sub": "u-2"}
    sign_in(Client(), oidc)
    assert User.objects.filter(email="ada@example.com").count() == 3
    # The first subject again: the same user as before, whatever the email says now.
    oidc.user = {**oidc.user, "sub": "u-1", "email": "ada@new.example.com"}
    sign_in(Client(), oidc)
    sso.refresh_from_db()
    assert sso.email == "ada@new.example.com"
    assert User.objects.count() == 3


def test_an_approval_assignee_group_from_the_directory_can_decide(oidc):
    from approvals.models import Approval
    from approvals.services import approval_can_decide
    from tests.factories import approval_definition, drain, start

    run = start(approval_definition())  # assignees: group reviewers
    drain()
    sign_in(Client(), oidc)
    user = User.objects.get(username="ada")
    assert approval_can_decide(approval=Approval.objects.get(run=run), actor=user)


@pytest.mark.parametrize(("tamper", "reason"), [
    ("audience", "wrong audience"),
    ("signature", "signature does not verify"),
    ("expired", "has expired"),
    ("nonce", "nonce does not match"),
])
def test_a_bad_id_token_is_refused_with_a_message_and_logged_without_the_token(
        oidc, caplog, tamper, reason):
    oidc.tamper = tamper
    client = Client()
    with caplog.at_level(logging.WARNING):
        response = sign_in(client, oidc)
    assert response.status_code == 302 and response["Location"] == "/admin/login/"
    assert not User.objects.filter(oidc_identities__isnull=False).exists()
    assert "_auth_user_id" not in client.session
    page = messages_of(client)
    assert reason in page and "Acme SSO" in page
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert reason in logged
    token = oidc.issued_tokens[-1]
    assert token not in logged and token.split(".")[1] not in logged
    assert token not in page


def test_a_replayed_callback_is_refused(oidc):
    client = Client()
    start = client.get("/oidc/authenticate/")
    back = httpx.get(start["Location"], follow_redirects=False)
    location = urlsplit(back.headers["location"])
    query = dict(parse_qs(location.query))
    assert client.get(location.path, query).status_code == 302
    client.logout()
    again = client.get(location.path, query)
    assert again.status_code == 302 and again["Location"] == "/admin/login/"
    assert "not started here" in messages_of(client)
    assert "_auth_user_id" not in client.session


def test_the_provider_answering_an_error_is_a_message(oidc):
    client = Client()
    client.get("/oidc/authenticate/")
    state = client.session["oidc_states"]
    (value,) = state.keys()
    response = client.get("/oidc/callback/", {"error": "access_denied", "state": value,
                                              "error_description": "user said no"})
    assert response["Location"] == "/admin/login/"
    assert "access_denied" in messages_of(client)


def test_an_inactive_user_is_refused(oidc):
    sign_in(Client(), oidc)
    User.objects.filter(username="ada").update(is_active=False)
    client = Client()
    response = sign_in(client, oidc)
    assert response["Location"] == "/admin/login/"
    assert "inactive" in messages_of(client)
    assert "_auth_user_id" not in client.session


def test_the_login_page_has_the_sso_link_and_the_password_form(oidc):
    html = Client().get("/admin/login/?next=/admin/").content.decode()
    assert "data-sso" in html and "Sign in with Acme SSO" in html
    assert 'href="/oidc/authenticate/?next=%2Fadmin%2F"' in html
    assert 'id="login-form"' in html


def test_password_login_off_hides_the_form_and_keeps_it_for_superusers(oidc, settings):
    settings.WF_PASSWORD_LOGIN = False
    User.objects.create_superuser("root", password="pw")
    User.objects.create_user("staffer", password="pw", is_staff=True)
    html = Client().get("/admin/login/").content.decode()
    assert "data-sso" in html and 'id="login-form"' not in html
    html = Client().get("/admin/login/?password=1").content.decode()
    assert 'id="login-form"' in html
    client = Client()
    refused = client.post("/admin/login/?password=1",
                          {"username": "staffer", "password": "pw", "next": "/admin/"})
    assert refused.status_code == 200 and "Password sign-in is turned off" in \
        refused.content.decode()
    assert "_auth_user_id" not in client.session
    ok = client.post("/admin/login/?password=1",
                     {"username": "root", "password": "pw", "next": "/admin/"})
    assert ok.status_code == 302 and ok["Location"] == "/admin/"


def test_a_provider_that_is_down_is_said_and_the_password_form_still_works(settings):
    cache.clear()
    settings.OIDC_ISSUER_URL = f"http://127.0.0.1:{free_port()}"
    settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET = "workflows", "s3cret"
    settings.AUTHENTICATION_BACKENDS = BACKENDS
    settings.OIDC_LOGIN_LABEL = "Acme SSO"
    User.objects.create_user("staffer", password="pw", is_staff=True)
    client = Client()
    html = client.get("/admin/login/").content.decode()
    assert "data-sso-down" in html and "cannot be reached" in html
    assert 'href="/oidc/authenticate/' not in html and 'id="login-form"' in html
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302 and start["Location"] == "/admin/login/"
    ok = client.post("/admin/login/", {"username": "staffer", "password": "pw",
                                       "next": "/admin/"})
    assert ok.status_code == 302 and ok["Location"] == "/admin/"
    cache.clear()


def test_without_an_issuer_nothing_changes(settings):
    settings.OIDC_ISSUER_URL = ""
    html = Client().get("/admin/login/").content.decode()
    assert "data-sso" not in html and 'id="login-form"' in html
    assert Client().get("/oidc/authenticate/").status_code == 404
    assert Client().get("/oidc/callback/?code=x&state=y").status_code == 404
