"""What the benchmarks share: their throwaway PostgreSQL databases and their settings keys."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

# An administrative URL of the PostgreSQL the benches create their databases on.
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# A Fernet key for FIELD_ENCRYPTION_KEYS: the benches store no real secret.
BENCH_FIELD_KEY = "wimMobVfIg8au0QtcJmwLGB6xjrfz7UEUNpyIIVIGeU="
ROOT = Path(__file__).resolve().parent.parent


def recreate_database(name: str, admin_url: str = PG_ADMIN_URL) -> str:
    """Drop and create database `name` on the server of `admin_url`; returns its URL."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlparse(admin_url)._replace(path=f"/{name}").geturl()


def cluster_environment(*, database: str, redis_url: str, cluster: str, workers: int,
                        allowed_hosts: str | None = None) -> dict[str, str]:
    """Database `database` created afresh and migrated, the Redis db of `redis_url` emptied,
    and the settings the bench's qclusters (and web server) run with, set in this process's
    environment too. Returns that environment, for the processes the bench starts."""
    import redis

    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key", "LOG_LEVEL": "ERROR", "Q_LOG_LEVEL": "ERROR",
        "FIELD_ENCRYPTION_KEYS": BENCH_FIELD_KEY, "PYTHONPATH": str(ROOT),
        "DATABASE_URL": recreate_database(database), "REDIS_URL": redis_url,
        "Q_CLUSTER_NAME": cluster, "Q_WORKERS": str(workers),
    }
    if allowed_hosts is not None:
        env["ALLOWED_HOSTS"] = allowed_hosts
    redis.Redis.from_url(redis_url).flushdb()
    os.environ.update(env)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                   env=env, check=True)
    return env


def drop_database(name: str, admin_url: str = PG_ADMIN_URL) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def recreate_postgres_database(url: str) -> None:
    """Drop and create the database `url` names, which must say it is a bench's."""
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing to drop database {name!r}: its name must contain 'bench'")
    recreate_database(name, parsed._replace(path="/postgres").geturl())


def database_release(name: str, admin_url: str = PG_ADMIN_URL) -> None:
    """Close this process's Django connections (if Django was set up) and drop database
    `name`: what every bench does last, whatever happened before."""
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # noqa: BLE001 - Django may not be set up yet
        pass
    drop_database(name, admin_url)


def bench_run(run_bench: Callable[[Any, Path], None], args: Any, *, prefix: str, database: str,
              redis_url: str, failure: type[Exception]) -> None:
    """Run `run_bench(args, tmp)` in a temporary folder, then release its database and empty
    its Redis db whatever happened; a `failure` (the bench's own check failed) exits 1."""
    failed = None
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        try:
            run_bench(args, Path(tmp))
        except failure as exc:
            failed = exc
        finally:
            database_release(database)
            import redis

            redis.Redis.from_url(redis_url).flushdb()
    if failed is not None:
        print(f"\nFAILED: {failed}", file=sys.stderr)
        sys.exit(1)
