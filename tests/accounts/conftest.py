"""A real OpenID Connect provider on loopback for the sign-in tests, and the settings that
point the site at it."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core.cache import cache
from django.test import Client

from tests.accounts.provider import Provider

BACKENDS = ["accounts.oidc.OidcBackend", "django.contrib.auth.backends.ModelBackend"]


@pytest.fixture(scope="module")
def provider():
    provider = Provider()
    yield provider
    provider.close()


@pytest.fixture
def oidc(provider, settings):
    cache.clear()
    provider.tamper = None
    provider.user = {"sub": "u-1", "email": "ada@example.com", "preferred_username": "ada",
                     "given_name": "Ada", "family_name": "Lovelace",
                     "groups": ["reviewers", "wf-staff"]}
    settings.OIDC_ISSUER_URL = provider.issuer
    settings.OIDC_CLIENT_ID = provider.client_id
    settings.OIDC_CLIENT_SECRET = provider.client_secret
    settings.OIDC_RP_CLIENT_ID = provider.client_id
    settings.OIDC_RP_CLIENT_SECRET = provider.client_secret
    settings.OIDC_STAFF_GROUP = "wf-staff"
    settings.OIDC_ADMIN_GROUP = "wf-admins"
    settings.OIDC_LOGIN_LABEL = "Acme SSO"
    settings.AUTHENTICATION_BACKENDS = BACKENDS
    yield provider
    cache.clear()


def sign_in(client: Client, provider: Provider, next_url: str = ""):
    """Start at our /oidc/authenticate/, follow the provider's redirect back, and return our
    callback's response."""
    start = client.get("/oidc/authenticate/" + (f"?next={next_url}" if next_url else ""))
    assert start.status_code == 302, start
    assert start["Location"].startswith(provider.issuer + "/authorize?")
    back = httpx.get(start["Location"], follow_redirects=False)
    assert back.status_code == 302
    location = urlsplit(back.headers["location"])
    assert location.path == "/oidc/callback/"
    return client.get(location.path, dict(parse_qs(location.query)))


