"""Base classes the apps' ModelAdmins share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse


class NoNavSidebar:
    """Workflows pages leave out Django's nav sidebar: at laptop width (1366 px) it took the room
    the runs list's columns need (issue 24). The pages of `admin_views` drop it the same way
    (`edge.admin_context`)."""

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        return super().changelist_view(  # type: ignore[misc]
            request, {"is_nav_sidebar_enabled": False, **(extra_context or {})})

    def changeform_view(self, request: HttpRequest, object_id: str | None = None,
                        form_url: str = "", extra_context: dict | None = None):
        return super().changeform_view(  # type: ignore[misc]
            request, object_id, form_url,
            {"is_nav_sidebar_enabled": False, **(extra_context or {})})


class ReadOnlyAdmin(NoNavSidebar, admin.ModelAdmin):
    """Rows written only by the services: viewable by role, never added, edited or deleted."""

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PagesMixin(NoNavSidebar):
    """Mount view functions `view(request, model_admin, *args, **kwargs)` inside the admin site,
    so login, the staff check and CSRF apply."""

    def _page(self, view: Callable[..., HttpResponse], **fixed: Any) -> Callable[..., HttpResponse]:
        def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return view(request, self, *args, **kwargs, **fixed)

        page.__name__ = view.__name__
        page.__doc__ = view.__doc__
        return self.admin_site.admin_view(page)
