"""Settings, read from the environment (see CONTRACT.md "Configuration")."""

import os
import warnings
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    email_url_settings,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_proxy_ssl_header,
    load_dotenv,
    origin_of,
)

# Where the code is (`config/..`). From a source checkout (manage.py next to it) that is also
# the project directory holding `.env`, the SQLite file and media; an installed copy lives in
# site-packages, so its data defaults to the current directory instead (set DATABASE_URL,
# MEDIA_ROOT and STATIC_ROOT in production anyway). Templates and static files are package data
# of the apps and are found next to the code either way (docs/architecture.md "Packaging").
CODE_DIR = Path(__file__).resolve().parent.parent
BASE_DIR = CODE_DIR if (CODE_DIR / "manage.py").is_file() else Path.cwd()
load_dotenv(BASE_DIR / ".env")

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment (or run `make run`, which writes "
            "a local .env with generated keys)."
        )
    SECRET_KEY = "insecure-debug-only-key"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [origin_of(PUBLIC_BASE_URL)])

# --- Deployment behind TLS (each variable is named like the Django setting it sets) ----------
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# "HTTP_X_FORWARDED_PROTO,https": trust the proxy's header saying the request came over TLS.
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")
# Cookies only over TLS unless DEBUG (local http) or said otherwise.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# Dedicated keys for secrets at rest (never derived from SECRET_KEY), newest first.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", [])
if not FIELD_ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEYS is not set. Generate one with `python -c \"from cryptography."
        "fernet import Fernet; print(Fernet.generate_key().decode())\"` and set it (comma "
        "separated, newest first). `make run` writes one into a local .env."
    )

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    # django-ninja as an app: /api/v1/docs then serves Swagger UI from its static files instead
    # of a public CDN, so the page works offline and under the CSP.
    "ninja",
    "workflows",
    "approvals",
    "resources",
    "connections",
    "ops",
    "accounts",
    # The admin site is the workflows home (workflows/admin_site.py). Listed after the apps so
    # their templates (admin/base_site.html: the site header and the lookup box) come first.
    "workflows.apps.WorkflowsAdminConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A wait's callback siblings (heartbeat, logs, artifacts), which remote agents post every
    # few seconds, are answered here: none of the middleware below (not even a CSP
    # header, which a JSON answer has no use for) serves an anonymous,
    # token-authenticated POST (workflows/api/agent_callbacks.py).
    "workflows.api.agent_callbacks.AgentCallbackMiddleware",
    "csp.middleware.CSPMiddleware",
    # Serves the admin's CSS, htmx and scripts whatever DEBUG says (`runserver` alone only
    # does with DEBUG on), from the apps' static folders when collectstatic has not been run.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Pages show times in the reader's zone (the wf_tz cookie); APIs stay UTC.
    "workflows.middleware.TimeZoneMiddleware",
    # Counts refused webhook and callback deliveries for /metrics (ops/).
    "ops.middleware.InboundRefusalMiddleware",
]

# Only the app's own scripts run: every script is a static file, none inline, no eval. Styles
# may be inline (the Django admin and Swagger UI set style attributes); images may be data: URIs
# (the admin's and Swagger UI's icons).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Each app ships its templates in its own templates/ folder (package data).
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL: each web thread and each worker process keeps its connection for DB_CONN_MAX_AGE
# seconds (0: a new connection per request; see docs/operations.md "Production server");
# DB_CONN_HEALTH_CHECKS checks a reused connection before a request uses it.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=env_bool("DB_CONN_HEALTH_CHECKS", False),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, qcluster workers) write to one file: WAL lets readers go on while
    # one writes, IMMEDIATE takes the write lock at BEGIN so two read-then-write transactions
    # serialize instead of failing half way, and the timeout waits out the other writer.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
# The admin's own pages format times like the workflows pages (config/formats/en/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
WHITENOISE_USE_FINDERS = True
# Without `collectstatic` there is no STATIC_ROOT yet; WhiteNoise then serves from the apps'
# static folders (finders) and need not warn about the missing directory on every start.
warnings.filterwarnings("ignore", message=r"No directory at: .*staticfiles", category=UserWarning)
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT") or BASE_DIR / "media")
MEDIA_URL = "media/"

LOGIN_URL = "admin:login"

# --- Sign-in (accounts/): OpenID Connect when OIDC_ISSUER_URL is set (docs/operations.md
# "Single sign-on"); unset, nothing of it is active. WF_PASSWORD_LOGIN=false hides the password
# form (superusers still reach it at /admin/login/?password=1). ------------------------------
WF_PASSWORD_LOGIN = env_bool("WF_PASSWORD_LOGIN", True)
OIDC_ISSUER_URL = os.environ.get("OIDC_ISSUER_URL", "").strip().rstrip("/")
OIDC_CLIENT_ID = os.environ.get("OIDC_CLIENT_ID", "").strip()
OIDC_CLIENT_SECRET = os.environ.get("OIDC_CLIENT_SECRET", "")
OIDC_GROUPS_CLAIM = os.environ.get("OIDC_GROUPS_CLAIM", "").strip() or "groups"
OIDC_STAFF_GROUP = os.environ.get("OIDC_STAFF_GROUP", "").strip()
OIDC_ADMIN_GROUP = os.environ.get("OIDC_ADMIN_GROUP", "").strip()
OIDC_LOGIN_LABEL = os.environ.get("OIDC_LOGIN_LABEL", "").strip() or "single sign-on"
OIDC_SCOPES = os.environ.get("OIDC_SCOPES", "").strip() or "openid email profile"
# mozilla-django-oidc's own settings, derived from ours (accounts/oidc.py reads the endpoints
# from the issuer's discovery document when they are needed, not at start).
OIDC_RP_CLIENT_ID = OIDC_CLIENT_ID
OIDC_RP_CLIENT_SECRET = OIDC_CLIENT_SECRET
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = OIDC_SCOPES
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_TIMEOUT = env_float("OIDC_TIMEOUT", 10.0)
LOGIN_REDIRECT_URL = "/admin/"
if OIDC_ISSUER_URL:
    if not OIDC_CLIENT_ID or not OIDC_CLIENT_SECRET:
        raise ImproperlyConfigured(
            "OIDC_ISSUER_URL is set: set OIDC_CLIENT_ID and OIDC_CLIENT_SECRET too.")
    AUTHENTICATION_BACKENDS = ["accounts.oidc.OidcBackend",
                               "django.contrib.auth.backends.ModelBackend"]
# The admin's site header and page titles ("Workflows" unless set).
WF_SITE_TITLE = os.environ.get("WF_SITE_TITLE", "").strip() or "Workflows"

# --- The engine -------------------------------------------------------------------------------
# How long a claimed step may go without a heartbeat before the sweeper takes it back.
WF_LEASE_SECONDS = env_int("WF_LEASE_SECONDS", 30)
WF_HEARTBEAT_SECONDS = env_float("WF_HEARTBEAT_SECONDS", 5.0)
# A queued step whose task has not claimed it after this long is enqueued again.
WF_REQUEUE_AFTER_SECONDS = env_int("WF_REQUEUE_AFTER_SECONDS", 60)
# The longest a step handler may hold a worker; django-q2 kills a task past this.
WF_TASK_TIMEOUT_SECONDS = env_int("WF_TASK_TIMEOUT_SECONDS", 3600)
# Default step timeout when a step names none.
WF_DEFAULT_STEP_TIMEOUT_SECONDS = env_int("WF_DEFAULT_STEP_TIMEOUT_SECONDS", 600)
# Delays shorter than this (retry backoff, short timers) are waited out by the task itself;
# longer ones are picked up by the sweeper, which runs every minute.
WF_INLINE_DELAY_SECONDS = env_float("WF_INLINE_DELAY_SECONDS", 30.0)
# Continue with the next ready step in the same worker instead of a round trip through the
# broker (see docs/architecture.md).
WF_CONTINUE_INLINE = env_bool("WF_CONTINUE_INLINE", True)
# PostgreSQL: send a step's finishing writes in psycopg's pipeline mode (one round trip for
# the writes that do not depend on each other; see docs/performance.md).
WF_PIPELINE = env_bool("WF_PIPELINE", True)
# PostgreSQL: prepare the engine's hot statements (parsed and planned once per connection).
# Turn off behind a connection pooler that cannot keep prepared statements (PgBouncer in
# transaction mode before 1.21).
WF_PREPARE_STATEMENTS = env_bool("WF_PREPARE_STATEMENTS", True)
WF_SWEEP_INTERVAL_MINUTES = env_int("WF_SWEEP_INTERVAL_MINUTES", 1)
# The largest file an ssh step's `download` brings back as a resource (default 2 GiB).
WF_SFTP_MAX_BYTES = env_int("WF_SFTP_MAX_BYTES", 2 * 1024**3)
# Bounds of a flow definition: more steps, or a larger document (YAML/JSON text, or the JSON of
# a parsed definition), is a 422 naming the limit.
WF_MAX_STEPS = env_int("WF_MAX_STEPS", 500)
# How deep subflows may nest: a run started by a `flow` step of a run at this depth fails.
WF_SUBFLOW_MAX_DEPTH = env_int("WF_SUBFLOW_MAX_DEPTH", 5)
# for_each: instances running at once when a step names no max_parallel, and the most items a
# step may fan out to (more fails the step with too_many_items).
WF_FOR_EACH_PARALLEL = env_int("WF_FOR_EACH_PARALLEL", 10)
WF_FOR_EACH_MAX_ITEMS = env_int("WF_FOR_EACH_MAX_ITEMS", 10_000)
# How many queued instances of one step a worker claims, runs (in its handler threads) and
# records at once (docs/architecture.md "for_each instances").
WF_FOR_EACH_BATCH = env_int("WF_FOR_EACH_BATCH", 10)
WF_MAX_DEFINITION_BYTES = env_int("WF_MAX_DEFINITION_BYTES", 512 * 1024)
# Outbound http steps (workflows/steps/http_policy.py): link-local and cloud metadata
# addresses are refused by default; WF_HTTP_DENY refuses more, WF_HTTP_ALLOW lets some through
# (comma-separated CIDRs and host names; see docs/operations.md).
WF_HTTP_ALLOW = [v.strip() for v in os.environ.get("WF_HTTP_ALLOW", "").split(",") if v.strip()]
WF_HTTP_DENY = [v.strip() for v in os.environ.get("WF_HTTP_DENY", "").split(",") if v.strip()]
# The port this server listens on (gunicorn's PORT, config/gunicorn.conf.py): a notification
# webhook to a loopback address or an ALLOWED_HOSTS name on it (or on PUBLIC_BASE_URL's port)
# is this platform itself, refused at release and at send (connections/outbound.py).
WF_SERVED_PORT = env_int("PORT", 8000)

# --- Payloads, logs and retention (docs/architecture.md "Payloads") --------------------------
# A step output, attempt input/output/error, callback body or webhook payload whose compact JSON
# is larger than this (or that holds what a database cannot store) is kept as a resource and
# replaced inline by a small `{"$resource": "res://…", …}` descriptor.
WF_INLINE_OUTPUT_BYTES = env_int("WF_INLINE_OUTPUT_BYTES", 64 * 1024)
# A reference into an offloaded JSON output loads the resource up to this size.
WF_REFERENCE_LOAD_BYTES = env_int("WF_REFERENCE_LOAD_BYTES", 16 * 1024 * 1024)
# At most this much log text per step run stays in the database (its head and newest tail);
# the whole log is always kept as a resource.
WF_LOG_INLINE_BYTES = env_int("WF_LOG_INLINE_BYTES", 5 * 1024 * 1024)
# The largest response body an http step accepts (streamed into a resource); a larger one fails
# the attempt with ResponseTooLarge naming this setting. Default 1 GiB.
WF_HTTP_MAX_BYTES = env_int("WF_HTTP_MAX_BYTES", 1024**3)
# The largest artifact a wait's remote agent may PUT (streamed into a resource); larger: 413
# naming this setting. Default 1 GiB.
WF_ARTIFACT_MAX_BYTES = env_int("WF_ARTIFACT_MAX_BYTES", 1024**3)
# The largest body a callback or a webhook delivery may POST (a body over WF_INLINE_OUTPUT_BYTES
# is kept as a resource). Default 2 MiB.
WF_INBOUND_MAX_BYTES = env_int("WF_INBOUND_MAX_BYTES", 2 * 1024 * 1024)
# Django refuses to read a larger body into memory; at least the inbound cap.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(2_621_440, WF_INBOUND_MAX_BYTES)
# Rejected webhook deliveries (bad signature, token, replay) logged per flow per minute; the
# rest are answered (401/409) but not logged, so forged requests cannot fill the delivery log.
WF_WEBHOOK_REJECTED_PER_MINUTE = env_int("WF_WEBHOOK_REJECTED_PER_MINUTE", 30)
# Ended runs older than this many days are pruned with their rows and files (0 keeps them
# forever); a flow's `retention_days` overrides it.
WF_RETENTION_DAYS = env_int("WF_RETENTION_DAYS", 30)

# --- The API --------------------------------------------------------------------------------
# Rate limit of the unauthenticated endpoints (callbacks, webhooks) per client address; empty
# turns it off. NINJA_NUM_PROXIES: how many trusted proxies stand in front (X-Forwarded-For is
# ignored without it, so a client cannot dodge the throttle by sending one).
WF_ANON_THROTTLE = os.environ.get("WF_ANON_THROTTLE", "120/m")
NINJA_NUM_PROXIES = env_int("NINJA_NUM_PROXIES", 0) or None

# --- django-q2: a courier only. It never retries on its own; retries are the engine's. ---------
REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": os.environ.get("Q_CLUSTER_NAME", "workflows"),
    "workers": env_int("Q_WORKERS", 2),
    "recycle": 500,
    "timeout": WF_TASK_TIMEOUT_SECONDS,
    "retry": WF_TASK_TIMEOUT_SECONDS + 120,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": env_int("Q_SAVE_LIMIT", 250),
    "catch_up": False,
    "poll": env_float("Q_POLL", 0.2),
    "guard_cycle": env_float("Q_GUARD_CYCLE", 0.5),
    "label": "Worker tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    # django-q2's Redis broker with one client per process, not a new connection per task sent
    # (ops/broker.py).
    Q_CLUSTER["broker_class"] = "ops.broker.SharedClientRedis"
else:
    Q_CLUSTER["orm"] = "default"

# --- The cache: throttle counts (and short-lived page data) ---------------------------------
# With Redis every web process counts in one place, so N processes allow the limit once, not N
# times. CACHE_REDIS_URL may point the cache at another Redis database than the broker's
# (recommended: clearing the cache flushes its whole database); the key prefix keeps the two
# apart when they share one.
CACHE_REDIS_URL = os.environ.get("CACHE_REDIS_URL") or REDIS_URL
if CACHE_REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "wf"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Email (notifications): EMAIL_URL (smtp://user:pass@host:587?tls=1, consolemail://,
# filemail:///path, ...) or Django's own EMAIL_* variables. Default: the console backend when
# DEBUG (so `make run` prints mail), SMTP on localhost:25 otherwise. ------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.console.EmailBackend" if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH") or None
if os.environ.get("EMAIL_URL"):
    globals().update(email_url_settings(os.environ["EMAIL_URL"]))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "workflows@localhost")
# Notification sends (workflows/services/notifications.py): tries before giving up, the first
# retry's delay (doubling each time, at most an hour) and a webhook's timeout.
WF_NOTIFY_MAX_ATTEMPTS = env_int("WF_NOTIFY_MAX_ATTEMPTS", 5)
WF_NOTIFY_BACKOFF_SECONDS = env_float("WF_NOTIFY_BACKOFF_SECONDS", 30.0)
WF_NOTIFY_TIMEOUT_SECONDS = env_float("WF_NOTIFY_TIMEOUT_SECONDS", 5.0)
# Approve/Reject links in each assignee's approval email (approvals/decision_links.py): off for
# organisations that want every decision taken after sign-in. A link expires with its approval,
# or after this many hours, whichever comes first.
WF_DECISION_LINKS = env_bool("WF_DECISION_LINKS", True)
WF_DECISION_LINK_TTL_HOURS = env_float("WF_DECISION_LINK_TTL_HOURS", 72.0)

# --- Health and metrics (ops/) ------------------------------------------------------------------
# Bearer token for /metrics; unset, /metrics is off (404).
WF_METRICS_TOKEN = os.environ.get("WF_METRICS_TOKEN", "")
# A link to a run's trace in the operators' tracing tool, e.g.
# https://grafana.example.com/explore?...{trace_id}... (traces: ops/tracing.py; unset: no link).
WF_TRACE_URL = os.environ.get("WF_TRACE_URL", "")
# /readyz fails when the sweeper's schedule is overdue by more than this (no qcluster is
# running schedules); 0 leaves the sweeper out of readiness.
WF_READY_SWEEPER_GRACE_SECONDS = env_int("WF_READY_SWEEPER_GRACE_SECONDS", 300)

# --- Logs: LOG_FORMAT=plain (time, level, logger, message) or json (one object per line, with
# run_id, step_run_id and flow from the task being run). --------------------------------------
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain").strip().lower()
if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"run_context": {"()": "ops.logs.RunContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "ops.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["run_context"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {
        "django_q": {"handlers": ["console"], "level": os.environ.get("Q_LOG_LEVEL", "WARNING"),
                     "propagate": False},
    },
}
