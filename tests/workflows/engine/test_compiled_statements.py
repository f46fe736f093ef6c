"""workflows.engine.statements: the engine's hot statements, compiled once, must store and read
values exactly as the ORM does, on SQLite and on PostgreSQL (prepared there)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import echo, make_flow, simple_definition
from workflows.engine import locking, statements
from workflows.engine.transitions import event_record, events_batched, row_insert
from workflows.models import Attempt, Event, Run, StepRun
from workflows.prepared_queries import PreparedQuery
from workflows.services.runs import run_start
from workflows.states import StepStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run():
    flow = make_flow(simple_definition(
        slug="compiled", steps=[echo("a"), echo("b", needs=["a"]), echo("c", needs=["a"])],
        input={"n": {"type": "integer"}}))
    started, _ = run_start(flow=flow, input={"n": 1})
    return started


def test_an_update_stores_json_none_and_times_as_the_orm_does(run):
    step = StepRun.objects.get(run=run, key="a")
    when = timezone.now() - timedelta(minutes=5)
    output = {"text": "naïve ☃", "nested": [1, 2.5, None, {"deep": True}]}
    cursor = statements.update(StepRun, {"pk": step.pk, "status": step.status},
                               {"output": output, "error": None, "finished_at": when,
                                "lease_until": None})
    assert cursor.rowcount == 1
    cursor.close()
    step.refresh_from_db()
    assert step.output == output
    assert step.error is None
    assert step.finished_at == when


def test_if_null_fills_a_null_column_and_keeps_one_already_set(run):
    step = StepRun.objects.get(run=run, key="b")  # not started yet: started_at is NULL
    first = timezone.now() - timedelta(minutes=3)
    for when in (first, timezone.now()):
        statements.update(StepRun, {"pk": step.pk},
                          {"started_at": statements.IfNull(when), "worker": "w"}).close()
    step.refresh_from_db()
    assert (step.started_at, step.worker) == (first, "w")


def test_an_update_tests_every_condition_and_a_list_is_in(run):
    steps = list(StepRun.objects.filter(run=run).order_by("position"))
    not_started = [s.pk for s in steps if s.status == StepStatus.NOT_STARTED]
    cursor = statements.update(StepRun, {"pk": [s.pk for s in steps],
                                         "status": StepStatus.NOT_STARTED},
                               {"worker": "moved"})
    assert cursor.rowcount == len(not_started) == 2
    cursor.close()
    assert set(StepRun.objects.filter(worker="moved").values_list("pk", flat=True)) == set(
        not_started)
    cursor = statements.update(StepRun, {"pk": steps[0].pk, "status": StepStatus.NOT_STARTED},
                               {"worker": "never"})
    assert cursor.rowcount == 0  # the first step is queued, not not_started
    cursor.close()


def test_an_insert_returns_the_new_primary_key_and_stores_every_field(run):
    step = StepRun.objects.get(run=run, key="a")
    now = timezone.now()
    attempt = Attempt(step_run=step, number=1, status="running", worker="w",
                      input={"x": [1, "two"]}, started_at=now)
    with transaction.atomic():
        row_insert(attempt)
    assert attempt.pk is not None and not attempt._state.adding
    stored = Attempt.objects.get(pk=attempt.pk)
    assert (stored.step_run_id, stored.number, stored.input, stored.started_at,
            stored.output, stored.exit_code) == (step.pk, 1, {"x": [1, "two"]}, now, None, None)


def test_events_beyond_one_statements_parameter_limit_are_all_written(run):
    before = Event.objects.filter(run=run).count()
    with transaction.atomic(), events_batched():
        for i in range(1500):  # 15,000 parameters: more than SQLite takes in one statement
            event_record(run_id=run.pk, kind="test.bulk", reason=f"event {i}",
                         data={"i": i, "text": "\u00e9"})
    events = Event.objects.filter(run=run, kind="test.bulk").order_by("id")
    assert Event.objects.filter(run=run).count() == before + 1500
    assert [e.data["i"] for e in events] == list(range(1500))
    assert events[0].data["text"] == "\u00e9"


def test_the_state_read_builds_instances_like_the_orm_with_deferred_fields(run):
    with transaction.atomic():
        locked, steps = locking.lock_run_and_load_steps(run.pk)
    assert isinstance(locked, Run) and locked.pk == run.pk
    assert locked.input == {"n": 1}
    assert locked.created_at == Run.objects.get(pk=run.pk).created_at  # an aware datetime
    assert not locked._state.adding and locked._state.db == "default"
    assert list(steps) == ["a", "b", "c"]
    step = steps["a"]
    assert "output" in step.get_deferred_fields()
    assert step.output is None  # loaded on access, as for .only()
    assert step.status == StepStatus.QUEUED


def test_locking_a_run_outside_a_transaction_is_refused(run):
    from django.db.transaction import TransactionManagementError

    with pytest.raises(TransactionManagementError):
        locking.lock_run(run.pk)


def test_a_missing_run_raises_does_not_exist():
    with transaction.atomic(), pytest.raises(Run.DoesNotExist):
        locking.lock_run_and_load_steps(987654321)


def test_the_statements_are_logged_like_any_other(run):
    step = StepRun.objects.get(run=run, key="b")
    with CaptureQueriesContext(connection) as queries:
        statements.update(StepRun, {"pk": step.pk}, {"worker": "seen"}).close()
    assert len(queries) == 1
    assert queries[0]["sql"].startswith('UPDATE "workflows_steprun" SET "worker"')


def test_on_postgresql_the_hot_statements_are_prepared(run, settings):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    settings.WF_PREPARE_STATEMENTS = True
    step = StepRun.objects.get(run=run, key="b")
    statements.update(StepRun, {"pk": step.pk, "status": step.status},
                      {"worker": "prepared"}).close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert any(text.startswith('UPDATE "workflows_steprun" SET "worker" = $1') for text in prepared), prepared


def test_with_prepare_statements_off_nothing_is_prepared(run, settings):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    connection.close()  # a fresh session: nothing prepared yet
    settings.WF_PREPARE_STATEMENTS = False
    step = StepRun.objects.get(run=run, key="c")
    statements.update(StepRun, {"pk": step.pk}, {"worker": "plain"}).close()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements")
        assert cursor.fetchone()[0] == 0
    assert StepRun.objects.get(pk=step.pk).worker == "plain"


def test_a_values_query_returns_tuples_converted_like_the_orms(run):
    step = StepRun.objects.get(run=run, key="a")
    when = timezone.now()
    StepRun.objects.filter(pk=step.pk).update(not_before=when)
    query = PreparedQuery(StepRun, lambda pk: StepRun.objects.filter(pk=pk)
                          .values_list("status", "not_before", "run__flow__slug"), sentinel=-1)
    assert query.rows(step.pk) == [(StepStatus.QUEUED, when, "compiled")]
    assert query.rows(step.pk + 1000) == []  # compiled once, run again with another id


def test_a_model_query_sent_and_read_apart_builds_instances(run):
    query = PreparedQuery(StepRun, lambda run_id: StepRun.objects.filter(run_id=run_id)
                          .order_by("position").only("id", "key", "status"), sentinel=-1)
    sent = query.send(run.pk)
    steps = query.read(sent)
    assert [(type(s), s.key, s.status) for s in steps] == [
        (StepRun, "a", StepStatus.QUEUED), (StepRun, "b", StepStatus.NOT_STARTED),
        (StepRun, "c", StepStatus.NOT_STARTED)]
    assert steps[0].run_id == run.pk  # deferred: loaded on access


@pytest.mark.parametrize("values", [
    {"output": {"text": "nul\x00byte"}},  # jsonb refuses \u0000
    {"worker": "nul\x00byte"},  # text refuses NUL
    {"output": {"x": float("inf")}},  # jsonb refuses Infinity
    {"output": {"x": float("nan")}},
])
def test_a_value_postgresql_refuses_raises_djangos_data_error_and_writes_nothing(run, values):
    """What finish_guarded catches to record OutputNotStorable (the portable path; the
    pipelined one is in test_statements.py)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite stores these values")
    step = StepRun.objects.get(run=run, key="a")
    with pytest.raises(DataError), transaction.atomic():
        statements.update(StepRun, {"pk": step.pk}, {"status": "running", **values}).close()
    assert StepRun.objects.get(pk=step.pk).status == StepStatus.QUEUED
