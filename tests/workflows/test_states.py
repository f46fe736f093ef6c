"""Every entry of the transition tables, allowed and refused, through the one transition
function: a conditional UPDATE plus an Event in the same transaction."""

import pytest

from tests.factories import make_flow, simple_definition
from workflows.engine.transitions import run_transition, step_transition
from workflows.errors import TransitionNotAllowed
from workflows.models import Event, Run, StepRun
from workflows.services.runs import run_start
from workflows.states import (
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    STEP_REDO_TRANSITIONS,
    STEP_TERMINAL,
    STEP_TRANSITIONS,
    RunStatus,
    StepStatus,
)

pytestmark = pytest.mark.django_db

RUN_PAIRS = [(a, b) for a in RunStatus.values for b in RunStatus.values if a != b]
STEP_PAIRS = [(a, b) for a in StepStatus.values for b in StepStatus.values if a != b]


@pytest.fixture
def run():
    flow = make_flow(simple_definition())
    run, _ = run_start(flow=flow, input={})
    return run


def _force_run(run: Run, status: str) -> Run:
    Run.objects.filter(pk=run.pk).update(status=status)
    run.refresh_from_db()
    return run


def _force_step(step: StepRun, status: str) -> StepRun:
    StepRun.objects.filter(pk=step.pk).update(status=status)
    step.refresh_from_db()
    return step


@pytest.mark.parametrize(("from_status", "to_status"), RUN_PAIRS)
def test_run_transition_follows_the_table(run, from_status, to_status):
    _force_run(run, from_status)
    events_before = Event.objects.count()
    if to_status in RUN_TRANSITIONS[from_status]:
        assert run_transition(run, to_status, reason="test")
        run.refresh_from_db()
        assert run.status == to_status
        event = Event.objects.latest("id")
        assert (event.from_status, event.to_status) == (from_status, to_status)
        assert Event.objects.count() == events_before + 1
        if to_status in RUN_TERMINAL:
            assert run.finished_at is not None
    else:
        with pytest.raises(TransitionNotAllowed):
            run_transition(run, to_status)
        run.refresh_from_db()
        assert run.status == from_status
        assert Event.objects.count() == events_before


@pytest.mark.parametrize(("from_status", "to_status"), STEP_PAIRS)
def test_step_transition_follows_the_table(run, from_status, to_status):
    step = _force_step(StepRun.objects.filter(run=run).order_by("position").last(), from_status)
    events_before = Event.objects.count()
    if to_status in STEP_TRANSITIONS[from_status]:
        assert step_transition(step, to_status)
        step.refresh_from_db()
        assert step.status == to_status
        assert Event.objects.count() == events_before + 1
        assert Event.objects.latest("id").step_run_id == step.pk
    else:
        with pytest.raises(TransitionNotAllowed):
            step_transition(step, to_status)
        step.refresh_from_db()
        assert step.status == from_status
        assert Event.objects.count() == events_before


@pytest.mark.parametrize("status", sorted(STEP_TERMINAL))
def test_terminal_steps_never_change_outside_redo(run, status):
    step = _force_step(StepRun.objects.filter(run=run).first(), status)
    for to in StepStatus.values:
        if to != status:
            with pytest.raises(TransitionNotAllowed):
                step_transition(step, to)


@pytest.mark.parametrize(
    ("from_status", "to_status"),
    [(a, b) for a, targets in STEP_REDO_TRANSITIONS.items() for b in targets],
)
def test_redo_moves_are_allowed_only_when_asked_for(run, from_status, to_status):
    step = _force_step(StepRun.objects.filter(run=run).last(), from_status)
    if to_status not in STEP_TRANSITIONS[from_status]:
        with pytest.raises(TransitionNotAllowed):
            step_transition(step, to_status)
    assert step_transition(step, to_status, redo=True, kind="step_redo")
    assert Event.objects.latest("id").kind == "step_redo"


def test_a_lost_race_applies_nothing_and_writes_no_event(run):
    step = StepRun.objects.filter(run=run, status=StepStatus.QUEUED).first()
    stale = StepRun.objects.get(pk=step.pk)
    assert step_transition(step, StepStatus.RUNNING)
    events_before = Event.objects.count()
    # `stale` still believes the step is queued: its claim must not apply.
    assert step_transition(stale, StepStatus.RUNNING) is False
    assert Event.objects.count() == events_before


def test_expected_attempt_guards_a_late_outcome(run):
    step = StepRun.objects.filter(run=run, status=StepStatus.QUEUED).first()
    step_transition(step, StepStatus.RUNNING, fields={"attempt_count": 2})
    assert step_transition(step, StepStatus.COMPLETED, expected_attempt=1) is False
    assert step_transition(step, StepStatus.COMPLETED, expected_attempt=2) is True
