"""Run search across flows (`GET /runs`, `wf runs list`, the admin's lookup candidates).

`q` matches, in one query after two small indexed look-ups:
- a run id (`123`, `#123`);
- text in the run's input or error (the JSON cast to text, case-insensitive; on PostgreSQL
  served by trigram GIN indexes on `UPPER(col::text)`, migration 0007; on SQLite a scan);
- an idempotency key, or a webhook delivery key (the `Idempotency-Key` of /hooks, stored as
  the run's idempotency key `webhook:<key>`), exactly;
- an approver: the username of who decided one of the run's approvals, exactly (any case);
- a callback URL or token, exactly, by the token's hash (the URL's last path segment).

The exact keys are resolved to run ids first so the final query is an OR of indexable
conditions (PostgreSQL combines them with a BitmapOr instead of scanning every run).
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast

from approvals.models import Approval
from workflows.engine import token_hash
from workflows.models import WEBHOOK_KEY_PREFIX as IDEMPOTENCY_PREFIX
from workflows.models import Flow, Run, StepRun
from workflows.permissions import VIEW_RUN, require_permission

MAX_Q_LENGTH = 500
MAX_RUN_ID = 2**63 - 1
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,200}")


def callback_token_of(text: str) -> str | None:
    """The callback token in `text`: the text itself, or a URL's last path segment."""
    text = text.strip()
    if "/" in text:
        path = urlsplit(text).path if "://" in text else text.split("?")[0]
        text = path.rstrip("/").rsplit("/", 1)[-1]
    return text if TOKEN_RE.fullmatch(text) else None


def run_id_of(text: str) -> int | None:
    """`123` or `#123` as a run id (None when it is not one)."""
    number = text.strip().removeprefix("#")
    if number.isascii() and number.isdigit() and 0 < len(number) <= 19:
        value = int(number)
        if 0 < value <= MAX_RUN_ID:
            return value
    return None


def runs_matching(term: str) -> Q:
    """The condition `q=term` adds (two queries: the callback token's run, the approver's)."""
    term = term.strip()[:MAX_Q_LENGTH]
    exact_ids: set[int] = set()
    run_id = run_id_of(term)
    if run_id is not None:
        exact_ids.add(run_id)
    token = callback_token_of(term)
    if token is not None:
        exact_ids.update(StepRun.objects.filter(callback_token_hash=token_hash(token))
                         .values_list("run_id", flat=True))
    exact_ids.update(Approval.objects.filter(decision_actor__username__iexact=term)
                     .values_list("run_id", flat=True))
    keys = [term]
    if len(term) <= 200 - len(IDEMPOTENCY_PREFIX):
        keys.append(IDEMPOTENCY_PREFIX + term)
    return (Q(pk__in=sorted(exact_ids)) | Q(idempotency_key__in=keys)
            | Q(input_text__icontains=term) | Q(error_text__icontains=term))


def runs_search(
    *, actor, status: str | None = None, flow: str | Flow | None = None,
    finished_after: datetime | None = None, finished_before: datetime | None = None,
    error_kind: str | None = None, q: str | None = None,
) -> QuerySet[Run]:
    """Runs across flows, newest first (order by -id; page with a keyset on id).

    `flow` is a slug (or a Flow); `finished_after` is inclusive, `finished_before` exclusive;
    `q` is described in the module docstring. Raises NotPermitted unless the actor may view
    runs. The queryset selects flow and version; a caller listing steps prefetches them."""
    require_permission(actor, VIEW_RUN)
    runs = Run.objects.select_related("flow", "version")
    if status:
        runs = runs.filter(status=status)
    if flow is not None and flow != "":
        runs = runs.filter(flow=flow) if isinstance(flow, Flow) else runs.filter(flow__slug=flow)
    if finished_after is not None:
        runs = runs.filter(finished_at__gte=finished_after)
    if finished_before is not None:
        runs = runs.filter(finished_at__lt=finished_before)
    if error_kind:
        runs = runs.filter(error_kind=error_kind)
    if q is not None and q.strip():
        runs = runs.alias(
            input_text=Cast("input", TextField()), error_text=Cast("error", TextField())
        ).filter(runs_matching(q))
    return runs.order_by("-id")
