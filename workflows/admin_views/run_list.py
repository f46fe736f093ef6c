"""The runs list (the Run admin's changelist): its columns, quick filters and search.

Columns answer "what ran and why" at laptop width (1366 px, no horizontal scrolling; issue 24):
run, status, flow, trigger ("retry of #10", "rerun of #12"), created to the second, duration,
version, then the failed step with the first line of its error and an input summary, both cut
with an ellipsis by the stylesheet (the whole text on hover). Times are UTC in the cell and the
viewer's zone on hover. Quick filters: created Today / in the last 24 hours / 7 days, so runs
in flight stay listed. The search box is the one run search (`investigation.search_filter`),
with a "matched" column (field and snippet) while searching. Everything reads the row the
changelist already loaded, so the list stays at its few queries (the search adds its look-ups).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from workflows.home_selectors import error_first_line
from workflows.investigation.search import Term, run_match, search_term
from workflows.models import Run
from workflows.templatetags.wf_render import duration_label, status_badge, trigger_label

INPUT_SUMMARY_CHARS = 60
ERROR_CHARS = 100
UTC_FORMAT = "%Y-%m-%d %H:%M:%S"


class CreatedFilter(admin.SimpleListFilter):
    """Created today (since the viewer's midnight), in the last 24 hours, or in the last 7
    days. On the creation time, so runs still waiting or running are listed."""

    title = "created"
    parameter_name = "created"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("today", "Today"), ("24h", "24 h"), ("7d", "7 days")]

    def since(self) -> datetime | None:
        now = timezone.localtime()
        return {
            "today": now.replace(hour=0, minute=0, second=0, microsecond=0),
            "24h": now - timedelta(hours=24),
            "7d": now - timedelta(days=7),
        }.get(self.value() or "")

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        start = self.since()
        return queryset.filter(created_at__gte=start) if start else queryset


def input_summary(value: Any) -> str:
    """`repo=core, rows=1200`: the input's top-level values, short."""
    if not isinstance(value, dict) or not value:
        return ""
    parts = []
    for key, item in value.items():
        text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
        parts.append(f"{key}={text}")
    summary = ", ".join(parts)
    if len(summary) > INPUT_SUMMARY_CHARS:
        summary = summary[: INPUT_SUMMARY_CHARS - 1] + "…"
    return summary


def utc_time(value: datetime | None, *, css: str = "") -> str:
    """`2026-12-07 02:55:24 UTC` in the cell, the viewer's zone (the active one) on hover."""
    if value is None:
        return "—"
    utc = value.astimezone(UTC)
    local = timezone.localtime(value)
    return format_html('<time class="{}" datetime="{}" title="{} {}">{} UTC</time>', css,
                       utc.strftime("%Y-%m-%dT%H:%M:%SZ"), local.strftime(UTC_FORMAT),
                       local.tzname() or "", utc.strftime(UTC_FORMAT))


def match_column(q: str) -> Any:
    """The "matched" column of a search for `q`: the field that matched and a snippet. The
    term's look-ups run once, when the first row is drawn; each row then reads its own values."""
    resolved: list[Term] = []

    def matched(obj: Run) -> str:
        if not resolved:
            resolved.append(search_term(q))
        found = run_match(obj, resolved[0])
        if not found.get("field"):
            return ""
        return format_html('<span class="wf-match" data-match-field="{}"><span class="wf-tag">'
                           '{}</span> <span class="wf-match-snippet" title="{}">{}</span></span>',
                           found["field"], found["field"], found["snippet"], found["snippet"])

    matched.short_description = "matched"  # type: ignore[attr-defined]
    return matched


class RunListColumns:
    """The runs list's columns, mixed into RunAdmin."""

    @admin.display(description="run", ordering="id")
    def run(self, obj: Run) -> str:
        return format_html('<span data-run="{}">#{}</span>', obj.pk, obj.pk)

    @admin.display(description="status", ordering="status")
    def status_cell(self, obj: Run) -> str:
        return status_badge(obj.status)

    @admin.display(description="trigger", ordering="trigger_kind")
    def trigger(self, obj: Run) -> str:
        return format_html('<span class="wf-trigger" data-trigger="{}">{}</span>',
                           obj.trigger_kind, trigger_label(obj))

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, obj: Run) -> str:
        return utc_time(obj.created_at, css="wf-nowrap")

    @admin.display(description="duration")
    def duration(self, obj: Run) -> str:
        label = duration_label(obj.duration_ms)
        if obj.finished_at is None:
            return format_html('<span class="wf-muted">{}</span>', label or "—")
        finished = obj.finished_at.astimezone(UTC).strftime(UTC_FORMAT)
        return format_html('<span title="finished {} UTC">{}</span>', finished, label or "—")

    @admin.display(description="version")
    def version_label(self, obj: Run) -> str:
        return "draft" if obj.is_rehearsal else f"v{obj.version.number}"

    @admin.display(description="failed step · error")
    def error_line(self, obj: Run) -> str:
        step = (obj.error or {}).get("step") if isinstance(obj.error, dict) else ""
        line = error_first_line(obj.error)
        if len(line) > ERROR_CHARS:
            line = line[: ERROR_CHARS - 1] + "…"
        head = format_html("<code>{}</code> ", step) if step else ""
        if obj.error_kind == "rejected":
            return format_html('<span class="wf-cut">{}<span class="wf-badge st-rejected" '
                               'data-error-kind="rejected"><span class="wf-dot st-rejected">'
                               '</span>rejected</span> {}</span>', head, line)
        if not (step or line):
            return ""
        return format_html('<span class="wf-cut wf-err-line" title="{}">{}{}</span>', line,
                           head, line)

    @admin.display(description="input")
    def input_short(self, obj: Run) -> str:
        summary = input_summary(obj.input)
        return format_html('<span class="wf-cut wf-muted" title="{}">{}</span>', summary,
                           summary)
