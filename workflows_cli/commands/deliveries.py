"""`wf deliveries list|redeliver`: a flow's webhook delivery log, and a new run from one."""

from __future__ import annotations

import argparse
from typing import Any

from workflows_cli.client import Api, seg

OUTCOMES = ["started", "duplicate", "filtered", "rejected", "invalid"]


def cmd_deliveries_list(api: Api, args: argparse.Namespace) -> Any:
    path = f"/flows/{seg(args.slug)}/deliveries"
    if args.all:
        return api.all_pages(path, outcome=args.outcome)
    return api.get(path, outcome=args.outcome, limit=args.limit)


def cmd_deliveries_redeliver(api: Api, args: argparse.Namespace) -> Any:
    return api.post(f"/flows/{seg(args.slug)}/deliveries/{args.id}/redeliver")


def register(commands) -> None:
    group = commands.group("deliveries", "webhook deliveries")
    sub = commands.command(group, "list", cmd_deliveries_list,
                           "a flow's webhook deliveries, newest first")
    sub.add_argument("slug")
    sub.add_argument("--outcome", default=None, choices=OUTCOMES)
    sub.add_argument("--limit", type=int, default=50, help="one page of this many (default 50)")
    sub.add_argument("--all", action="store_true", help="every page")
    sub = commands.command(group, "redeliver", cmd_deliveries_redeliver,
                           "a new run of the live release from a stored delivery (operators)")
    sub.add_argument("slug")
    sub.add_argument("id", type=int)
