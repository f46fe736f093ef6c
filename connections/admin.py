"""Admin for connections: thin. Saving and deleting go through connections.services, so the
admin writes the same audit rows and applies the same validation as the API.

The secret is write-only: the form has an empty `secret` box (a JSON object) that replaces the
secret when filled and a "clear secret" box; the page shows only whether a secret is set. The
widget never renders a value, not even the one just typed when the form comes back with errors.
Only superusers and holders of `connections.manage_connections` see these pages at all (Django's
plain view/change permissions on the model are not enough).
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from connections.jumps import jump_problems
from connections.models import Connection, ConnectionAudit
from connections.selectors import user_can_manage_connections
from connections.services import (
    UNSET,
    connection_create,
    connection_delete,
    connection_update,
)
from connections.testing import ConnectionNotTestable, connection_test
from connections.validation import validate_connection, validate_name
from workflows.admin_base import ReadOnlyAdmin


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value back to the browser."""

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        return super().get_context(name, None, attrs)

    def format_value(self, value: Any) -> None:
        return None


class ConnectionForm(forms.ModelForm):
    secret = forms.CharField(
        required=False,
        strip=False,
        widget=WriteOnlyTextarea(
            attrs={
                "rows": 4,
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "Leave empty to keep the current secret",
            }
        ),
        label="New secret",
        help_text='A JSON object that replaces the secret, e.g. {"token": "..."} for http, '
        '{"private_key": "-----BEGIN ...\\n...", "passphrase": "..."} or '
        '{"password": "..."} for ssh. Write-only: it is never shown again.',
    )
    clear_secret = forms.BooleanField(required=False, label="Clear the secret")

    class Meta:
        model = Connection
        fields = ["name", "kind", "description", "config"]
        widgets = {"config": forms.Textarea(attrs={"rows": 8, "class": "vLargeTextField"})}
        help_texts = {
            "config": "Non-secret settings as a JSON object. ssh: host, username, known_hosts "
            "(the server's host key lines), port. http: base_url, headers, auth "
            "(bearer|basic|header), auth_header.",
        }

    def clean_secret(self) -> dict[str, Any] | None:
        text = self.cleaned_data.get("secret") or ""
        if not text.strip():
            return None
        try:
            value = json.loads(text)
        except ValueError as exc:
            # The position only: the message must not quote the secret.
            raise forms.ValidationError(
                f"not valid JSON (line {getattr(exc, 'lineno', '?')}, "
                f"column {getattr(exc, 'colno', '?')})"
            ) from None
        if not isinstance(value, dict):
            raise forms.ValidationError("must be a JSON object")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("config") is None and "config" not in self.errors:
            data["config"] = {}
        if data.get("clear_secret") and data.get("secret") is not None:
            self.add_error("clear_secret", "Either give a new secret or clear it, not both.")
        if self.errors:
            return data
        problems = validate_connection(
            kind=data.get("kind"),
            config=data.get("config"),
            secret=data.get("secret"),
            description=data.get("description", ""),
        )
        if self.instance.pk is None:
            problems += validate_name(data.get("name"))
        if not problems:
            problems = jump_problems(
                name=self.instance.name if self.instance.pk else data.get("name"),
                kind=data.get("kind"),
                config=data.get("config"),
            )
        for problem in problems:
            field = problem["path"].split(".", 1)[0]
            field = field if field in self.fields else None
            self.add_error(field, f"{problem['path']}: {problem['message']}")
        return data


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    list_display = ["name", "kind", "secret_is_set", "description", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["name", "description"]
    readonly_fields = ["secret_is_set", "created_at", "updated_at", "audit_log"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "description", "config"]}),
        ("Secret", {"fields": ["secret_is_set", "secret", "clear_secret"]}),
        ("History", {"fields": ["created_at", "updated_at", "audit_log"]}),
    ]

    @admin.display(boolean=True, description="secret set")
    def secret_is_set(self, obj: Connection | None) -> bool:
        return bool(obj and obj.has_secret)

    @admin.display(description="audit log")
    def audit_log(self, obj: Connection | None) -> str:
        if obj is None or obj.pk is None:
            return "-"
        url = reverse("admin:connections_connectionaudit_changelist")
        return format_html(
            '<a href="{}?connection_name={}">changes of {}</a>', url, obj.name, obj.name
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Connection | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return fields + ["name"] if obj is not None else fields

    # "Test connection": a POST from the change page; the answer comes back as a message.
    def get_urls(self) -> list:
        test_view = self.admin_site.admin_view(require_POST(self.test_connection_view))
        return [
            path("<int:pk>/test/", test_view, name="connections_connection_test"),
        ] + super().get_urls()

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = dict(extra_context or {})
        if str(object_id).isdigit():
            extra_context["test_connection_url"] = reverse(
                "admin:connections_connection_test", args=[object_id])
        return super().change_view(request, object_id, form_url, extra_context)

    def test_connection_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not user_can_manage_connections(request.user):
            raise PermissionDenied
        connection = get_object_or_404(Connection, pk=pk)
        try:
            answer = connection_test(actor=request.user, connection=connection)
        except ConnectionNotTestable as exc:
            messages.warning(request, exc.problems[0]["message"])
        else:
            text = f"{answer['detail']} ({answer['latency_ms']} ms)"
            if answer["ok"]:
                messages.success(request, f"Connection works: {text}")
            else:
                messages.error(request, f"Connection test failed "
                                        f"[{answer['error']['type']}]: {text}")
        return HttpResponseRedirect(
            reverse("admin:connections_connection_change", args=[connection.pk]))

    # Permissions: manage_connections (or superuser) for everything.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return user_can_manage_connections(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return user_can_manage_connections(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return user_can_manage_connections(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return user_can_manage_connections(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return user_can_manage_connections(request.user)

    # Saving goes through the services.
    def save_model(
        self, request: HttpRequest, obj: Connection, form: ConnectionForm, change: bool
    ) -> None:
        data = form.cleaned_data
        if change:
            # form.instance already carries the new values; the service diffs against the row.
            original = Connection.objects.get(pk=obj.pk)
            if data.get("clear_secret"):
                secret: Any = None
            elif data.get("secret") is not None:
                secret = data["secret"]
            else:
                secret = UNSET
            saved = connection_update(
                actor=request.user,
                connection=original,
                kind=data["kind"],
                config=data["config"],
                description=data["description"],
                secret=secret,
            )
        else:
            saved = connection_create(
                actor=request.user,
                name=data["name"],
                kind=data["kind"],
                config=data["config"],
                description=data["description"],
                secret=data.get("secret"),
            )
        for field in Connection._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False
        obj._state.db = saved._state.db

    def delete_model(self, request: HttpRequest, obj: Connection) -> None:
        connection_delete(actor=request.user, connection=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in queryset:
            connection_delete(actor=request.user, connection=connection)


@admin.register(ConnectionAudit)
class ConnectionAuditAdmin(ReadOnlyAdmin):
    """Read-only: audit rows are written by the services and never edited or deleted."""

    list_display = ["at", "connection_name", "action", "fields", "actor"]
    list_filter = ["action", "connection_name"]
    search_fields = ["connection_name"]
    list_select_related = ["actor"]
    date_hierarchy = "at"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["connection", "connection_name", "action", "fields", "actor", "at"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return user_can_manage_connections(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return user_can_manage_connections(request.user)



__all__ = ["ConnectionAdmin", "ConnectionAuditAdmin", "ConnectionForm"]
