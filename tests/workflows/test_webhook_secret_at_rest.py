"""Webhook secrets are encrypted with FIELD_ENCRYPTION_KEYS, like connection secrets."""

from __future__ import annotations

import importlib
import io
import json

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError

from connections.crypto import SecretDecryptionError, rotate_encrypted_column
from tests.factories import make_flow, simple_definition
from workflows.models import Flow
from workflows.services.webhooks import webhook_secret_rotate

migration = importlib.import_module("workflows.migrations.0005_encrypt_webhook_secrets")


@pytest.mark.django_db
def test_a_new_flows_secret_is_stored_encrypted():
    flow = make_flow(simple_definition("sealed"))
    secret = flow.webhook_signing_secret()
    assert len(secret) >= 32
    assert secret not in flow.webhook_secret
    assert flow.webhook_secret.startswith("gAAAAA")  # a Fernet token


@pytest.mark.django_db
def test_the_migration_encrypts_existing_plain_secrets_and_reverses(settings):
    flow = make_flow(simple_definition("legacy"))
    Flow.objects.filter(pk=flow.pk).update(webhook_secret="plain-old-secret")
    migration.encrypt_existing(apps, None)
    flow.refresh_from_db()
    assert "plain-old-secret" not in flow.webhook_secret
    assert flow.webhook_signing_secret() == "plain-old-secret"
    migration.decrypt_existing(apps, None)
    flow.refresh_from_db()
    assert flow.webhook_secret == "plain-old-secret"


@pytest.mark.django_db
def test_rotate_connection_keys_covers_webhook_secrets(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    flow = make_flow(simple_definition("rotating"))
    secret = webhook_secret_rotate(flow=flow, actor=None)
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    out = io.StringIO()
    call_command("rotate_connection_keys", stdout=out)
    assert json.loads(out.getvalue()) == {"rotated": 0, "webhook_secrets": 1}
    settings.FIELD_ENCRYPTION_KEYS = [new]
    flow.refresh_from_db()
    assert flow.webhook_signing_secret() == secret


@pytest.mark.django_db
def test_rotation_changes_nothing_when_a_webhook_secret_opens_with_no_key(settings):
    old = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    flow = make_flow(simple_definition("lost-key"))
    before = Flow.objects.get(pk=flow.pk).webhook_secret
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="flow 'lost-key' webhook secret"):
        call_command("rotate_connection_keys", stdout=io.StringIO())
    assert Flow.objects.get(pk=flow.pk).webhook_secret == before


@pytest.mark.django_db
def test_rotate_encrypted_column_rotates_every_column_or_none(settings):
    """The one rotation loop (issue 18): both of a flow's secrets move to the newest key, and a
    later row no key opens leaves the earlier, already rotated, rows as they were."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [old]
    first = make_flow(simple_definition("first"))
    webhook, notification = first.webhook_signing_secret(), first.notification_signing_secret()
    before = Flow.objects.values_list("webhook_secret", "notification_secret").get(pk=first.pk)
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    make_flow(simple_definition("second"))  # encrypted with a key that will be gone
    settings.FIELD_ENCRYPTION_KEYS = [new, old]
    with pytest.raises(SecretDecryptionError, match="flow 'second'"):
        rotate_encrypted_column(Flow.objects.all(), ["webhook_secret", "notification_secret"],
                                label_field="slug", describe=lambda slug: f"flow {slug!r}")
    assert Flow.objects.values_list(
        "webhook_secret", "notification_secret").get(pk=first.pk) == before

    assert rotate_encrypted_column(
        Flow.objects.exclude(slug="second"), ["webhook_secret", "notification_secret"],
        label_field="slug", describe=lambda slug: f"flow {slug!r}") == 1
    settings.FIELD_ENCRYPTION_KEYS = [new]
    first.refresh_from_db()
    assert (first.webhook_signing_secret(), first.notification_signing_secret()) == (
        webhook, notification)
