"""`wf flows …`: list, get, push, release, promote, history, diff, the webhook secret."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from workflows_cli.client import EXIT_NOT_FOUND, EXIT_USAGE, Api, CliError, error_object, seg
from workflows_cli.commands.documents import flow_ordered, to_yaml, usage, write_text


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


def cmd_flows_notification_secret(api: Api, args: argparse.Namespace) -> Any:
    return api.post(f"/flows/{seg(args.slug)}/notification-secret")


def cmd_flows_secret_set(api: Api, args: argparse.Namespace) -> Any:
    """The secret is read from stdin only (never a flag: flags land in shell history); one
    trailing newline is dropped. The server never returns it."""
    if not args.stdin:
        raise usage("the secret is read from stdin: pass --stdin (e.g. wf flows secret set "
                    "SLUG --stdin < secret.txt)")
    secret = sys.stdin.read()
    secret = secret[:-2] if secret.endswith("\r\n") else secret.removesuffix("\n")
    document = api.put(f"/flows/{seg(args.slug)}/webhook-secret", {"secret": secret})
    return {"slug": args.slug, "webhook_secret_set": True, **document}


def _release(api: Api, slug: str, number: int) -> dict[str, Any]:
    """Release `number`, from the newest-first list of releases."""
    cursor = None
    while True:
        page = api.get(f"/flows/{seg(slug)}/releases", cursor=cursor, limit=200)
        for release in page["items"]:
            if release["version"] == number:
                return release
            if release["version"] < number:
                break
        cursor = page.get("next_cursor")
        if not cursor or (page["items"] and page["items"][-1]["version"] < number):
            raise CliError(EXIT_NOT_FOUND, error_object(
                "not_found", f"flow {slug} has no release {number}"))


def cmd_flows_pull(api: Api, args: argparse.Namespace) -> Any:
    """The definition as YAML, in the order people write it (documents.flow_ordered): `push`
    of an unedited pull changes nothing, and pulling again writes the same bytes."""
    label = str(args.version or "draft").strip().lower()
    flow = api.get(f"/flows/{seg(args.slug)}")
    if label == "draft":
        if not flow.get("draft"):
            raise CliError(EXIT_NOT_FOUND, error_object(
                "not_found", f"flow {args.slug} has no draft"))
        definition, version, content_hash = flow["draft"]["definition"], "draft", \
            flow["draft"]["hash"]
    else:
        if label == "live":
            number = flow.get("live_version")
            if number is None:
                raise CliError(EXIT_NOT_FOUND, error_object(
                    "not_found", f"flow {args.slug} has no live release"))
        else:
            digits = label.removeprefix("v")
            if not digits.isascii() or not digits.isdigit():
                raise usage(f"--version is a release number (3 or v3), live or draft: "
                            f"{args.version}")
            number = int(digits)
        release = _release(api, args.slug, number)
        definition, version, content_hash = release["definition"], release["version"], \
            release["content_hash"]
    path = write_text(args.output or f"{args.slug}.yaml", to_yaml(flow_ordered(definition)))
    if path is None:
        return None
    return {"slug": args.slug, "version": version, "content_hash": content_hash, "path": path}



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
    sub = commands.command(group, "pull", cmd_flows_pull,
                           "write a version's definition as YAML (default: the draft) to "
                           "SLUG.yaml or -o FILE (- for stdout)")
    sub.add_argument("slug")
    sub.add_argument("--version", default=None, help="3, v3, live or draft (default)")
    sub.add_argument("-o", "--output", default=None, metavar="FILE")
    commands.command(group, "notification-secret", cmd_flows_notification_secret,
                     "rotate the notification signing secret and print it (shown once)"
                     ).add_argument("slug")
    secret = commands.subgroup(group, "secret", "the flow's webhook secret")
    sub = commands.command(secret, "set", cmd_flows_secret_set,
                           "set the webhook secret to one read from stdin (never printed)")
    sub.add_argument("slug")
    sub.add_argument("--stdin", action="store_true", help="read the secret from stdin")
    commands.command(secret, "rotate", cmd_flows_webhook_secret,
                     "a new random secret, printed once (same as webhook-secret)"
                     ).add_argument("slug")

