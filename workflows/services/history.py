"""The flow history: one `FlowHistory` row per release, draft edit, promotion or rollback,
webhook secret rotation and promotion request (with its outcome).

`flow_history_record` is called by the service that makes the change, inside its transaction,
so a change and its record commit or roll back together; nothing else writes history.
"""

from __future__ import annotations

from typing import Any

from workflows.models import Flow, FlowHistory
from workflows.permissions import actor_name


def flow_history_record(*, flow: Flow, kind: str, actor: Any = None,
                        from_version: int | None = None, to_version: int | None = None,
                        comment: str = "", data: dict[str, Any] | None = None) -> FlowHistory:
    """Append one entry. Call inside the transaction of the change it records."""
    return FlowHistory.objects.create(
        flow=flow, kind=kind, actor=actor, actor_name=actor_name(actor),
        from_version=from_version, to_version=to_version, comment=comment or "",
        data=data or {},
    )
