"""One lookup box: whatever someone pastes from a ticket or a chat message, find its run.

Accepted, in the order they are tried:
- a run: `123`, `#123`, a run's admin URL (`/admin/workflows/run/123/...`) or API URL
  (`/api/v1/runs/123...`);
- an approval: `A123` (any case) or its admin / API URL (`/admin/approvals/approval/123/...`,
  `/api/v1/approvals/123...`);
- a callback URL (`.../api/v1/callbacks/<token>`) or the bare token, by the token's hash;
- a webhook delivery key (the `Idempotency-Key` of a delivery) or an API idempotency key;
- anything else: the candidates run search (`runs_search(q=...)`) finds.
An exact key that names nothing falls through to run search as well.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from approvals.models import Approval
from workflows.engine import token_hash
from workflows.investigation.search import (
    APPROVAL_ID,
    callback_token_of,
    run_id_of,
    runs_search,
    search_matches,
)
from workflows.models import WEBHOOK_KEY_PREFIX, Run, StepRun
from workflows.permissions import VIEW_RUN, require_permission

MAX_CANDIDATES = 20
MAX_TEXT = 2000
RUN_PATH = re.compile(r"/(?:admin/workflows/run|api/v1/runs)/(\d{1,19})(?:/|$)")
APPROVAL_PATH = re.compile(r"/(?:admin/approvals/approval|api/v1/approvals)/(\d{1,19})(?:/|$)")
CALLBACK_PATH = re.compile(r"/api/v1/callbacks/([^/?#]+)")


def _runs() -> Any:
    return Run.objects.select_related("flow", "version")


def _found(run: Run | None, kind: str) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"run": run, "kind": kind, "candidates": [run]}


def _by_approval(approval_id: int) -> Run | None:
    run_id = Approval.objects.filter(pk=approval_id).values_list("run_id", flat=True).first()
    return _runs().filter(pk=run_id).first() if run_id else None


def _by_token(token: str) -> Run | None:
    run_id = (StepRun.objects.filter(callback_token_hash=token_hash(token))
              .values_list("run_id", flat=True).first())
    return _runs().filter(pk=run_id).first() if run_id else None


def _exact(text: str) -> dict[str, Any] | None:
    """The run an exact key names, or None."""
    path = urlsplit(text).path if "://" in text else (text if text.startswith("/") else "")
    if path:
        if match := RUN_PATH.search(path):
            return _found(_runs().filter(pk=run_id_of(match[1]) or 0).first(), "run")
        if match := APPROVAL_PATH.search(path):
            return _found(_by_approval(int(match[1])), "approval")
        if match := CALLBACK_PATH.search(path):
            token = callback_token_of(match[1])
            return _found(_by_token(token), "callback") if token else None
    run_id = run_id_of(text)
    if run_id is not None:
        return _found(_runs().filter(pk=run_id).first(), "run")
    if match := APPROVAL_ID.fullmatch(text):
        return _found(_by_approval(int(match[1])), "approval")
    token = callback_token_of(text)
    if token is not None and (run := _by_token(token)) is not None:
        return _found(run, "callback")
    keyed = list(_runs().filter(idempotency_key__in=[WEBHOOK_KEY_PREFIX + text, text])
                 .order_by("-id")[:MAX_CANDIDATES])
    if len(keyed) == 1:
        kind = ("delivery_key" if keyed[0].idempotency_key == WEBHOOK_KEY_PREFIX + text
                else "idempotency_key")
        return _found(keyed[0], kind)
    if keyed:  # the same key in several flows: let the person choose
        return {"run": None, "kind": "idempotency_key", "candidates": keyed}
    return None


def lookup_resolve(*, actor, text: str) -> dict[str, Any]:
    """Resolve pasted `text` to a run: `{"run": Run | None, "kind": str, "candidates":
    [Run, ...]}`. `run` is set when an exact key names one run (kind: run, approval, callback,
    delivery_key, idempotency_key); otherwise `candidates` lists at most 20 runs run search
    found for the text, newest first (kind: search; empty text gives none), with `matches`:
    run id → `{field, snippet}` (why each is listed).
    Raises NotPermitted unless the actor may view runs."""
    require_permission(actor, VIEW_RUN)
    text = (text or "").strip()[:MAX_TEXT]
    if not text:
        return {"run": None, "kind": "search", "candidates": []}
    found = _exact(text)
    if found is not None:
        return found
    candidates = list(runs_search(actor=actor, q=text)[:MAX_CANDIDATES])
    return {"run": None, "kind": "search", "candidates": candidates,
            "matches": search_matches(candidates, text)}
