"""Re-encrypt every connection secret and every flow's webhook secret with the newest key of
FIELD_ENCRYPTION_KEYS.

Key rotation: put the new key first in FIELD_ENCRYPTION_KEYS (keep the old ones after it),
restart, run this command, then remove the old keys. Prints {"rotated": N,
"webhook_secrets": M} (N connections, M flows) in one transaction; on failure (a secret no configured key
opens, a missing or invalid key) it exits 1 with the reason on stderr and nothing changed.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from connections.errors import SecretDecryptionError
from connections.services import connection_rotate_keys
from workflows.services.webhooks import webhook_secrets_rotate_keys


class Command(BaseCommand):
    help = ("Re-encrypt every connection secret and flow webhook secret with the newest of "
            "FIELD_ENCRYPTION_KEYS.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with transaction.atomic():
                rotated = connection_rotate_keys()
                webhook_secrets = webhook_secrets_rotate_keys()
        except (SecretDecryptionError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc), returncode=1) from exc
        self.stdout.write(json.dumps({"rotated": rotated, "webhook_secrets": webhook_secrets}))
