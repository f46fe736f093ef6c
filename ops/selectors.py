"""Read-only queries behind /readyz and /metrics. Everything is computed from the database (and
the broker) at the moment of asking, so every web process gives the same answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, FloatField, Min, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from ops.models import InboundRefusal, TraceDrop
from workflows.models import Attempt, Event, Run, StepRun
from workflows.states import EventKind, StepStatus

SWEEPER_SCHEDULE = "workflows-sweeper"
# Event kinds only the sweeper writes, each a repair of what a crash left behind.
SWEEPER_REPAIR_KINDS = ("lease_expired", "step_requeued")
# The Event kind of a failed try to notify (workflows/services/notifications.py). See
# docs/operations.md "Metrics".
NOTIFICATION_FAILED_KIND = "notification_failed"
# Step duration buckets, seconds.
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)


@dataclass
class Check:
    name: str
    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


# --- readiness -----------------------------------------------------------------------------------

def check_database() -> Check:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return Check("database", False, {"error": _describe(exc)})
    return Check("database", True, {"vendor": connections[DEFAULT_DB_ALIAS].vendor})


def check_broker() -> Check:
    """The Redis broker answers PING; the ORM broker is the database (checked on its own)."""
    url = settings.REDIS_URL
    if not url:
        return Check("broker", True, {"kind": "orm"})
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return Check("broker", False, {"kind": "redis", "error": _describe(exc)})
    return Check("broker", True, {"kind": "redis"})


def check_migrations() -> Check:
    try:
        connection = connections[DEFAULT_DB_ALIAS]
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return Check("migrations", False, {"error": _describe(exc)})
    pending = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
    return Check("migrations", not pending, {"pending": pending})


def check_sweeper(*, now: datetime | None = None) -> Check:
    """The sweeper's django-q2 schedule is not overdue by more than
    WF_READY_SWEEPER_GRACE_SECONDS: some qcluster is taking the schedules. A cluster advances
    `next_run` each time it hands the pass to a worker, so an old `next_run` means none runs."""
    grace = settings.WF_READY_SWEEPER_GRACE_SECONDS
    if grace <= 0:
        return Check("sweeper", True, {"checked": False})
    from django_q.models import Schedule, Task

    now = now or timezone.now()
    try:
        schedule = Schedule.objects.filter(name=SWEEPER_SCHEDULE).first()
        if schedule is None:
            return Check("sweeper", False, {"error": f"no schedule named {SWEEPER_SCHEDULE}"})
        last = None
        if schedule.task:
            last = Task.objects.filter(id=schedule.task).values_list("stopped", flat=True).first()
    except Exception as exc:
        return Check("sweeper", False, {"error": _describe(exc)})
    overdue = max(0.0, (now - schedule.next_run).total_seconds()) if schedule.next_run else None
    detail = {
        "next_run": schedule.next_run.isoformat() if schedule.next_run else None,
        "last_run": last.isoformat() if last else None,
        "overdue_seconds": round(overdue, 1) if overdue is not None else None,
    }
    ok = overdue is not None and overdue <= grace
    if not ok:
        detail["error"] = (f"the sweeper is overdue by more than {grace} s: no qcluster is "
                           "running schedules")
    return Check("sweeper", ok, detail)


def readiness(*, now: datetime | None = None) -> list[Check]:
    """Every readiness check. The later checks need the database; when it is down they say so
    instead of piling up the same error."""
    database = check_database()
    checks = [database, check_broker()]
    if database.ok:
        checks += [check_migrations(), check_sweeper(now=now)]
    else:
        checks += [Check(name, False, {"error": "the database is unreachable"})
                   for name in ("migrations", "sweeper")]
    return checks


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


# --- metrics -------------------------------------------------------------------------------------

def runs_by_flow_and_status() -> list[tuple[str, str, int]]:

    rows = Run.objects.order_by().values("flow__slug", "status").annotate(n=Count("id"))
    return [(row["flow__slug"], row["status"], row["n"]) for row in rows]


def step_duration_histograms() -> list[dict[str, Any]]:
    """Finished attempts' durations by flow and step type: cumulative bucket counts (le, count),
    the total count and the sum in seconds. One grouped query."""

    buckets = {f"le_{i}": Count("id", filter=Q(duration_ms__lte=int(bound * 1000)))
               for i, bound in enumerate(DURATION_BUCKETS)}
    rows = (
        Attempt.objects.order_by().filter(duration_ms__isnull=False)
        .values("step_run__run__flow__slug", "step_run__type")
        .annotate(total=Count("id"), sum_ms=Sum("duration_ms"), **buckets)
    )
    return [
        {
            "flow": row["step_run__run__flow__slug"],
            "step_type": row["step_run__type"],
            "buckets": [(bound, row[f"le_{i}"]) for i, bound in enumerate(DURATION_BUCKETS)],
            "count": row["total"],
            "sum_seconds": (row["sum_ms"] or 0) / 1000,
        }
        for row in rows
    ]


def queue_depth(*, now: datetime | None = None) -> tuple[int, float]:
    """(queued step runs that are due, age in seconds of the one that has waited longest).
    A step is waiting since it became due (`not_before`) or was handed to the broker."""

    now = now or timezone.now()
    due = StepRun.objects.order_by().filter(status=StepStatus.QUEUED).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now))
    agg = due.aggregate(n=Count("id"),
                        oldest=Min(Coalesce("not_before", "enqueued_at", "updated_at")))
    oldest = agg["oldest"]
    age = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
    return agg["n"], age


def sweeper_repairs() -> dict[str, int]:

    counts = dict.fromkeys(SWEEPER_REPAIR_KINDS, 0)
    rows = (Event.objects.order_by().filter(kind__in=SWEEPER_REPAIR_KINDS)
            .values("kind").annotate(n=Count("id")))
    counts.update({row["kind"]: row["n"] for row in rows})
    return counts


def inbound_refusals() -> list[tuple[str, str, int]]:
    return list(InboundRefusal.objects.order_by("endpoint", "code")
                .values_list("endpoint", "code", "count"))


def trace_drops() -> list[tuple[str, int]]:
    return list(TraceDrop.objects.order_by("reason").values_list("reason", "count"))


def notification_failures() -> int:

    return Event.objects.filter(kind=NOTIFICATION_FAILED_KIND).count()


def agent_cost_by_flow() -> list[tuple[str, float]]:
    """Remote agents' reported cost (usage.cost_usd), summed per flow over the step runs that
    reported one. One aggregate query."""
    cost = Cast(KT("agent_report__usage__cost_usd"), FloatField())
    rows = (StepRun.objects.order_by().filter(agent_report__usage__has_key="cost_usd")
            .values("run__flow__slug").annotate(total=Sum(cost)))
    return [(row["run__flow__slug"], float(row["total"] or 0)) for row in rows]


def heartbeat_timeouts_by_flow() -> list[tuple[str, int]]:
    rows = (Event.objects.order_by().filter(kind=EventKind.HEARTBEAT_TIMED_OUT)
            .values("run__flow__slug").annotate(n=Count("id")))
    return [(row["run__flow__slug"], row["n"]) for row in rows]
