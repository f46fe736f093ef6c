"""`python manage.py export_openapi > docs/openapi.json`: the API's OpenAPI document, stable
(sorted keys, two-space indent) so the committed snapshot diffs cleanly."""

import json

from django.core.management.base import BaseCommand

from workflows.api import api


def openapi_document() -> dict:
    return api.get_openapi_schema()


class Command(BaseCommand):
    help = "Print the HTTP API's OpenAPI document as JSON (refresh docs/openapi.json with it)."

    def handle(self, *args, **options):
        self.stdout.write(json.dumps(openapi_document(), indent=2, sort_keys=True,
                                     ensure_ascii=False))
