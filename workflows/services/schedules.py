"""Schedule triggers: the live release's `{type: schedule, cron}` triggers fire from the
sweeper (every minute), each at most once per due time; missed times are not caught up."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter
from django.db import transaction
from django.utils import timezone

from workflows.models import Flow, ScheduleState, TriggerKind
from workflows.services.runs import run_start


def _next_fire(cron: str, tz: str | None, after: datetime) -> datetime:
    zone = ZoneInfo(tz) if tz else ZoneInfo("UTC")
    return croniter(cron, after.astimezone(zone)).get_next(datetime).astimezone(ZoneInfo("UTC"))


def schedules_sync(*, flow: Flow) -> None:
    """Make the schedule states match the live release's schedule triggers."""
    now = timezone.now()
    triggers = []
    if flow.live_version_id:
        triggers = [
            (i, t) for i, t in enumerate(flow.live_version.definition.get("triggers") or [])
            if t.get("type") == "schedule"
        ]
    with transaction.atomic():
        keep = []
        for index, trigger in triggers:
            state, created = ScheduleState.objects.get_or_create(
                flow=flow, trigger_index=index,
                defaults={"cron": trigger["cron"],
                          "next_fire_at": _next_fire(trigger["cron"], trigger.get("timezone"), now)},
            )
            if not created and state.cron != trigger["cron"]:
                state.cron = trigger["cron"]
                state.next_fire_at = _next_fire(trigger["cron"], trigger.get("timezone"), now)
                state.save(update_fields=["cron", "next_fire_at"])
            keep.append(state.pk)
        ScheduleState.objects.filter(flow=flow).exclude(pk__in=keep).delete()


def schedules_fire_due(*, now: datetime | None = None) -> int:
    """Start a run for every schedule whose time has come. Returns how many fired."""
    now = now or timezone.now()
    fired = 0
    for state in ScheduleState.objects.filter(next_fire_at__lte=now).select_related(
        "flow__live_version"
    ):
        flow = state.flow
        triggers = (flow.live_version.definition.get("triggers") or []) if flow.live_version else []
        trigger = triggers[state.trigger_index] if state.trigger_index < len(triggers) else None
        with transaction.atomic():
            claimed = ScheduleState.objects.filter(
                pk=state.pk, next_fire_at=state.next_fire_at
            ).update(
                last_fired_at=now,
                next_fire_at=_next_fire(state.cron, (trigger or {}).get("timezone"), now),
            )
        if not claimed or trigger is None:
            continue
        due = state.next_fire_at.isoformat().replace("+00:00", "Z")
        run_start(flow=flow, input=trigger.get("input") or {}, trigger_kind=TriggerKind.SCHEDULE,
                  trigger_payload={"cron": state.cron, "scheduled_for": due},
                  idempotency_key=f"schedule:{state.trigger_index}:{due}")
        fired += 1
    return fired
