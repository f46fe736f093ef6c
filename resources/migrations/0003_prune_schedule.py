"""The daily retention pass as a django-q2 schedule (resources.tasks.prune, 03:17 UTC)."""

from datetime import datetime, time, timedelta, timezone

from django.db import migrations


def create_prune_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    now = datetime.now(timezone.utc)
    first = datetime.combine(now.date(), time(3, 17), tzinfo=timezone.utc)
    if first <= now:
        first += timedelta(days=1)
    Schedule.objects.update_or_create(
        name="resources-prune",
        defaults={"func": "resources.tasks.prune", "schedule_type": "D", "repeats": -1,
                  "next_run": first},
    )


def remove_prune_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="resources-prune").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("resources", "0002_kind_and_attempt"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_prune_schedule, remove_prune_schedule)]
