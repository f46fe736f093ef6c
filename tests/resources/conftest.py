"""A step run and an attempt to write values into, and to attach resources to."""

from __future__ import annotations

import pytest
from django.utils import timezone

# After the tests split on main these live in tests/factories.py: change this one import.
from tests.factories import drain, make_flow, simple_definition
from workflows.models import Attempt, StepRun
from workflows.services.runs import run_start
from workflows.states import AttemptStatus

__all__ = ["drain", "make_flow", "simple_definition"]


@pytest.fixture
def step_run(db) -> StepRun:
    flow = make_flow(simple_definition("payloads"))
    run, _ = run_start(flow=flow, input={})
    return StepRun.objects.get(run=run, key="first")


@pytest.fixture
def attempt(step_run) -> Attempt:
    return Attempt.objects.create(step_run=step_run, number=1, status=AttemptStatus.RUNNING,
                                  started_at=timezone.now())
