# Issue 25 H3: each flow signs its notifications with a key of its own.

from django.db import migrations, models

import workflows.models


def give_each_flow_its_own_secret(apps, schema_editor):
    """AddField's default is computed once for every existing row; a shared key would let one
    flow's receiver forge another's notifications, so each existing flow gets a fresh one."""
    Flow = apps.get_model("workflows", "Flow")
    for pk in Flow.objects.values_list("pk", flat=True).iterator():
        Flow.objects.filter(pk=pk).update(
            notification_secret=workflows.models._notification_secret())


class Migration(migrations.Migration):

    dependencies = [
        ('workflows', '0010_webhook_signature_seen'),
    ]

    operations = [
        migrations.AddField(
            model_name='flow',
            name='notification_secret',
            field=models.CharField(default='', editable=False, max_length=255),
            preserve_default=False,
        ),
        migrations.RunPython(give_each_flow_its_own_secret, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='flow',
            name='notification_secret',
            field=models.CharField(default=workflows.models._notification_secret, editable=False, max_length=255),
        ),
        migrations.AlterField(
            model_name='flowhistory',
            name='kind',
            field=models.CharField(choices=[('released', 'Released'), ('draft_edited', 'Draft Edited'), ('promoted', 'Promoted'), ('rolled_back', 'Rolled Back'), ('webhook_secret_rotated', 'Webhook Secret Rotated'), ('notification_secret_rotated', 'Notification Secret Rotated'), ('promotion_requested', 'Promotion Requested'), ('promotion_rejected', 'Promotion Rejected'), ('promotion_expired', 'Promotion Expired')], max_length=32),
        ),
    ]
