"""`type: flow` subflows, in-process (tests.factories.drain runs the child's steps too)."""

from __future__ import annotations

import pytest

from tests.factories import drain as drain_steps
from tests.factories import echo, make_flow, simple_definition, start, steps_of
from workflows.errors import DefinitionInvalid
from workflows.models import Event, Run
from workflows.services.flows import flow_release, flow_update_draft
from workflows.services.maintenance import sweep_all
from workflows.services.runs import run_cancel, run_retry
from workflows.services.subflows import subflow_problems, subflows_repair

pytestmark = pytest.mark.django_db


def drain():
    """Run steps until nothing is left, resolving the parents of ended children on the way.
    In these tests a transaction never commits, so the `on_commit` resolution never fires:
    what resolves them is the sweep's repair (the e2e test in tests/e2e sees the on_commit
    path with a real qcluster)."""
    for _ in range(20):
        drain_steps()
        if not subflows_repair():
            return
    raise AssertionError("subflows did not settle")


def _child(slug="release-train", steps=None):
    return make_flow(simple_definition(
        slug=slug, input={"builds": {"type": "array", "default": []}},
        steps=steps or [echo("ship", status="shipped", count="{{ input.builds }}")]))


def _parent(slug="parent", flow="release-train", **extra):
    return simple_definition(slug=slug, steps=[
        echo("build", items=[1, 2]),
        {"key": "release", "type": "flow", "flow": flow,
         "input": {"builds": "{{ steps.build.output.items }}"}, **extra},
        {**echo("tell", status="{{ steps.release.output.status }}"),
         "when": 'steps.release.output.status == "shipped"'},
    ])


def test_a_subflow_runs_the_child_and_its_output_is_the_childs():
    _child()
    run = start(_parent())
    drain()
    run.refresh_from_db()
    release = steps_of(run)["release"]
    child = Run.objects.get(parent_step=release)
    assert child.status == "completed"
    assert child.trigger_kind == "subflow"
    assert child.input == {"builds": [1, 2]}
    assert release.status == "completed"
    assert release.output == child.output == {"status": "shipped", "count": [1, 2]}
    assert steps_of(run)["tell"].output == {"status": "shipped"}
    assert run.status == "completed"
    assert Event.objects.filter(run=run, kind="subflow_started", data__child_run=child.pk).exists()


def test_the_child_pins_the_live_release_when_the_step_starts():
    child_flow = _child()
    run = start(_parent())
    drain()
    pinned = Run.objects.get(parent_step=steps_of(run)["release"]).version
    assert pinned.pk == child_flow.live_version_id


def test_a_failing_child_fails_the_step_with_its_error_and_a_link():
    _child(steps=[{"key": "boom", "type": "python", "action": "core.fail",
                   "args": {"message": "train derailed"}}])
    run = start(_parent())
    drain()
    run.refresh_from_db()
    release = steps_of(run)["release"]
    child = Run.objects.get(parent_step=release)
    assert child.status == "failed"
    assert release.status == "failed"
    assert release.error["type"] == "SubflowFailed"
    assert release.error["child_run"] == child.pk
    assert "train derailed" in release.error["message"]
    assert run.status == "failed"


def test_a_failing_child_of_an_optional_step_lets_the_parent_complete():
    _child(steps=[{"key": "boom", "type": "python", "action": "core.fail"}])
    run = start(simple_definition(steps=[
        {"key": "release", "type": "flow", "flow": "release-train", "continue_on_error": True},
        {**echo("after"), "when": 'steps.release.status == "failed"'}]))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["after"].status == "completed"


def test_canceling_the_parent_cancels_the_child():
    _child(steps=[{"key": "hold", "type": "wait"}])
    run = start(_parent())
    drain()
    release = steps_of(run)["release"]
    child = Run.objects.get(parent_step=release)
    assert release.status == "waiting" and child.status == "waiting"
    run_cancel(run=run)
    drain()
    child.refresh_from_db()
    assert child.status == "canceled"
    assert steps_of(run)["release"].status == "canceled"


def test_retrying_the_parent_reuses_the_completed_child():
    _child()
    run = start(simple_definition(steps=[
        {"key": "release", "type": "flow", "flow": "release-train"},
        {"key": "boom", "type": "python", "action": "core.fail"}]))
    drain()
    assert Run.objects.get(pk=run.pk).status == "failed"
    assert Run.objects.filter(trigger_kind="subflow").count() == 1
    retry = run_retry(run=run)
    drain()
    assert steps_of(retry)["release"].status == "completed"
    assert steps_of(retry)["release"].output == {"status": "shipped", "count": []}
    assert Run.objects.filter(trigger_kind="subflow").count() == 1  # no second child


def test_a_flow_may_not_call_itself_directly():
    flow = make_flow(simple_definition(slug="selfish"), promote=True)
    flow_update_draft(flow=flow, definition=simple_definition(slug="selfish", steps=[
        {"key": "again", "type": "flow", "flow": "selfish"}]))
    with pytest.raises(DefinitionInvalid) as caught:
        flow_release(flow=flow)
    assert caught.value.problems == [{"path": "steps[0].flow",
                                      "message": "subflows form a loop: selfish -> selfish"}]


def test_a_flow_may_not_call_itself_through_others():
    a = make_flow(simple_definition(slug="a"))
    make_flow(simple_definition(slug="b", steps=[{"key": "c", "type": "flow", "flow": "a"}]))
    flow_update_draft(flow=a, definition=simple_definition(slug="a", steps=[
        {"key": "b", "type": "flow", "flow": "b"}]))
    with pytest.raises(DefinitionInvalid) as caught:
        flow_release(flow=a)
    assert "subflows form a loop: a -> b -> a" in str(caught.value)
    assert subflow_problems(slug="z", definition={"steps": [{"type": "flow", "flow": "a"}]}) == []


def test_an_unknown_flow_or_one_without_live_release_is_refused_at_release():
    make_flow(simple_definition(slug="drafty"), promote=False)
    with pytest.raises(DefinitionInvalid) as caught:
        make_flow(simple_definition(slug="p", steps=[
            {"key": "x", "type": "flow", "flow": "nope"},
            {"key": "y", "type": "flow", "flow": "drafty"}]))
    problems = {p["path"]: p["message"] for p in caught.value.problems}
    assert problems["steps[0].flow"] == "no flow 'nope'"
    assert "has no live release" in problems["steps[1].flow"]


def test_a_flow_whose_live_release_was_withdrawn_fails_the_step_at_run_time():
    child = _child()
    run = start(_parent())
    type(child).objects.filter(pk=child.pk).update(live_version=None)
    drain()
    run.refresh_from_db()
    release = steps_of(run)["release"]
    assert release.status == "failed"
    assert release.error["type"] == "SubflowUnavailable"
    assert run.status == "failed"


def test_depth_is_capped(settings):
    settings.WF_SUBFLOW_MAX_DEPTH = 2
    make_flow(simple_definition(slug="leaf", steps=[echo("x", n=1)]))
    make_flow(simple_definition(slug="mid2", steps=[{"key": "x", "type": "flow", "flow": "leaf"}]))
    make_flow(simple_definition(slug="mid1", steps=[{"key": "x", "type": "flow", "flow": "mid2"}]))
    run = start(simple_definition(slug="top", steps=[{"key": "x", "type": "flow", "flow": "mid1"}]))
    drain()
    run.refresh_from_db()
    assert run.status == "failed"
    deepest = Run.objects.get(flow__slug="mid2")
    assert steps_of(deepest)["x"].error["type"] == "SubflowTooDeep"
    assert not Run.objects.filter(flow__slug="leaf").exists()


def test_bad_parameters_are_a_problem_at_draft_time():
    with pytest.raises(DefinitionInvalid) as caught:
        make_flow(simple_definition(steps=[{"key": "x", "type": "flow", "input": [1],
                                            "timeout_seconds": 60}]), promote=False)
    paths = [p["path"] for p in caught.value.problems]
    assert paths == ["steps[0].flow", "steps[0].timeout_seconds", "steps[0].input"]


def test_the_sweep_resolves_a_parent_whose_child_ended_unnoticed():
    _child()
    run = start(_parent())
    drain_steps()  # the child completed; its parent's on_commit resolution never ran
    assert steps_of(run)["release"].status == "waiting"
    assert sweep_all()["subflows_resolved"] == 1
    drain()
    assert Run.objects.get(pk=run.pk).status == "completed"



def test_the_nightly_report_demo_runs_its_subflow_and_completes(settings):
    import io

    from django.core.management import call_command

    from workflows.models import Flow
    from workflows.services.runs import run_start

    settings.WF_INLINE_DELAY_SECONDS = 5  # the demo polls every second: waited out inline
    call_command("load_demo_flows", stdout=io.StringIO())
    run, _ = run_start(flow=Flow.objects.get(slug="nightly-report"), input={"day": "monday"})
    drain()
    run.refresh_from_db()
    steps = steps_of(run)
    assert run.status == "completed"
    assert steps["post_to_chat"].status == "failed"
    assert steps["alert"].output == {"message": "payments failed overnight", "count": 3}
    assert steps["report"].output == {"day": "monday", "orders": 42}
    child = Run.objects.get(parent_step=steps["collect"])
    export = steps_of(child)["export"]
    assert export.attempt_count == 2 and export.output["ready"] is True
