"""`wf api METHOD PATH`: any endpoint, with the stored credentials, as `gh api` does.

PATH is under /api/v1 (`/runs/42`, or `/api/v1/runs/42`); a full URL is refused, so the token
never leaves for another host. `--field k=v` takes JSON values (`n=3`, `ok=true`, `x=null`,
`items=[1,2]`, anything else a string; `k=@FILE` reads a file's text) and `--raw-field k=v`
always strings; they are the query for GET and DELETE and the JSON body otherwise. `--input
FILE` (`-` for stdin) is the JSON body; the fields then go to the query. `--paginate` follows
`next_cursor` and merges every page's `items`. Exit codes are those of every command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workflows_cli.client import API_PREFIX, EXIT_USAGE, Api, CliError, error_object

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
BODYLESS = ("GET", "DELETE")


def _usage(message: str) -> CliError:
    return CliError(EXIT_USAGE, error_object("usage", message))


def _path(text: str) -> str:
    if "://" in text or text.startswith("//"):
        raise _usage(f"give a path under {API_PREFIX}, not a URL: {text}")
    path = text if text.startswith("/") else f"/{text}"
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        path = path[len(API_PREFIX):] or "/"
    return path


def _read(source: str) -> str:
    try:
        return sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _usage(f"cannot read {source}: {exc}") from None


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for raw, typed in [(f, True) for f in args.field] + [(f, False) for f in args.raw_field]:
        name, sep, value = raw.partition("=")
        if not sep or not name:
            raise _usage(f"a field is KEY=VALUE: {raw!r}")
        if typed and value.startswith("@"):
            value = _read(value[1:])
        elif typed:
            try:
                value = json.loads(value)
            except ValueError:
                pass  # not JSON: the string as given
        fields[name] = value
    return fields


def _answer(api: Api, method: str, path: str, body: Any, params: dict[str, Any]) -> Any:
    response = api.send(method, path, body=body, params=params)
    if not response.content:
        api.check(response)
        return {"status": response.status_code}
    if "json" not in response.headers.get("content-type", ""):
        api.check(response)
        return {"status": response.status_code,
                "content_type": response.headers.get("content-type", ""),
                "text": response.text}
    return api.check(response)


def cmd_api(api: Api, args: argparse.Namespace) -> Any:
    method = args.method.upper()
    if method not in METHODS:
        raise _usage(f"METHOD is one of {', '.join(METHODS)}: {args.method}")
    path = _path(args.path)
    fields = _fields(args)
    body: Any = None
    params: dict[str, Any] = {}
    if args.input is not None:
        text = _read(args.input)
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise _usage(f"--input is not JSON: {exc}") from None
        params = fields
    elif method in BODYLESS:
        params = fields
    elif fields:
        body = fields
    params = {k: json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v
              for k, v in params.items()}
    if not args.paginate:
        return _answer(api, method, path, body, params)
    if method != "GET":
        raise _usage("--paginate follows next_cursor of GET lists only")
    items: list[Any] = []
    while True:
        page = _answer(api, method, path, None, params)
        if not isinstance(page, dict) or not isinstance(page.get("items"), list):
            if items:
                raise CliError(EXIT_USAGE, error_object(
                    "usage", f"{path} stopped answering a list"))
            return page  # not a list: the one answer
        items.extend(page["items"])
        if not page.get("next_cursor"):
            return {**page, "items": items, "next_cursor": None}
        params = {**params, "cursor": page["next_cursor"]}


def register(commands) -> None:
    sub = commands.top("api", cmd_api, "call any endpoint: wf api GET /runs/42")
    sub.add_argument("method", help="GET, POST, PUT, PATCH or DELETE")
    sub.add_argument("path", help="a path under /api/v1, with its query if any")
    sub.add_argument("-F", "--field", action="append", default=[], metavar="KEY=VALUE",
                     help="a JSON value (else a string; @FILE reads a file)")
    sub.add_argument("-f", "--raw-field", action="append", default=[], metavar="KEY=VALUE",
                     help="a string value")
    sub.add_argument("--input", default=None, metavar="FILE",
                     help="the request body, JSON (- for stdin)")
    sub.add_argument("--paginate", action="store_true",
                     help="follow next_cursor and merge every page's items")
