"""Engine behaviour, driven in-process through the same claim/execute/finish code the workers
run (tests/e2e runs the same flows through a real qcluster)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from approvals.models import Approval, ApprovalStatus
from approvals.services import (
    ApprovalNotAllowed,
    approval_approve,
    approval_redo,
    approval_reject,
)
from tests.workflows.conftest import drain, make_flow, simple_definition, steps_of
from workflows.engine import executor, sweeper
from workflows.engine.callback_tokens import callback_token
from workflows.engine.transitions import step_transition
from workflows.errors import (
    CallbackExpired,
    CallbackUnknown,
    CallbackUsed,
    Conflict,
    InputInvalid,
    TransitionNotAllowed,
)
from workflows.models import Attempt, Event, LogChunk, Run, StepRun
from workflows.services.callbacks import callback_receive
from workflows.services.maintenance import sweep_all
from workflows.services.runs import run_cancel, run_replay, run_retry, run_start
from workflows.states import StepStatus

pytestmark = pytest.mark.django_db


def echo(key, needs=None, **args):
    step = {"key": key, "type": "python", "action": "core.echo", "args": args}
    if needs is not None:
        step["needs"] = needs
    return step


def start(definition, **kwargs):
    flow = make_flow(definition)
    run, _ = run_start(flow=flow, input=kwargs.pop("input", {}), **kwargs)
    return run


def kinds(run):
    return list(Event.objects.filter(run=run).values_list("kind", flat=True))


def test_a_sequential_run_completes_and_passes_outputs_along():
    run = start(simple_definition())
    assert run.status == "queued"
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    steps = steps_of(run)
    assert steps["second"].output == {"prev": 1}
    assert run.output == {"prev": 1}
    assert Attempt.objects.get(step_run=steps["second"]).input["args"] == {"prev": 1}
    assert kinds(run)[0] == "run_created" and kinds(run)[-1] == "run_completed"
    assert run.started_at and run.finished_at and run.duration_ms is not None


def test_every_transition_leaves_an_event_with_from_and_to():
    run = start(simple_definition())
    drain()
    # "second" is claimed by the worker that finished "first", in one statement: its events
    # still record both moves.
    for key in ("first", "second"):
        step_events = Event.objects.filter(run=run, step_run__key=key).order_by("id")
        assert [(e.from_status, e.to_status) for e in step_events] == [
            ("not_started", "queued"), ("queued", "running"), ("running", "completed"),
        ]


def test_input_is_validated_and_defaults_applied():
    definition = simple_definition(input={"repo": {"type": "string", "required": True},
                                          "limit": {"type": "integer", "default": 10}})
    flow = make_flow(definition)
    with pytest.raises(InputInvalid) as info:
        run_start(flow=flow, input={"limit": "x", "extra": 1})
    paths = {p["path"] for p in info.value.problems}
    assert {"input.repo", "input.limit", "input.extra"} <= paths
    assert Run.objects.count() == 0
    run, _ = run_start(flow=flow, input={"repo": "core"})
    assert run.input == {"repo": "core", "limit": 10}


def test_a_failing_step_is_retried_with_backoff_then_succeeds():
    run = start(simple_definition(steps=[
        {"key": "flaky", "type": "python", "action": "core.flaky", "args": {"fail_times": 2},
         "retry": {"max_attempts": 3, "backoff_seconds": 0.05}},
        echo("after"),
    ]))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    flaky = steps_of(run)["flaky"]
    attempts = list(Attempt.objects.filter(step_run=flaky).order_by("number"))
    assert [a.status for a in attempts] == ["failed", "failed", "completed"]
    assert attempts[0].error["type"] == "Transient"
    assert flaky.attempt_count == 3
    assert kinds(run).count("step_retry_scheduled") == 2


def test_a_step_that_keeps_failing_fails_the_run_with_its_error():
    run = start(simple_definition(steps=[
        {"key": "boom", "type": "python", "action": "core.fail", "args": {"message": "nope"},
         "retry": {"max_attempts": 2}},
        echo("never"),
    ]))
    drain()
    run.refresh_from_db()
    steps = steps_of(run)
    assert run.status == "failed"
    assert run.error["step"] == "boom" and run.error["message"] == "nope"
    assert steps["boom"].status == "failed" and steps["boom"].attempt_count == 2
    assert steps["never"].status == "not_started"


def test_an_unexpected_exception_keeps_its_traceback_on_the_attempt(monkeypatch):
    from workflows.steps import actions

    def explode(ctx, **args):
        raise KeyError("missing")

    monkeypatch.setitem(actions._ACTIONS, "test.explode", explode)
    run = start(simple_definition(steps=[
        {"key": "x", "type": "python", "action": "test.explode"}]))
    drain()
    attempt = Attempt.objects.get(step_run__run=run)
    assert attempt.error["type"] == "KeyError"
    assert "explode" in attempt.error["traceback"]


def test_parallel_branches_run_and_join_after_both():
    run = start(simple_definition(steps=[
        echo("start"),
        echo("left", needs=["start"], side="L"),
        echo("right", needs=["start"], side="R"),
        {"key": "join", "type": "python", "action": "core.echo", "needs": ["left", "right"],
         "args": {"l": "{{ steps.left.output.side }}", "r": "{{ steps.right.output.side }}"}},
    ]))
    executor.advance(steps_of(run)["start"].pk)
    steps = steps_of(run)
    # After start, both branches are ready at once: one continues inline, one is queued.
    assert {steps["left"].status, steps["right"].status} <= {"completed", "queued"}
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["join"].output == {"l": "L", "r": "R"}


def test_a_duplicate_task_finds_the_step_claimed_and_does_nothing():
    run = start(simple_definition(steps=[echo("only")]))
    step = steps_of(run)["only"]
    executor.advance(step.pk)
    executor.advance(step.pk)
    assert Attempt.objects.filter(step_run=step).count() == 1


def test_when_condition_false_skips_the_step_and_dependents_still_run():
    run = start(simple_definition(
        input={"go": {"type": "boolean", "default": False}},
        steps=[echo("a"), {**echo("maybe"), "when": "{{ input.go }}"}, echo("b")],
    ))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["maybe"].status == "skipped"
    assert steps_of(run)["b"].status == "completed"


def test_cancel_marks_the_run_and_every_open_step_canceled():
    run = start(simple_definition(steps=[
        {"key": "nap", "type": "python", "action": "core.sleep", "args": {"seconds": 30}},
        echo("after"),
    ]))
    run_cancel(run=run, reason="operator said so")
    run.refresh_from_db()
    assert run.status == "canceled"
    assert {s.status for s in steps_of(run).values()} == {"canceled"}
    drain()  # the queued task, if it ever arrives, finds nothing to do
    assert Attempt.objects.filter(step_run__run=run).count() == 0
    with pytest.raises(TransitionNotAllowed):
        run_cancel(run=run)


def test_a_running_handler_notices_cancel_at_its_heartbeat(settings):
    settings.WF_HEARTBEAT_SECONDS = 0.1
    run = start(simple_definition(steps=[
        {"key": "nap", "type": "python", "action": "core.sleep", "args": {"seconds": 30}}]))
    step = steps_of(run)["nap"]
    claimed = executor.claim(step.pk)
    # The operator cancels while the handler sleeps (the run row is changed underneath).
    run_cancel(run=Run.objects.get(pk=run.pk))
    result = executor.execute(claimed)
    assert result.lost
    executor.finish(claimed, result)
    attempt = Attempt.objects.get(step_run=step)
    assert attempt.status == "canceled"
    assert StepRun.objects.get(pk=step.pk).status == "canceled"


def test_a_step_past_its_timeout_fails_with_step_timeout():
    run = start(simple_definition(steps=[
        {"key": "nap", "type": "python", "action": "core.sleep", "args": {"seconds": 5},
         "timeout_seconds": 0.3}]))
    drain()
    run.refresh_from_db()
    assert run.status == "failed"
    assert Attempt.objects.get(step_run__run=run).error["type"] == "StepTimeout"


def test_logs_are_chunked_and_numbered():
    run = start(simple_definition(steps=[
        {"key": "nap", "type": "python", "action": "core.sleep", "args": {"seconds": 0}}]))
    drain()
    chunks = list(LogChunk.objects.filter(step_run__run=run).order_by("seq"))
    assert [c.seq for c in chunks] == list(range(1, len(chunks) + 1))
    assert "sleeping" in chunks[0].text


def test_timer_wait_pauses_the_run_until_due():
    run = start(simple_definition(steps=[
        echo("a"), {"key": "pause", "type": "wait", "duration_seconds": 3600}, echo("b")]))
    drain()
    run.refresh_from_db()
    assert run.status == "waiting"
    pause = steps_of(run)["pause"]
    assert pause.status == "waiting"
    sweeper.sweep(now=timezone.now() + timedelta(hours=2))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert "waited_seconds" in steps_of(run)["pause"].output


def callback_definition(**wait):
    return simple_definition(steps=[
        echo("a", url="{{ steps.hold.callback_url }}"),
        {"key": "hold", "type": "wait", "timeout_seconds": 600, **wait},
        {"key": "b", "type": "python", "action": "core.echo",
         "args": {"got": "{{ steps.hold.output.pr_url }}"}},
    ])


def token_of(run, key="hold"):
    return callback_token(steps_of(run)[key].callback_nonce)


def test_a_callback_resumes_the_wait_with_its_body_as_output():
    run = start(callback_definition())
    drain()
    run.refresh_from_db()
    assert run.status == "waiting"
    url = steps_of(run)["a"].output["url"]
    assert url.endswith(token_of(run))
    callback_receive(token=token_of(run), payload={"pr_url": "http://pr/1"},
                     remote_addr="10.0.0.1", user_agent="curl")
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["b"].output == {"got": "http://pr/1"}
    event = Event.objects.get(run=run, step_run__key="hold", to_status="completed")
    assert event.actor_kind == "callback" and event.data["remote_addr"] == "10.0.0.1"


def test_a_callback_is_single_use_and_unknown_tokens_are_refused():
    run = start(callback_definition())
    drain()
    callback_receive(token=token_of(run), payload={"pr_url": "x"})
    with pytest.raises(CallbackUsed):
        callback_receive(token=token_of(run), payload={"pr_url": "y"})
    with pytest.raises(CallbackUnknown):
        callback_receive(token="not-a-token", payload={})


def test_a_callback_that_arrives_early_completes_the_wait_when_reached():
    run = start(callback_definition())
    callback_receive(token=token_of(run), payload={"pr_url": "early"})
    assert "callback_received_early" in kinds(run)
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["b"].output == {"got": "early"}


def test_a_callback_after_the_wait_timed_out_is_expired():
    run = start(callback_definition(timeout_seconds=1))
    drain()
    sweeper.sweep(now=timezone.now() + timedelta(seconds=5))
    run.refresh_from_db()
    assert run.status == "failed"
    assert steps_of(run)["hold"].error["type"] == "WaitTimeout"
    with pytest.raises(CallbackExpired):
        callback_receive(token=token_of(run), payload={})


def test_a_wait_can_continue_on_timeout():
    run = start(simple_definition(steps=[
        {"key": "hold", "type": "wait", "timeout_seconds": 1, "on_timeout": "continue"},
        {"key": "b", "type": "python", "action": "core.echo",
         "args": {"timed_out": "{{ steps.hold.output.timed_out }}"}},
    ]))
    drain()
    sweeper.sweep(now=timezone.now() + timedelta(seconds=5))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["b"].output == {"timed_out": True}


def test_a_reference_that_cannot_be_resolved_fails_the_attempt_with_the_reason():
    run = start(callback_definition(timeout_seconds=1, on_timeout="continue"))
    drain()
    sweeper.sweep(now=timezone.now() + timedelta(seconds=5))
    drain()
    run.refresh_from_db()
    assert run.status == "failed"
    error = steps_of(run)["b"].error
    assert error["type"] == "ReferenceUnresolved" and "pr_url" in error["message"]


# --- approvals ---------------------------------------------------------------------------------

def approval_definition():
    return simple_definition(steps=[
        echo("build", artifact="a.tgz"),
        {"key": "agent", "type": "python", "action": "core.echo",
         "args": {"from": "{{ steps.build.output.artifact }}"}},
        {"key": "review", "type": "approval", "assignees": {"groups": ["reviewers"]},
         "instructions": "Ship {{ steps.agent.output.from }}?", "redo_to": "build"},
        echo("publish", needs=["review"]),
    ])


@pytest.fixture
def reviewer():
    user = User.objects.create_user("rita")
    user.groups.add(Group.objects.get(name="reviewers"))
    return user


def test_an_approval_pauses_the_run_and_approve_continues_it(reviewer):
    run = start(approval_definition())
    drain()
    run.refresh_from_db()
    assert run.status == "waiting_for_approval"
    approval = Approval.objects.get(run=run)
    assert approval.instructions == "Ship a.tgz?"
    assert approval.data == {"agent": {"from": "a.tgz"}}
    approval_approve(approval=approval, actor=reviewer, comment="lgtm")
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    output = steps_of(run)["review"].output
    assert output["decision"] == "approved" and output["actor"] == "rita"
    assert output["comment"] == "lgtm" and output["decided_at"].endswith("Z")


def test_only_assignees_may_decide(reviewer):
    run = start(approval_definition())
    drain()
    approval = Approval.objects.get(run=run)
    outsider = User.objects.create_user("olly")
    with pytest.raises(ApprovalNotAllowed):
        approval_approve(approval=approval, actor=outsider)
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert steps_of(run)["review"].status == "waiting_for_approval"


def test_reject_fails_the_run_and_records_the_actor(reviewer):
    run = start(approval_definition())
    drain()
    approval_reject(approval=Approval.objects.get(run=run), actor=reviewer, comment="no")
    run.refresh_from_db()
    assert run.status == "failed"
    assert steps_of(run)["review"].status == "rejected"
    with pytest.raises(Conflict):
        approval_approve(approval=Approval.objects.get(run=run), actor=reviewer)


def test_redo_requeues_the_target_step_and_asks_again(reviewer):
    run = start(approval_definition())
    drain()
    first = Approval.objects.get(run=run)
    approval_redo(approval=first, actor=reviewer, comment="try again")
    steps = steps_of(run)
    assert steps["build"].status == "queued"
    assert steps["agent"].status == "not_started" and steps["review"].status == "not_started"
    drain()
    run.refresh_from_db()
    assert run.status == "waiting_for_approval"
    assert steps_of(run)["build"].attempt_count == 2
    second = Approval.objects.get(run=run, status="pending")
    assert second.pk != first.pk
    first.refresh_from_db()
    assert first.status == "redone" and first.redo_step == "build"
    approval_approve(approval=second, actor=reviewer)
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert "step_redo" in kinds(run)


def test_an_approval_that_times_out_fails_the_run(reviewer):
    definition = approval_definition()
    definition["steps"][2]["timeout_seconds"] = 60
    run = start(definition)
    drain()
    sweeper.sweep(now=timezone.now() + timedelta(minutes=5))
    run.refresh_from_db()
    assert run.status == "failed"
    assert Approval.objects.get(run=run).status == "expired"


# --- retry, replay, idempotency, concurrency ---------------------------------------------------

@pytest.fixture
def outage(monkeypatch):
    """An action that fails while `outage["on"]` is true: the world is broken, then fixed."""
    from workflows.steps import actions
    from workflows.steps.base import StepFailed

    state = {"on": True}

    def depends_on_the_world(ctx, **args):
        if state["on"]:
            raise StepFailed("the service is down", error_type="Outage")
        return {"ok": True}

    monkeypatch.setitem(actions._ACTIONS, "test.outage", depends_on_the_world)
    return state


def failing_then_fixed_definition():
    return simple_definition(steps=[
        echo("a", v=1),
        {"key": "b", "type": "python", "action": "core.echo", "args": {"v": 2}},
        {"key": "c", "type": "python", "action": "test.outage"},
        echo("d"),
    ])


def test_retry_reuses_completed_steps_and_starts_at_the_failed_one(outage):
    run = start(failing_then_fixed_definition())
    drain()
    run.refresh_from_db()
    assert run.status == "failed"
    outage["on"] = False
    retried = run_retry(run=run)
    assert retried.retry_of_id == run.pk and retried.version_id == run.version_id
    steps = steps_of(retried)
    assert steps["a"].status == "completed" and steps["a"].reused_from_id == steps_of(run)["a"].pk
    assert steps["a"].output == {"v": 1}
    assert steps["c"].status == "queued"
    drain()
    retried.refresh_from_db()
    assert retried.status == "completed"
    assert Attempt.objects.filter(step_run__run=retried, step_run__key="a").count() == 0
    assert kinds(retried).count("step_reused") == 2


def test_retry_from_a_step_reuses_only_what_comes_before_it(outage):
    run = start(failing_then_fixed_definition())
    drain()
    retried = run_retry(run=run, from_step="b")
    steps = steps_of(retried)
    assert steps["a"].status == "completed" and steps["a"].is_reused
    assert steps["b"].status == "queued" and not steps["b"].is_reused
    with pytest.raises(Conflict):
        run_retry(run=retried)  # still running: cancel it or wait for it first


def test_replay_starts_from_the_beginning_with_the_same_version_and_input():
    run = start(simple_definition())
    drain()
    replay = run_replay(run=run)
    assert replay.replay_of_id == run.pk and replay.input == run.input
    assert all(not s.is_reused for s in steps_of(replay).values())
    drain()
    replay.refresh_from_db()
    assert replay.status == "completed"


def test_a_repeated_idempotency_key_returns_the_same_run():
    flow = make_flow(simple_definition())
    first, created = run_start(flow=flow, input={}, idempotency_key="k-1")
    again, created_again = run_start(flow=flow, input={}, idempotency_key="k-1")
    assert created and not created_again and first.pk == again.pk
    assert Run.objects.count() == 1


def test_runs_are_pinned_to_the_release_they_started_on():
    from workflows.services.flows import flow_promote, flow_release, flow_update_draft

    definition = simple_definition()
    flow = make_flow(definition)
    old, _ = run_start(flow=flow, input={})
    definition["steps"].append(echo("third"))
    flow_update_draft(flow=flow, definition=definition)
    flow_promote(flow=flow, number=flow_release(flow=flow).number)
    flow.refresh_from_db()
    new, _ = run_start(flow=flow, input={})
    drain()
    assert set(steps_of(old)) == {"first", "second"}
    assert set(steps_of(new)) == {"first", "second", "third"}
    assert old.version.number == 1 and new.version.number == 2


def test_a_rehearsal_runs_the_draft():
    flow = make_flow(simple_definition(), promote=False)
    run, _ = run_start(flow=flow, input={}, draft=True)
    assert run.is_rehearsal and run.version.number is None
    with pytest.raises(Conflict):
        run_start(flow=flow, input={})


def concurrency_definition(policy):
    return simple_definition(
        input={"repo": {"type": "string", "required": True}},
        concurrency={"key": "{{ input.repo }}", "limit": 1, "policy": policy},
        steps=[{"key": "nap", "type": "python", "action": "core.sleep",
                "args": {"seconds": 0}}],
    )


def test_concurrency_queue_holds_a_run_until_the_slot_frees():
    flow = make_flow(concurrency_definition("queue"))
    first, _ = run_start(flow=flow, input={"repo": "core"})
    held, _ = run_start(flow=flow, input={"repo": "core"})
    other, _ = run_start(flow=flow, input={"repo": "web"})
    assert (first.status, held.status, other.status) == ("queued", "created", "queued")
    drain()
    for run in (first, held, other):
        run.refresh_from_db()
        assert run.status == "completed"


def test_concurrency_skip_cancels_the_new_run():
    flow = make_flow(concurrency_definition("skip"))
    run_start(flow=flow, input={"repo": "core"})
    skipped, _ = run_start(flow=flow, input={"repo": "core"})
    assert skipped.status == "canceled"
    assert "skipped" in Event.objects.filter(run=skipped).last().reason


def test_concurrency_cancel_running_cancels_the_older_run():
    flow = make_flow(concurrency_definition("cancel_running"))
    first, _ = run_start(flow=flow, input={"repo": "core"})
    second, _ = run_start(flow=flow, input={"repo": "core"})
    first.refresh_from_db()
    assert first.status == "canceled" and second.status == "queued"


# --- the sweeper -------------------------------------------------------------------------------

def test_an_expired_lease_is_taken_back_and_the_step_runs_again():
    run = start(simple_definition(steps=[echo("only")]))
    step = steps_of(run)["only"]
    claimed = executor.claim(step.pk)  # the worker claims it ... and dies
    assert claimed is not None
    counts = sweeper.sweep(now=timezone.now() + timedelta(minutes=5))
    assert counts["expired_leases"] == 1
    step.refresh_from_db()
    assert step.status == "queued"
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    attempts = list(Attempt.objects.filter(step_run=step).order_by("number"))
    assert [a.status for a in attempts] == ["failed", "completed"]
    assert attempts[0].error["type"] == "WorkerLost"
    assert "lease_expired" in kinds(run)


def test_a_late_outcome_from_a_worker_that_lost_its_lease_is_not_applied():
    run = start(simple_definition(steps=[echo("only")]))
    step = steps_of(run)["only"]
    claimed = executor.claim(step.pk)
    result = executor.execute(claimed)
    sweeper.sweep(now=timezone.now() + timedelta(minutes=5))
    executor.finish(claimed, result)  # too late: the step is queued for attempt 2
    step.refresh_from_db()
    assert step.status == "queued"
    assert Attempt.objects.get(step_run=step, number=1).status == "failed"


def test_a_queued_step_whose_task_was_lost_is_enqueued_again():
    run = start(simple_definition(steps=[echo("only")]))
    counts = sweeper.sweep(now=timezone.now() + timedelta(minutes=5))
    assert counts["requeued"] == 1
    assert "step_requeued" in kinds(run)


def test_illegal_moves_raise_and_change_nothing():
    run = start(simple_definition(steps=[echo("only")]))
    drain()
    step = steps_of(run)["only"]
    with pytest.raises(TransitionNotAllowed):
        step_transition(step, StepStatus.RUNNING)
    step.refresh_from_db()
    assert step.status == "completed"


def test_a_large_artifact_becomes_a_resource_and_the_output_keeps_its_ref():
    from resources.models import Resource

    run = start(simple_definition(steps=[
        {"key": "report", "type": "python", "action": "core.write_resource",
         "args": {"content": "x" * 5000, "name": "report.txt"}}]))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    output = steps_of(run)["report"].output
    assert output["ref"].startswith("res://") and output["size"] == 5000
    resource = Resource.objects.get(pk=output["ref"].removeprefix("res://"))
    assert resource.size == 5000 and resource.run_id == run.pk
    assert resource.file.read() == b"x" * 5000


def test_a_retry_with_a_long_backoff_is_handed_out_by_the_sweeper_when_due(settings):
    settings.WF_INLINE_DELAY_SECONDS = 1
    run = start(simple_definition(steps=[
        {"key": "flaky", "type": "python", "action": "core.flaky", "args": {"fail_times": 1},
         "retry": {"max_attempts": 2, "backoff_seconds": 120}}]))
    drain()
    step = steps_of(run)["flaky"]
    assert step.status == "queued" and step.not_before is not None
    assert sweeper.sweep()["requeued"] == 0  # not due yet
    counts = sweeper.sweep(now=step.not_before + timedelta(seconds=1))
    assert counts["requeued"] == 1


def test_a_schedule_trigger_starts_one_run_per_due_time():
    from workflows.models import ScheduleState

    flow = make_flow(simple_definition(
        triggers=[{"type": "schedule", "cron": "*/5 * * * *"}]))
    state = ScheduleState.objects.get(flow=flow)
    due = state.next_fire_at
    assert sweep_all(now=due - timedelta(seconds=1))["schedules_fired"] == 0
    assert sweep_all(now=due + timedelta(seconds=1))["schedules_fired"] == 1
    assert sweep_all(now=due + timedelta(seconds=2))["schedules_fired"] == 0
    run = Run.objects.get(flow=flow)
    assert run.trigger_kind == "schedule"
    assert run.trigger_payload["cron"] == "*/5 * * * *"
    state.refresh_from_db()
    assert state.next_fire_at == due + timedelta(minutes=5)


def test_a_rehearsal_keeps_the_draft_it_started_on_when_the_draft_changes():
    from workflows.services.flows import flow_update_draft

    definition = simple_definition(steps=[
        {"key": "hold", "type": "wait", "duration_seconds": 3600}, echo("after", v="old")])
    flow = make_flow(definition, promote=False)
    run, _ = run_start(flow=flow, input={}, draft=True)
    drain()
    definition["steps"] = [echo("other", v="new")]
    flow_update_draft(flow=flow, definition=definition)
    sweeper.sweep(now=timezone.now() + timedelta(hours=2))
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    assert steps_of(run)["after"].output == {"v": "old"}
    replay = run_replay(run=run)
    assert set(steps_of(replay)) == {"hold", "after"}
