"""`wf auth login|status|logout|token`: credentials stored in a profile (workflows_cli.config).

`login` checks the token against the server (GET /me) before storing anything. The token comes
from `--token`, from stdin with `--with-token` (for scripts: `wf auth login --with-token <
token.txt`), or from a hidden prompt on a terminal; never from the environment, which
already works without logging in. No command prints a token except `wf auth token`, which is
what it is for.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from workflows_cli.client import (
    EXIT_NOT_FOUND,
    EXIT_USAGE,
    LOGIN_HINT,
    Api,
    CliError,
    error_object,
)
from workflows_cli.config import DEFAULT_PROFILE, config_path, profile_missing, save


def _usage(message: str) -> CliError:
    return CliError(EXIT_USAGE, error_object("usage", message))


def _token_to_store(args: argparse.Namespace) -> str:
    if getattr(args, "token", None) and args.with_token:
        raise _usage("give the token with --token or --with-token, not both")
    if getattr(args, "token", None):
        token = args.token
    elif args.with_token:
        token = sys.stdin.read()
    elif sys.stdin.isatty():
        token = getpass.getpass("API token: ")
    else:
        raise _usage("no token: pass --with-token and the token on stdin, or --token")
    token = token.strip()
    if not token or any(c.isspace() for c in token):
        raise _usage("the token is empty or holds spaces or several lines")
    return token


def cmd_auth_login(api: Api, args: argparse.Namespace) -> Any:
    settings = args.settings
    name = settings.profile or DEFAULT_PROFILE
    token = _token_to_store(args)
    checked = Api(settings.url, token, timeout=getattr(args, "http_timeout", 30.0))
    try:
        me = checked.get("/me")
    except CliError as exc:
        if exc.error.get("status") == 401:
            exc.error["message"] = f"{settings.url} refused this token (unknown, revoked or " \
                                   "of an inactive user); nothing was stored"
        raise
    stored = settings.stored
    stored["profiles"][name] = {"url": settings.url.rstrip("/"), "token": token}
    path = save(stored)
    return {"profile": name, "url": settings.url.rstrip("/"), "user": me, "config": str(path)}


def cmd_auth_status(api: Api, args: argparse.Namespace) -> Any:
    settings = args.settings
    if not settings.token:
        raise CliError(EXIT_NOT_FOUND, error_object(
            "unauthorized", f"not logged in to {settings.url}: {LOGIN_HINT}",
            profiles=sorted(settings.stored["profiles"])))
    return {"profile": settings.profile, "url": settings.url,
            "token_source": settings.token_source, "user": api.get("/me")}


def cmd_auth_logout(api: Api, args: argparse.Namespace) -> Any:
    settings = args.settings
    profiles = settings.stored["profiles"]
    if settings.profile is None or settings.profile not in profiles:
        raise profile_missing(settings.profile or DEFAULT_PROFILE, profiles)
    del profiles[settings.profile]
    save(settings.stored)
    return {"profile": settings.profile, "logged_out": True, "config": str(config_path())}


def cmd_auth_token(api: Api, args: argparse.Namespace) -> Any:
    """Prints the token in use, on purpose (`curl -H "Authorization: Bearer $(wf auth token
    --jq .token)"`)."""
    settings = args.settings
    if not settings.token:
        raise CliError(EXIT_NOT_FOUND, error_object(
            "unauthorized", f"no token for {settings.url}: {LOGIN_HINT}"))
    return {"token": settings.token, "profile": settings.profile,
            "token_source": settings.token_source, "url": settings.url}


def register(commands) -> None:
    group = commands.group("auth", "log in, and see or forget the stored credentials")
    sub = commands.command(group, "login", cmd_auth_login,
                           "check a token against the server and store it with the URL "
                           "(a profile: --profile, default 'default')")
    sub.add_argument("--with-token", action="store_true", help="read the token from stdin")
    sub.set_defaults(profile_may_be_new=True)
    commands.command(group, "status", cmd_auth_status, "who you are and your roles")
    commands.command(group, "logout", cmd_auth_logout, "forget the profile's URL and token")
    commands.command(group, "token", cmd_auth_token, "print the token in use (on purpose)")
