"""Where `wf` finds its server and token: flags, then the environment, then a profile stored
by `wf auth login`.

The profiles live in one JSON file, `config.json` in platformdirs' user config directory
(`~/.config/wf` on Linux; WF_CONFIG_DIR overrides it): `{"profiles": {NAME: {"url", "token"}}}`.
It holds tokens, so it is written 0600 in a 0700 directory, through a temporary file created
with that mode under a 077 umask and renamed over the old one: never readable by others, not
even for a moment, and never half written.

A profile's token is sent only to its own URL: when `--url` or WF_URL points elsewhere, the
stored token stays home (a token for production never reaches a staging server by accident).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from workflows_cli.client import DEFAULT_URL, EXIT_USAGE, CliError, error_object

DEFAULT_PROFILE = "default"
CONFIG_NAME = "config.json"


def config_dir() -> Path:
    override = os.environ.get("WF_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("wf"))


def config_path() -> Path:
    return config_dir() / CONFIG_NAME


def _usage(message: str, **extra: Any) -> CliError:
    return CliError(EXIT_USAGE, error_object("usage", message, **extra))


def load() -> dict[str, Any]:
    """The stored configuration; `{"profiles": {}}` when there is none yet."""
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"profiles": {}}
    except OSError as exc:
        raise _usage(f"cannot read {path}: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _usage(f"{path} is not valid JSON ({exc}); fix it or delete it and log in "
                     "again") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles", {}), dict):
        raise _usage(f"{path} is not a wf configuration (expected {{\"profiles\": {{...}}}})")
    data.setdefault("profiles", {})
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        sys.stderr.write(f"wf: warning: {path} is readable by others; run "
                         f"`chmod 600 {path}`\n")
    return data


def save(data: dict[str, Any]) -> Path:
    """Write the configuration atomically, mode 0600 (see the module's docstring)."""
    path = config_path()
    previous = os.umask(0o077)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o600)
                json.dump(data, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise _usage(f"cannot write {path}: {exc}") from None
    finally:
        os.umask(previous)
    return path


def profile_missing(name: str, profiles: dict[str, Any]) -> CliError:
    known = sorted(profiles)
    listed = ", ".join(known) if known else "none yet (create one with `wf auth login`)"
    return _usage(f"no profile named {name!r}; profiles: {listed}", profiles=known)


@dataclass
class Settings:
    url: str
    token: str | None
    profile: str | None  # the profile in use, if any
    token_source: str | None  # "flag", "env", "profile" or None
    stored: dict[str, Any]  # the whole configuration, as loaded


def same_server(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def resolve(args: Any, *, profile_may_be_new: bool = False) -> Settings:
    """Flags win over the environment, which wins over the profile. `--profile` or WF_PROFILE
    names a profile that must exist (unless the command creates it); without either, the
    `default` profile is used when there is one."""
    stored = load()
    profiles = stored["profiles"]
    named = getattr(args, "profile", None) or os.environ.get("WF_PROFILE") or None
    if named is not None and named not in profiles and not profile_may_be_new:
        raise profile_missing(named, profiles)
    name = named or (DEFAULT_PROFILE if DEFAULT_PROFILE in profiles else None)
    profile = (profiles.get(name) or {}) if name else {}
    url = getattr(args, "url", None) or os.environ.get("WF_URL") or profile.get("url") \
        or DEFAULT_URL
    token, source = None, None
    if getattr(args, "token", None):
        token, source = args.token, "flag"
    elif os.environ.get("WF_TOKEN"):
        token, source = os.environ["WF_TOKEN"], "env"
    elif profile.get("token") and same_server(url, profile.get("url") or ""):
        token, source = profile["token"], "profile"
    return Settings(url=url, token=token, profile=name, token_source=source, stored=stored)
