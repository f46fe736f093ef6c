"""Roles as groups, and the sweeper's django-q2 schedule."""

from django.db import migrations

ROLES = {
    "builders": [
        "workflows.edit_draft", "workflows.release_flow", "workflows.view_flow",
        "workflows.add_flow", "workflows.change_flow", "workflows.view_flowversion",
        "workflows.view_run", "workflows.view_steprun", "workflows.view_attempt",
        "workflows.view_event", "workflows.view_logchunk",
    ],
    "operators": [
        "workflows.operate_run", "workflows.promote_flow", "workflows.view_flow",
        "workflows.view_flowversion", "workflows.view_run", "workflows.view_steprun",
        "workflows.view_attempt", "workflows.view_event", "workflows.view_logchunk",
        "approvals.view_approval",
    ],
    "reviewers": [
        "workflows.view_flow", "workflows.view_run", "workflows.view_steprun",
        "workflows.view_attempt", "workflows.view_event", "workflows.view_logchunk",
        "approvals.view_approval",
    ],
    "support": [
        "workflows.view_flow", "workflows.view_flowversion", "workflows.view_run",
        "workflows.view_steprun", "workflows.view_attempt", "workflows.view_event",
        "workflows.view_logchunk", "approvals.view_approval", "resources.view_resource",
    ],
}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for perm in perms:
            app_label, codename = perm.split(".")
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if permission is not None:
                group.permissions.add(permission)


def create_sweeper(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="workflows-sweeper",
        defaults={"func": "workflows.tasks.sweep", "schedule_type": "I", "minutes": 1,
                  "repeats": -1},
    )


def remove_sweeper(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="workflows-sweeper").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0001_initial"),
        ("approvals", "0001_initial"),
        ("resources", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
        migrations.RunPython(create_sweeper, remove_sweeper),
    ]
