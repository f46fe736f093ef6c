"""The periodic pass: the engine's repairs, the schedules that are due, then the
notifications whose next try is due.

The engine's sweeper (`engine.sweep`) repairs runs; firing a schedule starts a run, which is
a service (`run_start`), and so does expiring promotion requests, so the pass lives here, above the engine. The
django-q2 schedule (`workflows.tasks.sweep`) and `manage.py sweep` call it.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from workflows import engine
from workflows.services.notifications import notifications_send_due
from workflows.services.promotions import promotion_requests_expire
from workflows.services.schedules import schedules_fire_due
from workflows.services.subflows import subflows_repair


def sweep_all(now: datetime | None = None) -> dict[str, int]:
    """One repair pass of the engine, then start the runs of the due schedules, expire the
    promotion requests past their timeout and retry the due notifications. Returns how many of
    each repair it made, `schedules_fired`, `promotion_requests_expired`,
    `notifications_sent` and `subflows_resolved` (parents whose child ended unnoticed)."""
    now = now or timezone.now()
    counts = engine.sweep(now)
    counts["schedules_fired"] = schedules_fire_due(now=now)
    counts["promotion_requests_expired"] = promotion_requests_expire(now=now)
    counts["notifications_sent"] = notifications_send_due(now=now)
    counts["subflows_resolved"] = subflows_repair()
    return counts
