from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # Register the built-in step types and core actions.
        from workflows import steps  # noqa: F401


class WorkflowsAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the workflows home as its index (workflows/admin_site.py)."""

    default = False  # named in INSTALLED_APPS; `workflows` itself is WorkflowsConfig
    default_site = "workflows.admin_site.WorkflowsAdminSite"
