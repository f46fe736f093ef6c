"""The periodic pass: the engine's repairs, the schedules that are due, then the
notifications whose next try is due.

The sweeper (`workflows.engine.sweeper`) repairs runs; firing a schedule starts a run, which is
a service (`run_start`), so the pass that does both lives here, above the engine. The
django-q2 schedule (`workflows.tasks.sweep`) and `manage.py sweep` call it.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from workflows.engine import sweeper
from workflows.services.notifications import notifications_send_due
from workflows.services.schedules import schedules_fire_due


def sweep_all(now: datetime | None = None) -> dict[str, int]:
    """One repair pass of the engine, then start the runs of the due schedules, then retry
    the due notifications. Returns how many of each repair it made, `schedules_fired` and
    `notifications_sent`."""
    now = now or timezone.now()
    counts = sweeper.sweep(now)
    counts["schedules_fired"] = schedules_fire_due(now=now)
    counts["notifications_sent"] = notifications_send_due(now=now)
    return counts
