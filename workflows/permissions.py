"""Role checks used by the services (never only by templates).

Roles are groups created by a data migration: builders (edit drafts, release), operators (run,
cancel, retry, replay, promote), reviewers (decide approvals assigned to them), support (read).
Superusers may do everything. `actor=None` means the system itself (schedules, the sweeper).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import Permission
from django.db.models import Q

from workflows.errors import NotPermitted
from workflows.prepared_queries import PreparedQuery

EDIT_DRAFT = "workflows.edit_draft"
RELEASE_FLOW = "workflows.release_flow"
PROMOTE_FLOW = "workflows.promote_flow"
OPERATE_RUN = "workflows.operate_run"
VIEW_FLOW = "workflows.view_flow"
VIEW_RUN = "workflows.view_run"
VIEW_APPROVAL = "approvals.view_approval"

# The role groups of the data migration (0002_roles_and_sweeper).
ROLES = ("builders", "operators", "reviewers", "support")

ACTION_LABELS = {
    EDIT_DRAFT: "edit flow drafts",
    RELEASE_FLOW: "release flows",
    PROMOTE_FLOW: "promote releases",
    OPERATE_RUN: "start, cancel, retry or replay runs",
    VIEW_FLOW: "view flows",
    VIEW_RUN: "view runs",
    VIEW_APPROVAL: "view approvals",
}


# A user's permissions, their own and their groups', as (app_label, codename) rows: read on
# every request an operator makes, so compiled once per process (never cached: a permission
# taken away, or a group left, counts from the next request on).
_user_permissions = PreparedQuery(
    Permission,
    lambda user_pk: Permission.objects.filter(Q(user=user_pk) | Q(group__user=user_pk))
    .values_list("content_type__app_label", "codename").distinct(),
    sentinel=-7_319_004,
)


def has_permission(actor: Any, perm: str) -> bool:
    if actor is None:
        return True
    if not getattr(actor, "is_active", False):
        return False
    if getattr(actor, "is_superuser", False):
        return True
    _load_permissions(actor)
    return actor.has_perm(perm)


def _load_permissions(actor: Any) -> None:
    """Read the user's permissions, their own and their groups', in one query, and keep them
    on the user object where Django's ModelBackend looks first (`_perm_cache`): a request (one
    user object) reads them once, whatever it checks, instead of two queries per object."""
    if hasattr(actor, "_perm_cache") or not isinstance(actor, AbstractBaseUser) or actor.pk is None:
        return
    rows = _user_permissions.rows(actor.pk)
    actor._perm_cache = {f"{app}.{codename}" for app, codename in rows}


def require_permission(actor: Any, perm: str) -> None:
    """Raise NotPermitted unless `actor` holds `perm` (or is the system)."""
    if not has_permission(actor, perm):
        raise NotPermitted(f"you are not allowed to {ACTION_LABELS.get(perm, perm)}")


def actor_name(actor: Any) -> str:
    return "" if actor is None else actor.get_username()
