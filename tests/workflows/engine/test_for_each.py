"""for_each: a step fanned out over a list, its instances as rows of their own (engine/fan_out.py,
engine/instances.py), driven in-process through the code the workers run."""

from datetime import timedelta

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from tests.factories import drain, echo, simple_definition, start, steps_of
from workflows.engine import executor, instances, sweeper
from workflows.models import Attempt, Event, FanOut, LogChunk, Run, StepInstance
from workflows.services.runs import run_cancel, run_retry
from workflows.steps import StepFailed
from workflows.steps.actions import action

pytestmark = pytest.mark.django_db


@action("test.fail_if")
def fail_if(ctx, fail=False, **_):
    """Fails when `fail` is true: which instances fail is chosen by their items."""
    if fail:
        raise StepFailed(f"item said fail ({fail!r})", error_type="ItemFailed")
    return {"ok": True}


def fan(items="{{ input.items }}", **extra):
    return {"key": "each", "type": "python", "action": "core.echo", "for_each": items,
            "args": {"value": "{{ item }}", "at": "{{ item_index }}"}, **extra}


def definition(*steps, **extra):
    return simple_definition(
        slug="fan", steps=list(steps),
        input={"items": {"type": "array", "default": [1, 2, 3]}}, **extra)


def test_each_item_runs_as_an_instance_and_the_output_lists_their_outputs_in_order():
    run = start(definition(fan(max_parallel=2), echo("after", got="{{ steps.each.output }}")),
                input={"items": ["a", "b", "c", "d", "e"]})
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    each = steps_of(run)["each"]
    assert each.status == "completed"
    expected = [{"value": v, "at": i} for i, v in enumerate("abcde")]
    assert each.output == expected
    assert steps_of(run)["after"].output == {"got": expected}
    rows = list(StepInstance.objects.filter(step_run=each).order_by("index"))
    assert [(r.index, r.item, r.status, r.attempt_count) for r in rows] == [
        (i, v, "completed", 1) for i, v in enumerate("abcde")]
    # Each instance has its own attempt, with its resolved input, and its own events.
    attempt = Attempt.objects.get(instance=rows[3])
    assert attempt.input["args"] == {"value": "d", "at": 3} and attempt.status == "completed"
    assert [e.kind for e in Event.objects.filter(instance=rows[3]).order_by("id")] == [
        "instance_queued", "instance_running", "instance_completed"]
    # The first two were queued at the start (max_parallel 2), the others as slots freed up.
    assert Event.objects.filter(instance=rows[0], kind="instance_queued").count() == 0
    assert FanOut.objects.get(step_run=each).left == 0
    # The step's own attempts and logs are not its instances'.
    assert not Attempt.objects.filter(step_run=each, instance=None).exists()


def test_a_failed_instance_fails_the_step_once_the_others_have_ended():
    step = fan("{{ input.items }}")
    step["action"] = "test.fail_if"
    step["args"] = {"fail": "{{ item }}"}
    run = start(definition(step), input={"items": [False, True, False, False]})
    drain()
    run.refresh_from_db()
    each = steps_of(run)["each"]
    assert run.status == "failed" and each.status == "failed"
    assert each.error["type"] == "InstancesFailed"
    assert "instance 1" in each.error["message"]
    statuses = list(StepInstance.objects.filter(step_run=each).order_by("index")
                    .values_list("status", flat=True))
    assert statuses == ["completed", "failed", "completed", "completed"]


def test_fail_fast_fails_the_step_at_the_first_failure_and_cancels_the_rest():
    step = fan("{{ input.items }}", max_parallel=1, fail_fast=True)
    step["action"] = "test.fail_if"
    step["args"] = {"fail": "{{ item }}"}
    run = start(definition(step), input={"items": [False, True, False, False]})
    drain()
    each = steps_of(run)["each"]
    assert each.status == "failed"
    statuses = list(StepInstance.objects.filter(step_run=each).order_by("index")
                    .values_list("status", flat=True))
    assert statuses == ["completed", "failed", "canceled", "canceled"]


def test_an_instance_is_retried_after_its_own_failure():
    step = fan("{{ input.items }}", retry={"max_attempts": 3})
    step["action"] = "core.flaky"
    step["args"] = {"fail_times": 1}
    run = start(definition(step), input={"items": ["x", "y"]})
    drain()
    each = steps_of(run)["each"]
    assert each.status == "completed"
    for row in StepInstance.objects.filter(step_run=each):
        assert list(Attempt.objects.filter(instance=row).order_by("number")
                    .values_list("status", flat=True)) == ["failed", "completed"]


@pytest.mark.parametrize(("items", "code", "words"), [
    ("{{ input.text }}", "for_each_not_a_list", "resolved to string"),
    ("{{ input.map }}", "for_each_not_a_list", "resolved to mapping"),
])
def test_a_value_that_is_not_a_list_fails_the_step_naming_its_type(items, code, words):
    run = start(simple_definition(slug="notlist", steps=[fan(items)], input={
        "text": {"type": "string", "default": "abc"},
        "map": {"type": "object", "default": {"a": 1}}}))
    drain()
    each = steps_of(run)["each"]
    assert each.status == "failed"
    assert each.error["type"] == code and words in each.error["message"]
    assert Run.objects.get(pk=run.pk).status == "failed"


@override_settings(WF_FOR_EACH_MAX_ITEMS=3)
def test_more_items_than_the_limit_fails_with_too_many_items():
    run = start(definition(fan()), input={"items": [1, 2, 3, 4]})
    drain()
    each = steps_of(run)["each"]
    assert each.error["type"] == "too_many_items"
    assert not StepInstance.objects.filter(step_run=each).exists()


def test_an_empty_list_completes_with_an_empty_output():
    run = start(definition(fan()), input={"items": []})
    drain()
    assert steps_of(run)["each"].output == []
    assert Run.objects.get(pk=run.pk).status == "completed"


def test_a_duplicate_task_never_runs_an_instance_twice():
    run = start(definition(fan()), input={"items": ["a"]})
    executor.advance(steps_of(run)["each"].pk)
    instance = StepInstance.objects.get(step_run__run=run)
    instances.advance_instance(instance.pk)
    instances.advance_instance(instance.pk)  # the same task delivered again
    assert Attempt.objects.filter(instance=instance).count() == 1
    assert Run.objects.get(pk=run.pk).status == "completed"


def test_cancel_stops_queued_and_running_instances():
    run = start(definition(fan(max_parallel=2)), input={"items": list(range(5))})
    executor.advance(steps_of(run)["each"].pk)
    first = StepInstance.objects.get(step_run__run=run, index=0)
    batch = instances._claim(first.pk)  # a worker is running it
    assert [c.instance.pk for c in batch] == [first.pk]
    run_cancel(run=Run.objects.get(pk=run.pk), reason="stop")
    statuses = set(StepInstance.objects.filter(step_run__run=run).values_list("status", flat=True))
    assert statuses == {"canceled"}
    # The running worker's late outcome is not applied; its attempt is closed as abandoned.
    instances._finish(batch, instances._execute(batch))
    assert StepInstance.objects.get(pk=first.pk).status == "canceled"
    assert Attempt.objects.get(instance=first).error["type"] == "AttemptAbandoned"


def test_the_sweeper_takes_back_an_instance_whose_worker_died():
    run = start(definition(fan()), input={"items": ["a", "b"]})
    executor.advance(steps_of(run)["each"].pk)
    first = StepInstance.objects.get(step_run__run=run, index=0)
    assert instances._claim(first.pk)  # ...and the worker dies here
    later = timezone.now() + timedelta(hours=1)
    counts = sweeper.sweep(now=later)
    assert counts["instance_leases"] == 1
    first.refresh_from_db()
    assert first.status == "queued"
    assert Attempt.objects.get(instance=first, number=1).error["type"] == "WorkerLost"
    drain()
    assert Run.objects.get(pk=run.pk).status == "completed"
    assert Attempt.objects.get(instance=first, number=2).status == "completed"


def test_the_sweeper_settles_a_step_whose_settler_died():
    run = start(definition(fan()), input={"items": ["a"]})
    executor.advance(steps_of(run)["each"].pk)
    only = StepInstance.objects.get(step_run__run=run)
    batch = instances._claim(only.pk)
    nxt, settle = instances._finish(batch, instances._execute(batch))
    assert nxt == [] and settle == only.step_run_id  # ...and the worker dies before settling
    assert steps_of(run)["each"].status == "running"
    assert sweeper.sweep()["fan_outs_settled"] == 1
    assert Run.objects.get(pk=run.pk).status == "completed"


def test_a_run_retry_reuses_the_completed_instances():
    step = fan("{{ input.items }}")
    step["action"] = "test.fail_if"
    step["args"] = {"fail": "{{ item }}"}
    run = start(definition(step), input={"items": [False, True, False]})
    drain()
    assert Run.objects.get(pk=run.pk).status == "failed"
    retry = run_retry(run=Run.objects.get(pk=run.pk))
    drain()
    rows = list(StepInstance.objects.filter(step_run__run=retry).order_by("index"))
    assert [r.reused for r in rows] == [True, False, True]
    assert Attempt.objects.filter(instance__in=[rows[0], rows[2]]).count() == 0
    assert rows[1].status == "failed"  # the same item fails again


def test_instance_logs_are_kept_per_instance():
    step = fan("{{ input.items }}")
    step["action"] = "core.sleep"
    step["args"] = {"seconds": "{{ item }}"}
    run = start(definition(step), input={"items": [0, 0.01]})
    drain()
    for row in StepInstance.objects.filter(step_run__run=run):
        texts = "".join(LogChunk.objects.filter(instance=row).values_list("text", flat=True))
        assert texts == f"sleeping {row.item:g}s\n"


@override_settings(WF_FOR_EACH_BATCH=3)
def test_a_task_claims_a_batch_of_its_queued_neighbours_and_runs_them_at_once():
    run = start(definition(fan(max_parallel=5)), input={"items": list(range(7))})
    executor.advance(steps_of(run)["each"].pk)
    first = StepInstance.objects.get(step_run__run=run, index=0)
    batch = instances._claim_first(first.pk)
    assert [c.instance.index for c in batch] == [0, 1, 2]
    assert instances._claim_first(first.pk) == []  # a duplicate task claims nothing
    nxt, settle = instances._finish(batch, instances._execute(batch))
    # Three ended: the window moves by three (indexes 5 and 6; the list has 7 items).
    assert sorted(StepInstance.objects.filter(pk__in=nxt).values_list("index", flat=True)) == [5, 6]
    # Fewer were left to queue than ended: the step may be over, so the worker asks once its
    # batch committed; it is not (four instances are still to end).
    assert settle == first.step_run_id
    assert instances.step_settle(settle) is False
    drain()
    assert Run.objects.get(pk=run.pk).status == "completed"


@override_settings(WF_FOR_EACH_BATCH=2)
def test_instances_a_worker_cannot_go_on_with_get_a_task_of_their_own(
        django_capture_on_commit_callbacks):
    run = start(definition(fan(max_parallel=4)), input={"items": list(range(4))})
    executor.advance(steps_of(run)["each"].pk)
    ids = list(StepInstance.objects.filter(step_run__run=run).order_by("index")
               .values_list("pk", flat=True))
    sent = []
    from workflows.engine import dispatch

    original = dispatch._send
    dispatch._send = lambda name, pk, task_name: sent.append(pk)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            batch = instances._claim_ids(ids)  # four to go on with, a batch of two
    finally:
        dispatch._send = original
    assert [c.instance.index for c in batch] == [0, 1]
    assert sent == ids[2:]


def test_the_sweeper_gives_a_fan_out_its_window_back_when_it_was_lost():
    run = start(definition(fan(max_parallel=2)), input={"items": list(range(4))})
    executor.advance(steps_of(run)["each"].pk)
    # The window is lost (as if a worker died between ending instances and queueing more).
    StepInstance.objects.filter(step_run__run=run, status="queued").update(status="not_started")
    assert sweeper.sweep()["instances_requeued"] == 2
    drain()
    assert Run.objects.get(pk=run.pk).status == "completed"


@override_settings(WF_FOR_EACH_BATCH=3)
def test_a_batch_costs_the_same_statements_whatever_its_size_and_moves_the_window_by_its_ends():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    run = start(definition(fan(max_parallel=4)), input={"items": list(range(12))})
    executor.advance(steps_of(run)["each"].pk)
    queued = list(StepInstance.objects.filter(step_run__run=run, status="queued")
                  .order_by("index").values_list("pk", flat=True))
    counts = []
    batch = instances._claim_ids(queued[:1])  # the first prepares the step's context (cached)
    first, _ = instances._finish(batch, instances._execute(batch))
    for ids in (first, queued[1:4]):  # a batch of one, then a batch of three
        with CaptureQueriesContext(connection) as captured:
            batch = instances._claim_ids(ids)
            nxt, settle = instances._finish(batch, instances._execute(batch))
        counts.append(len(captured))
        # The window moved by exactly as many as ended: no more (each batch's ends queue the
        # lowest not-started instances), so max_parallel holds.
        assert len(nxt) == len(ids) and settle is None
        assert StepInstance.objects.filter(step_run__run=run,
                                           status__in=("queued", "running")).count() == 4
    assert counts[0] == counts[1]
    drain()
    assert Run.objects.get(pk=run.pk).status == "completed"

