"""The production server (config/gunicorn.conf.py) serves the app, and the database connection
settings are read from the environment."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_serves_the_admin_login_page_with_the_project_config(tmp_path):
    port = free_port()
    env = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "PYTHONPATH": str(ROOT),
        "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": "1", "WEB_THREADS": "2",
    }
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.conf.py",
         "config.wsgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        response = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/admin/login/", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert server.poll() is None, server.stdout.read().decode()
        assert response is not None, "gunicorn did not answer within 30 s"
        assert response.status_code == 200
        assert 'name="username"' in response.text
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        server.stdout.close()


def database_settings(**environ: str) -> dict:
    """DATABASES["default"] as config.settings builds it from `environ` (a fresh process)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONPATH": str(ROOT),
           "SECRET_KEY": "x", "FIELD_ENCRYPTION_KEYS": "wimMobVfIg8au0QtcJmwLGB6xjrfz7UEUNpyIIVIGeU="}
    for name in ("DB_CONN_MAX_AGE", "DB_CONN_HEALTH_CHECKS"):
        env.pop(name, None)
    env.update(environ)
    code = ("import json; from django.conf import settings; d = settings.DATABASES['default'];"
            "print(json.dumps({'age': d['CONN_MAX_AGE'], 'checks': d['CONN_HEALTH_CHECKS']}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, {"age": 60, "checks": False}),
    ({"DB_CONN_MAX_AGE": "0"}, {"age": 0, "checks": False}),
    ({"DB_CONN_MAX_AGE": "600", "DB_CONN_HEALTH_CHECKS": "true"}, {"age": 600, "checks": True}),
])
def test_postgresql_connection_lifetime_is_read_from_the_environment(environ, expected):
    url = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused"}
    assert database_settings(**url, **environ) == expected


def test_sqlite_keeps_no_persistent_connection_whatever_the_environment_says(tmp_path):
    assert database_settings(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                             DB_CONN_MAX_AGE="600") == {"age": 0, "checks": False}
