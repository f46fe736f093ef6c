from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # Register the built-in step types and core actions, and the task functions the engine
        # sends (workflows.tasks registers them with engine.task).
        from workflows import engine, steps, tasks  # noqa: F401
        from workflows.services import notifications, subflows  # subflows: the `flow` step

        # Runs that end notify their flow's `notify:` rules; the engine only calls a hook.
        engine.on_run_ended(notifications.run_ended)
        # A subflow's end resolves its parent's `flow` step (after the child's commit).
        engine.on_run_ended(subflows.subflow_run_ended)


class WorkflowsAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the workflows home as its index (workflows/admin_site.py)."""

    default = False  # named in INSTALLED_APPS; `workflows` itself is WorkflowsConfig
    default_site = "workflows.admin_site.WorkflowsAdminSite"
