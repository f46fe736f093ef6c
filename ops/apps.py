from django.apps import AppConfig


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Tracing is decided at start-up, before the web handler reads MIDDLEWARE and before a
        # worker opens its first connection, so the Django, psycopg and httpx instrumentations
        # (ops.tracing_libraries) see every request and connection. Off: reads the environment
        # only, imports nothing.
        from ops import tracing

        tracing.enabled()
