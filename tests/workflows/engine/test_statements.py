"""How many statements the engine sends per step and per run start (query counts, not timings),
and the pipelined writes' fallback when a row changed under them. See docs/performance.md."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.factories import echo, kinds, make_flow, simple_definition
from workflows.engine import executor
from workflows.engine.transitions import (
    WritesRaced,
    pipelined_or_portable,
    step_transition,
    writes_pipelined,
)
from workflows.models import Attempt, Event, StepRun
from workflows.services.runs import run_start
from workflows.states import StepStatus

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = 12
# Per step of a sequential flow: BEGIN, lock the run, read the step states, complete the step,
# write its attempt, queue and claim the next step (one UPDATE), write the events (one INSERT),
# COMMIT. On PostgreSQL the lock and the read share one round trip, and the writes another.
STATEMENTS_PER_STEP = 8


def postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("pipeline mode is PostgreSQL's; SQLite runs the portable path")


def sequential_flow(steps: int):
    return make_flow(simple_definition(slug=f"seq{steps}", steps=[echo(f"s{i:02d}", i=i)
                                                          for i in range(steps)]))


def advance_counting(flow):
    """Run a flow in process from its first step; the statements sent and the run."""
    with mock.patch("workflows.engine.dispatch.enqueue"):
        run, _ = run_start(flow=flow, input={})
        first = StepRun.objects.get(run=run, key="s00")
        with CaptureQueriesContext(connection) as queries:
            executor.advance(first.pk)
    run.refresh_from_db()
    assert run.status == "completed"
    return run, queries


def test_a_sequential_step_costs_at_most_eight_statements():
    # The difference between two flow lengths leaves out the fixed costs (the first claim,
    # the run's completion): what each further step costs.
    _, short = advance_counting(sequential_flow(STEPS))
    run, long = advance_counting(sequential_flow(2 * STEPS))
    per_step = (len(long) - len(short)) / STEPS
    assert per_step <= STATEMENTS_PER_STEP, [q["sql"][:60] for q in long[-2 * 8:]]
    assert len(long) <= STATEMENTS_PER_STEP * 2 * STEPS + 12
    steps = 2 * STEPS
    assert Attempt.objects.filter(step_run__run=run, status="completed").count() == steps
    # Every step still leaves its three events; each was claimed exactly once.
    assert kinds(run).count("step_running") == steps
    assert Event.objects.filter(run=run).count() == 3 * steps + 4


def test_a_pipelined_write_that_lost_its_race_writes_nothing():
    postgresql_only()
    flow = sequential_flow(2)
    run, _ = run_start(flow=flow, input={})
    step = StepRun.objects.get(run=run, key="s00")  # queued
    stale = StepRun.objects.get(pk=step.pk)
    StepRun.objects.filter(pk=step.pk).update(status=StepStatus.CANCELED)  # changed under us
    events = Event.objects.count()
    with pytest.raises(WritesRaced), transaction.atomic(), writes_pipelined():
        assert step_transition(stale, StepStatus.RUNNING)  # optimistic until the checks
    assert Event.objects.count() == events
    assert StepRun.objects.get(pk=step.pk).status == StepStatus.CANCELED


def test_a_race_in_pipeline_mode_is_redone_on_the_portable_path():
    postgresql_only()
    flow = sequential_flow(2)
    run, _ = run_start(flow=flow, input={})
    step = StepRun.objects.get(run=run, key="s00")
    StepRun.objects.filter(pk=step.pk).update(status=StepStatus.CANCELED)
    tries = []

    def body():
        stale = StepRun(pk=step.pk, run_id=run.pk, key="s00", status=StepStatus.QUEUED)
        tries.append(1)
        return step_transition(stale, StepStatus.RUNNING)

    events = Event.objects.count()
    assert pipelined_or_portable(body) is False  # the portable path reports the lost race
    assert len(tries) == 2
    assert Event.objects.count() == events


def test_a_pipelined_write_the_database_refuses_raises_djangos_data_error():
    # The executor's last resort (finish_guarded) catches django.db.DataError: a refusal that
    # surfaces when the pipeline ends must be that type too, not psycopg's own.
    postgresql_only()
    flow = sequential_flow(2)
    run, _ = run_start(flow=flow, input={})
    step = StepRun.objects.get(run=run, key="s00")
    with pytest.raises(DataError), transaction.atomic(), writes_pipelined():
        assert step_transition(step, StepStatus.RUNNING,
                               fields={"output": {"text": "nul\x00byte"}})  # jsonb refuses \\u0000
    assert StepRun.objects.get(pk=step.pk).status == StepStatus.QUEUED


# --- starting a run --------------------------------------------------------------------------

def fan_out_flow(width: int):
    steps = [echo(f"root{i}", needs=[]) for i in range(width)] + [
        echo("join", needs=[f"root{i}" for i in range(width)]), echo("after")]
    return make_flow(simple_definition(slug=f"fan{width}", steps=steps))


@pytest.mark.parametrize("width", [1, 3, 20])
def test_run_start_costs_at_most_six_statements_whatever_the_flow_size(width):
    flow = fan_out_flow(width)
    run_start(flow=flow, input={})  # the released version is then cached in this process
    with mock.patch("workflows.engine.dispatch.enqueue"), \
            CaptureQueriesContext(connection) as queries:
        run, created = run_start(flow=flow, input={})
    # BEGIN, the run, its step runs (one INSERT), the ready steps (one UPDATE), the events
    # (one INSERT), COMMIT. No flow lock: the flow has no concurrency limit.
    assert len(queries) <= 6, [q["sql"][:70] for q in queries]
    assert not any("FOR UPDATE" in q["sql"] for q in queries)
    assert created and run.status == "queued"
    statuses = dict(StepRun.objects.filter(run=run).values_list("key", "status"))
    assert [k for k, v in statuses.items() if v == "queued"] == [f"root{i}" for i in range(width)]
    assert kinds(run) == ["run_created", "run_queued"] + ["step_queued"] * width
    queued = Event.objects.filter(run=run, kind="run_queued").get()
    assert (queued.from_status, queued.to_status) == ("created", "queued")
