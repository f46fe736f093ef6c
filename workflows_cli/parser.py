"""The argument parser of `wf` and its entry point `main`.

Each module of `workflows_cli.commands` registers its commands (`register(commands)`), so a
command's arguments sit beside the function that runs it. The options every command takes
(`--url`, `--token`, `--profile`, `--jq`, `--http-timeout`) may come before or after the
command.
"""

from __future__ import annotations

import argparse
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
from workflows_cli.commands import api as api_commands
from workflows_cli.commands import (
    approvals,
    auth,
    connections,
    deliveries,
    flows,
    meta,
    resources,
    runs,
)
from workflows_cli.config import resolve
from workflows_cli.output import Exit, Printer, emit

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

    def subgroup(self, group: Any, name: str, help_text: str) -> Any:
        """A group inside a group (`wf flows secret set`)."""
        parser = group.add_parser(name, help=help_text, parents=[self.common])
        commands = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND",
                                         parser_class=Parser)
        commands.required = True
        return commands

    def top(self, name: str, func: Callable[[Api, argparse.Namespace], Any],
            help_text: str) -> Parser:
        """A command without a group (`wf api`, `wf completion`)."""
        sub = self._groups.add_parser(name, help=help_text, parents=[self.common])
        sub.set_defaults(func=func)
        return sub

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
                        help=f"API base URL (env WF_URL; else the profile's; default "
                             f"{DEFAULT_URL})")
    common.add_argument("--token", default=argparse.SUPPRESS,
                        help="API token (env WF_TOKEN; else the profile's)")
    common.add_argument("--profile", default=argparse.SUPPRESS,
                        help="a profile stored by `wf auth login` (env WF_PROFILE; default: "
                             "the profile named default)")
    common.add_argument("--jq", default=argparse.SUPPRESS, metavar="EXPR",
                        help="filter the JSON document with jq; strings print raw")
    common.add_argument("--http-timeout", type=float, default=argparse.SUPPRESS,
                        help="seconds to wait for each HTTP answer (default 30)")
    return common


def build_parser() -> Parser:
    common = common_options()
    parser = Parser(prog="wf", description=DESCRIPTION, parents=[common])
    parser.add_argument("--version", action="store_true", dest="show_version",
                        help='print {"version", "api"}: this client\'s and the server\'s')
    groups = parser.add_subparsers(dest="group", metavar="GROUP", parser_class=Parser)
    commands = Commands(groups, common)
    for module in (flows, runs, approvals, deliveries, connections, resources, auth, api_commands,
                   meta):
        module.register(commands)
    return parser


def run(args: argparse.Namespace) -> Any:
    """Resolve the settings, run the command; returns its document (or an Exit)."""
    printer = Printer(getattr(args, "jq", None))
    args.printer = printer
    if getattr(args, "offline", False):  # wf completion: no server, no profile
        return args.func(None, args)
    settings = resolve(args, profile_may_be_new=getattr(args, "profile_may_be_new", False))
    if not settings.url.startswith(("http://", "https://")):
        raise CliError(EXIT_USAGE, error_object(
            "usage", f"--url must start with http:// or https://: {settings.url}"))
    args.settings = settings
    api = Api(settings.url, settings.token, timeout=getattr(args, "http_timeout", 30.0))
    if getattr(args, "show_version", False) and getattr(args, "func", None) is None:
        return meta.cmd_version(api, args)
    if getattr(args, "func", None) is None:
        raise CliError(EXIT_USAGE, error_object("usage", "wf: a command is required "
                                                         "(wf --help lists them)"))
    return args.func(api, args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        emit({"error": error_object("usage", str(exc))})
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    args.parser = parser
    try:
        result = run(args)
        code = EXIT_OK
        if isinstance(result, Exit):
            result, code = result.document, result.code
        if result is not None:
            args.printer.document(result)
    except CliError as exc:
        emit({"error": exc.error})
        return exc.exit_code
    except KeyboardInterrupt:
        emit({"error": error_object("interrupted", "interrupted")})
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
