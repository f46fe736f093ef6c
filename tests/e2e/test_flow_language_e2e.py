"""The flow language through a real qcluster: a subflow whose child's end resolves its parent
(the on-commit path, no sweep), a cancel that reaches the child, the same for a for_each flow
step's children, polling with until: and an optional step."""

import pytest

from tests.e2e.conftest import wait_for, wait_for_run
from tests.factories import make_flow, simple_definition, steps_of
from workflows.models import Attempt, Run
from workflows.services.runs import run_cancel, run_start

pytestmark = [pytest.mark.e2e]


def test_a_subflow_completes_and_resolves_its_parent(qcluster):
    qcluster()
    make_flow(simple_definition(slug="child", input={"n": {"type": "integer", "default": 0}},
                                steps=[{"key": "double", "type": "python", "action": "core.echo",
                                        "args": {"n": "{{ input.n }}", "twice": True}}]))
    parent = make_flow(simple_definition(slug="parent", steps=[
        {"key": "call", "type": "flow", "flow": "child", "input": {"n": 21}},
        {"key": "after", "type": "python", "action": "core.echo",
         "args": {"got": "{{ steps.call.output.n }}"},
         "when": "steps.call.output.twice == true"}]))
    run, _ = run_start(flow=parent, input={})
    wait_for_run(run)
    assert run.status == "completed", run.error
    child = Run.objects.get(parent_step=steps_of(run)["call"])
    assert child.status == "completed"
    assert steps_of(run)["call"].output == {"n": 21, "twice": True}
    assert steps_of(run)["after"].output == {"got": 21}


def test_canceling_the_parent_cancels_the_running_child(qcluster):
    qcluster()
    make_flow(simple_definition(slug="slow-child", steps=[
        {"key": "nap", "type": "python", "action": "core.sleep", "args": {"seconds": 60}}]))
    parent = make_flow(simple_definition(slug="parent", steps=[
        {"key": "call", "type": "flow", "flow": "slow-child"}]))
    run, _ = run_start(flow=parent, input={})
    wait_for(lambda: Attempt.objects.filter(step_run__run__flow__slug="slow-child").exists(),
             what="the child's step to start")
    run_cancel(run=Run.objects.get(pk=run.pk), reason="test")
    child = Run.objects.get(flow__slug="slow-child")
    wait_for_run(child, timeout=30)
    assert child.status == "canceled"
    wait_for(lambda: Attempt.objects.get(step_run__run=child).status == "canceled", timeout=15,
             what="the child's handler to notice the cancel")


def test_until_polls_and_an_optional_failure_lets_the_run_complete(qcluster):
    qcluster()
    flow = make_flow(simple_definition(steps=[
        {"key": "poll", "type": "python", "action": "core.poll", "args": {"ready_after": 3},
         "until": {"condition": "output.ready", "every_seconds": 0.2, "max_times": 5}},
        {"key": "chat", "type": "python", "action": "core.fail", "continue_on_error": True},
        {"key": "report", "type": "python", "action": "core.echo",
         "args": {"chat": "failed"}, "when": 'steps.chat.status == "failed"'}]))
    run, _ = run_start(flow=flow, input={})
    wait_for_run(run)
    assert run.status == "completed"
    steps = steps_of(run)
    assert steps["poll"].attempt_count == 3 and steps["poll"].output["ready"] is True
    assert steps["chat"].status == "failed"
    assert steps["report"].status == "completed"


def test_a_fanned_subflow_runs_one_child_per_item_each_resolving_its_instance(qcluster):
    """Each child's on-commit end resolves its instance, the window moves, the last instance
    settles the step."""
    qcluster()
    make_flow(simple_definition(
        slug="child",
        input={"n": {"type": "integer", "default": 0}, "at": {"type": "integer", "default": 0}},
        steps=[{"key": "double", "type": "python", "action": "core.echo",
                "args": {"n": "{{ input.n }}", "at": "{{ input.at }}"}}]))
    parent = make_flow(simple_definition(
        slug="parent", input={"ns": {"type": "array", "default": []}},
        steps=[{"key": "each", "type": "flow", "flow": "child", "for_each": "{{ input.ns }}",
                "max_parallel": 2, "input": {"n": "{{ item }}", "at": "{{ item_index }}"}}]))
    ns = [5, 4, 3, 2, 1, 0]
    run, _ = run_start(flow=parent, input={"ns": ns})
    wait_for_run(run)
    assert run.status == "completed", run.error
    each = steps_of(run)["each"]
    assert each.output == [{"n": n, "at": i} for i, n in enumerate(ns)]
    children = Run.objects.filter(parent_step=each)
    assert children.count() == len(ns)
    assert {c.status for c in children} == {"completed"}


def test_canceling_the_parent_cancels_every_fanned_child(qcluster):
    qcluster()
    make_flow(simple_definition(slug="slow-child", steps=[
        {"key": "nap", "type": "python", "action": "core.sleep", "args": {"seconds": 60}}]))
    parent = make_flow(simple_definition(
        slug="parent", input={"ns": {"type": "array", "default": []}},
        steps=[{"key": "each", "type": "flow", "flow": "slow-child",
                "for_each": "{{ input.ns }}", "max_parallel": 2}]))
    run, _ = run_start(flow=parent, input={"ns": [1, 2, 3]})
    wait_for(lambda: Attempt.objects.filter(step_run__run__flow__slug="slow-child").count() == 2,
             what="two children's steps to start")
    run_cancel(run=Run.objects.get(pk=run.pk), reason="test")
    for child in Run.objects.filter(flow__slug="slow-child"):
        wait_for_run(child, timeout=30)
        assert child.status == "canceled"
    assert Run.objects.filter(flow__slug="slow-child").count() == 2  # the third never started
