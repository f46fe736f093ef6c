"""Reviewers where they are, in headless Chromium: deciding from the email's link without a
session, and signing in with OpenID Connect against a real provider on loopback."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.core.cache import cache

from approvals.models import Approval, ApprovalStatus
from tests.accounts.provider import Provider
from tests.factories import approval_definition, drain, start
from workflows.models import Event

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_decides_from_the_email_link_without_signing_in(page, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    rita = User.objects.create_user("rita", email="rita@example.com")
    rita.groups.add(Group.objects.get(name="reviewers"))
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    run = start(approval_definition())
    drain()
    (message,) = [m for m in mail.outbox if m.to == ["rita@example.com"]]
    approve_url = re.search(r"Approve: (\S+)", message.body).group(1)
    assert approve_url.startswith(live_server.url)

    page.goto(approve_url)
    assert page.locator("[data-section=instructions]").inner_text().strip() == "Ship a.tgz?"
    assert page.locator("[data-action=reject]").is_visible()
    assert Approval.objects.get(run=run).status == ApprovalStatus.PENDING  # opening decided nothing
    page.fill("textarea[name=comment]", "looks right")
    page.click("[data-action=approve]")
    page.wait_for_selector("[data-done]")
    assert page.locator("[data-decider]").inner_text() == "rita"
    assert page.locator("[data-action=approve]").count() == 0
    approval = Approval.objects.get(run=run)
    assert approval.status == ApprovalStatus.APPROVED and approval.comment == "looks right"
    assert Event.objects.get(run=run, kind="approval_approved").data["via"] == "email"

    # The same link again: it says who decided, and offers nothing to press.
    response = page.goto(approve_url)
    assert response.status == 409
    assert page.locator("[data-decider]").inner_text() == "rita"
    assert page.locator("button").count() == 0
    assert violations == []


def test_signing_in_with_the_provider_from_the_login_page(page, live_server, settings):
    provider = Provider()
    try:
        cache.clear()
        provider.user = {"sub": "u-7", "email": "grace@example.com",
                         "preferred_username": "grace", "groups": ["reviewers", "wf-staff"]}
        settings.OIDC_ISSUER_URL = provider.issuer
        settings.OIDC_CLIENT_ID = settings.OIDC_RP_CLIENT_ID = provider.client_id
        settings.OIDC_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET = provider.client_secret
        settings.OIDC_STAFF_GROUP = "wf-staff"
        settings.OIDC_LOGIN_LABEL = "Acme SSO"
        settings.AUTHENTICATION_BACKENDS = ["accounts.oidc.OidcBackend",
                                            "django.contrib.auth.backends.ModelBackend"]
        settings.WF_PASSWORD_LOGIN = False
        page.goto(f"{live_server.url}/admin/login/")
        assert page.locator("#login-form").count() == 0
        link = page.locator("a[data-sso]")
        assert link.inner_text().strip() == "Sign in with Acme SSO"
        link.click()
        page.wait_for_selector("#user-tools")
        assert "grace" in page.locator("#user-tools").inner_text().lower()
        assert page.url.rstrip("/").endswith("/admin")
        page.click("[data-link=my-tokens]")
        page.fill("input[name=name]", "cli")
        page.click("[data-action=create-token]")
        assert page.locator("[data-token]").inner_text().startswith("wf_")
        user = User.objects.get(username="grace")
        assert user.is_staff and list(user.groups.values_list("name", flat=True)) \
            == ["reviewers", "wf-staff"]
    finally:
        cache.clear()
        provider.close()
