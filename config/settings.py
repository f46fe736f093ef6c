"""Settings, read from the environment (see CONTRACT.md "Configuration")."""

import os
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_float, env_int, env_list, load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent
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
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [PUBLIC_BASE_URL])

# Dedicated keys for secrets at rest (never derived from SECRET_KEY), newest first.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", [])
if not FIELD_ENCRYPTION_KEYS and not DEBUG:
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEYS is not set. Generate one with `python -c \"from cryptography."
        "fernet import Fernet; print(Fernet.generate_key().decode())\"` and set it (comma "
        "separated, newest first). `make run` writes one into a local .env."
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_q",
    "workflows",
    "approvals",
    "resources",
    "connections",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
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
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True
# Without `collectstatic` there is no STATIC_ROOT yet; WhiteNoise then serves from the apps'
# static folders (finders) and need not warn about the missing directory on every start.
warnings.filterwarnings("ignore", message=r"No directory at: .*staticfiles", category=UserWarning)
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
MEDIA_URL = "media/"

LOGIN_URL = "admin:login"

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
WF_SWEEP_INTERVAL_MINUTES = env_int("WF_SWEEP_INTERVAL_MINUTES", 1)

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
else:
    Q_CLUSTER["orm"] = "default"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {
        "django_q": {"handlers": ["console"], "level": os.environ.get("Q_LOG_LEVEL", "WARNING"),
                     "propagate": False},
    },
}
