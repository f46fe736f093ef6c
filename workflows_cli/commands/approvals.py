"""`wf approvals list|approve|reject|redo`."""

from __future__ import annotations

import argparse
from typing import Any

from workflows_cli.client import Api


def cmd_approvals_list(api: Api, args: argparse.Namespace) -> Any:
    return api.all_pages("/approvals", status=args.status)


def cmd_approvals_decide(api: Api, args: argparse.Namespace) -> Any:
    body: dict[str, Any] = {"comment": args.comment}
    if getattr(args, "to_step", None):
        body["to_step"] = args.to_step
    return api.post(f"/approvals/{args.id}/{args.decision}", body)


def register(commands) -> None:
    group = commands.group("approvals", "approvals")
    sub = commands.command(group, "list", cmd_approvals_list, "approvals you may decide")
    sub.add_argument("--status", default="pending", choices=["pending", "decided", "all"])
    for decision in ("approve", "reject", "redo"):
        sub = commands.command(group, decision, cmd_approvals_decide, f"{decision} an approval")
        sub.add_argument("id", type=int)
        sub.add_argument("--comment", default="")
        sub.set_defaults(decision=decision)
        if decision == "redo":
            sub.add_argument("--to-step", default=None)
