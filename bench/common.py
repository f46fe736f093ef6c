"""What the benchmarks share: their throwaway PostgreSQL databases and their settings keys."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlparse

# An administrative URL of the PostgreSQL the benches create their databases on.
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
# A Fernet key for FIELD_ENCRYPTION_KEYS: the benches store no real secret.
BENCH_FIELD_KEY = "wimMobVfIg8au0QtcJmwLGB6xjrfz7UEUNpyIIVIGeU="


def recreate_database(name: str, admin_url: str = PG_ADMIN_URL) -> str:
    """Drop and create database `name` on the server of `admin_url`; returns its URL."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlparse(admin_url)._replace(path=f"/{name}").geturl()


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
