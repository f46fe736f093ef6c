"""`for_each` on a `flow` step: one child run per item, each instance resolved by its child
(engine/instance_pauses.py, engine/instance_resolve.py, services/subflows.py), in-process.

As in test_subflows.py, a test's transaction never commits, so the children's `on_commit`
resolution never fires here: the sweep's repair (`subflows_repair`) resolves the instances,
through the same `engine.instance_resolve`. tests/e2e sees the on_commit path."""

from __future__ import annotations

import pytest

from tests.factories import drain as drain_steps
from tests.factories import echo, make_flow, simple_definition, start, steps_of
from workflows.engine import sweeper
from workflows.models import Attempt, Event, FanOut, Run, StepInstance
from workflows.services.runs import run_cancel, run_retry
from workflows.services.subflows import subflows_repair
from workflows.steps import StepFailed
from workflows.steps.actions import action

pytestmark = pytest.mark.django_db


@action("test.fail_when")
def fail_when(ctx, fail="", **_):
    """Fails when `fail` is set: which children fail is chosen by their items."""
    if fail:
        raise StepFailed(f"item said fail ({fail!r})", error_type="ItemFailed")
    return {"ok": True}


def drain():
    for _ in range(50):
        drain_steps()
        if not subflows_repair():
            return
    raise AssertionError("subflows did not settle")


def _child(slug="build-one", steps=None):
    return make_flow(simple_definition(
        slug=slug, input={"repo": {"type": "string", "default": ""},
                          "at": {"type": "integer", "default": 0}},
        steps=steps or [echo("build", repo="{{ input.repo }}", at="{{ input.at }}")]))


def _fanned(items="{{ input.repos }}", flow="build-one", **extra):
    return {"key": "builds", "type": "flow", "flow": flow, "for_each": items,
            "input": {"repo": "{{ item }}", "at": "{{ item_index }}"}, **extra}


def _parent(*steps, slug="parent"):
    return simple_definition(slug=slug, input={"repos": {"type": "array", "default": []}},
                             steps=list(steps))


def _children(step):
    return list(Run.objects.filter(parent_step=step).order_by("pk"))


def test_one_child_per_item_and_the_output_lists_the_childrens_outputs_in_item_order():
    _child()
    run = start(_parent(_fanned(max_parallel=2), echo("after", got="{{ steps.builds.output }}")),
                input={"repos": ["a", "b", "c", "d", "e"]})
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    builds = steps_of(run)["builds"]
    expected = [{"repo": r, "at": i} for i, r in enumerate("abcde")]
    assert builds.status == "completed" and builds.output == expected
    assert steps_of(run)["after"].output == {"got": expected}
    children = _children(builds)
    assert len(children) == 5 and {c.status for c in children} == {"completed"}
    rows = list(StepInstance.objects.filter(step_run=builds).order_by("index"))
    by_child = {c.pk: c for c in children}
    for row in rows:
        child = by_child[row.child_run_id]
        assert child.input == {"repo": row.item, "at": row.index}
        assert child.trigger_payload == {"parent_run": run.pk, "parent_step": "builds",
                                         "parent_instance": row.index}
        assert row.output == child.output
    assert [e.kind for e in Event.objects.filter(instance=rows[3]).order_by("id")] == [
        "instance_queued", "instance_running", "instance_waiting", "subflow_started",
        "instance_completed"]
    attempt = Attempt.objects.get(instance=rows[3])
    assert attempt.status == "completed" and attempt.finished_at is not None
    assert FanOut.objects.get(step_run=builds).left == 0


def test_at_most_max_parallel_children_run_at_once_and_no_worker_is_held():
    _child(steps=[{"key": "hold", "type": "wait"}])
    run = start(_parent(_fanned(max_parallel=2)), input={"repos": ["a", "b", "c", "d"]})
    drain()
    builds = steps_of(run)["builds"]
    statuses = list(StepInstance.objects.filter(step_run=builds).order_by("index")
                    .values_list("status", "lease_until"))
    # Two instances wait on their children (no lease: no worker holds them); two not started.
    assert statuses == [("waiting", None), ("waiting", None), ("not_started", None),
                        ("not_started", None)]
    assert len(_children(builds)) == 2
    assert {c.status for c in _children(builds)} == {"waiting"}
    # The sweeper does not mistake waiting instances for a lost window.
    assert sweeper.sweep()["instances_requeued"] == 0
    assert len(_children(builds)) == 2
    # A child that ends frees its slot: the next item starts its child.
    first = _children(builds)[0]
    run_cancel(run=first)
    drain()
    assert len(_children(builds)) == 3
    assert StepInstance.objects.get(step_run=builds, index=0).status == "failed"
    assert StepInstance.objects.get(step_run=builds, index=2).status == "waiting"


def test_a_failing_child_fails_the_step_after_the_others_with_its_error_and_a_link():
    _child(steps=[{"key": "build", "type": "python", "action": "test.fail_when",
                   "args": {"fail": "{{ input.repo }}"}}])
    run = start(_parent(_fanned()), input={"repos": ["", "boom", ""]})
    drain()
    run.refresh_from_db()
    builds = steps_of(run)["builds"]
    assert run.status == "failed" and builds.status == "failed"
    rows = list(StepInstance.objects.filter(step_run=builds).order_by("index"))
    assert [r.status for r in rows] == ["completed", "failed", "completed"]
    failed_child = Run.objects.get(pk=rows[1].child_run_id)
    assert failed_child.status == "failed"
    assert rows[1].error["type"] == "SubflowFailed"
    assert rows[1].error["child_run"] == failed_child.pk
    assert builds.error["type"] == "InstancesFailed"
    assert builds.error["instance"] == 1 and builds.error["child_run"] == failed_child.pk
    assert "boom" in builds.error["message"]


def test_fail_fast_fails_the_step_at_the_first_failed_child_and_cancels_the_others():
    make_flow(simple_definition(
        slug="maybe", input={"repo": {"type": "string", "default": ""},
                             "at": {"type": "integer", "default": 0}},
        steps=[{"key": "gate", "type": "python", "action": "test.fail_when",
                "args": {"fail": "{{ input.repo }}"}},
               {"key": "hold", "type": "wait"}]))
    run = start(_parent(_fanned(flow="maybe", fail_fast=True,
                                max_parallel=2)),
                input={"repos": ["", "boom", "", ""]})
    drain()
    run.refresh_from_db()
    builds = steps_of(run)["builds"]
    assert builds.status == "failed" and run.status == "failed"
    rows = list(StepInstance.objects.filter(step_run=builds).order_by("index"))
    assert [r.status for r in rows] == ["canceled", "failed", "canceled", "canceled"]
    first = Run.objects.get(pk=rows[0].child_run_id)
    assert first.status == "canceled"  # its child was waiting: canceled with the step
    assert rows[2].child_run_id is None  # never started


def test_canceling_the_parent_cancels_every_child():
    _child(steps=[{"key": "hold", "type": "wait"}])
    run = start(_parent(_fanned(max_parallel=3)), input={"repos": ["a", "b", "c", "d"]})
    drain()
    builds = steps_of(run)["builds"]
    assert len(_children(builds)) == 3
    run_cancel(run=run)
    drain()
    assert {c.status for c in _children(builds)} == {"canceled"}
    assert steps_of(run)["builds"].status == "canceled"
    assert set(StepInstance.objects.filter(step_run=builds).values_list("status", flat=True)) == {
        "canceled"}
    assert len(_children(builds)) == 3  # nothing started after the cancel
    assert set(Attempt.objects.filter(step_run=builds).values_list("status", flat=True)) == {
        "canceled"}


def test_retrying_the_parent_reuses_the_completed_children_and_starts_the_failed_again():
    _child(steps=[{"key": "build", "type": "python", "action": "test.fail_when",
                   "args": {"fail": "{{ input.repo }}"}}])
    run = start(_parent(_fanned()), input={"repos": ["", "boom", ""]})
    drain()
    assert Run.objects.get(pk=run.pk).status == "failed"
    old = {r.index: r.child_run_id for r in StepInstance.objects.filter(
        step_run=steps_of(run)["builds"])}
    assert Run.objects.filter(trigger_kind="subflow").count() == 3
    retry = run_retry(run=run)
    drain()
    rows = {r.index: r for r in StepInstance.objects.filter(step_run=steps_of(retry)["builds"])}
    assert rows[0].reused and rows[2].reused and not rows[1].reused
    assert rows[0].child_run_id == old[0] and rows[2].child_run_id == old[2]
    assert rows[1].child_run_id not in (None, old[1])  # a new child for the failed item
    assert Run.objects.filter(trigger_kind="subflow").count() == 4


def test_an_unavailable_flow_fails_each_instance_and_the_step():
    flow = _child()
    run = start(_parent(_fanned()), input={"repos": ["a", "b"]})
    type(flow).objects.filter(pk=flow.pk).update(live_version=None)
    drain()
    run.refresh_from_db()
    builds = steps_of(run)["builds"]
    assert builds.status == "failed" and run.status == "failed"
    errors = list(StepInstance.objects.filter(step_run=builds).order_by("index")
                  .values_list("error__type", flat=True))
    assert errors == ["SubflowUnavailable", "SubflowUnavailable"]
    assert not Run.objects.filter(trigger_kind="subflow").exists()
    assert Attempt.objects.filter(step_run=builds, status="failed").count() == 2


def test_depth_is_capped_for_fanned_children(settings):
    settings.WF_SUBFLOW_MAX_DEPTH = 1
    make_flow(simple_definition(slug="leaf", steps=[echo("x", n=1)]))
    make_flow(simple_definition(slug="mid", input={"repos": {"type": "array", "default": [1]}},
                                steps=[{"key": "x", "type": "flow", "flow": "leaf",
                                        "for_each": "{{ input.repos }}"}]))
    run = start(simple_definition(slug="top", steps=[{"key": "x", "type": "flow", "flow": "mid"}]))
    drain()
    run.refresh_from_db()
    assert run.status == "failed"
    mid = Run.objects.get(flow__slug="mid")
    assert StepInstance.objects.get(step_run=steps_of(mid)["x"]).error["type"] == "SubflowTooDeep"
    assert not Run.objects.filter(flow__slug="leaf").exists()


def test_a_fanned_subflow_loop_is_refused_at_release():
    from workflows.errors import DefinitionInvalid
    from workflows.services.flows import flow_release, flow_update_draft

    a = make_flow(simple_definition(slug="a"))
    flow_update_draft(flow=a, definition=simple_definition(
        slug="a", input={"xs": {"type": "array", "default": []}},
        steps=[{"key": "each", "type": "flow", "flow": "a", "for_each": "{{ input.xs }}"}]))
    with pytest.raises(DefinitionInvalid) as caught:
        flow_release(flow=a)
    assert caught.value.problems == [{"path": "steps[0].flow",
                                      "message": "subflows form a loop: a -> a"}]
