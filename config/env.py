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


EMAIL_URL_BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "smtps": "django.core.mail.backends.smtp.EmailBackend",
    "submission": "django.core.mail.backends.smtp.EmailBackend",
    "consolemail": "django.core.mail.backends.console.EmailBackend",
    "filemail": "django.core.mail.backends.filebased.EmailBackend",
    "memorymail": "django.core.mail.backends.locmem.EmailBackend",
    "dummymail": "django.core.mail.backends.dummy.EmailBackend",
}


def email_url_settings(url: str) -> dict[str, object]:
    """Django's EMAIL_* settings from one URL, as django-environ spells them:
    `smtp://user:pass@host:587` (`?tls=1` or `?ssl=1`; `smtps://` means SSL on 465,
    `submission://` TLS on 587), `consolemail://`, `filemail:///path/to/dir`, `memorymail://`,
    `dummymail://`. User and password are percent-decoded."""
    from urllib.parse import parse_qs, unquote, urlsplit

    from django.core.exceptions import ImproperlyConfigured

    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ImproperlyConfigured(f"EMAIL_URL is not a valid URL: {exc}") from None
    backend = EMAIL_URL_BACKENDS.get(parts.scheme)
    if backend is None:
        raise ImproperlyConfigured(
            f"EMAIL_URL scheme must be one of {', '.join(EMAIL_URL_BACKENDS)}, "
            f"not {parts.scheme!r}")
    values: dict[str, object] = {"EMAIL_BACKEND": backend}
    if parts.scheme == "filemail":
        values["EMAIL_FILE_PATH"] = unquote(parts.path) or None
    elif parts.scheme in ("smtp", "smtps", "submission"):
        query = {k: v[-1].strip().lower() for k, v in parse_qs(parts.query).items()}
        use_ssl = parts.scheme == "smtps" or query.get("ssl") in {"1", "true", "yes", "on"}
        use_tls = parts.scheme == "submission" or query.get("tls") in {"1", "true", "yes", "on"}
        default_port = 465 if use_ssl else 587 if use_tls else 25
        values.update({
            "EMAIL_HOST": parts.hostname or "localhost",
            "EMAIL_PORT": port or default_port,
            "EMAIL_HOST_USER": unquote(parts.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
            "EMAIL_USE_TLS": use_tls,
            "EMAIL_USE_SSL": use_ssl,
        })
    return values
