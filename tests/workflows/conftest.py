"""Fixtures for engine tests: flows built from definitions and an in-process drain.

Unit tests run steps in this process (`drain`), through the same claim/execute/finish code the
workers use; the e2e tests in tests/e2e run a real qcluster instead.
"""

from __future__ import annotations

import pytest
from django.db.models import Q
from django.utils import timezone

from workflows.engine import executor, sweeper
from workflows.models import Run, StepRun
from workflows.services.flows import flow_create, flow_promote, flow_release
from workflows.states import StepStatus


def make_flow(definition: dict, *, promote: bool = True):
    flow = flow_create(definition=definition)
    if promote:
        version = flow_release(flow=flow)
        flow_promote(flow=flow, number=version.number)
        flow.refresh_from_db()
    return flow


def drain(max_rounds: int = 200) -> None:
    """Run every queued step that is due, and complete due timers, until nothing is left."""
    for _ in range(max_rounds):
        now = timezone.now()
        due = list(
            StepRun.objects.filter(status=StepStatus.QUEUED)
            .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            .order_by("id").values_list("id", flat=True)
        )
        timers = list(StepRun.objects.filter(status=StepStatus.WAITING, not_before__lte=now)
                      .values_list("id", flat=True))
        if not due and not timers:
            return
        for step_id in due:
            executor.advance(step_id)
        for step_id in timers:
            sweeper.step_wake(step_id)
    raise AssertionError("drain did not settle")


def steps_of(run: Run) -> dict[str, StepRun]:
    return {s.key: s for s in StepRun.objects.filter(run=run)}


@pytest.fixture
def flow_factory(db):
    return make_flow


def simple_definition(slug: str = "simple", steps: list | None = None, **extra) -> dict:
    return {
        "slug": slug,
        "name": slug.title(),
        "steps": steps or [
            {"key": "first", "type": "python", "action": "core.echo", "args": {"n": 1}},
            {"key": "second", "type": "python", "action": "core.echo",
             "args": {"prev": "{{ steps.first.output.n }}"}},
        ],
        **extra,
    }
