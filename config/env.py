"""Reading configuration from the environment (and an optional local `.env` file).

`make run` writes a `.env` with generated keys for the embedded default; real deployments set
the variables in the environment, which always wins over the file.
"""

import os
from pathlib import Path


def load_dotenv(path: Path) -> None:
    """Set variables from a KEY=VALUE file without overriding ones already in the environment."""
    if not path.is_file():
        return
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        os.environ.setdefault(key.strip(), value.strip().strip("'\""))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """`HEADER,VALUE` (e.g. `HTTP_X_FORWARDED_PROTO,https`) as Django's SECURE_PROXY_SSL_HEADER
    tuple; unset or empty: None (no proxy header is trusted)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    header, sep, expected = (part.strip() for part in value.partition(","))
    if not sep or not header or not expected:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"{name} must be HEADER,VALUE such as HTTP_X_FORWARDED_PROTO,https, not {value!r}")
    return header, expected


def origin_of(url: str) -> str:
    """The origin (scheme://host[:port]) of `url`, as CSRF_TRUSTED_ORIGINS wants it."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    return f"{parts.scheme}://{parts.netloc}"
