"""Reading the instances of for_each steps, at any size: counts come from one GROUP BY over
the instance index (step_run, status, index), pages are keyset pages on `index`, so no page
loads every instance of a 10,000-item step (docs/performance.md)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Min, QuerySet

from workflows.models import Attempt, LogChunk, Run, StepInstance, StepRun
from workflows.states import StepStatus

INSTANCE_ENDED = (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.CANCELED)
# Worst first: the status a matrix cell shows for a step's instances.
# `waiting`: an instance of a for_each `flow` step waiting on its child run.
SEVERITY = (StepStatus.FAILED, StepStatus.CANCELED, StepStatus.RUNNING, StepStatus.WAITING,
            StepStatus.QUEUED,
            StepStatus.NOT_STARTED, StepStatus.COMPLETED)


def run_has_fan_out(run: Run) -> bool:
    """Whether the run's definition has a for_each step (none: no instance query at all)."""
    try:
        steps = run.definition.get("steps") or []
    except AttributeError:
        return False
    return any(isinstance(s, dict) and s.get("for_each") for s in steps)


def instance_counts(run_ids: list[int]) -> dict[int, dict[str, Any]]:
    """{step_run_id: {total, by_status}} of the for_each steps of these runs, in one query."""
    rows = (StepInstance.objects.filter(step_run__run_id__in=run_ids)
            .values("step_run_id", "status").annotate(n=Count("id")).order_by())
    out: dict[int, dict[str, Any]] = {}
    for row in rows:
        entry = out.setdefault(row["step_run_id"], {"total": 0, "by_status": {}})
        entry["total"] += row["n"]
        entry["by_status"][row["status"]] = row["n"]
    return out


def worst_status(by_status: dict[str, int]) -> str | None:
    return next((s for s in SEVERITY if by_status.get(s)), None)


def instance_summary(step_run: StepRun) -> dict[str, Any]:
    """Counts per status, the earliest start and the latest end: two aggregate queries."""
    counts = instance_counts_of(step_run)
    span = StepInstance.objects.filter(step_run=step_run).aggregate(
        first_started_at=Min("started_at"), last_finished_at=Max("finished_at"))
    done = sum(n for s, n in counts["by_status"].items() if s in INSTANCE_ENDED)
    return {**counts, **span, "done": done, "worst": worst_status(counts["by_status"])}


def instance_counts_of(step_run: StepRun) -> dict[str, Any]:
    return instance_counts([step_run.run_id]).get(step_run.pk, {"total": 0, "by_status": {}})


def instances_query(step_run: StepRun, *, status: str | None = None) -> QuerySet[StepInstance]:
    """The step's instances in item order, optionally of one status (the index serves both)."""
    rows = StepInstance.objects.filter(step_run=step_run)
    if status:
        rows = rows.filter(status=status)
    return rows.order_by("index")


def instance_get(step_run: StepRun, index: int) -> StepInstance | None:
    return StepInstance.objects.filter(step_run=step_run, index=index).first()


def instance_attempts(instance: StepInstance) -> list[Attempt]:
    return list(Attempt.objects.filter(instance=instance).order_by("number"))


def instance_logs(instance: StepInstance, *, limit: int = 200) -> list[LogChunk]:
    return list(LogChunk.objects.filter(instance=instance).order_by("seq")[:limit])
