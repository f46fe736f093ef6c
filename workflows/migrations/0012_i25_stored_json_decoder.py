# Issue 25: Run.input and Run.trigger_payload are read with StoredJSONDecoder. The columns do not
# change (the decoder only reads), so this is state only: no table rebuild on SQLite.

from django.db import migrations, models

import workflows.stored_json


class Migration(migrations.Migration):

    dependencies = [
        ("workflows", "0011_i25_notification_secret"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="run",
                    name="input",
                    field=models.JSONField(blank=True, decoder=workflows.stored_json.StoredJSONDecoder,
                                           default=dict),
                ),
                migrations.AlterField(
                    model_name="run",
                    name="trigger_payload",
                    field=models.JSONField(blank=True, decoder=workflows.stored_json.StoredJSONDecoder,
                                           default=dict),
                ),
            ],
            database_operations=[],
        ),
    ]
