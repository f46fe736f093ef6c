"""Settings for the test suite: the real settings with test keys set where none are given."""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault(
    # A fixed Fernet key for tests only.
    "FIELD_ENCRYPTION_KEYS", "wimMobVfIg8au0QtcJmwLGB6xjrfz7UEUNpyIIVIGeU="
)

from config.settings import *  # noqa: E402,F403
from config.settings import BASE_DIR, DATABASES  # noqa: E402

# One test database per pytest process, so several test sessions on one machine do not drop
# each other's database. SQLite: a file, not memory, so a qcluster subprocess in the e2e tests
# sees the same database.
_suffix = os.environ.get("WF_TEST_DB_SUFFIX") or str(os.getpid())
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / f"test_db_{_suffix}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_wf_{_suffix}"}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = BASE_DIR / "media-test"
Q_CLUSTER["sync"] = False  # noqa: F405
