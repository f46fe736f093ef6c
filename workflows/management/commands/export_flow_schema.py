"""`python manage.py export_flow_schema > docs/flow.schema.json`: the JSON Schema of a flow
definition, stable (sorted keys, two-space indent) so the committed copy diffs cleanly; a test
fails when docs/flow.schema.json differs from it."""

import json

from django.core.management.base import BaseCommand

from workflows.definitions.schema import flow_json_schema


def flow_schema_text() -> str:
    return json.dumps(flow_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class Command(BaseCommand):
    help = "Print the JSON Schema of a flow definition (refresh docs/flow.schema.json with it)."

    def handle(self, *args, **options):
        self.stdout.write(flow_schema_text(), ending="")
