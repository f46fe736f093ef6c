"""`wf flows …`: list, get, push, release, promote, history, diff, the webhook secret."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from workflows_cli.client import EXIT_NOT_FOUND, EXIT_USAGE, Api, CliError, error_object, seg


def _read_definition(path: str) -> tuple[str, str | None]:
    """The file's text and, when it parses, the slug it declares."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(EXIT_USAGE, error_object("usage", f"cannot read {path}: {exc}")) from None
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
        raise CliError(EXIT_USAGE, error_object("usage", f"not a release number: {args.version}"))
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



def register(commands) -> None:
    group = commands.group("flows", "flows and their versions")
    commands.paged(commands.command(group, "list", cmd_flows_list, "list flows (newest first)"))
    commands.command(group, "get", cmd_flows_get, "one flow").add_argument("slug")
    commands.command(group, "push", cmd_flows_push,
                     "create a flow from a YAML/JSON file, or replace its draft"
                     ).add_argument("file")
    sub = commands.command(group, "release", cmd_flows_release, "release the draft")
    sub.add_argument("slug")
    sub.add_argument("--notes", default="")
    commands.command(group, "releases", cmd_flows_releases, "list releases").add_argument("slug")
    sub = commands.command(group, "promote", cmd_flows_promote,
                           "make a release live (or request it, when promotion requires "
                           "approval)")
    sub.add_argument("slug")
    sub.add_argument("version")
    sub.add_argument("--comment", default="", help="recorded in the flow's history")
    sub = commands.command(group, "history", cmd_flows_history,
                           "releases, draft edits, promotions and rollbacks, newest first")
    sub.add_argument("slug")
    commands.paged(sub)
    sub = commands.command(group, "diff", cmd_flows_diff, "what changed between two versions")
    sub.add_argument("slug")
    sub.add_argument("--from", dest="from_", required=True, help="3, v3, live or draft")
    sub.add_argument("--to", required=True, help="3, v3, live or draft")
    commands.command(group, "webhook-secret", cmd_flows_webhook_secret,
                     "rotate the webhook secret and print it (shown once)").add_argument("slug")
