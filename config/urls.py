from django.contrib import admin
from django.urls import include, path, re_path

from workflows.api import api
from workflows.api.app import not_found as api_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    re_path(r"^api/v1/(?P<rest>.*)$", api_not_found),
    path("resources/", include("resources.urls")),
    path("approvals/", include("approvals.urls")),
    path("oidc/", include("accounts.urls")),
    path("", include("ops.urls")),
]
