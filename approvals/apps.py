from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        # Register the approval step type (its module imports models, so not before ready()).
        from approvals import steps  # noqa: F401
