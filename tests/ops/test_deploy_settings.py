"""Deploy settings come from the environment; `check --deploy` is clean with the documented
production environment (docs/production.env) and flags what is missing without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = SOURCE / "docs" / "production.env"


def production_env() -> dict[str, str]:
    env = {}
    for line in PRODUCTION_ENV.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def django(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """`python -m django ARGS` in a clean environment (only what `env` says), outside the
    source tree."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(SOURCE),
            "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-m", "django", *args], env={**base, **env},
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_check_deploy_passes_with_the_documented_production_environment(tmp_path):
    result = django(["check", "--deploy", "--fail-level", "WARNING"], production_env(), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_the_tls_settings(tmp_path):
    env = {key: value for key, value in production_env().items()
           if not key.startswith("SECURE_")}
    env.update(SESSION_COOKIE_SECURE="false", CSRF_COOKIE_SECURE="false")
    result = django(["check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def settings_of(env: dict[str, str], tmp_path: Path, *names: str) -> list[str]:
    code = "from django.conf import settings; " + "; ".join(
        f"print(repr(settings.{name}))" for name in names)
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SOURCE),
             "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_each_deploy_setting_is_read_from_its_variable(tmp_path):
    values = settings_of(production_env(), tmp_path,
                         "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
                         "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD",
                         "SECURE_PROXY_SSL_HEADER", "SESSION_COOKIE_SECURE",
                         "CSRF_COOKIE_SECURE", "CSRF_TRUSTED_ORIGINS", "MEDIA_ROOT",
                         "CACHES['default']['BACKEND']")
    assert values == [
        "True", "31536000", "True", "True", "('HTTP_X_FORWARDED_PROTO', 'https')", "True",
        "True", "['https://workflows.example.com']",
        "PosixPath('/var/lib/workflows/media')",
        "'django.core.cache.backends.redis.RedisCache'",
    ]


def test_debug_defaults_are_for_local_http(tmp_path):
    values = settings_of({"DEBUG": "true", "PUBLIC_BASE_URL": "http://127.0.0.1:8000/x/"},
                         tmp_path, "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
                         "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER",
                         "CSRF_TRUSTED_ORIGINS", "CACHES['default']['BACKEND']")
    assert values == ["False", "False", "False", "None", "['http://127.0.0.1:8000']",
                      "'django.core.cache.backends.locmem.LocMemCache'"]


@pytest.mark.parametrize("value", ["HTTP_X_FORWARDED_PROTO", ",https", "X,"])
def test_a_malformed_proxy_ssl_header_is_refused_at_start(tmp_path, value):
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SOURCE),
             "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true",
             "SECURE_PROXY_SSL_HEADER": value},
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER must be HEADER,VALUE" in result.stderr
