"""Issue 12: a failed run's error kind (rejected, timeout, error), the `rerun_of` link and the
rerun trigger, who posted a wait step's callback, and the indexes run search uses.

Existing failed runs get their error kind from their error JSON and the status of the step it
names (the logic of `workflows.states.error_kind_of`, copied so this migration stays as it is).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


TIMEOUT_ERROR_TYPES = {"StepTimeout", "WaitTimeout", "ApprovalTimeout"}


def backfill_error_kinds(apps, schema_editor):
    Run = apps.get_model("workflows", "Run")
    StepRun = apps.get_model("workflows", "StepRun")
    failed = Run.objects.filter(status="failed", error_kind="").values_list("pk", "error")
    for pk, error in failed.iterator():
        error = error if isinstance(error, dict) else {}
        step_status = None
        if error.get("step"):
            step_status = (StepRun.objects.filter(run_id=pk, key=error["step"])
                           .values_list("status", flat=True).first())
        if step_status == "rejected" or error.get("type") == "Rejected":
            kind = "rejected"
        elif error.get("type") in TIMEOUT_ERROR_TYPES:
            kind = "timeout"
        else:
            kind = "error"
        Run.objects.filter(pk=pk).update(error_kind=kind)


class Migration(migrations.Migration):

    dependencies = [
        ('workflows', '0005_encrypt_webhook_secrets'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='run',
            name='error_kind',
            field=models.CharField(blank=True, choices=[('rejected', 'Rejected'), ('timeout', 'Timeout'), ('error', 'Error')], default='', max_length=16),
        ),
        migrations.AddField(
            model_name='run',
            name='rerun_of',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='reruns', to='workflows.run'),
        ),
        migrations.AddField(
            model_name='steprun',
            name='callback_issued_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='steprun',
            name='callback_remote_addr',
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name='steprun',
            name='callback_user_agent',
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.AlterField(
            model_name='run',
            name='trigger_kind',
            field=models.CharField(choices=[('manual', 'Manual'), ('schedule', 'Schedule'), ('webhook', 'Webhook'), ('retry', 'Retry'), ('replay', 'Replay'), ('rerun', 'Rerun')], max_length=16),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(fields=['error_kind', '-id'], name='run_error_kind'),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(fields=['finished_at'], name='run_finished_at'),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(fields=['idempotency_key'], name='run_idempotency_key'),
        ),
        migrations.RunPython(backfill_error_kinds, migrations.RunPython.noop),
    ]
