"""The admin site: its index is the workflows home (workflows/admin_views/home.py).

Django's list of tables stays one click away at `tables/` ("All tables"); the lookup box on top
of every page submits to `lookup/`. The site header reads `settings.WF_SITE_TITLE` (env
`WF_SITE_TITLE`, default "Workflows") each time a page is drawn, so a test that overrides the
setting sees it. Installed by `workflows.apps.WorkflowsAdminConfig` in place of
`django.contrib.admin`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path

from accounts.views import PasswordLoginForm, login_context
from workflows.admin_views import home, my_tokens


class WorkflowsAdminSite(admin.AdminSite):
    index_title = "Workflows"
    login_form = PasswordLoginForm
    login_template = "accounts/login.html"

    @property
    def site_header(self) -> str:  # type: ignore[override]
        return settings.WF_SITE_TITLE

    @property
    def site_title(self) -> str:  # type: ignore[override]
        return settings.WF_SITE_TITLE

    def get_urls(self) -> list:
        return [
            path("tables/", self.admin_view(self.tables), name="tables"),
            path("lookup/", self.admin_view(self.lookup), name="lookup"),
            path("tokens/", self.admin_view(self.my_tokens), name="my_tokens"),
            path("tokens/<str:token_id>/revoke/", self.admin_view(self.my_token_revoke),
                 name="my_token_revoke"),
            *super().get_urls(),
        ]

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None
              ) -> HttpResponse:
        return home.home_page(request, self)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None
              ) -> HttpResponse:
        """Django's login with "Sign in with …" (OpenID Connect) and the password switch."""
        return super().login(request, extra_context={**login_context(request),
                                                     **(extra_context or {})})

    def tables(self, request: HttpRequest) -> HttpResponse:
        """Django's own index: every table this user may see."""
        return super().index(request, extra_context={"title": "All tables"})

    def lookup(self, request: HttpRequest) -> HttpResponse:
        return home.lookup_page(request, self)

    def my_tokens(self, request: HttpRequest) -> HttpResponse:
        """The user's own API tokens (create one, shown once; revoke)."""
        return my_tokens.my_tokens_page(request, self)

    def my_token_revoke(self, request: HttpRequest, token_id: str) -> HttpResponse:
        return my_tokens.my_token_revoke(request, self, token_id)
