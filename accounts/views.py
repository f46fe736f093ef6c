"""The sign-in pages: the admin's login page with "Sign in with …", and the two OpenID Connect
endpoints (mozilla-django-oidc's views with discovered endpoints and refusals shown as
messages on the login page instead of a bare 400).

- `login_context` (WorkflowsAdminSite.login): `a[data-sso]` when OIDC_ISSUER_URL is set, or a
  line saying the provider cannot be reached; the password form unless `WF_PASSWORD_LOGIN` is
  off (then only at `?password=1`, and only superusers may use it: `PasswordLoginForm`).
- `/oidc/authenticate/` starts a sign-in at the provider; `/oidc/callback/` finishes it. Both
  are 404 while OIDC_ISSUER_URL is unset.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts.oidc import OidcRefused, ProviderUnavailable, oidc_enabled, provider_metadata

logger = logging.getLogger(__name__)

NOT_STARTED_HERE = "this sign-in was not started here, or was already used"


class PasswordLoginForm(AdminAuthenticationForm):
    """The admin's form; with `WF_PASSWORD_LOGIN` off only superusers get through (those made
    with createsuperuser, who keep a way in when the provider is down)."""

    def confirm_login_allowed(self, user: Any) -> None:
        if not settings.WF_PASSWORD_LOGIN and not user.is_superuser:
            raise forms.ValidationError(
                "Password sign-in is turned off: sign in with %(label)s.",
                code="password_login_off", params={"label": settings.OIDC_LOGIN_LABEL})
        super().confirm_login_allowed(user)


def _login_url() -> str:
    return reverse("admin:login")


def login_context(request: HttpRequest) -> dict[str, Any]:
    """What the admin's login page adds to Django's (WorkflowsAdminSite.login): the SSO link
    (`sso_url`) or why the provider is unavailable (`sso_down`), and whether the password form
    shows."""
    context: dict[str, Any] = {
        "password_login": settings.WF_PASSWORD_LOGIN or request.GET.get("password") == "1"
        or request.method == "POST",
        "sso_label": settings.OIDC_LOGIN_LABEL,
    }
    if oidc_enabled():
        next_url = request.GET.get("next") or ""
        if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
            next_url = ""
        try:
            provider_metadata()
            start = reverse("oidc_authentication_init")
            context["sso_url"] = start + (f"?{urlencode({'next': next_url})}" if next_url else "")
        except ProviderUnavailable as exc:
            context["sso_down"] = str(exc)
    return context


def _refuse(request: HttpRequest, reason: str) -> HttpResponse:
    logger.warning("OpenID Connect sign-in refused: %s", reason)
    messages.error(request, f"Sign-in with {settings.OIDC_LOGIN_LABEL} was refused: {reason}.")
    return HttpResponseRedirect(_login_url())


class OidcLoginView(OIDCAuthenticationRequestView):
    """Redirect to the provider's authorization endpoint (from discovery) with state, nonce
    and a PKCE S256 challenge (the library's)."""

    def __init__(self, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponse:
        if not oidc_enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_metadata()["authorization_endpoint"]
        except ProviderUnavailable as exc:
            messages.error(request, f"Sign-in with {settings.OIDC_LOGIN_LABEL} is unavailable: "
                                    f"{exc}.")
            return HttpResponseRedirect(_login_url())
        return super().get(request)


class OidcCallbackView(OIDCAuthenticationCallbackView):
    """The provider's redirect back: the library exchanges the code and checks the ID token;
    any refusal is a message on the login page and a log line naming the reason (never the
    code or a token)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not oidc_enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            return super().get(request)
        except OidcRefused as exc:
            return _refuse(request, str(exc))
        except SuspiciousOperation:
            return _refuse(request, NOT_STARTED_HERE)

    def login_failure(self) -> HttpResponse:
        request = self.request
        if request.GET.get("error"):
            reason = f"the provider answered {request.GET['error'][:100]}"
            if request.GET.get("error_description"):
                reason += f" ({request.GET['error_description'][:200]})"
        elif "code" in request.GET and "oidc_states" not in request.session:
            reason = NOT_STARTED_HERE
        elif getattr(self, "user", None) is not None and not self.user.is_active:
            reason = f"the account {self.user.get_username()} is inactive"
        else:
            reason = "the sign-in could not be completed"
        return _refuse(request, reason)

    @property
    def success_url(self) -> str:
        next_url = self.request.session.get("oidc_login_next")
        return next_url or reverse("admin:index")
