"""Webhook secrets at rest: encrypted with FIELD_ENCRYPTION_KEYS like connection secrets.

Every existing secret (plain text until now) is encrypted with the newest key; reversing
decrypts them again. The column widens to hold a Fernet token."""

from django.db import migrations, models

import workflows.models


def encrypt_existing(apps, schema_editor):
    from connections.crypto import encrypt_text

    Flow = apps.get_model("workflows", "Flow")
    for pk, secret in Flow.objects.values_list("pk", "webhook_secret").iterator():
        Flow.objects.filter(pk=pk).update(webhook_secret=encrypt_text(secret))


def decrypt_existing(apps, schema_editor):
    from connections.crypto import decrypt_text

    Flow = apps.get_model("workflows", "Flow")
    for pk, token in Flow.objects.values_list("pk", "webhook_secret").iterator():
        Flow.objects.filter(pk=pk).update(webhook_secret=decrypt_text(token))


class Migration(migrations.Migration):

    dependencies = [
        ("workflows", "0004_rehearsal_definition"),
    ]

    operations = [
        migrations.AlterField(
            model_name="flow",
            name="webhook_secret",
            field=models.CharField(default=workflows.models._webhook_secret, editable=False,
                                   max_length=255),
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
    ]
