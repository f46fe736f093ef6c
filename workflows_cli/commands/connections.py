"""`wf connections test|get|put`: connections as code (administrators).

`get NAME -o FILE` writes what can be edited (kind, description, config) as YAML; `put NAME
--file FILE` creates the connection or changes it to what the file says. A secret comes only
from a file or stdin, never from a flag (flags land in shell history and `ps`): a `secret:`
mapping in the file, or `--secret-file FILE` (`-` for stdin) so the config can be committed
without it. Without either, the stored secret is left as it is; `secret: null` clears it.
"""

from __future__ import annotations

import argparse
from typing import Any

from workflows_cli.client import EXIT_NOT_FOUND, Api, CliError, seg
from workflows_cli.commands.documents import (
    connection_ordered,
    parse_mapping,
    read_text,
    to_yaml,
    usage,
    write_text,
)

EDITABLE = ("kind", "description", "config")
# What `get` prints besides: accepted in a file (so a document from `get` can be put back) and
# ignored, since the server decides them.
READ_ONLY = ("name", "has_secret", "created_at", "updated_at")


def cmd_connections_test(api: Api, args: argparse.Namespace) -> Any:
    """{ok, latency_ms, detail[, error]}; exit 0 whenever the API answered (check `ok`)."""
    return api.post(f"/connections/{seg(args.name)}/test")


def cmd_connections_get(api: Api, args: argparse.Namespace) -> Any:
    document = api.get(f"/connections/{seg(args.name)}")
    if args.output:
        editable = {key: document[key] for key in EDITABLE if key in document}
        path = write_text(args.output, to_yaml(connection_ordered(editable)))
        if path is None:
            return None
        document["path"] = path
    return document


def _body(args: argparse.Namespace) -> dict[str, Any]:
    if args.file == "-" and args.secret_file == "-":
        raise usage("only one of --file and --secret-file can be stdin")
    data = parse_mapping(read_text(args.file), args.file)
    if data.get("name", args.name) != args.name:
        raise usage(f"{args.file} names the connection {data['name']!r}, not {args.name!r}")
    unknown = sorted(set(data) - set(EDITABLE) - set(READ_ONLY) - {"secret"})
    if unknown:
        raise usage(f"{args.file}: unknown fields {', '.join(unknown)} (expected "
                    f"{', '.join(EDITABLE)}, secret)")
    body = {key: data[key] for key in EDITABLE if key in data}
    if "secret" in data:
        body["secret"] = data["secret"]
    if args.secret_file:
        if "secret" in data:
            raise usage(f"the secret is both in {args.file} and in --secret-file")
        body["secret"] = parse_mapping(read_text(args.secret_file), args.secret_file)
    if "secret" in body and body["secret"] is not None and not isinstance(body["secret"], dict):
        raise usage("the secret must be a mapping, e.g. {token: ...}, or null to clear it")
    return body


def cmd_connections_put(api: Api, args: argparse.Namespace) -> Any:
    body = _body(args)
    path = f"/connections/{seg(args.name)}"
    try:
        api.get(path)
    except CliError as exc:
        if exc.exit_code != EXIT_NOT_FOUND:
            raise
        if "kind" not in body:
            raise usage(f"{args.file}: a new connection needs its kind") from None
        document = api.post("/connections", {"name": args.name, **body})
        document["action"] = "created"
        return document
    document = api.put(path, body)
    document["action"] = "updated"
    return document


def register(commands) -> None:
    group = commands.group("connections", "connections as code (administrators)")
    commands.command(group, "test", cmd_connections_test,
                     "reach and authenticate: {ok, latency_ms, detail}").add_argument("name")
    sub = commands.command(group, "get", cmd_connections_get,
                           "a connection without its secret; -o FILE also writes the editable "
                           "part as YAML (- for stdout)")
    sub.add_argument("name")
    sub.add_argument("-o", "--output", "--file", dest="output", default=None, metavar="FILE")
    sub = commands.command(group, "put", cmd_connections_put,
                           "create or change a connection from a YAML/JSON file; secrets only "
                           "from the file or --secret-file")
    sub.add_argument("name")
    sub.add_argument("--file", required=True, help="YAML or JSON (- for stdin)")
    sub.add_argument("--secret-file", default=None, metavar="FILE",
                     help="the secret as a YAML/JSON mapping (- for stdin)")
