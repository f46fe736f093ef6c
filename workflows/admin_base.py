"""Base classes the apps' ModelAdmins share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the services: viewable by role, never added, edited or deleted."""

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PagesMixin:
    """Mount view functions `view(request, model_admin, *args, **kwargs)` inside the admin site,
    so login, the staff check and CSRF apply."""

    def _page(self, view: Callable[..., HttpResponse], **fixed: Any) -> Callable[..., HttpResponse]:
        def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return view(request, self, *args, **kwargs, **fixed)

        page.__name__ = view.__name__
        page.__doc__ = view.__doc__
        return self.admin_site.admin_view(page)
