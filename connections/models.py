from django.conf import settings
from django.db import models


class ConnectionKind(models.TextChoices):
    HTTP = "http"
    SSH = "ssh"
    GENERIC = "generic"


class Connection(models.Model):
    """Credentials a flow names but never holds. The secret part is encrypted at rest."""

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ConnectionKind.choices)
    description = models.TextField(blank=True)
    config = models.JSONField(default=dict, blank=True, help_text="Non-secret settings.")
    # MultiFernet token of the JSON secret dict; empty when no secret is set.
    secret_ciphertext = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_connections", "Can see and change connections")]

    def __str__(self) -> str:
        return self.name

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_ciphertext)


class ConnectionAudit(models.Model):
    """Who changed which fields of a connection, and when. Never the values."""

    connection = models.ForeignKey(
        Connection, null=True, on_delete=models.SET_NULL, related_name="audits"
    )
    connection_name = models.CharField(max_length=100)
    action = models.CharField(max_length=32)  # created, updated, secret_set, secret_cleared, ...
    fields = models.JSONField(default=list)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.connection_name}: {self.action} {', '.join(self.fields or [])}"
