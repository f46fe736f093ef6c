"""Admin registrations for flows and runs.

The Flow change view is the flow page and the Run change view is the run page
(`workflows/admin_views/flow_page.py`, `run_page.py`, with the step panel in
`step_panel.py`); API documents link to both (`admin_url`). Everything else here is
read-only: events are append-only, releases are immutable, statuses move only through the
services. Changes happen through the pages' actions, which call the same services as the API,
or through the draft editor on the flow page (`flow_update_draft`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import SEARCH_VAR
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from workflows.admin_base import PagesMixin, ReadOnlyAdmin
from workflows.admin_views import (
    diff_page,
    flow_page,
    flow_webhooks,
    instances_panel,
    run_page,
    step_panel,
)
from workflows.admin_views.edge import run_url
from workflows.admin_views.run_list import CreatedFilter, RunListColumns, match_column
from workflows.investigation import SEARCHES, search_filter
from workflows.models import (
    Attempt,
    Event,
    Flow,
    FlowVersion,
    LogChunk,
    Run,
    StepRun,
)
from workflows.permissions import EDIT_DRAFT, has_permission
from workflows.templatetags.wf_render import json_html, status_badge


@admin.display(description="status", ordering="status")
def _status(obj: Any) -> str:
    return status_badge(obj.status)


# --- flows ---------------------------------------------------------------------------------------


@admin.register(Flow)
class FlowAdmin(PagesMixin, admin.ModelAdmin):
    list_display = ["slug", "name", "live", "updated_at"]
    list_select_related = ["live_version"]
    search_fields = ["slug", "name", "description"]
    ordering = ["slug"]

    @admin.display(description="live release")
    def live(self, obj: Flow) -> str:
        return f"v{obj.live_version.number}" if obj.live_version_id else "—"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return has_permission(request.user, EDIT_DRAFT)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the draft editor on the flow page goes through flow_update_draft

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deleting a flow would delete its runs' events

    def get_urls(self) -> list:
        return [
            path("<str:flow_id>/matrix/", self._page(flow_page.matrix_fragment),
                 name="workflows_flow_matrix"),
            path("<str:flow_id>/draft/", self._page(flow_page.flow_update_draft_view),
                 name="workflows_flow_draft"),
            path("<str:flow_id>/release/", self._page(flow_page.flow_release_view),
                 name="workflows_flow_release"),
            path("<str:flow_id>/promote/", self._page(diff_page.flow_promote_page),
                 name="workflows_flow_promote"),
            path("<str:flow_id>/diff/", self._page(diff_page.flow_diff_page),
                 name="workflows_flow_diff"),
            path("<str:flow_id>/start/", self._page(flow_page.flow_start_view),
                 name="workflows_flow_start"),
            path("<str:flow_id>/webhook-secret/",
                 self._page(flow_webhooks.flow_webhook_secret_view),
                 name="workflows_flow_webhook_secret"),
            path("<str:flow_id>/redeliver/", self._page(flow_webhooks.delivery_redeliver_view),
                 name="workflows_flow_redeliver"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        return flow_page.flow_page(request, self, object_id)

    def add_view(self, request: HttpRequest, form_url: str = "",
                 extra_context: dict | None = None) -> HttpResponse:
        return flow_page.flow_add(request, self)


@admin.register(FlowVersion)
class FlowVersionAdmin(ReadOnlyAdmin):
    """Releases are immutable; the draft changes only through flow_update_draft."""

    list_display = ["flow", "label", "released_at", "created_by", "short_hash", "notes"]
    list_filter = ["flow"]
    list_select_related = ["flow", "created_by"]
    fields = ["flow", "label", "released_at", "created_by", "content_hash", "notes",
              "definition_html", "updated_at"]
    readonly_fields = fields

    @admin.display(description="hash")
    def short_hash(self, obj: FlowVersion) -> str:
        return obj.content_hash[:12]

    @admin.display(description="definition")
    def definition_html(self, obj: FlowVersion) -> str:
        return json_html(obj.definition)


# --- runs ----------------------------------------------------------------------------------------


class CreatedRangeFilter(admin.ListFilter):
    """Runs created between two dates (inclusive), e.g. ?created_from=2025-01-01&created_to=…"""

    title = "created between"
    template = "admin/workflows/date_range_filter.html"
    parameters = ("created_from", "created_to")

    def __init__(self, request: HttpRequest, params: dict, model: Any, model_admin: Any):
        super().__init__(request, params, model, model_admin)
        for name in self.parameters:
            if name in params:
                value = params.pop(name)
                self.used_parameters[name] = value[-1] if isinstance(value, list) else value

    def _date(self, name: str) -> dt.date | None:
        value = (self.used_parameters.get(name) or "").strip()
        if not value:
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise IncorrectLookupParameters(f"{name}: not a date (YYYY-MM-DD)") from exc

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return list(self.parameters)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        start, end = self._date("created_from"), self._date("created_to")
        zone = timezone.get_current_timezone()
        if start:
            queryset = queryset.filter(
                created_at__gte=dt.datetime.combine(start, dt.time.min, tzinfo=zone))
        if end:
            queryset = queryset.filter(
                created_at__lt=dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min,
                                                   tzinfo=zone))
        return queryset

    def choices(self, changelist: Any):
        keep = [(k, v) for k, v in changelist.params.items()
                if k not in self.parameters and k != "p"]
        yield {
            "created_from": self.used_parameters.get("created_from", ""),
            "created_to": self.used_parameters.get("created_to", ""),
            "hidden": [(k, v[-1] if isinstance(v, list) else v) for k, v in keep],
            "clear_url": changelist.get_query_string(remove=list(self.parameters)),
            "active": any(self.used_parameters.get(n) for n in self.parameters),
        }


@admin.register(Run)
class RunAdmin(RunListColumns, PagesMixin, ReadOnlyAdmin):
    """The runs list (columns, quick filters and search in admin_views/run_list.py) and the
    run page."""

    list_display = ["run", "status_cell", "flow", "trigger", "created", "duration",
                    "version_label", "error_line", "input_short"]
    list_display_links = ["run"]
    list_filter = [CreatedFilter, "status", "error_kind", "trigger_kind", "flow",
                   CreatedRangeFilter]
    list_select_related = ["flow", "version", "trigger_delivery"]
    search_fields = ["id"]  # shows the box; get_search_results does the searching
    search_help_text = f"Searches {SEARCHES}. A number that is a run's id finds that run."
    list_per_page = 50
    ordering = ["-id"]

    def get_list_display(self, request: HttpRequest) -> list:
        """While searching, a "matched" column (which field matched, with a snippet) takes the
        input summary's place, so the list still fits at laptop width."""
        columns = list(super().get_list_display(request))
        q = request.GET.get(SEARCH_VAR, "").strip()
        return [*(c for c in columns if c != "input_short"), match_column(q)] if q else columns

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # The delivery is joined for the trigger label ("webhook: pull_request"), never its
        # stored body and headers.
        return super().get_queryset(request).defer("trigger_delivery__payload",
                                                    "trigger_delivery__headers")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet,
                           search_term: str) -> tuple[QuerySet, bool]:
        """The one run search (`GET /runs?q=` and the Find box use it too)."""
        return search_filter(queryset, search_term), False

    def get_urls(self) -> list:
        return [
            path("<str:run_id>/live/", self._page(run_page.run_live), name="workflows_run_live"),
            path("<str:run_id>/cancel/", self._page(run_page.run_cancel_view),
                 name="workflows_run_cancel"),
            path("<str:run_id>/retry/", self._page(run_page.run_retry_view),
                 name="workflows_run_retry"),
            path("<str:run_id>/replay/", self._page(run_page.run_replay_view),
                 name="workflows_run_replay"),
            path("<str:run_id>/rerun/", self._page(run_page.run_rerun_view),
                 name="workflows_run_rerun"),
            path("<str:run_id>/compare/", self._page(run_page.run_compare_fragment),
                 name="workflows_run_compare"),
            path("<str:run_id>/steps/<str:key>/", self._page(step_panel.step_panel),
                 name="workflows_run_step"),
            path("<str:run_id>/steps/<str:key>/live/", self._page(step_panel.step_live),
                 name="workflows_run_step_live"),
            path("<str:run_id>/steps/<str:key>/logs/", self._page(step_panel.step_logs_earlier),
                 name="workflows_run_step_logs"),
            path("<str:run_id>/steps/<str:key>/instances/",
                 self._page(instances_panel.step_instances),
                 name="workflows_run_step_instances"),
            path("<str:run_id>/steps/<str:key>/instances/<str:index>/",
                 self._page(instances_panel.step_instance),
                 name="workflows_run_step_instance"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        return run_page.run_page(request, self, object_id)


class RunLinkMixin:
    @admin.display(description="run", ordering="run_id")
    def run_link(self, obj: Any) -> str:
        return format_html('<a href="{}">#{}</a>', run_url(obj.run_id), obj.run_id)


@admin.register(StepRun)
class StepRunAdmin(RunLinkMixin, ReadOnlyAdmin):
    list_display = ["key", "run_link", "type", _status, "attempt_count", "started_at",
                    "finished_at"]
    list_filter = ["status", "type"]
    search_fields = ["key", "=run__id"]
    exclude = ["callback_nonce", "callback_token_hash"]
    ordering = ["-id"]


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "status", "worker", "started_at", "duration_ms", "exit_code"]
    list_filter = ["status"]
    list_select_related = ["step_run"]
    search_fields = ["=step_run__run__id", "step_run__key"]
    ordering = ["-id"]


@admin.register(Event)
class EventAdmin(RunLinkMixin, ReadOnlyAdmin):
    """Append-only: the record of every transition and repair."""

    list_display = ["at", "run_link", "step", "kind", "from_status", "to_status", "actor_kind",
                    "actor", "reason"]
    list_filter = ["kind", "actor_kind", "to_status"]
    list_select_related = ["step_run"]
    search_fields = ["=run__id", "actor", "reason"]
    ordering = ["-id"]

    @admin.display(description="step")
    def step(self, obj: Event) -> str:
        return obj.step_run.key if obj.step_run_id else ""


@admin.register(LogChunk)
class LogChunkAdmin(ReadOnlyAdmin):
    list_display = ["step_run", "seq", "stream", "at"]
    list_filter = ["stream"]
    list_select_related = ["step_run"]
    search_fields = ["=step_run__run__id"]
    ordering = ["-id"]


# API tokens: their admin lives in workflows/admin_tokens.py (create shown once, revoke).
import workflows.admin_tokens  # noqa: E402,F401
