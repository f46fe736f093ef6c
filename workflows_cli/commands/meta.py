"""`wf --version` and `wf completion bash|zsh|fish` (the script is shtab's, made from the
parser itself, so it always knows every command)."""

from __future__ import annotations

import argparse
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import shtab

from workflows_cli.client import Api, CliError


@cache
def client_version() -> str:
    try:
        return version("workflows-platform")
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


def cmd_version(api: Api, args: argparse.Namespace) -> Any:
    """The client's version, and the server's (`api`, from GET /meta, which needs no token).
    An unreachable server is not an error here: `api` is null and `api_error` says why."""
    document: dict[str, Any] = {"version": client_version(), "api": None,
                                "url": args.settings.url}
    try:
        document["api"] = api.get("/meta")["version"]
    except CliError as exc:
        document["api_error"] = exc.error
    return document


def cmd_completion(api: Api | None, args: argparse.Namespace) -> None:
    """`args.parser` is the whole parser of `wf` (main puts it there)."""
    sys.stdout.write(shtab.complete(args.parser, shell=args.shell))
    sys.stdout.flush()


def register(commands) -> None:
    sub = commands.top("completion", cmd_completion,
                       "print a shell completion script: eval \"$(wf completion bash)\"")
    sub.add_argument("shell", choices=["bash", "zsh", "fish"])
    sub.set_defaults(offline=True)
