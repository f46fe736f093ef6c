"""Checking a connection's fields per kind. Returns every problem at once, each with the path of
the offending value; messages never quote a secret value.

Per kind:
- ssh: config {host, username, known_hosts, port?, proxy_jump?, keepalive_seconds?};
  known_hosts is the server's host key line(s) in OpenSSH known_hosts format ("HOSTS KEYTYPE
  BASE64 [comment]"), so the step never trusts an unknown host; proxy_jump names the ssh
  connection the host is reached through (the chain is checked by connections.jumps when the
  connection is saved). Secret {private_key?, password?, passphrase?} with a private_key or a
  password.
- http: config {base_url?, headers?, auth?: bearer|basic|header, auth_header?, username?}.
  Secret {token} for bearer and header auth, {username?, password} for basic.
- generic: any JSON object for config and secret (read by python actions, which define them).
For http and ssh, a field the kind does not know is refused (each one named: a typo would
otherwise be dropped without a word), and credentials in the config (a "password" key, an
Authorization header, ...) are refused: the config is shown to everyone who can see the
connection; the secret is not.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from connections.models import ConnectionKind

__all__ = ["NAME_RE", "validate_connection"]

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-_]*$")
NAME_MAX_LENGTH = 100
HTTP_AUTH = ("bearer", "basic", "header")
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
SSH_KEY_TYPE_PREFIXES = ("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-")
# Config keys that hold credentials: they belong in the secret.
CREDENTIAL_KEYS = frozenset(
    {
        "password",
        "passphrase",
        "private_key",
        "privatekey",
        "token",
        "secret",
        "api_key",
        "apikey",
        "access_token",
        "refresh_token",
        "client_secret",
    }
)
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})

SSH_CONFIG_KEYS = ("host", "port", "username", "known_hosts", "proxy_jump", "keepalive_seconds")
SSH_SECRET_KEYS = ("private_key", "passphrase", "password")
HTTP_CONFIG_KEYS = ("base_url", "headers", "auth", "auth_header", "username")
HTTP_SECRET_KEYS = ("token", "username", "password")

Problem = dict[str, str]


def _problem(path: str, message: str) -> Problem:
    return {"path": path, "message": message}


def validate_name(name: Any) -> list[Problem]:
    if not isinstance(name, str) or not name:
        return [_problem("name", "required")]
    if len(name) > NAME_MAX_LENGTH:
        return [_problem("name", f"at most {NAME_MAX_LENGTH} characters")]
    if not NAME_RE.match(name):
        return [
            _problem(
                "name", "lowercase letters, digits, '-' and '_', starting with a letter or digit"
            )
        ]
    return []


def _credential_keys(config: dict[str, Any]) -> list[Problem]:
    return [
        _problem(f"config.{key}", "credentials belong in the secret, not in the config")
        for key in config
        if isinstance(key, str) and key.lower() in CREDENTIAL_KEYS
    ]


def _unknown_keys(
    kind: str, where: str, given: dict[str, Any], known: tuple[str, ...]
) -> list[Problem]:
    """One problem per field the kind does not know (credential keys in the config have their
    own message)."""
    return [
        _problem(f"{where}.{key}", f"unknown field for an {kind} connection; expected one of "
                                   f"{', '.join(known)}")
        for key in given
        if key not in known and not (where == "config" and str(key).lower() in CREDENTIAL_KEYS)
    ]


def _known_hosts_problems(value: Any) -> list[Problem]:
    path = "config.known_hosts"
    if not isinstance(value, str) or not value.strip():
        return [
            _problem(
                path,
                "required: the server's host key line(s), as in "
                "~/.ssh/known_hosts (ssh-keyscan HOST prints them)",
            )
        ]
    problems = []
    lines = [ln.strip() for ln in value.splitlines()]
    entries = [(n, ln) for n, ln in enumerate(lines, 1) if ln and not ln.startswith("#")]
    if not entries:
        return [_problem(path, "has no host key line")]
    for number, line in entries:
        fields = line.split()
        if fields[0].startswith("@"):  # @cert-authority, @revoked
            fields = fields[1:]
        if len(fields) < 3:
            problems.append(_problem(path, f"line {number}: expected 'HOSTS KEYTYPE BASE64-KEY'"))
            continue
        if not fields[1].startswith(SSH_KEY_TYPE_PREFIXES):
            problems.append(_problem(path, f"line {number}: unknown key type"))
            continue
        try:
            base64.b64decode(fields[2], validate=True)
        except (binascii.Error, ValueError):
            problems.append(_problem(path, f"line {number}: the key is not valid base64"))
    return problems


def _ssh_problems(config: dict[str, Any], secret: dict[str, Any] | None) -> list[Problem]:
    problems = _credential_keys(config) + _unknown_keys("ssh", "config", config, SSH_CONFIG_KEYS)
    for key in ("host", "username"):
        if not isinstance(config.get(key), str) or not config[key].strip():
            problems.append(_problem(f"config.{key}", "required (text)"))
    problems += _known_hosts_problems(config.get("known_hosts"))
    if "port" in config:
        port = config["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            problems.append(_problem("config.port", "must be an integer from 1 to 65535"))
    if "proxy_jump" in config:
        jump = config["proxy_jump"]
        if not isinstance(jump, str) or not NAME_RE.match(jump):
            problems.append(_problem("config.proxy_jump", "must be the name of an ssh connection"))
    if "keepalive_seconds" in config:
        value = config["keepalive_seconds"]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            problems.append(
                _problem("config.keepalive_seconds", "must be a number of seconds >= 0 (0: off)")
            )
    if secret is not None:
        problems += _unknown_keys("ssh", "secret", secret, SSH_SECRET_KEYS)
        for key in ("private_key", "password", "passphrase"):
            if key in secret and not isinstance(secret[key], str):
                problems.append(_problem(f"secret.{key}", "must be text"))
        if not secret.get("private_key") and not secret.get("password"):
            problems.append(_problem("secret", "an ssh secret needs a private_key or a password"))
    return problems


def _http_problems(config: dict[str, Any], secret: dict[str, Any] | None) -> list[Problem]:
    problems = _credential_keys(config) + _unknown_keys("http", "config", config,
                                                         HTTP_CONFIG_KEYS)
    base_url = config.get("base_url")
    if base_url is not None and (
        not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url)
    ):
        problems.append(_problem("config.base_url", "must be an http:// or https:// URL"))
    headers = config.get("headers")
    if headers is not None:
        if not isinstance(headers, dict):
            problems.append(_problem("config.headers", "must be a mapping of header to text"))
        else:
            for header, value in headers.items():
                path = f"config.headers.{header}"
                if not HEADER_NAME_RE.match(str(header)):
                    problems.append(_problem(path, "not a valid header name"))
                elif header.lower() in CREDENTIAL_HEADERS:
                    problems.append(
                        _problem(
                            path,
                            "credentials belong in the secret: set "
                            "config.auth and the secret's token",
                        )
                    )
                elif not isinstance(value, str):
                    problems.append(_problem(path, "must be text"))
    auth = config.get("auth")
    if auth is not None and auth not in HTTP_AUTH:
        problems.append(_problem("config.auth", f"must be one of {', '.join(HTTP_AUTH)}"))
    auth_header = config.get("auth_header")
    if auth_header is not None and (
        not isinstance(auth_header, str) or not HEADER_NAME_RE.match(auth_header)
    ):
        problems.append(_problem("config.auth_header", "must be a header name"))
    if "username" in config and not isinstance(config["username"], str):
        problems.append(_problem("config.username", "must be text"))
    if secret is not None:
        problems += _unknown_keys("http", "secret", secret, HTTP_SECRET_KEYS)
        for key in ("token", "username", "password"):
            if key in secret and not isinstance(secret[key], str):
                problems.append(_problem(f"secret.{key}", "must be text"))
    return problems


def validate_connection(
    *, kind: Any, config: Any, secret: Any = None, description: Any = ""
) -> list[Problem]:
    """Every problem with these fields (the name is checked by `validate_name`). `secret` None
    means "not being changed" and is not checked."""
    problems: list[Problem] = []
    if not isinstance(description, str):
        problems.append(_problem("description", "must be text"))
    if kind not in ConnectionKind.values:
        problems.append(_problem("kind", f"must be one of {', '.join(ConnectionKind.values)}"))
    if not isinstance(config, dict):
        problems.append(_problem("config", "must be a JSON object"))
    if secret is not None:
        if not isinstance(secret, dict):
            problems.append(_problem("secret", "must be a JSON object"))
        elif not all(isinstance(k, str) for k in secret):
            problems.append(_problem("secret", "keys must be text"))
    if problems:
        return problems
    if kind == ConnectionKind.SSH:
        return _ssh_problems(config, secret)
    if kind == ConnectionKind.HTTP:
        return _http_problems(config, secret)
    return []
