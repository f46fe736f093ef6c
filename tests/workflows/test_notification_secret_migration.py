"""Migration 0011 (issue 25 H3): every existing flow gets a notification secret of its own,
not one value shared by all rows (what AddField's one-off default would have written)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from connections.crypto import decrypt_text, encrypt_text

BEFORE = [("workflows", "0010_webhook_signature_seen")]
AFTER = [("workflows", "0011_i25_notification_secret")]


@pytest.mark.django_db(transaction=True)
def test_existing_flows_each_get_their_own_notification_secret():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("workflows", "Flow")
    for slug in ("one", "two", "three"):
        old.objects.create(slug=slug, name=slug, webhook_secret=encrypt_text("s"))
    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps.get_model("workflows", "Flow")
    secrets = [decrypt_text(token) for token in new.objects.values_list(
        "notification_secret", flat=True)]
    assert len(secrets) == 3 and len(set(secrets)) == 3
    assert all(secret.startswith("whsec_") for secret in secrets)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
