"""API tokens: create, authenticate, revoke.

A token is shown once, when it is created. Only its SHA-256 is stored (plus a short prefix so
people can tell their tokens apart); lookup is by that hash, and the stored hash is compared in
constant time as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from workflows.models import ApiToken

TOKEN_PREFIX = "wf_"
# 32 random bytes, urlsafe base64 (43 characters), after the "wf_" marker.
TOKEN_BYTES = 32
PREFIX_LENGTH = 10
# Longer input is refused before hashing: no real token is this long.
MAX_TOKEN_LENGTH = 200
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


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
    token = ApiToken.objects.select_related("user").filter(token_hash=digest).first()
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    if token.revoked_at is not None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
    return token.user


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke the token; it authenticates nothing from now on. Revoking twice keeps the first
    revocation time."""
    now = timezone.now()
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    token.refresh_from_db(fields=["revoked_at"])
    return token
