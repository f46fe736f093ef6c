"""Encryption of connection secrets at rest.

Secrets are JSON objects encrypted with a MultiFernet built from settings.FIELD_ENCRYPTION_KEYS
(Fernet keys, newest first; dedicated keys, never derived from SECRET_KEY). The newest key
encrypts; every listed key decrypts, so keys are rotated by putting a new key first, running
`python manage.py rotate_connection_keys`, then dropping the old key.

The MultiFernet is built at call time from the current settings, so overridden settings (tests,
a rotation in progress) take effect at once; building it is cheap and memoised per key list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction

from connections.errors import SecretDecryptionError

__all__ = [
    "SecretDecryptionError",
    "decrypt_secret",
    "decrypt_text",
    "encrypt_secret",
    "encrypt_text",
    "rotate_encrypted_column",
    "rotate_token",
]

_HOW_TO = (
    'Generate a key with `python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"` and set FIELD_ENCRYPTION_KEYS (comma separated, '
    "newest first)."
)


def _configured_keys() -> tuple[str, ...]:
    raw = getattr(settings, "FIELD_ENCRYPTION_KEYS", None)
    if isinstance(raw, (str, bytes)):
        raw = raw.decode() if isinstance(raw, bytes) else raw
        raw = raw.split(",")
    keys = tuple((k.decode() if isinstance(k, bytes) else str(k)).strip() for k in (raw or ()))
    keys = tuple(k for k in keys if k)
    if not keys:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEYS is empty: secrets cannot be encrypted. {_HOW_TO}"
        )
    return keys


@lru_cache(maxsize=8)
def _build(keys: tuple[str, ...]) -> MultiFernet:
    fernets = []
    for position, key in enumerate(keys):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            # Never echo the key itself.
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS entry {position + 1} of {len(keys)} is not a valid Fernet "
                f"key (32 url-safe base64-encoded bytes). {_HOW_TO}"
            ) from None
    return MultiFernet(fernets)


def _multifernet() -> MultiFernet:
    return _build(_configured_keys())


def encrypt_secret(data: dict[str, Any]) -> str:
    """The MultiFernet token (ASCII text) of `data`, a JSON-serialisable dict, encrypted with the
    newest key. Raises ImproperlyConfigured when no valid key is configured."""
    if not isinstance(data, dict):
        raise TypeError("a connection secret must be a dict")
    plaintext = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return _multifernet().encrypt(plaintext).decode("ascii")


def decrypt_secret(token: str) -> dict[str, Any]:
    """The dict `token` was made from. Raises SecretDecryptionError when no configured key opens
    it or it is corrupt (including an empty token): never returns the ciphertext or a blank."""
    if not token:
        raise SecretDecryptionError("there is no ciphertext to decrypt")
    fernet = _multifernet()
    try:
        plaintext = fernet.decrypt(token.encode("ascii") if isinstance(token, str) else token)
    except (InvalidToken, UnicodeEncodeError, TypeError):
        raise SecretDecryptionError(
            "the secret could not be decrypted with any of FIELD_ENCRYPTION_KEYS: a key that "
            "encrypted it was removed before `rotate_connection_keys` ran, the wrong keys are "
            "configured, or the stored data is corrupt"
        ) from None
    try:
        data = json.loads(plaintext)
    except ValueError:
        raise SecretDecryptionError("the decrypted secret is not valid JSON") from None
    if not isinstance(data, dict):
        raise SecretDecryptionError("the decrypted secret is not a JSON object")
    return data


def encrypt_text(text: str) -> str:
    """The MultiFernet token of the string `text` (a flow's webhook secret), newest key."""
    if not isinstance(text, str):
        raise TypeError("encrypt_text takes a string")
    return _multifernet().encrypt(text.encode()).decode("ascii")


def decrypt_text(token: str) -> str:
    """The string `token` was made from by encrypt_text. Raises SecretDecryptionError when no
    configured key opens it or it is corrupt."""
    if not token:
        raise SecretDecryptionError("there is no ciphertext to decrypt")
    try:
        return _multifernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, TypeError):
        raise SecretDecryptionError(
            "the secret could not be decrypted with any of FIELD_ENCRYPTION_KEYS: a key that "
            "encrypted it was removed before `rotate_connection_keys` ran, the wrong keys are "
            "configured, or the stored data is corrupt"
        ) from None


def rotate_token(token: str) -> str:
    """`token` re-encrypted with the newest key (MultiFernet.rotate; the plaintext never leaves
    this function). Raises SecretDecryptionError when no configured key opens it."""
    if not token:
        raise SecretDecryptionError("there is no ciphertext to rotate")
    try:
        rotated = _multifernet().rotate(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError, TypeError):
        raise SecretDecryptionError(
            "the secret could not be decrypted with any of FIELD_ENCRYPTION_KEYS, so it cannot "
            "be rotated: restore the key that encrypted it"
        ) from None
    return rotated.decode("ascii")


def rotate_encrypted_column(
    queryset: models.QuerySet,
    columns: Sequence[str],
    *,
    label_field: str,
    describe: Callable[[Any], str],
    on_rotated: Callable[[Any, Any], None] | None = None,
) -> int:
    """Re-encrypt `columns` of every row of `queryset` with the newest key and return how many
    rows were rewritten: the one loop behind both key rotations (connections' secrets, flows'
    webhook and notification secrets), so both lock and fail the same way.

    Runs in a transaction (joining the caller's, so `rotate_connection_keys` rotates both halves
    or neither) holding row locks (select_for_update, in primary-key order so two rotations
    cannot deadlock). All or nothing: the first value no configured key opens raises
    SecretDecryptionError prefixed with `describe(label)`, naming the row, and nothing changes.
    `on_rotated(pk, label)` runs after each row's update (the connections' audit row); the
    rows' other columns, updated_at included, are left alone: the secrets' values did not
    change."""
    count = 0
    with transaction.atomic():
        rows = (queryset.select_for_update().order_by("pk")
                .values_list("pk", label_field, *columns))
        for pk, label, *tokens in rows:
            try:
                rotated = [rotate_token(token) for token in tokens]
            except SecretDecryptionError as exc:
                raise SecretDecryptionError(f"{describe(label)}: {exc}") from None
            queryset.model._default_manager.filter(pk=pk).update(**dict(zip(columns, rotated, strict=True)))
            if on_rotated is not None:
                on_rotated(pk, label)
            count += 1
    return count
