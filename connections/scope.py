"""Secrets stay bound to their connection's host: a request that carries an http connection's
headers and credentials may only go to a URL under the connection's `base_url`, i.e. the same
scheme, host and port, and a path at or below the base path (no `.`/`..` segments, encoded or
not, that a server could resolve out of it). A connection without a base_url is bound to
nothing, so it sends to no absolute URL at all.

The http step checks the final URL before sending (a URL from a reference that leaves the scope
fails the attempt as ConnectionScopeViolation, nothing sent); the configuration checks refuse a
literal one at release.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

__all__ = ["DEFAULT_PORTS", "is_absolute", "join_url", "url_scope_problem"]

DEFAULT_PORTS = {"http": 80, "https": 443}


def is_absolute(url: str) -> bool:
    """Whether `url` names its own host (a scheme, or a scheme-relative `//host/...`)."""
    parts = urlsplit(url)
    return bool(parts.scheme) or url.startswith("//")


def join_url(base_url: str, url: str) -> str:
    """The URL a request goes to: `url` itself when absolute, else appended to the base path
    (as httpx's base_url does: "https://h/api" + "/x" is "https://h/api/x")."""
    if url.startswith("//"):
        return f"{urlsplit(base_url).scheme or 'https'}:{url}"
    if is_absolute(url) or not base_url:
        return url
    return base_url.rstrip("/") + "/" + url.lstrip("/")


def _port(parts) -> int | None:
    try:
        return parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None


def url_scope_problem(url: str, base_url: str, *, connection: str) -> str | None:
    """Why `url` (absolute) is outside connection `connection`'s base_url, or None."""
    if not base_url:
        return (f"connection {connection!r} has no base_url, so it may not send its "
                "credentials to an absolute URL; set the connection's base_url")
    base, target = urlsplit(base_url), urlsplit(url)
    where = f"connection {connection!r} only sends to URLs under {base_url}"
    if target.scheme.lower() != base.scheme.lower():
        return f"{url} is outside the connection's scope: {where} (scheme differs)"
    if (target.hostname or "").lower() != (base.hostname or "").lower() or \
            _port(target) != _port(base) or _port(target) is None:
        return f"{url} is outside the connection's scope: {where} (host or port differs)"
    if target.username is not None or target.password is not None:
        return f"{url} carries user information: {where}"
    path = target.path or "/"
    decoded = unquote(path)
    if any(segment in (".", "..") for segment in decoded.replace("\\", "/").split("/")):
        return f"{url} has '.' or '..' path segments: {where}"
    prefix = (base.path or "/").rstrip("/")
    if path != prefix and not path.startswith(prefix + "/"):
        return f"{url} is outside the connection's scope: {where} (path not under " \
               f"{prefix or '/'})"
    return None
