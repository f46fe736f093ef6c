"""Run search (`GET /runs?q=`) matches text inside a run's input and error JSON. On PostgreSQL
that is `UPPER(column::text) LIKE UPPER('%q%')` (what Django's `icontains` on a text cast
writes), served by trigram GIN indexes on exactly those expressions (pg_trgm). A JSONB path
index (jsonb_path_ops) cannot serve a substring match of any value, hence trigrams.

SQLite has no such index; there the same query scans, which is what SQLite deployments (one
machine, small histories) can afford. Other databases: nothing is created.
"""

from django.db import migrations

INDEXES = {
    "run_input_trgm": "input",
    "run_error_trgm": "error",
}


def create_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, column in INDEXES.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS {name} ON workflows_run '
            f'USING gin (UPPER(("{column}")::text) gin_trgm_ops)'
        )


def drop_trigram_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):

    dependencies = [
        ("workflows", "0006_run_error_kind_rerun_of_callback_sender"),
    ]

    operations = [
        migrations.RunPython(create_trigram_indexes, drop_trigram_indexes),
    ]
