"""The promotion check that named connections exist and fit the steps that use them.

The only check that touches the database: one query for every name collected while checking
steps and references.
"""

from __future__ import annotations

from workflows.definitions.base import add
from workflows.definitions.check.references import ConnectionUses
from workflows.steps import get_step_type
from workflows.steps.base import Problem


def check_connections_exist(problems: list[Problem], connection_uses: ConnectionUses) -> None:
    """Every used connection must exist, and a step's own connection must be of a kind its
    type accepts."""
    from connections.models import Connection

    names = {name for _path, name, _type in connection_uses}
    kinds = dict(Connection.objects.filter(name__in=names).values_list("name", "kind"))
    for path, name, step_type_name in connection_uses:
        if name not in kinds:
            add(problems, path, f"no connection named {name!r}")
            continue
        if step_type_name is None:
            continue
        step_type = get_step_type(step_type_name)
        allowed = sorted(step_type.connection_kinds) if step_type else []
        if allowed and kinds[name] not in allowed:
            add(
                problems,
                path,
                f"connection {name!r} is a {kinds[name]} connection; a {step_type_name}"
                f" step needs {' or '.join(allowed)}",
            )
