"""Run search across flows: one lookup for `GET /runs?q=`, the runs list's search box and the
Find box's candidates (issue 24: the three used to disagree).

`q` matches, in one query after a few small indexed look-ups:
- a run id (`123`, `#123`) — **ids first**: a bare number that is the id of a run matches that
  run (and the exact keys below), not text containing the digits (`12` is not `127.0.0.1`);
  a number that names no run is searched as text;
- an approval (`A123`, any case): the run it belongs to;
- text in the run's input or error (the JSON cast to text, case-insensitive; on PostgreSQL
  served by trigram GIN indexes on `UPPER(col::text)`, migration 0007; on SQLite a scan);
- an idempotency key, or a webhook delivery key (the `Idempotency-Key` of /hooks, stored as
  the run's idempotency key `webhook:<key>`), exactly;
- an approver: the username of who decided one of the run's approvals, exactly (any case);
- a callback URL or token, exactly, by the token's hash (the URL's last path segment);
- a flow slug, exactly (any case).

The exact keys are resolved to run (or flow) ids first so the final query is an OR of indexable
conditions (PostgreSQL combines them with a BitmapOr instead of scanning every run).
`search_matches` says, for runs a search returned, which field matched and a snippet around the
match, read off the loaded rows (plus the same small look-ups), so pages show why a run is
listed without a query per row.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
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
APPROVAL_ID = re.compile(r"[Aa]#?(\d{1,19})")
SNIPPET_CONTEXT = 30

# What the search box says it searches (placeholders and help texts read it from here).
SEARCHES = ("run id, A<approval id>, input value, error text, delivery or idempotency key, "
            "approver, callback URL or token")


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


@dataclass
class Term:
    """A search text with its exact keys resolved: `exact` maps run ids to the field that
    named them (approval, callback, approver); `by_id` is set when the text is the id of an
    existing run (then text is not searched)."""

    text: str
    keys: list[str]
    by_id: int | None = None
    exact: dict[int, tuple[str, str]] = field(default_factory=dict)
    flow_ids: list[int] = field(default_factory=list)


def search_term(q: str) -> Term:
    """Resolve the exact keys of `q` (up to five small indexed queries)."""
    text = q.strip()[:MAX_Q_LENGTH]
    keys = [text]
    if len(text) <= 200 - len(IDEMPOTENCY_PREFIX):
        keys.append(IDEMPOTENCY_PREFIX + text)
    term = Term(text=text, keys=keys)
    run_id = run_id_of(text)
    if run_id is not None and Run.objects.filter(pk=run_id).exists():
        term.by_id = run_id
    if match := APPROVAL_ID.fullmatch(text):
        for run_pk in Approval.objects.filter(pk=int(match[1]), run__isnull=False).values_list(
                "run_id", flat=True):
            term.exact[run_pk] = ("approval", f"A{match[1]}")
    token = callback_token_of(text)
    if token is not None:
        for run_pk in StepRun.objects.filter(callback_token_hash=token_hash(token)).values_list(
                "run_id", flat=True):
            term.exact[run_pk] = ("callback", "callback token …" + token[-4:])
    for run_pk, name in Approval.objects.filter(
            decision_actor__username__iexact=text, run__isnull=False).values_list(
            "run_id", "decision_actor__username"):
        term.exact.setdefault(run_pk, ("approver", f"decided by {name}"))
    if len(text) <= 100:
        term.flow_ids = list(Flow.objects.filter(slug__iexact=text).values_list("pk", flat=True))
    return term


def term_condition(term: Term) -> Q:
    """The condition a resolved term adds to a runs query (the `input_text` / `error_text`
    aliases must be on the query: `search_filter` adds them)."""
    condition = (Q(pk__in=sorted(term.exact)) | Q(idempotency_key__in=term.keys)
                 | Q(flow_id__in=term.flow_ids))
    if term.by_id is not None:
        return condition | Q(pk=term.by_id)
    return condition | Q(input_text__icontains=term.text) | Q(error_text__icontains=term.text)


def runs_matching(term: str) -> Q:
    """The condition `q=term` adds (see `search_filter`, which also adds the text aliases)."""
    return term_condition(search_term(term))


def search_filter(runs: QuerySet[Run], q: str | None) -> QuerySet[Run]:
    """`runs` narrowed to those `q` matches (unchanged for an empty `q`): the one lookup the
    API, the runs list and the Find box share."""
    if q is None or not q.strip():
        return runs
    return runs.alias(
        input_text=Cast("input", TextField()), error_text=Cast("error", TextField())
    ).filter(term_condition(search_term(q)))


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
    return search_filter(runs, q).order_by("-id")


# --- why a run matched ----------------------------------------------------------------------


def snippet(text: str, needle: str, *, context: int = SNIPPET_CONTEXT) -> str:
    """`…some text around NEEDLE and after…`: the first case-insensitive match with `context`
    characters either side (the whole text when the needle is not in it, cut to its start)."""
    at = text.casefold().find(needle.casefold())
    if at < 0:
        return text[: 2 * context] + ("…" if len(text) > 2 * context else "")
    start, end = max(0, at - context), min(len(text), at + len(needle) + context)
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _input_match(value: Any, needle: str) -> str | None:
    if isinstance(value, dict):
        for key, item in value.items():
            text = f"{key}={_value_text(item)}"
            if needle.casefold() in text.casefold():
                return snippet(text, needle)
    text = _value_text(value)
    return snippet(text, needle) if needle.casefold() in text.casefold() else None


def _error_match(error: Any, needle: str) -> str | None:
    if isinstance(error, dict):
        for key in ("message", "type", "step", "traceback"):
            text = error.get(key)
            if isinstance(text, str) and needle.casefold() in text.casefold():
                return snippet(" ".join(text.split()), needle)
    text = _value_text(error)
    return snippet(text, needle) if needle.casefold() in text.casefold() else None


def run_match(run: Run, term: Term) -> dict[str, str]:
    """`{field, snippet}`: why `run` is in the results of `term` (the first that applies)."""
    if run.pk in term.exact:
        name, text = term.exact[run.pk]
        return {"field": name, "snippet": text}
    if term.by_id == run.pk:
        return {"field": "run id", "snippet": f"#{run.pk}"}
    key = run.idempotency_key or ""
    if key and key in term.keys:
        if key.startswith(IDEMPOTENCY_PREFIX):
            return {"field": "delivery key", "snippet": key.removeprefix(IDEMPOTENCY_PREFIX)}
        return {"field": "idempotency key", "snippet": key}
    if run.flow_id in term.flow_ids:
        return {"field": "flow", "snippet": run.flow.slug}
    if term.by_id is None:
        if (found := _input_match(run.input, term.text)) is not None:
            return {"field": "input", "snippet": found}
        if run.error and (found := _error_match(run.error, term.text)) is not None:
            return {"field": "error", "snippet": found}
    return {"field": "", "snippet": ""}


def search_matches(runs: list[Run], q: str) -> dict[int, dict[str, str]]:
    """For runs a search for `q` returned (flow loaded): run id → `{field, snippet}`."""
    if not q or not q.strip() or not runs:
        return {}
    term = search_term(q)
    return {run.pk: run_match(run, term) for run in runs}
