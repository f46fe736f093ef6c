from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"

    def ready(self) -> None:
        # Register the built-in step types and core actions.
        from workflows import engine, steps  # noqa: F401
        from workflows.services import notifications

        # Runs that end notify their flow's `notify:` rules; the engine only calls a hook.
        engine.on_run_ended(notifications.run_ended)
