# Promotion requests are approvals too (issue 13).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def set_flow_of_step_approvals(apps, schema_editor):
    # Step approvals name their flow too, so lists read one column for both kinds.
    Approval = apps.get_model("approvals", "Approval")
    Run = apps.get_model("workflows", "Run")
    for approval in Approval.objects.filter(flow__isnull=True, run__isnull=False).only("pk", "run_id"):
        flow_id = Run.objects.filter(pk=approval.run_id).values_list("flow_id", flat=True).first()
        Approval.objects.filter(pk=approval.pk).update(flow_id=flow_id)


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0002_approval_for_reviewers'),
        ('workflows', '0005_encrypt_webhook_secrets'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='approval',
            name='flow',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='workflows.flow'),
        ),
        migrations.AddField(
            model_name='approval',
            name='kind',
            field=models.CharField(choices=[('step', 'Step'), ('promotion', 'Promotion')], default='step', max_length=16),
        ),
        migrations.AddField(
            model_name='approval',
            name='requested_by',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='approval',
            name='version',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='workflows.flowversion'),
        ),
        migrations.AlterField(
            model_name='approval',
            name='attempt_number',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='approval',
            name='run',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='approvals', to='workflows.run'),
        ),
        migrations.AlterField(
            model_name='approval',
            name='step_run',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='approvals', to='workflows.steprun'),
        ),
        migrations.RunPython(set_flow_of_step_approvals, migrations.RunPython.noop),
    ]
