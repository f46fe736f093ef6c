"""Authentication and throttling for the API.

Integrators send `Authorization: Bearer <token>`; the browser uses its session, with CSRF
checked on unsafe methods. Anonymous endpoints (callbacks, webhooks) are rate limited per client
address by WF_ANON_THROTTLE (default "120/m"; empty turns it off).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer
from ninja.security.apikey import APIKeyCookie
from ninja.throttling import AnonRateThrottle

from workflows.services.tokens import api_token_authenticate

DEFAULT_ANON_THROTTLE = "120/m"


class BearerTokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; a token that is presented but unknown, revoked or of an
    inactive user is a 401 (the session is not consulted then)."""

    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        user = api_token_authenticate(token.strip())
        if user is None:
            raise AuthenticationError(message="invalid or revoked API token")
        request.user = user
        return user


class SessionAuth(APIKeyCookie):
    """The Django session. CSRF is checked only when a session is actually logged in, so a
    request with neither a token nor a session gets a 401, not a CSRF 403."""

    param_name: str = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return super()._get_key(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.is_active:
            return user
        return None


class AnonThrottle(AnonRateThrottle):
    """AnonRateThrottle whose rate is read from settings.WF_ANON_THROTTLE on every request.

    Clients are told apart by REMOTE_ADDR: X-Forwarded-For is trusted only when
    NINJA_NUM_PROXIES says how many proxies stand in front (otherwise any client could dodge
    the limit by sending a made-up header)."""

    def __init__(self) -> None:
        super().__init__(rate=DEFAULT_ANON_THROTTLE)

    def get_ident(self, request: HttpRequest) -> str | None:
        if getattr(settings, "NINJA_NUM_PROXIES", None) is None:
            return request.META.get("REMOTE_ADDR")
        return super().get_ident(request)

    def allow_request(self, request: HttpRequest) -> bool:
        rate = getattr(settings, "WF_ANON_THROTTLE", DEFAULT_ANON_THROTTLE)
        if not rate:
            return True
        if rate != self.rate:
            self.rate = rate
            self.num_requests, self.duration = self.parse_rate(rate)
        return super().allow_request(request)
