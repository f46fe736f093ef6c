"""`wf runs …`: start (and wait), list and search, get, step, events, logs (and follow),
cancel, retry, replay, rerun, explain, compare."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from workflows_cli.client import EXIT_OK, EXIT_SERVER, EXIT_USAGE, Api, CliError, error_object, seg
from workflows_cli.output import Exit, emit_text
from workflows_cli.states import TERMINAL_RUN, TERMINAL_STEP
from workflows_cli.watch import follow


def _parse_input(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(EXIT_USAGE, error_object("usage", f"cannot read {text[1:]}: {exc}")) \
                from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(EXIT_USAGE, error_object("usage", f"--input is not valid JSON: {exc}")) \
            from None
    if not isinstance(value, dict):
        raise CliError(EXIT_USAGE, error_object("usage", "--input must be a JSON object"))
    return value


def wait_for_run(api: Api, run: dict[str, Any], *, timeout: float | None,
                 poll: float) -> dict:
    deadline = None if timeout is None else time.monotonic() + timeout
    while run["status"] not in TERMINAL_RUN:
        if deadline is not None and time.monotonic() >= deadline:
            raise CliError(EXIT_SERVER, error_object(
                "wait_timeout", f"run {run['id']} is still {run['status']} after {timeout}s",
                run=run))
        time.sleep(poll)
        run = api.get(f"/runs/{run['id']}")
    return run


def trace_headers() -> dict[str, str]:
    """The caller's trace (TRACEPARENT / TRACESTATE in the environment, as an ssh step or a CI
    job exports them) sent as W3C headers: the run's trace becomes its child (the server
    ignores a malformed one)."""
    headers = {}
    for name in ("TRACEPARENT", "TRACESTATE"):
        value = os.environ.get(name, "").strip()
        if value and value.isprintable() and len(value) <= 512:
            headers[name.lower()] = value
    return headers


def cmd_runs_start(api: Api, args: argparse.Namespace) -> Any:
    """With --wait: on a terminal, a line per transition (as `wf runs watch`) then the run;
    otherwise only the final run, as before, so scripts see one document. Exit 0 whatever the
    run's outcome (read `status`; `wf runs watch` exits 1 on a failed run)."""
    body: dict[str, Any] = {"input": _parse_input(args.input), "draft": args.draft}
    if args.idempotency_key:
        body["idempotency_key"] = args.idempotency_key
    run = api.post(f"/flows/{seg(args.slug)}/runs", body, headers=trace_headers())
    if args.wait and sys.stdout.isatty():
        run = follow(api, run["id"], printer=args.printer, as_json=False,
                     timeout=args.timeout, poll=args.poll)
    elif args.wait:
        run = wait_for_run(api, run, timeout=args.timeout, poll=args.poll)
    return run


def cmd_runs_watch(api: Api, args: argparse.Namespace) -> Any:
    """Exit 0 when the run completed, 1 when it failed or was canceled (`gh run watch
    --exit-status`). A terminal gets a line per transition, then the run; --json gives a JSON
    line per event and the run as the last line; otherwise only the run."""
    api.get(f"/runs/{args.id}")  # 404 (exit 3) before anything is printed
    if args.json or sys.stdout.isatty():
        run = follow(api, args.id, printer=args.printer, as_json=args.json,
                     timeout=args.timeout, poll=args.poll)
    else:
        run = wait_for_run(api, api.get(f"/runs/{args.id}"), timeout=args.timeout,
                           poll=args.poll)
    code = EXIT_OK if run["status"] == "completed" else EXIT_FAILED_RUN
    if args.json:
        args.printer.line(run)
        return Exit(None, code)
    return Exit(run, code)


# `wf runs watch` on a run that failed or was canceled.
EXIT_FAILED_RUN = 1

SEARCH_PARAMS = ("flow", "error_kind", "q", "finished_after", "finished_before")


def cmd_runs_list(api: Api, args: argparse.Namespace) -> Any:
    """`wf runs list SLUG` lists a flow's runs as before; any search option (or no SLUG)
    searches across flows with GET /runs."""
    if args.flow and args.slug and args.flow != args.slug:
        raise CliError(EXIT_USAGE, error_object("usage", "give the flow as SLUG or --flow, not both"))
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
            raise CliError(EXIT_SERVER, error_object(
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



def register(commands) -> None:
    group = commands.group("runs", "runs")
    sub = commands.command(group, "start", cmd_runs_start, "start a run")
    sub.add_argument("slug")
    sub.add_argument("--input", default=None, help="a JSON object, or @FILE")
    sub.add_argument("--idempotency-key", default=None)
    sub.add_argument("--draft", action="store_true", help="a rehearsal run on the draft")
    sub.add_argument("--wait", action="store_true", help="wait until the run has ended")
    sub.add_argument("--timeout", type=float, default=600.0, help="for --wait, seconds")
    sub.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)
    sub = commands.command(group, "list", cmd_runs_list,
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
    commands.paged(sub)
    commands.command(group, "get", cmd_runs_get, "one run").add_argument("id", type=int)
    sub = commands.command(group, "watch", cmd_runs_watch,
                           "follow a run until it ends: exit 0 if it completed, 1 if it failed "
                           "or was canceled")
    sub.add_argument("id", type=int)
    sub.add_argument("--json", action="store_true",
                     help="a JSON line per event, then the run (for agents)")
    sub.add_argument("--timeout", type=float, default=None, help="seconds (default: no limit)")
    sub.add_argument("--poll", type=float, default=1.0, help="seconds between reads")
    sub = commands.command(group, "step", cmd_runs_step, "one step run with its attempts")
    sub.add_argument("id", type=int)
    sub.add_argument("step")
    commands.command(group, "events", cmd_runs_events, "every transition").add_argument(
        "id", type=int)
    sub = commands.command(group, "logs", cmd_runs_logs,
                           "a step's logs; --follow tails them (text on stderr) until the "
                           "step ends")
    sub.add_argument("id", type=int)
    sub.add_argument("step")
    sub.add_argument("--after", type=int, default=0)
    sub.add_argument("--follow", action="store_true")
    sub.add_argument("--timeout", type=float, default=3600.0, help="for --follow, seconds")
    sub.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)
    sub = commands.command(group, "cancel", cmd_runs_cancel, "cancel a run")
    sub.add_argument("id", type=int)
    sub.add_argument("--reason", default="")
    sub = commands.command(group, "retry", cmd_runs_retry, "retry a run from its failed step")
    sub.add_argument("id", type=int)
    sub.add_argument("--from-step", default=None)
    commands.command(group, "replay", cmd_runs_replay, "run again from the start").add_argument(
        "id", type=int)
    sub = commands.command(group, "rerun", cmd_runs_rerun,
                           "run the same input on the flow's live version (or on --on-version N)")
    sub.add_argument("id", type=int)
    sub.add_argument("--on-version", type=int, default=None,
                     help="a release number: e.g. the last good one while live fails")
    commands.command(group, "explain", cmd_runs_explain,
                     "why the failing step broke: last good run, first bad run, what changed"
                     ).add_argument("id", type=int)
    sub = commands.command(group, "compare", cmd_runs_compare, "differences with another run")
    sub.add_argument("id", type=int)
    sub.add_argument("--to", required=True, help="a run id or last_good")
