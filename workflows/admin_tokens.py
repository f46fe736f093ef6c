"""Admin for API tokens: create one (shown once), see when each was last used, revoke.

Imported by workflows/admin.py (`import workflows.admin_tokens  # noqa: F401`).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from workflows.models import ApiToken
from workflows.services.tokens import api_token_create, api_token_revoke


@admin.action(description="Revoke the selected tokens")
def revoke_tokens(modeladmin, request, queryset):
    count = 0
    for token in queryset.filter(revoked_at__isnull=True):
        api_token_revoke(token=token)
        count += 1
    modeladmin.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "user", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "user__username")
    actions = [revoke_tokens]
    fields = ("user", "name")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    raw_id_fields = ("user",)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("user", "name")
        return ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("user", "prefix", "created_at", "last_used_at", "revoked_at")

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        token, raw = api_token_create(user=obj.user, name=obj.name)
        obj.pk = token.pk
        obj.__dict__.update({k: v for k, v in token.__dict__.items() if not k.startswith("_")})
        self.message_user(
            request,
            format_html("New API token for {} (shown once, copy it now): <code>{}</code>",
                        token.user, raw),
            messages.WARNING,
        )


if not admin.site.is_registered(ApiToken):
    admin.site.register(ApiToken, ApiTokenAdmin)
