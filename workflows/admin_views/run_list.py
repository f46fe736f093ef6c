"""The runs list (the Run admin's changelist): its extra columns and quick filters.

Columns: the failed step and the first line of the error (from `Run.error`, which names the
step), an input summary, the finish time; statuses are badges (admin.css is on every admin
page). Quick filters: finished Today / in the last 24 hours / 7 days. Everything reads the row
the changelist already loaded, so the list stays at its few queries.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from workflows.home_selectors import error_first_line
from workflows.models import Run

INPUT_SUMMARY_CHARS = 60
ERROR_CHARS = 100


class FinishedFilter(admin.SimpleListFilter):
    """Finished today (since local midnight), in the last 24 hours, or in the last 7 days."""

    title = "finished"
    parameter_name = "finished"

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
        return queryset.filter(finished_at__gte=start) if start else queryset


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


class RunListColumns:
    """The runs list's columns, mixed into RunAdmin."""

    @admin.display(description="failed step")
    def failed_step(self, obj: Run) -> str:
        step = (obj.error or {}).get("step") if obj.error else ""
        return format_html("<code>{}</code>", step) if step else ""

    @admin.display(description="error")
    def error_line(self, obj: Run) -> str:
        line = error_first_line(obj.error)
        if len(line) > ERROR_CHARS:
            line = line[: ERROR_CHARS - 1] + "…"
        kind = obj.error_kind
        if kind == "rejected":
            return format_html('<span class="wf-badge st-rejected" data-error-kind="rejected">'
                               '<span class="wf-dot st-rejected"></span>rejected</span> {}', line)
        return format_html('<span class="wf-err-line" title="{}">{}</span>', kind, line)

    @admin.display(description="input")
    def input_short(self, obj: Run) -> str:
        summary = input_summary(obj.input)
        return format_html('<span class="wf-muted" title="{}">{}</span>', summary, summary)

    @admin.display(description="finished", ordering="finished_at", empty_value="—")
    def finished(self, obj: Run) -> Any:
        return obj.finished_at
