"""The approvals inbox replaces the Approval changelist; decisions go through the services.
The pages themselves are in `approvals/admin_views.py`."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest, HttpResponse
from django.urls import path

from approvals import admin_views as pages
from approvals.models import Approval
from workflows.admin_base import PagesMixin, ReadOnlyAdmin


@admin.register(Approval)
class ApprovalAdmin(PagesMixin, ReadOnlyAdmin):
    """Every staff user has an inbox (it lists only what they may decide); approvals are
    created by the engine and decided through `approvals.services`, never edited here."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def get_urls(self) -> list:
        return [
            *[
                path(f"<str:approval_id>/{decision}/",
                     self._page(pages.approval_decide, decision=decision),
                     name=f"approvals_approval_{decision}")
                for decision in pages.DECISIONS
            ],
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        return pages.inbox(request, self)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        return pages.approval_detail(request, self, object_id)


# --- users: what a reviewer needs ----------------------------------------------------------------

STAFF_HELP = ("Needed to sign in to the admin at all, reviewers included. A reviewer needs "
              "staff status and the reviewers group, and no other permission "
              "(`python manage.py create_reviewer USERNAME` sets both).")
GROUPS_HELP = (" Roles: reviewers (see runs, decide the approvals assigned to them), support "
               "(read), operators (retry, cancel, promote), builders (edit and release flows). "
               "Each needs staff status to sign in.")

User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class WorkflowsUserAdmin(UserAdmin):
    """Django's user admin, saying that signing in needs staff status (issue 24: a reviewer
    could not sign in until someone set it by hand, and nothing said so)."""

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        form = super().get_form(request, obj, **kwargs)
        if "is_staff" in form.base_fields:
            form.base_fields["is_staff"].help_text = STAFF_HELP
        if "groups" in form.base_fields:
            form.base_fields["groups"].help_text += GROUPS_HELP
        return form
