"""Resources in the admin: read-only, with a download that needs an admin login.

Step outputs show `res://` references as links to these pages (see the `json_html` filter in
workflows/templatetags/wf_render.py).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from resources.models import Resource
from resources.views import resource_response
from workflows.admin_base import ReadOnlyAdmin


@admin.register(Resource)
class ResourceAdmin(ReadOnlyAdmin):
    list_display = ["uri", "name", "kind", "size", "content_type", "run_link", "created_at",
                    "expires_at"]
    search_fields = ["=id", "name", "sha256"]
    list_filter = ["kind", "content_type"]
    fields = ["uri", "download", "name", "kind", "size", "sha256", "content_type", "run_link",
              "step_run", "attempt", "created_at", "expires_at"]
    readonly_fields = fields

    @admin.display(description="run")
    def run_link(self, obj: Resource) -> str:
        if not obj.run_id:
            return "—"
        return format_html('<a href="{}">#{}</a>',
                           reverse("admin:workflows_run_change", args=[obj.run_id]), obj.run_id)

    @admin.display(description="content")
    def download(self, obj: Resource) -> str:
        url = reverse("admin:resources_resource_download", args=[obj.pk])
        return format_html('<a class="button" href="{}">Download ({} bytes)</a>', url, obj.size)

    def get_urls(self) -> list:
        return [
            path("<uuid:resource_id>/download/", self.admin_site.admin_view(self.download_view),
                 name="resources_resource_download"),
            *super().get_urls(),
        ]

    def download_view(self, request: HttpRequest, resource_id: Any) -> HttpResponse:
        resource = get_object_or_404(Resource, pk=resource_id)
        if not self.has_view_permission(request, resource):
            raise PermissionDenied
        return resource_response(request, resource)
