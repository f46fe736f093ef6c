"""Settings for the test suite: the real settings with test keys set where none are given."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault(
    # A fixed Fernet key for tests only.
    "FIELD_ENCRYPTION_KEYS", "wimMobVfIg8au0QtcJmwLGB6xjrfz7UEUNpyIIVIGeU="
)

from config.settings import *  # noqa: E402,F403
from config.settings import BASE_DIR, DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so a qcluster subprocess in the e2e tests sees the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test_db.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = BASE_DIR / "media-test"
Q_CLUSTER["sync"] = False  # noqa: F405
