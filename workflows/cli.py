"""`wf`: the command-line client. It speaks only the HTTP API (never the database) and prints
one JSON document on stdout per command (indent 2, sorted keys), so scripts and agents can rely
on its output.

Longer than the ~500 lines we aim for: every command is a thin call of one endpoint plus its line
in the argument table at the bottom; one module keeps that table and the commands it names side
by side (the console script's entry point is `main`).

Configuration: `--url` / `--token`, or WF_URL / WF_TOKEN (default URL http://127.0.0.1:8000).

Exit codes: 0 success; 1 authentication or permission refused (401, 403); 2 usage; 3 not
found (404); 4 conflict or validation (400, 409, 410, 413, 415, 422); 5 server or network error
(5xx, 429, connection refused, timeouts). On failure the document is `{"error": {...}}`: the
API's error object, or one the CLI makes (codes usage, network_error, timeout, ...).

`wf runs logs ID STEP --follow` tails the step: each chunk's text goes to stderr as it
arrives, and when the step has finished the one JSON document (every chunk) goes to stdout.

This module imports nothing from Django, so it starts fast and runs anywhere.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
TERMINAL_RUN = {"completed", "failed", "canceled"}
TERMINAL_STEP = {"completed", "failed", "canceled", "rejected", "skipped"}

EXIT_OK = 0
EXIT_AUTH = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_SERVER = 5


class CliError(Exception):
    """A failure to report as `{"error": ...}` with an exit code."""

    def __init__(self, exit_code: int, error: dict[str, Any]):
        self.exit_code = exit_code
        self.error = error
        super().__init__(error.get("message", ""))


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "message": message, "details": [], **extra}


def exit_code_for(status: int) -> int:
    if status in (401, 403):
        return EXIT_AUTH
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 429 or status >= 500:
        return EXIT_SERVER
    if 400 <= status < 500:
        return EXIT_CONFLICT
    return EXIT_SERVER


def emit(document: Any, stream=None) -> None:
    stream = stream or sys.stdout
    stream.write(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    stream.flush()


def emit_text(text: str) -> None:
    """Live output for a person or agent watching; stdout keeps its one JSON document."""
    sys.stderr.write(text)
    sys.stderr.flush()


# --- HTTP ---------------------------------------------------------------------------------------


class Api:
    def __init__(self, url: str, token: str | None, timeout: float = 30.0):
        self.base = url.rstrip("/")
        headers = {"Accept": "application/json", "User-Agent": "wf-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = httpx.Client(base_url=self.base + API_PREFIX, headers=headers,
                                   timeout=timeout, follow_redirects=False)

    def request(self, method: str, path: str, *, body: Any = None,
                params: dict[str, Any] | None = None) -> tuple[int, Any]:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self.client.request(method, path, params=params,
                                           json=body if body is not None else None)
        except httpx.TimeoutException as exc:
            raise CliError(EXIT_SERVER, _error("timeout", f"the API did not answer in time: "
                                                          f"{exc}")) from None
        except httpx.HTTPError as exc:
            raise CliError(EXIT_SERVER, _error(
                "network_error", f"cannot reach the API at {self.base}: {exc}")) from None
        try:
            document = response.json() if response.content else None
        except ValueError:
            document = None
        if response.status_code >= 400:
            if isinstance(document, dict) and isinstance(document.get("error"), dict):
                error = document["error"]
            else:
                error = _error(f"http_{response.status_code}",
                               (response.text or response.reason_phrase)[:500])
            error.setdefault("status", response.status_code)
            raise CliError(exit_code_for(response.status_code), error)
        return response.status_code, document

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)[1]

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body)[1]

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, body=body)[1]

    def all_pages(self, path: str, **params: Any) -> dict[str, Any]:
        items: list[Any] = []
        cursor = None
        while True:
            page = self.get(path, cursor=cursor, limit=200, **params)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return {"items": items, "next_cursor": None}


def seg(value: Any) -> str:
    """One URL path segment."""
    return quote(str(value), safe="")


# --- commands -----------------------------------------------------------------------------------


def _read_definition(path: str) -> tuple[str, str | None]:
    """The file's text and, when it parses, the slug it declares."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(EXIT_USAGE, _error("usage", f"cannot read {path}: {exc}")) from None
    slug = None
    try:
        data = json.loads(text)
    except ValueError:
        try:
            import yaml

            data = yaml.safe_load(text)
        except Exception:  # noqa: BLE001 - the server reports the problem precisely
            data = None
    if isinstance(data, dict) and isinstance(data.get("slug"), str):
        slug = data["slug"]
    return text, slug


def cmd_flows_list(api: Api, args: argparse.Namespace) -> Any:
    if args.all:
        return api.all_pages("/flows")
    return api.get("/flows", cursor=args.cursor, limit=args.limit)


def cmd_flows_get(api: Api, args: argparse.Namespace) -> Any:
    return api.get(f"/flows/{seg(args.slug)}")


def cmd_flows_push(api: Api, args: argparse.Namespace) -> Any:
    text, slug = _read_definition(args.file)
    exists = False
    if slug:
        try:
            api.get(f"/flows/{seg(slug)}")
            exists = True
        except CliError as exc:
            if exc.exit_code != EXIT_NOT_FOUND:
                raise
    if exists:
        document = api.put(f"/flows/{seg(slug)}/draft", {"definition": text})
        document["action"] = "draft_replaced"
    else:
        document = api.post("/flows", {"definition": text})
        document["action"] = "created"
    return document


def cmd_flows_release(api: Api, args: argparse.Namespace) -> Any:
    return api.post(f"/flows/{seg(args.slug)}/releases", {"notes": args.notes})


def cmd_flows_releases(api: Api, args: argparse.Namespace) -> Any:
    return api.all_pages(f"/flows/{seg(args.slug)}/releases")


def cmd_flows_promote(api: Api, args: argparse.Namespace) -> Any:
    version = str(args.version).lower().removeprefix("v")
    if not version.isdigit():
        raise CliError(EXIT_USAGE, _error("usage", f"not a release number: {args.version}"))
    # 200: the flow, now live on that release; 202: {"request": ...}, a promotion request
    # that someone else must approve (the flow's promotion requires approval).
    return api.post(f"/flows/{seg(args.slug)}/releases/{version}/promote",
                    {"comment": args.comment})


def cmd_flows_history(api: Api, args: argparse.Namespace) -> Any:
    path = f"/flows/{seg(args.slug)}/history"
    if args.all:
        return api.all_pages(path)
    return api.get(path, cursor=args.cursor, limit=args.limit)


def cmd_flows_diff(api: Api, args: argparse.Namespace) -> Any:
    return api.get(f"/flows/{seg(args.slug)}/diff", **{"from": args.from_, "to": args.to})


def cmd_flows_webhook_secret(api: Api, args: argparse.Namespace) -> Any:
    return api.post(f"/flows/{seg(args.slug)}/webhook-secret")


def _parse_input(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(EXIT_USAGE, _error("usage", f"cannot read {text[1:]}: {exc}")) \
                from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(EXIT_USAGE, _error("usage", f"--input is not valid JSON: {exc}")) \
            from None
    if not isinstance(value, dict):
        raise CliError(EXIT_USAGE, _error("usage", "--input must be a JSON object"))
    return value


def wait_for_run(api: Api, run: dict[str, Any], *, timeout: float, poll: float) -> dict:
    deadline = time.monotonic() + timeout
    while run["status"] not in TERMINAL_RUN:
        if time.monotonic() >= deadline:
            raise CliError(EXIT_SERVER, _error(
                "wait_timeout", f"run {run['id']} is still {run['status']} after {timeout}s",
                run=run))
        time.sleep(poll)
        run = api.get(f"/runs/{run['id']}")
    return run


def cmd_runs_start(api: Api, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"input": _parse_input(args.input), "draft": args.draft}
    if args.idempotency_key:
        body["idempotency_key"] = args.idempotency_key
    run = api.post(f"/flows/{seg(args.slug)}/runs", body)
    if args.wait:
        run = wait_for_run(api, run, timeout=args.timeout, poll=args.poll)
    return run


SEARCH_PARAMS = ("flow", "error_kind", "q", "finished_after", "finished_before")


def cmd_runs_list(api: Api, args: argparse.Namespace) -> Any:
    """`wf runs list SLUG` lists a flow's runs as before; any search option (or no SLUG)
    searches across flows with GET /runs."""
    if args.flow and args.slug and args.flow != args.slug:
        raise CliError(EXIT_USAGE, _error("usage", "give the flow as SLUG or --flow, not both"))
    search = {name: getattr(args, name) for name in SEARCH_PARAMS}
    if args.slug and not any(search.values()):
        path, params = f"/flows/{seg(args.slug)}/runs", {"status": args.status}
    else:
        search["flow"] = search["flow"] or args.slug
        path, params = "/runs", {"status": args.status, **search}
    params = {name: value for name, value in params.items() if value is not None}
    if args.all:
        return api.all_pages(path, **params)
    return api.get(path, cursor=args.cursor, limit=args.limit, **params)


def cmd_runs_get(api: Api, args: argparse.Namespace) -> Any:
    return api.get(f"/runs/{args.id}")


def cmd_runs_step(api: Api, args: argparse.Namespace) -> Any:
    return api.get(f"/runs/{args.id}/steps/{seg(args.step)}")


def cmd_runs_events(api: Api, args: argparse.Namespace) -> Any:
    return api.all_pages(f"/runs/{args.id}/events")


def cmd_runs_logs(api: Api, args: argparse.Namespace) -> Any:
    path = f"/runs/{args.id}/steps/{seg(args.step)}/logs"
    after = args.after
    if not args.follow:
        items: list[Any] = []
        while True:
            page = api.get(path, after=after, limit=1000)
            items.extend(page["items"])
            after = page["last_seq"]
            if not page.get("next_cursor"):
                return {"items": items, "next_cursor": None, "step_status": page["step_status"]}
    deadline = time.monotonic() + args.timeout
    seen: list[Any] = []
    while True:
        page = api.get(path, after=after, limit=1000)
        for chunk in page["items"]:
            emit_text(chunk["text"])
        seen.extend(page["items"])
        after = page["last_seq"]
        if page.get("next_cursor"):
            continue
        done = {"items": seen, "next_cursor": None, "step_status": page["step_status"]}
        if page["step_status"] in TERMINAL_STEP:
            return done
        run = api.get(f"/runs/{args.id}")
        if run["status"] in TERMINAL_RUN and page["step_status"] == "not_started":
            return done
        if time.monotonic() >= deadline:
            raise CliError(EXIT_SERVER, _error(
                "wait_timeout", f"step {args.step} is still {page['step_status']} after "
                                f"{args.timeout}s"))
        time.sleep(args.poll)


def cmd_runs_cancel(api: Api, args: argparse.Namespace) -> Any:
    return api.post(f"/runs/{args.id}/cancel", {"reason": args.reason})


def cmd_runs_retry(api: Api, args: argparse.Namespace) -> Any:
    body = {"from_step": args.from_step} if args.from_step else {}
    return api.post(f"/runs/{args.id}/retry", body)


def cmd_runs_replay(api: Api, args: argparse.Namespace) -> Any:
    return api.post(f"/runs/{args.id}/replay")


def cmd_runs_rerun(api: Api, args: argparse.Namespace) -> Any:
    body = {"version": args.on_version} if args.on_version is not None else None
    return api.post(f"/runs/{args.id}/rerun", body)


def cmd_runs_explain(api: Api, args: argparse.Namespace) -> Any:
    return api.get(f"/runs/{args.id}/explain")


def cmd_runs_compare(api: Api, args: argparse.Namespace) -> Any:
    return api.get(f"/runs/{args.id}/compare", to=args.to)


def cmd_approvals_list(api: Api, args: argparse.Namespace) -> Any:
    return api.all_pages("/approvals", status=args.status)


def cmd_approvals_decide(api: Api, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"comment": args.comment}
    if getattr(args, "to_step", None):
        body["to_step"] = args.to_step
    return api.post(f"/approvals/{args.id}/{args.decision}", body)


def cmd_connections_test(api: Api, args: argparse.Namespace) -> Any:
    """{ok, latency_ms, detail[, error]}; exit 0 whenever the API answered (check `ok`)."""
    return api.post(f"/connections/{seg(args.name)}/test")


def cmd_resources_get(api: Api, args: argparse.Namespace) -> Any:
    """The resource's JSON document; with -o FILE, also download it (as `download` does)."""
    document = api.get(f"/resources/{seg(args.ref)}")
    if args.output:
        document["path"] = _download(document, Path(args.output))
    return document


def cmd_resources_download(api: Api, args: argparse.Namespace) -> Any:
    document = api.get(f"/resources/{seg(args.ref)}")
    name = Path(document.get("name") or "").name or str(document.get("id") or "resource")
    document["path"] = _download(document, Path(args.output or name))
    return document


class _Progress:
    """A progress bar on stderr, drawn only when stderr is a terminal (never in pipes or logs,
    and never on stdout, which keeps its one JSON document)."""

    def __init__(self, total: int):
        self.total = max(int(total or 0), 0)
        self.done = 0
        self.enabled = sys.stderr.isatty()
        self.drawn_at = 0.0

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self.drawn_at > 0.1 or self.done >= self.total):
            self.drawn_at = now
            share = self.done / self.total if self.total else 1.0
            bar = "#" * int(share * 30)
            sys.stderr.write(f"\r[{bar:<30}] {share:6.1%} {self.done}/{self.total} bytes")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _download(document: dict[str, Any], target: Path) -> str:
    """Stream the resource's signed URL into `target` (through `target.part`, renamed when the
    SHA-256 matches; removed when it does not). Returns the absolute path."""
    partial = target.with_name(target.name + ".part")
    progress = _Progress(document.get("size") or 0)
    try:
        with httpx.stream("GET", document["url"], timeout=60.0) as response:
            if response.status_code >= 400:
                response.read()
                try:
                    error = response.json()["error"]
                except (ValueError, KeyError, TypeError):
                    error = _error(f"http_{response.status_code}", response.text[:500])
                raise CliError(exit_code_for(response.status_code), error)
            digest = hashlib.sha256()
            with partial.open("wb") as handle:
                for chunk in response.iter_bytes(64 * 1024):
                    digest.update(chunk)
                    handle.write(chunk)
                    progress.advance(len(chunk))
    except httpx.HTTPError as exc:
        partial.unlink(missing_ok=True)
        raise CliError(EXIT_SERVER, _error("network_error", f"download failed: {exc}")) \
            from None
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise CliError(EXIT_USAGE, _error("usage", f"cannot write {target}: {exc}")) from None
    except CliError:
        partial.unlink(missing_ok=True)
        raise
    finally:
        progress.close()
    if digest.hexdigest() != document["sha256"]:
        partial.unlink(missing_ok=True)
        raise CliError(EXIT_SERVER, _error(
            "checksum_mismatch", "the downloaded bytes do not match the resource's sha256",
            expected=document["sha256"], actual=digest.hexdigest()))
    partial.replace(target)
    return str(target.resolve())


# --- argument parsing ---------------------------------------------------------------------------


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as JSON (exit 2) instead of text on stderr."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help=f"API base URL (env WF_URL; default {DEFAULT_URL})")
    common.add_argument("--token", default=argparse.SUPPRESS, help="API token (env WF_TOKEN)")
    common.add_argument("--http-timeout", type=float, default=argparse.SUPPRESS,
                        help="seconds to wait for each HTTP answer (default 30)")

    parser = Parser(prog="wf", description=__doc__.split("\n\n")[0], parents=[common])
    groups = parser.add_subparsers(dest="group", metavar="GROUP", parser_class=Parser)
    groups.required = True

    def command(group_parsers, name: str, func, help_text: str) -> Parser:
        sub = group_parsers.add_parser(name, help=help_text, parents=[common])
        sub.set_defaults(func=func)
        return sub

    def paged(sub: Parser) -> None:
        sub.add_argument("--limit", type=int, default=50)
        sub.add_argument("--cursor", default=None)

    flows = groups.add_parser("flows", help="flows and their versions", parents=[common])
    flow_cmds = flows.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    flow_cmds.required = True
    sub = command(flow_cmds, "list", cmd_flows_list, "list flows (newest first)")
    paged(sub)
    sub.add_argument("--all", action="store_true", help="follow every page")
    command(flow_cmds, "get", cmd_flows_get, "one flow").add_argument("slug")
    command(flow_cmds, "push", cmd_flows_push,
            "create a flow from a YAML/JSON file, or replace its draft").add_argument("file")
    sub = command(flow_cmds, "release", cmd_flows_release, "release the draft")
    sub.add_argument("slug")
    sub.add_argument("--notes", default="")
    command(flow_cmds, "releases", cmd_flows_releases, "list releases").add_argument("slug")
    sub = command(flow_cmds, "promote", cmd_flows_promote,
                  "make a release live (or request it, when promotion requires approval)")
    sub.add_argument("slug")
    sub.add_argument("version")
    sub.add_argument("--comment", default="", help="recorded in the flow's history")
    sub = command(flow_cmds, "history", cmd_flows_history,
                  "releases, draft edits, promotions and rollbacks, newest first")
    sub.add_argument("slug")
    paged(sub)
    sub.add_argument("--all", action="store_true", help="follow every page")
    sub = command(flow_cmds, "diff", cmd_flows_diff, "what changed between two versions")
    sub.add_argument("slug")
    sub.add_argument("--from", dest="from_", required=True, help="3, v3, live or draft")
    sub.add_argument("--to", required=True, help="3, v3, live or draft")
    command(flow_cmds, "webhook-secret", cmd_flows_webhook_secret,
            "rotate the webhook secret and print it (shown once)").add_argument("slug")

    runs = groups.add_parser("runs", help="runs", parents=[common])
    run_cmds = runs.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    run_cmds.required = True
    sub = command(run_cmds, "start", cmd_runs_start, "start a run")
    sub.add_argument("slug")
    sub.add_argument("--input", default=None, help="a JSON object, or @FILE")
    sub.add_argument("--idempotency-key", default=None)
    sub.add_argument("--draft", action="store_true", help="a rehearsal run on the draft")
    sub.add_argument("--wait", action="store_true", help="wait until the run has ended")
    sub.add_argument("--timeout", type=float, default=600.0, help="for --wait, seconds")
    sub.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)
    sub = command(run_cmds, "list", cmd_runs_list,
                  "runs, newest first: a flow's (SLUG), or searched across flows")
    sub.add_argument("slug", nargs="?", default=None, help="a flow (same as --flow)")
    sub.add_argument("--status", default=None)
    sub.add_argument("--flow", default=None, help="a flow slug")
    sub.add_argument("--error-kind", default=None, help="rejected, timeout or error")
    sub.add_argument("--q", default=None,
                     help="run id, input or error text, idempotency or delivery key, "
                          "approver, callback URL or token")
    sub.add_argument("--finished-after", default=None, help="ISO 8601 time (inclusive)")
    sub.add_argument("--finished-before", default=None, help="ISO 8601 time (exclusive)")
    sub.add_argument("--all", action="store_true", help="follow every page")
    paged(sub)
    command(run_cmds, "get", cmd_runs_get, "one run").add_argument("id", type=int)
    sub = command(run_cmds, "step", cmd_runs_step, "one step run with its attempts")
    sub.add_argument("id", type=int)
    sub.add_argument("step")
    command(run_cmds, "events", cmd_runs_events, "every transition").add_argument("id", type=int)
    sub = command(run_cmds, "logs", cmd_runs_logs,
                  "a step's logs; --follow tails them (text on stderr) until the step ends")
    sub.add_argument("id", type=int)
    sub.add_argument("step")
    sub.add_argument("--after", type=int, default=0)
    sub.add_argument("--follow", action="store_true")
    sub.add_argument("--timeout", type=float, default=3600.0, help="for --follow, seconds")
    sub.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)
    sub = command(run_cmds, "cancel", cmd_runs_cancel, "cancel a run")
    sub.add_argument("id", type=int)
    sub.add_argument("--reason", default="")
    sub = command(run_cmds, "retry", cmd_runs_retry, "retry a run from its failed step")
    sub.add_argument("id", type=int)
    sub.add_argument("--from-step", default=None)
    command(run_cmds, "replay", cmd_runs_replay, "run again from the start").add_argument(
        "id", type=int)
    sub = command(run_cmds, "rerun", cmd_runs_rerun,
                  "run the same input on the flow's live version (or on --on-version N)")
    sub.add_argument("id", type=int)
    sub.add_argument("--on-version", type=int, default=None,
                     help="a release number: e.g. the last good one while live fails")
    command(run_cmds, "explain", cmd_runs_explain,
            "why the failing step broke: last good run, first bad run, what changed"
            ).add_argument("id", type=int)
    sub = command(run_cmds, "compare", cmd_runs_compare, "differences with another run")
    sub.add_argument("id", type=int)
    sub.add_argument("--to", required=True, help="a run id or last_good")

    approvals = groups.add_parser("approvals", help="approvals", parents=[common])
    approval_cmds = approvals.add_subparsers(dest="command", metavar="COMMAND",
                                             parser_class=Parser)
    approval_cmds.required = True
    sub = command(approval_cmds, "list", cmd_approvals_list, "approvals you may decide")
    sub.add_argument("--status", default="pending", choices=["pending", "decided", "all"])
    for decision in ("approve", "reject", "redo"):
        sub = command(approval_cmds, decision, cmd_approvals_decide, f"{decision} an approval")
        sub.add_argument("id", type=int)
        sub.add_argument("--comment", default="")
        sub.set_defaults(decision=decision)
        if decision == "redo":
            sub.add_argument("--to-step", default=None)

    connections = groups.add_parser("connections", help="connections (admins)", parents=[common])
    connection_cmds = connections.add_subparsers(dest="command", metavar="COMMAND",
                                                 parser_class=Parser)
    connection_cmds.required = True
    sub = command(connection_cmds, "test", cmd_connections_test,
                  "reach and authenticate: {ok, latency_ms, detail}")
    sub.add_argument("name")

    resources = groups.add_parser("resources", help="stored artifacts", parents=[common])
    resource_cmds = resources.add_subparsers(dest="command", metavar="COMMAND",
                                             parser_class=Parser)
    resource_cmds.required = True
    sub = command(resource_cmds, "get", cmd_resources_get,
                  "a resource's document (res://… or its id); with -o, download it too")
    sub.add_argument("ref")
    sub.add_argument("-o", "--output", default=None)
    sub = command(resource_cmds, "download", cmd_resources_download,
                  "stream a resource to a file (default: its name), checking its sha256")
    sub.add_argument("ref")
    sub.add_argument("-o", "--output", default=None)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        emit({"error": _error("usage", str(exc))})
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    url = getattr(args, "url", None) or os.environ.get("WF_URL") or DEFAULT_URL
    token = getattr(args, "token", None) or os.environ.get("WF_TOKEN") or None
    if not url.startswith(("http://", "https://")):
        emit({"error": _error("usage", f"--url must start with http:// or https://: {url}")})
        return EXIT_USAGE
    api = Api(url, token, timeout=getattr(args, "http_timeout", 30.0))
    try:
        document = args.func(api, args)
    except CliError as exc:
        emit({"error": exc.error})
        return exc.exit_code
    except KeyboardInterrupt:
        emit({"error": _error("interrupted", "interrupted")})
        return 130
    if document is not None:
        emit(document)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
