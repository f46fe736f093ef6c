# A flow's release history (issue 13).

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('workflows', '0005_encrypt_webhook_secrets'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='FlowHistory',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('released', 'Released'), ('draft_edited', 'Draft Edited'), ('promoted', 'Promoted'), ('rolled_back', 'Rolled Back'), ('webhook_secret_rotated', 'Webhook Secret Rotated'), ('promotion_requested', 'Promotion Requested'), ('promotion_rejected', 'Promotion Rejected'), ('promotion_expired', 'Promotion Expired')], max_length=32)),
                ('actor_name', models.CharField(blank=True, max_length=150)),
                ('at', models.DateTimeField(default=django.utils.timezone.now)),
                ('from_version', models.PositiveIntegerField(blank=True, null=True)),
                ('to_version', models.PositiveIntegerField(blank=True, null=True)),
                ('comment', models.TextField(blank=True)),
                ('data', models.JSONField(blank=True, default=dict)),
                ('actor', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('flow', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='history', to='workflows.flow')),
            ],
            options={
                'verbose_name_plural': 'flow history',
                'ordering': ['-id'],
                'indexes': [models.Index(fields=['flow', '-id'], name='flowhistory_flow_newest')],
            },
        ),
    ]
