"""Changing connections. Every change goes through these functions, which check the actor's
permission, validate, save, and write ConnectionAudit rows (field names only, never values) in
one transaction. The admin, the API and the management command all call them.

`actor` is the User acting: a superuser or a holder of `connections.manage_connections`; anyone
else gets NotPermitted. `actor=None` means a trusted internal caller (a management command, a
migration, a test fixture) and skips the check.
"""

from __future__ import annotations

import enum
from typing import Any

from django.db import IntegrityError, transaction

from connections.crypto import encrypt_secret, rotate_encrypted_column
from connections.errors import (
    ConnectionInvalid,
    ConnectionNotFound,
    NotPermitted,
)
from connections.jumps import jump_problems
from connections.models import Connection, ConnectionAudit
from connections.selectors import user_can_manage_connections
from connections.validation import validate_connection, validate_name

__all__ = [
    "UNSET",
    "AuditAction",
    "ConnectionInvalid",
    "ConnectionNotFound",
    "NotPermitted",
    "connection_create",
    "connection_delete",
    "connection_rotate_keys",
    "connection_update",
]


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset.UNSET
"""Default of connection_update's arguments: leave this field as it is."""


class AuditAction:
    CREATED = "created"
    UPDATED = "updated"
    SECRET_SET = "secret_set"
    SECRET_CLEARED = "secret_cleared"
    SECRET_ROTATED = "secret_rotated"
    DELETED = "deleted"


def _check_permission(actor: Any) -> None:
    if actor is None:
        return
    if not user_can_manage_connections(actor):
        raise NotPermitted("only administrators may see and change connections")


def _audit(
    connection_id: int | None, name: str, action: str, fields: list[str], actor: Any
) -> None:
    ConnectionAudit.objects.create(
        connection_id=connection_id,
        connection_name=name,
        action=action,
        fields=fields,
        actor=actor if getattr(actor, "pk", None) else None,
    )


def _changed_config_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = {k for k in set(old) | set(new) if old.get(k, UNSET) != new.get(k, UNSET)}
    return ["config"] + [f"config.{k}" for k in sorted(keys, key=str)] if keys else []


def connection_create(
    *,
    actor: Any,
    name: str,
    kind: str,
    config: dict[str, Any] | None = None,
    secret: dict[str, Any] | None = None,
    description: str = "",
) -> Connection:
    """Create a connection. Audits "created" (the fields given) and, with a secret, "secret_set".
    Raises NotPermitted, or ConnectionInvalid listing every problem (including a taken name)."""
    _check_permission(actor)
    config = {} if config is None else config
    problems = validate_name(name) + validate_connection(
        kind=kind, config=config, secret=secret, description=description
    )
    if not problems and Connection.objects.filter(name=name).exists():
        problems.append({"path": "name", "message": "a connection with this name already exists"})
    if not problems:
        problems = jump_problems(name=name, kind=kind, config=config)
    if problems:
        raise ConnectionInvalid(problems)
    connection = Connection(name=name, kind=kind, config=config, description=description)
    if secret is not None:
        connection.secret_ciphertext = encrypt_secret(secret)
    try:
        with transaction.atomic():
            connection.save()
            fields = ["name", "kind", "config"] + (["description"] if description else [])
            _audit(connection.pk, name, AuditAction.CREATED, fields, actor)
            if secret is not None:
                _audit(connection.pk, name, AuditAction.SECRET_SET, ["secret"], actor)
    except IntegrityError:
        raise ConnectionInvalid(
            [{"path": "name", "message": "a connection with this name already exists"}]
        ) from None
    return connection


def connection_update(
    *,
    actor: Any,
    connection: Connection,
    config: dict[str, Any] | _Unset = UNSET,
    description: str | _Unset = UNSET,
    kind: str | _Unset = UNSET,
    secret: dict[str, Any] | None | _Unset = UNSET,
) -> Connection:
    """Change the given fields; UNSET (the default) leaves a field alone. `secret`: a dict
    replaces the secret, None clears it. The name cannot change (flows refer to it).

    Audits "updated" with the names of the fields that changed ("config" and "config.KEY" for
    each changed key), "secret_set" or "secret_cleared"; nothing is saved or audited when nothing
    changes. Raises NotPermitted or ConnectionInvalid."""
    _check_permission(actor)
    if secret is not UNSET and secret is not None and not isinstance(secret, dict):
        raise ConnectionInvalid([{"path": "secret", "message": "must be a JSON object or null"}])
    with transaction.atomic():
        # Diff against the stored row, not the caller's instance (which may be stale, or share
        # the very config dict the caller edited in place).
        try:
            locked = Connection.objects.select_for_update().get(pk=connection.pk)
        except Connection.DoesNotExist:
            raise ConnectionNotFound(f"no connection is called {connection.name!r}") from None
        new_kind = locked.kind if kind is UNSET else kind
        new_config = locked.config if config is UNSET else config
        new_description = locked.description if description is UNSET else description
        problems = validate_connection(
            kind=new_kind,
            config=new_config,
            secret=secret if isinstance(secret, dict) else None,
            description=new_description,
        )
        if not problems:
            problems = jump_problems(name=locked.name, kind=new_kind, config=new_config)
        if problems:
            raise ConnectionInvalid(problems)

        changed: list[str] = []
        if new_kind != locked.kind:
            changed.append("kind")
        if new_description != locked.description:
            changed.append("description")
        changed += _changed_config_fields(locked.config or {}, new_config)
        secret_action = None
        if isinstance(secret, dict):
            secret_action = AuditAction.SECRET_SET
            locked.secret_ciphertext = encrypt_secret(secret)
        elif secret is None and locked.secret_ciphertext:
            secret_action = AuditAction.SECRET_CLEARED
            locked.secret_ciphertext = ""
        if changed or secret_action:
            locked.kind, locked.config, locked.description = new_kind, new_config, new_description
            locked.save()
            if changed:
                _audit(locked.pk, locked.name, AuditAction.UPDATED, changed, actor)
            if secret_action:
                _audit(locked.pk, locked.name, secret_action, ["secret"], actor)
    # Keep the caller's instance current.
    for field in ("kind", "config", "description", "secret_ciphertext", "updated_at"):
        setattr(connection, field, getattr(locked, field))
    return connection


def connection_delete(*, actor: Any, connection: Connection) -> None:
    """Delete a connection; its audit rows stay (with the name) and a "deleted" row is added.
    Flows that name it fail their configuration checks from then on."""
    _check_permission(actor)
    with transaction.atomic():
        name = connection.name
        _audit(connection.pk, name, AuditAction.DELETED, ["name"], actor)
        connection.delete()


def connection_rotate_keys() -> int:
    """Re-encrypt every stored secret with the newest of FIELD_ENCRYPTION_KEYS and return how
    many were re-encrypted. All or nothing: if one secret cannot be decrypted with the configured
    keys, SecretDecryptionError (naming the connection) is raised and nothing changes. After it
    returns, keys other than the first may be removed from FIELD_ENCRYPTION_KEYS.

    Runs in one transaction, holding row locks on the connections with a secret. Writes a
    "secret_rotated" audit row per connection (actor: system). updated_at is left alone: the
    secret's value did not change."""
    return rotate_encrypted_column(
        Connection.objects.exclude(secret_ciphertext=""),
        ["secret_ciphertext"],
        label_field="name",
        describe=lambda name: f"connection {name!r}",
        on_rotated=lambda pk, name: _audit(pk, name, AuditAction.SECRET_ROTATED, ["secret"], None),
    )
