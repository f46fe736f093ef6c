"""Callback tokens of wait steps: minting at run start (and at a redo), the URL a reference
shows, and the hash a callback is looked up by.

A token is HMAC-SHA256(SECRET_KEY, nonce) with a random 128-bit nonce minted at run start, so
`{{ steps.X.callback_url }}` can be handed out before the wait is reached. Only the nonce and
the token's SHA-256 are stored; lookup is by that hash (a constant-time comparison of the
recomputed token guards it too). Receiving a callback is a service
(`workflows.services.callbacks.callback_receive`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from django.conf import settings


def callback_token(nonce: str) -> str:
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"wf-callback:{nonce}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def callback_mint() -> tuple[str, str]:
    """A fresh (nonce, token hash) pair for a wait step run."""
    nonce = secrets.token_urlsafe(16)
    return nonce, token_hash(callback_token(nonce))


def callback_url(nonce: str) -> str:
    return f"{settings.PUBLIC_BASE_URL}/api/v1/callbacks/{callback_token(nonce)}"
