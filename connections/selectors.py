"""Reading connections. Nothing here changes state; nothing here checks permissions (the edges
and services do; see `user_can_manage_connections`). Only `connection_secret` and
`connection_secrets_for_step` return secret values, and only for a step that runs or a trusted
internal caller: never hand their result to an API response, a log or a template."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet

from connections.crypto import decrypt_secret
from connections.errors import ConnectionNotFound, SecretDecryptionError
from connections.models import Connection
from connections.redaction import MIN_SECRET_LENGTH, LogRedactor

__all__ = [
    "MANAGE_PERMISSION",
    "connection_document",
    "connection_get",
    "connection_list",
    "connection_redactor",
    "connection_secret",
    "connection_secrets_for_step",
    "connections_for_step",
    "secret_values",
    "user_can_manage_connections",
]

MANAGE_PERMISSION = "connections.manage_connections"


def user_can_manage_connections(user: Any) -> bool:
    """Superusers and active users holding `connections.manage_connections` (directly or through
    a group) may see and change connections."""
    if user is None or not getattr(user, "is_active", False):
        return False
    return bool(user.is_superuser or user.has_perm(MANAGE_PERMISSION))


def connection_list() -> QuerySet[Connection]:
    """Every connection, by name."""
    return Connection.objects.order_by("name")


def connection_get(*, name: str) -> Connection:
    """The connection called `name`; raises ConnectionNotFound (an ObjectDoesNotExist)."""
    try:
        return Connection.objects.get(name=name)
    except Connection.DoesNotExist:
        raise ConnectionNotFound(f"no connection is called {name!r}") from None


def connection_secret(*, connection: Connection) -> dict[str, Any]:
    """The decrypted secret of `connection`; {} when none is set. Raises SecretDecryptionError
    when the stored secret cannot be decrypted (it never returns ciphertext or {} then)."""
    if not connection.secret_ciphertext:
        return {}
    return _decrypt(connection.name, connection.secret_ciphertext)


def connections_for_step(*, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{name: {"name", "kind", "config"}} for the named connections that exist, in one query.
    Missing names are simply absent (the caller decides whether that is an error). No secrets."""
    wanted = sorted({n for n in names if isinstance(n, str) and n})
    if not wanted:
        return {}
    rows = Connection.objects.filter(name__in=wanted).values("name", "kind", "config")
    return {
        row["name"]: {"name": row["name"], "kind": row["kind"], "config": row["config"] or {}}
        for row in rows
    }


def connection_secrets_for_step(*, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{name: decrypted secret} for the named connections that exist, in one query ({} for a
    connection without a secret). Raises SecretDecryptionError if any cannot be decrypted."""
    wanted = sorted({n for n in names if isinstance(n, str) and n})
    if not wanted:
        return {}
    rows = Connection.objects.filter(name__in=wanted).values_list("name", "secret_ciphertext")
    return {name: (_decrypt(name, token) if token else {}) for name, token in rows}


def _decrypt(name: str, token: str) -> dict[str, Any]:
    try:
        return decrypt_secret(token)
    except SecretDecryptionError as exc:
        raise SecretDecryptionError(f"connection {name!r}: {exc}") from None


def secret_values(secret: Any) -> list[str]:
    """Every string value in `secret` (nested dicts, lists and tuples walked; keys are not
    values), longest first, without duplicates, leaving out values shorter than
    MIN_SECRET_LENGTH (4) characters: a one- or two-character "secret" such as a username "a"
    or a flag "on" would turn every log into asterisks and protects nothing. Numbers and
    booleans are not collected."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, str):
            if len(value) >= MIN_SECRET_LENGTH:
                found.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(secret)
    return sorted(found, key=lambda s: (-len(s), s))


def basic_auth_values(*, config: dict[str, Any], secret: dict[str, Any]) -> list[str]:
    """The base64 `username:password` an HTTP client sends for basic auth: a server that
    echoes its Authorization header would otherwise store the credentials in an encoding."""
    password = secret.get("password")
    if not isinstance(password, str) or not password:
        return []
    usernames = {u for u in (secret.get("username"), config.get("username"))
                 if isinstance(u, str)}
    return [base64.b64encode(f"{u}:{password}".encode()).decode() for u in sorted(usernames)]


def connection_redactor(*, secrets: Iterable[dict[str, Any]],
                        configs: Iterable[dict[str, Any]] = ()) -> LogRedactor:
    """A LogRedactor for the values of these secret dicts, and the basic-auth encodings of
    their passwords with the usernames in them or in `configs` (see connections.redaction)."""
    secrets = list(secrets)
    configs = list(configs) or [{}]
    values: list[str] = []
    for secret in secrets:
        values.extend(secret_values(secret))
        for config in configs:
            values.extend(basic_auth_values(config=config, secret=secret))
    return LogRedactor(values)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def connection_document(connection: Connection) -> dict[str, Any]:
    """The public shape of a connection for the API and the admin: never the secret, only
    whether one is set. Times are ISO 8601 UTC."""
    return {
        "name": connection.name,
        "kind": connection.kind,
        "description": connection.description,
        "config": connection.config or {},
        "has_secret": connection.has_secret,
        "created_at": _iso(connection.created_at),
        "updated_at": _iso(connection.updated_at),
    }
