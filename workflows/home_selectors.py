"""What the workflows home reads (workflows/admin_views/home.py): failures of the last day,
what runs now, and each flow's health. Each function is a fixed number of queries, whatever
the number of rows, so the home page's query count does not grow with the history.

Pending approvals come from `approvals.selectors` (who may decide what is their rule).
Everything here is about runs, so each function needs the view permission on runs
(`VIEW_RUN`, every role has it): a staff user with no role gets NotPermitted, not the failed
runs' error text, what runs now or how flows fare."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import F, Window
from django.db.models.functions import RowNumber

from workflows.models import Flow, Run, StepRun
from workflows.permissions import VIEW_RUN, require_permission
from workflows.states import RUN_TERMINAL, RunStatus, StepStatus

FAILED_RECENT_LIMIT = 50
ACTIVE_LIMIT = 50
FLOWS_LIMIT = 100
SUCCESS_WINDOW = 50
ACTIVE_STEP_STATUSES = (StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.WAITING,
                        StepStatus.WAITING_FOR_APPROVAL)


def error_first_line(error: dict[str, Any] | None) -> str:
    """The first non-empty line of an error's message ("" when there is none)."""
    message = str((error or {}).get("message") or "")
    for line in message.splitlines():
        if line.strip():
            return line.strip()
    return ""


def runs_failed_recent(*, actor: Any, since: datetime,
                       limit: int = FAILED_RECENT_LIMIT) -> list[dict]:
    """Runs that failed since `since`, across flows, newest failure first: one row per run with
    its flow, failed step, the first line of the error, when it ended and its error kind
    (`Run.error_kind`: `rejected` for a rejection, `timeout`, `error`). One query."""
    require_permission(actor, VIEW_RUN)
    runs = (Run.objects.filter(status=RunStatus.FAILED, finished_at__gte=since)
            .select_related("flow").order_by("-finished_at", "-id")
            .only("id", "status", "error", "error_kind", "finished_at", "flow__id", "flow__slug",
                  "flow__name")[:limit])
    return [
        {"id": run.pk, "flow": run.flow, "step": (run.error or {}).get("step", ""),
         "error": error_first_line(run.error), "error_kind": run.error_kind or "error",
         "finished_at": run.finished_at}
        for run in runs
    ]


def runs_active(*, actor: Any, limit: int = ACTIVE_LIMIT) -> list[dict]:
    """Runs not ended yet (held, queued, running, waiting), oldest first, each with the steps
    active now. Two queries."""
    require_permission(actor, VIEW_RUN)
    runs = list(Run.objects.exclude(status__in=RUN_TERMINAL).select_related("flow", "version")
                .only("id", "status", "created_at", "started_at", "is_rehearsal", "flow__id",
                      "flow__slug", "flow__name", "version__number")
                .order_by("id")[:limit])
    steps: dict[int, list[dict]] = {run.pk: [] for run in runs}
    for row in (StepRun.objects.filter(run_id__in=list(steps), status__in=ACTIVE_STEP_STATUSES)
                .order_by("run_id", "position").values("run_id", "key", "status")):
        steps[row["run_id"]].append({"key": row["key"], "status": row["status"]})
    return [{"run": run, "steps": steps[run.pk]} for run in runs]


def flows_health(*, actor: Any, window: int = SUCCESS_WINDOW,
                 limit: int = FLOWS_LIMIT) -> list[dict]:
    """Each flow (by slug) with its live release and the outcome of its last `window` ended
    runs: completed, failed, canceled, and the success rate completed / (completed + failed)
    (None before any run ended that way; a canceled run is neither). Two queries: the last
    `window` ended runs per flow are picked by a window function in the database."""
    require_permission(actor, VIEW_RUN)
    flows = list(Flow.objects.select_related("live_version")
                 .only("id", "slug", "name", "live_version__number").order_by("slug")[:limit])
    counts: dict[int, dict[str, int]] = {
        flow.pk: {RunStatus.COMPLETED: 0, RunStatus.FAILED: 0, RunStatus.CANCELED: 0}
        for flow in flows}
    recent = (Run.objects.filter(flow_id__in=list(counts), status__in=RUN_TERMINAL)
              .annotate(rank=Window(RowNumber(), partition_by=[F("flow_id")],
                                    order_by=F("id").desc()))
              .filter(rank__lte=window).values_list("flow_id", "status"))
    for flow_id, status in recent:
        counts[flow_id][status] += 1
    rows = []
    for flow in flows:
        done = counts[flow.pk]
        decided = done[RunStatus.COMPLETED] + done[RunStatus.FAILED]
        rows.append({
            "flow": flow, "live": flow.live_version.number if flow.live_version_id else None,
            "completed": done[RunStatus.COMPLETED], "failed": done[RunStatus.FAILED],
            "canceled": done[RunStatus.CANCELED],
            "ended": sum(done.values()),
            "success_rate": round(100 * done[RunStatus.COMPLETED] / decided) if decided
            else None,
        })
    return rows
