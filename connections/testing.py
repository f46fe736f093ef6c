"""Testing a connection: can the platform reach and authenticate to what it describes?

`connection_test` is the one code path behind the API endpoint, the admin's "Test connection"
button and `wf connections test`. It answers `{ok, latency_ms, detail}` and, when not ok,
`error: {type, message}` with the same typed names an attempt would record (UnknownHostKey,
SSHAuthenticationFailed, ConnectError, ...):
- ssh: connect (through the proxy_jump chain) and authenticate; detail is the host key
  fingerprint and the server's version string. No command runs.
- http: GET the base_url with the connection's headers and credentials; detail is the status.
  ok when the status is below 400.
- generic: nothing to test (ConnectionNotTestable, a 422).

No secret reaches the answer: messages are redacted with the connection's (and its jump hosts')
secrets. The audit row ("tested") records the outcome's type only, never a value.
"""

from __future__ import annotations

import time
from typing import Any

from connections.errors import ConnectionInvalid, NotPermitted, SecretDecryptionError
from connections.jumps import jump_chain_names
from connections.models import Connection, ConnectionAudit, ConnectionKind
from connections.redaction import Redactor
from connections.selectors import (
    connection_secrets_for_step,
    connections_for_step,
    secret_values,
    user_can_manage_connections,
)
from workflows.steps import StepFailed
from workflows.steps.http import probe as http_probe
from workflows.steps.ssh import probe as ssh_probe

__all__ = ["ConnectionNotTestable", "connection_test"]

TESTED = "tested"


class ConnectionNotTestable(ConnectionInvalid):
    """This kind of connection describes nothing the platform can reach on its own."""

    code = "connection_not_testable"
    http_status = 422

    def __init__(self, kind: str):
        super().__init__([{"path": "kind", "message": f"a {kind} connection cannot be tested; "
                                                      "only ssh and http connections can"}])


def connection_test(*, actor: Any, connection: Connection) -> dict[str, Any]:
    """Reach the connection's host and report `{ok, latency_ms, detail[, error]}`. Writes a
    "tested" audit row (fields: ["ok"] or ["failed", TYPE]). Raises NotPermitted or
    ConnectionNotTestable. Runs outside any transaction: it waits on the network."""
    if actor is not None and not user_can_manage_connections(actor):
        raise NotPermitted("only administrators may test connections")
    if connection.kind not in (ConnectionKind.SSH, ConnectionKind.HTTP):
        raise ConnectionNotTestable(connection.kind)
    names = jump_chain_names(connection.name) if connection.kind == ConnectionKind.SSH \
        else [connection.name]
    documents = connections_for_step(names=names)
    started = time.monotonic()
    answer: dict[str, Any]
    secrets: dict[str, dict[str, Any]] = {}
    redactor = Redactor()
    try:
        secrets = connection_secrets_for_step(names=names)
        redactor = Redactor([v for s in secrets.values() for v in secret_values(s)])
        if connection.kind == ConnectionKind.SSH:
            ok, detail = True, ssh_probe(name=connection.name, connections=documents,
                                         secrets=secrets)
        else:
            ok, detail = http_probe(config=connection.config or {},
                                    secret=secrets.get(connection.name) or {})
        answer = {"ok": ok, "detail": redactor.redact_text(detail)}
        if not ok:
            answer["error"] = {"type": "HTTPStatusError", "message": answer["detail"]}
    except (StepFailed, SecretDecryptionError) as exc:
        message = redactor.redact_text(str(exc))
        kind = getattr(exc, "error_type", type(exc).__name__)
        answer = {"ok": False, "detail": message, "error": {"type": kind, "message": message}}
    answer["latency_ms"] = int((time.monotonic() - started) * 1000)
    ConnectionAudit.objects.create(
        connection=connection, connection_name=connection.name, action=TESTED,
        fields=["ok"] if answer["ok"] else ["failed", answer["error"]["type"]],
        actor=actor if getattr(actor, "pk", None) else None,
    )
    return answer
