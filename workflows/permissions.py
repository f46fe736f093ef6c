"""Role checks used by the services (never only by templates).

Roles are groups created by a data migration: builders (edit drafts, release), operators (run,
cancel, retry, replay, promote), reviewers (decide approvals assigned to them), support (read).
Superusers may do everything. `actor=None` means the system itself (schedules, the sweeper).
"""

from __future__ import annotations

from typing import Any

from workflows.errors import NotPermitted

EDIT_DRAFT = "workflows.edit_draft"
RELEASE_FLOW = "workflows.release_flow"
PROMOTE_FLOW = "workflows.promote_flow"
OPERATE_RUN = "workflows.operate_run"
VIEW_FLOW = "workflows.view_flow"
VIEW_RUN = "workflows.view_run"

ACTION_LABELS = {
    EDIT_DRAFT: "edit flow drafts",
    RELEASE_FLOW: "release flows",
    PROMOTE_FLOW: "promote releases",
    OPERATE_RUN: "start, cancel, retry or replay runs",
    VIEW_FLOW: "view flows",
    VIEW_RUN: "view runs",
}


def has_permission(actor: Any, perm: str) -> bool:
    if actor is None:
        return True
    return bool(getattr(actor, "is_active", False) and actor.has_perm(perm))


def require_permission(actor: Any, perm: str) -> None:
    """Raise NotPermitted unless `actor` holds `perm` (or is the system)."""
    if not has_permission(actor, perm):
        raise NotPermitted(f"you are not allowed to {ACTION_LABELS.get(perm, perm)}")


def actor_name(actor: Any) -> str:
    return "" if actor is None else actor.get_username()
