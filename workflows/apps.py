from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # Register the built-in step types and core actions.
        from workflows import steps  # noqa: F401
