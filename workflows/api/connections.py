"""/connections: list, create, change and test connections; secrets are write-only; admins
only."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router, Schema, Status

from connections.selectors import (
    connection_document,
    connection_get,
    connection_list,
    user_can_manage_connections,
)
from connections.services import UNSET, connection_create, connection_update
from connections.testing import connection_test
from workflows.api.openapi import errors
from workflows.api.pagination import keyset_page
from workflows.api.params import ConnectionName, Cursor, Limit
from workflows.api.schemas import ConnectionIn, ConnectionOut, ConnectionPage, ConnectionUpdateIn
from workflows.errors import NotFound, NotPermitted

router = Router(tags=["connections"])


class ConnectionTestError(Schema):
    type: str
    message: str


class ConnectionTestOut(Schema):
    ok: bool
    latency_ms: int
    detail: str
    error: ConnectionTestError | None = None


def _require_admin(user) -> None:
    if not user_can_manage_connections(user):
        raise NotPermitted("only administrators may see and change connections")


def _get(name: str):
    if not name or len(name) > 100:
        raise NotFound(f"no connection is called {name!r}")
    return connection_get(name=name)


@router.get("", response={200: ConnectionPage, **errors()},
            summary="Connections without secrets (has_secret tells whether one is set)",
            operation_id="connections_list")
def connections_list(request: HttpRequest, cursor: Cursor = None, limit: Limit = 50):
    _require_admin(request.auth)
    rows, next_cursor = keyset_page(connection_list(), cursor=cursor, limit=limit, key="name",
                                    descending=False, kind=str)
    return {"items": [connection_document(c) for c in rows], "next_cursor": next_cursor}


@router.post("", response={201: ConnectionOut, **errors(409)}, summary="Create a connection",
             operation_id="connections_create")
def connections_create(request: HttpRequest, payload: ConnectionIn):
    _require_admin(request.auth)
    connection = connection_create(
        actor=request.auth, name=payload.name, kind=payload.kind, config=payload.config,
        secret=payload.secret, description=payload.description,
    )
    return Status(201, connection_document(connection))


@router.get("/{name}", response={200: ConnectionOut, **errors()}, summary="Get a connection",
            operation_id="connections_get")
def connections_get(request: HttpRequest, name: ConnectionName):
    _require_admin(request.auth)
    return connection_document(_get(name))


@router.put("/{name}", response={200: ConnectionOut, **errors(409)},
            summary="Change a connection: only the fields given; `secret: null` clears it",
            operation_id="connections_update")
def connections_update(request: HttpRequest, name: ConnectionName, payload: ConnectionUpdateIn):
    _require_admin(request.auth)
    connection = _get(name)
    given = payload.model_fields_set
    changes = {
        field: getattr(payload, field) if field in given else UNSET
        for field in ("kind", "config", "description")
    }
    for field in ("kind", "config", "description"):
        if changes[field] is None:  # null for a field that cannot be null: leave it alone
            changes[field] = UNSET
    secret = payload.secret if "secret" in given else UNSET
    connection = connection_update(actor=request.auth, connection=connection, secret=secret,
                                   **changes)
    return connection_document(connection)


@router.post("/{name}/test", response={200: ConnectionTestOut, **errors()},
             operation_id="connections_test",
             summary="Test a connection: reach and authenticate (ssh: host key fingerprint and "
                     "server version; http: the status of a GET to base_url). Never a secret.")
def connections_test(request: HttpRequest, name: ConnectionName):
    _require_admin(request.auth)
    return connection_test(actor=request.auth, connection=_get(name))
