"""The run page's timeline: compact by default, full one click away (`?timeline=full`).

Compact hides the moves every step makes on its way (queued, running, and a step queued because
its needs are satisfied), so a 4-step run reads as what happened: what waited, what failed,
who decided, what ended. Decisions read as sentences ("approved by rita: ship it"). Every event
carries its date and the time since the previous event shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest

from workflows.models import Event
from workflows.states import READY_REASON, EventKind
from workflows.templatetags.wf_render import duration_label

FULL = "full"
# Moves a compact timeline leaves out.
ROUTINE_KINDS = frozenset({EventKind.RUN_QUEUED, EventKind.RUN_RUNNING, EventKind.STEP_QUEUED,
                           EventKind.STEP_RUNNING})
DECISIONS = {
    EventKind.APPROVAL_APPROVED: "approved",
    EventKind.APPROVAL_REJECTED: "rejected",
    EventKind.RUN_REDO: "sent back",
    EventKind.STEP_REDO: "sent back",
}


def timeline_mode(request: HttpRequest) -> str:
    return FULL if request.GET.get("timeline") == FULL else "compact"


def is_routine(event: Event) -> bool:
    return event.kind in ROUTINE_KINDS or event.reason == READY_REASON


def decision_text(event: Event) -> str:
    """"approved by rita: ship it" for a decision; "" for any other event."""
    verb = DECISIONS.get(event.kind)
    if verb is None:
        return "approval timed out" if event.kind == EventKind.APPROVAL_TIMED_OUT else ""
    text = f"{verb} by {event.actor or event.actor_kind}"
    return f"{text}: {event.reason}" if event.reason else text


def actor_label(event: Any) -> tuple[str, str] | None:
    """Who moved it, said once: (kind, name) as ("user", "ada"), ("worker", ""),
    ("schedule", "") — not "schedule schedule" — and None when the reason says it already
    ("schedule trigger")."""
    kind, actor = event.actor_kind or "", event.actor or ""
    if actor == kind or not actor:
        return None if kind and (event.reason or "").startswith(kind) else (kind, "")
    return kind, actor


def timeline_rows(events: Iterable[Event], *, full: bool) -> tuple[list[dict[str, Any]], int]:
    """The rows shown (all of them when `full`) and how many events there are in all."""
    rows: list[dict[str, Any]] = []
    total = 0
    previous = None
    for event in events:
        total += 1
        if not full and is_routine(event):
            continue
        gap = (event.at - previous).total_seconds() * 1000 if previous else None
        previous = event.at
        rows.append({
            "event": event, "step": event.step_run.key if event.step_run_id else "",
            "dot": event.to_status or "event", "decision": decision_text(event),
            "delta": "+" + duration_label(int(gap)) if gap is not None else "",
            "actor": actor_label(event),
        })
    return rows, total
