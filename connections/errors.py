"""Errors of the connections app; each carries its `code` and `http_status`
(see `workflows.errors`): ConnectionInvalid is a DefinitionInvalid (422, every problem listed),
ConnectionNotFound is also a Django ObjectDoesNotExist (404)."""

from __future__ import annotations

from django.core.exceptions import ObjectDoesNotExist

from workflows.errors import DefinitionInvalid, NotPermitted, WorkflowError

__all__ = ["ConnectionInvalid", "ConnectionNotFound", "NotPermitted", "SecretDecryptionError"]


class ConnectionInvalid(DefinitionInvalid):
    """A connection's name, kind, config or secret is wrong. `problems` lists every problem as
    {"path": "config.port", "message": "..."}; messages never quote a secret value."""

    def __init__(self, problems: list[dict[str, str]]):
        super().__init__(problems, "connection is invalid")

    code = "connection_invalid"


class ConnectionNotFound(WorkflowError, ObjectDoesNotExist):
    """No connection has this name."""

    code = "not_found"
    http_status = 404
    default_message = "not found"


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted: none of FIELD_ENCRYPTION_KEYS opens it (a key was
    removed before `rotate_connection_keys` ran, or the wrong keys are configured) or the data is
    corrupt. Not a WorkflowError: the caller cannot fix it, an operator must."""
