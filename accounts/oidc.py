"""Sign-in with OpenID Connect, on mozilla-django-oidc (docs/architecture.md "Sign-in").

What the library does: the authorization code flow with PKCE (S256) and a nonce, state kept in
the session, the code exchanged at the token endpoint, the ID token's RS256 signature checked
against the provider's JWKS. What this module adds:

- **Discovery.** The endpoints come from `OIDC_ISSUER_URL/.well-known/openid-configuration`,
  read when a sign-in needs them and cached (`DISCOVERY_TTL`), never at start: a provider that
  is down must not stop the site, only make the login page say so (`ProviderUnavailable`). The
  document's `issuer` must be the configured one.
- **Claims checked.** Besides signature and nonce: audience (our client id), issuer, expiry and
  issue time are required and verified (with a minute's leeway). Each refusal is an
  `OidcRefused` whose message names the reason, never the token; the callback view shows and
  logs that message.
- **Users by `sub`.** A user is found by (issuer, sub) in `OidcIdentity`, never by email; the
  first sign-in creates the account (no usable password). At every sign-in the email and names
  follow the claims, the groups in `OIDC_GROUPS_CLAIM` become the user's Django groups (so
  assignees by group follow the directory), and `OIDC_STAFF_GROUP` / `OIDC_ADMIN_GROUP` set
  is_staff / is_superuser — for accounts linked to the provider only.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts.models import OidcIdentity

logger = logging.getLogger(__name__)

DISCOVERY_TTL = 300
DISCOVERY_FAILURE_TTL = 15
DISCOVERY_TIMEOUT = 5.0
LEEWAY_SECONDS = 60
REQUIRED_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "jwks_uri")
USERNAME_CHARS = re.compile(r"[^\w.@+-]")


class ProviderUnavailable(Exception):
    """The provider's discovery document cannot be read (down, unreachable, or invalid)."""


class OidcRefused(Exception):
    """A sign-in refused; the message says why for the page and the log, never a token."""


def oidc_enabled() -> bool:
    return bool(settings.OIDC_ISSUER_URL)


def _cache_key() -> str:
    return f"wf:oidc:discovery:{settings.OIDC_ISSUER_URL}"


def provider_metadata() -> dict[str, Any]:
    """The issuer's discovery document (cached). Raises ProviderUnavailable, itself cached for
    a few seconds so a login page does not wait on a dead provider at every load."""
    cached = cache.get(_cache_key())
    if isinstance(cached, dict):
        if "error" in cached:
            raise ProviderUnavailable(cached["error"])
        return cached
    issuer = settings.OIDC_ISSUER_URL
    try:
        response = requests.get(f"{issuer}/.well-known/openid-configuration",
                                timeout=DISCOVERY_TIMEOUT)
        response.raise_for_status()
        metadata = response.json()
        if not isinstance(metadata, dict):
            raise ValueError("the discovery document is not a JSON object")
        if str(metadata.get("issuer", "")).rstrip("/") != issuer:
            raise ValueError(f"the discovery document names issuer {metadata.get('issuer')!r}")
        missing = [k for k in REQUIRED_ENDPOINTS if not metadata.get(k)]
        if missing:
            raise ValueError(f"the discovery document lacks {', '.join(missing)}")
    except (requests.RequestException, ValueError) as exc:
        reason = _network_reason(exc)
        logger.warning("OpenID Connect provider %s unavailable: %s", issuer, reason)
        cache.set(_cache_key(), {"error": reason}, DISCOVERY_FAILURE_TTL)
        raise ProviderUnavailable(reason) from None
    cache.set(_cache_key(), metadata, DISCOVERY_TTL)
    return metadata


def _network_reason(exc: Exception) -> str:
    if isinstance(exc, requests.ConnectionError):
        return "the provider cannot be reached"
    if isinstance(exc, requests.Timeout):
        return "the provider did not answer in time"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"the provider answered HTTP {exc.response.status_code}"
    return str(exc)[:300]


class OidcBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with discovered endpoints, full ID token checks and users
    matched by `sub`. Only the OIDC callback reaches it (with a nonce); a password sign-in
    passes to ModelBackend untouched."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Not the library's __init__: it wants the endpoints as settings, known at start.
        self.UserModel = get_user_model()
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = "RS256"
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.OIDC_OP_TOKEN_ENDPOINT = self.OIDC_OP_USER_ENDPOINT = None
        self.OIDC_OP_JWKS_ENDPOINT = None

    def authenticate(self, request: Any, **kwargs: Any) -> Any:
        if (request is None or "nonce" not in kwargs or not oidc_enabled()
                or not request.GET.get("code") or not request.GET.get("state")):
            return None
        try:
            metadata = provider_metadata()
        except ProviderUnavailable as exc:
            raise OidcRefused(str(exc)) from None
        self.OIDC_OP_TOKEN_ENDPOINT = metadata["token_endpoint"]
        self.OIDC_OP_JWKS_ENDPOINT = metadata["jwks_uri"]
        self.OIDC_OP_USER_ENDPOINT = metadata.get("userinfo_endpoint")
        try:
            return super().authenticate(request, **kwargs)
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            raise OidcRefused(f"the provider refused the sign-in code (HTTP {status})") from None
        except requests.RequestException as exc:
            raise OidcRefused(_network_reason(exc)) from None
        except SuspiciousOperation as exc:
            raise OidcRefused(_suspicious_reason(exc)) from None

    def _verify_jws(self, payload: Any, key: Any) -> dict[str, Any]:
        """Signature (RS256 only, the key from the JWKS), audience, issuer, expiry and issue
        time; each failure named."""
        try:
            header = jwt.get_unverified_header(payload)
        except jwt.PyJWTError:
            raise OidcRefused("the ID token is not a JWT") from None
        if header.get("alg") != "RS256":
            raise OidcRefused(f"the ID token is signed with {header.get('alg')!r}, not RS256")
        try:
            return jwt.decode(
                payload, key, algorithms=["RS256"], audience=settings.OIDC_CLIENT_ID,
                issuer=settings.OIDC_ISSUER_URL, leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.InvalidSignatureError:
            raise OidcRefused("the ID token's signature does not verify") from None
        except jwt.ExpiredSignatureError:
            raise OidcRefused("the ID token has expired") from None
        except jwt.InvalidAudienceError:
            raise OidcRefused("the ID token is for another client (wrong audience)") from None
        except jwt.InvalidIssuerError:
            raise OidcRefused("the ID token comes from another issuer") from None
        except jwt.PyJWTError as exc:
            raise OidcRefused(f"the ID token is not valid ({type(exc).__name__})") from None

    def get_userinfo(self, access_token: Any, id_token: Any, payload: dict[str, Any]) -> dict:
        """The claims are the ID token's: signed and checked above (put the groups claim in
        the ID token: docs/operations.md)."""
        return payload

    def get_or_create_user(self, access_token: Any, id_token: Any,
                           payload: dict[str, Any]) -> Any:
        return oidc_user_sign_in(issuer=settings.OIDC_ISSUER_URL, claims=payload)


def _suspicious_reason(exc: SuspiciousOperation) -> str:
    text = str(exc)
    if "Nonce" in text:
        return "the ID token's nonce does not match this sign-in"
    if "JWKS" in text:
        return "no key of the provider's JWKS matches the ID token"
    return text[:300]


def _groups(claims: dict[str, Any]) -> list[str]:
    value = claims.get(settings.OIDC_GROUPS_CLAIM)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    names = []
    for item in value:
        name = str(item).strip()[:150]
        if name and name not in names:
            names.append(name)
    return names


def _new_username(claims: dict[str, Any]) -> str:
    """preferred_username, else the email's local part, else from `sub`; made unique with a
    suffix (an existing account of that name is never taken over)."""
    base = (claims.get("preferred_username") or str(claims.get("email") or "").split("@")[0]
            or f"oidc-{claims['sub']}")
    base = USERNAME_CHARS.sub("-", str(base))[:140] or "oidc-user"
    users = get_user_model().objects
    name, n = base, 1
    while users.filter(username__iexact=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def oidc_user_sign_in(*, issuer: str, claims: dict[str, Any]) -> Any:
    """The user of (issuer, sub), created at the first sign-in; email, names, groups and the
    staff and superuser flags updated from the claims, in one transaction."""
    subject = str(claims.get("sub") or "")
    if not subject or len(subject) > 255:
        raise OidcRefused("the ID token names no usable subject (sub)")
    groups = _groups(claims)
    with transaction.atomic():
        identity = (OidcIdentity.objects.select_for_update().select_related("user")
                    .filter(issuer=issuer, subject=subject).first())
        if identity is None:
            user = get_user_model().objects.create_user(_new_username(claims))
            user.set_unusable_password()
            identity = OidcIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        user = identity.user
        user.email = str(claims.get("email") or user.email)[:254]
        user.first_name = str(claims.get("given_name") or user.first_name)[:150]
        user.last_name = str(claims.get("family_name") or user.last_name)[:150]
        admin_group, staff_group = settings.OIDC_ADMIN_GROUP, settings.OIDC_STAFF_GROUP
        user.is_superuser = bool(admin_group and admin_group in groups)
        user.is_staff = user.is_superuser or bool(staff_group and staff_group in groups)
        user.save()
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
        OidcIdentity.objects.filter(pk=identity.pk).update(last_sign_in_at=timezone.now())
    return user
