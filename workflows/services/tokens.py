"""API tokens: create, authenticate, revoke.

A token is shown once, when it is created. Only its SHA-256 is stored (plus a short prefix so
people can tell their tokens apart); lookup is by that hash, and the stored hash is compared in
constant time as well.

Every API request authenticates, so the lookup (the token's row joined with its user's, one
indexed statement) is a `PreparedQuery`: compiled once per process, not per request. Nothing is
cached between requests: a revoked token, or a deactivated user, is refused by the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from workflows.errors import InputInvalid, NotFound, NotPermitted
from workflows.models import ApiToken
from workflows.prepared_queries import PreparedQuery, concrete_attnames

TOKEN_PREFIX = "wf_"
# 32 random bytes, urlsafe base64 (43 characters), after the "wf_" marker.
TOKEN_BYTES = 32
PREFIX_LENGTH = 10
# Longer input is refused before hashing: no real token is this long.
MAX_TOKEN_LENGTH = 200
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


_TOKEN_COLUMNS = ("pk", "token_hash", "revoked_at", "last_used_at")
_USER_MODEL = ApiToken._meta.get_field("user").related_model
_USER_COLUMNS = concrete_attnames(_USER_MODEL)
# The token (by its unique hash) and every column of its user, in one statement.
_token_with_user = PreparedQuery(
    ApiToken,
    lambda digest: ApiToken.objects.filter(token_hash=digest).order_by().values_list(
        *_TOKEN_COLUMNS, *(f"user__{name}" for name in _USER_COLUMNS)),
    sentinel=_digest("prepared query sentinel"),
)


def api_token_create(*, user: Any, name: str = "") -> tuple[ApiToken, str]:
    """Create a token for `user` and return it with the raw value, which is never stored and
    cannot be shown again."""
    raw = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken.objects.create(
        user=user, name=name[:100], prefix=raw[:PREFIX_LENGTH], token_hash=_digest(raw)
    )
    return token, raw


def api_token_authenticate(raw: str) -> Any | None:
    """The active user the raw token belongs to, or None (unknown, revoked, or the user is
    inactive). Records `last_used_at`, at most once a minute per token (one UPDATE)."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return None
    digest = _digest(raw)
    rows = _token_with_user.rows(digest)  # token_hash is unique: at most one
    if not rows:
        return None
    token_pk, token_hash, revoked_at, last_used_at = rows[0][:len(_TOKEN_COLUMNS)]
    if not hmac.compare_digest(token_hash, digest):
        return None
    user = _USER_MODEL.from_db(_token_with_user.db_alias(), _USER_COLUMNS,
                               rows[0][len(_TOKEN_COLUMNS):])
    if revoked_at is not None or not user.is_active:
        return None
    now = timezone.now()
    if last_used_at is None or last_used_at <= now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token_pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
    return user


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke the token; it authenticates nothing from now on. Revoking twice keeps the first
    revocation time."""
    now = timezone.now()
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    token.refresh_from_db(fields=["revoked_at"])
    return token


def api_tokens_of(*, user: Any) -> list[ApiToken]:
    """The user's own tokens, newest first (the "API tokens" page of the admin)."""
    return list(ApiToken.objects.filter(user=user).order_by("-created_at", "-id"))


def api_token_create_own(*, user: Any, name: str) -> tuple[ApiToken, str]:
    """A token for the signed-in user themselves (any active account, those signed in with
    OpenID Connect included: they have no password for `create_api_token` flows), named."""
    if user is None or not getattr(user, "is_active", False):
        raise NotPermitted("only an active account may create its own API token")
    name = name.strip()
    if not name:
        raise InputInvalid([{"path": "name", "message": "give the token a name"}])
    return api_token_create(user=user, name=name)


def api_token_revoke_own(*, user: Any, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens; another user's token is not found (404)."""
    token = ApiToken.objects.filter(pk=token_id, user=user).first()
    if token is None:
        raise NotFound(f"you have no API token {token_id}")
    return api_token_revoke(token=token)
