"""The argument parser of `wf` and its entry point `main`.

Each module of `workflows_cli.commands` registers its commands (`register(commands)`), so a
command's arguments sit beside the function that runs it. The options every command takes
(`--url`, `--token`, `--http-timeout`) may come before or after the command.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from workflows_cli.client import (
    DEFAULT_URL,
    EXIT_OK,
    EXIT_USAGE,
    Api,
    CliError,
    error_object,
)
from workflows_cli.commands import approvals, flows, resources, runs
from workflows_cli.output import emit

DESCRIPTION = "wf: the command-line client of the workflow platform's HTTP API."


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as JSON (exit 2) instead of text on stderr."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


class Commands:
    """What a commands module sees: add a group (`wf runs`), and commands in it."""

    def __init__(self, groups: Any, common: Parser):
        self._groups = groups
        self.common = common

    def group(self, name: str, help_text: str) -> Any:
        parser = self._groups.add_parser(name, help=help_text, parents=[self.common])
        commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
        commands.required = True
        return commands

    def command(self, group: Any, name: str, func: Callable[[Api, argparse.Namespace], Any],
                help_text: str) -> Parser:
        sub = group.add_parser(name, help=help_text, parents=[self.common])
        sub.set_defaults(func=func)
        return sub

    @staticmethod
    def paged(sub: Parser, *, every: bool = True) -> None:
        sub.add_argument("--limit", type=int, default=50)
        sub.add_argument("--cursor", default=None)
        if every:
            sub.add_argument("--all", action="store_true", help="follow every page")


def common_options() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"API base URL (env WF_URL; default {DEFAULT_URL})")
    common.add_argument("--token", default=argparse.SUPPRESS, help="API token (env WF_TOKEN)")
    common.add_argument("--http-timeout", type=float, default=argparse.SUPPRESS,
                        help="seconds to wait for each HTTP answer (default 30)")
    return common


def build_parser() -> Parser:
    common = common_options()
    parser = Parser(prog="wf", description=DESCRIPTION, parents=[common])
    groups = parser.add_subparsers(dest="group", metavar="GROUP", parser_class=Parser)
    groups.required = True
    commands = Commands(groups, common)
    for module in (flows, runs, approvals, resources):
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        emit({"error": error_object("usage", str(exc))})
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    url = getattr(args, "url", None) or os.environ.get("WF_URL") or DEFAULT_URL
    token = getattr(args, "token", None) or os.environ.get("WF_TOKEN") or None
    if not url.startswith(("http://", "https://")):
        emit({"error": error_object("usage", f"--url must start with http:// or https://: {url}")})
        return EXIT_USAGE
    api = Api(url, token, timeout=getattr(args, "http_timeout", 30.0))
    try:
        document = args.func(api, args)
    except CliError as exc:
        emit({"error": exc.error})
        return exc.exit_code
    except KeyboardInterrupt:
        emit({"error": error_object("interrupted", "interrupted")})
        return 130
    if document is not None:
        emit(document)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
