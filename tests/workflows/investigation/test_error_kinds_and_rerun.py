"""Error kinds of failed runs, rerun on the live version, retry plans, callback receipts."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.apps import apps as global_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from approvals.models import Approval
from approvals.services import approval_reject
from tests.factories import drain, make_flow, simple_definition, steps_of
from tests.history import broken_release_history, release_live, run_to_end
from workflows.engine import callback_token
from workflows.engine.sweeper import sweep
from workflows.errors import Conflict, InputInvalid, NotPermitted
from workflows.investigation import run_next_steps, run_retry_plan, wait_step_info
from workflows.models import Event, Run
from workflows.services.callbacks import callback_receive
from workflows.services.runs import run_rerun, run_retry, run_start
from workflows.states import ErrorKind, EventKind, RunStatus

pytestmark = pytest.mark.django_db


def user(name: str, *groups: str):
    account = get_user_model().objects.create_user(username=name, password="pw")
    for group in groups:
        account.groups.add(Group.objects.get(name=group))
    return account


def approval_flow(slug: str = "reviewed", **review) -> dict:
    return simple_definition(slug, steps=[
        {"key": "build", "type": "python", "action": "core.echo", "args": {"built": True}},
        {"key": "review", "type": "approval", "assignees": {"groups": ["reviewers"]}, **review},
    ])


def wait_flow(slug: str = "waiting") -> dict:
    return simple_definition(slug, steps=[
        {"key": "agent_done", "type": "wait", "timeout_seconds": 3600},
        {"key": "finish", "type": "python", "action": "core.echo", "args": {"n": 1}},
    ])


# --- error kinds --------------------------------------------------------------------------------


def test_a_failing_step_is_an_error():
    history = broken_release_history(good=0, bad=1)
    assert history.bad_runs[0].error_kind == ErrorKind.ERROR


def test_a_rejected_approval_is_rejected():
    reviewer = user("rita", "reviewers")
    run = run_to_end(make_flow(approval_flow()))
    approval_reject(approval=Approval.objects.get(run=run), actor=reviewer, comment="no")
    run.refresh_from_db()
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.REJECTED)


@pytest.mark.parametrize(("on_timeout", "kind"), [("reject", ErrorKind.REJECTED),
                                                  ("fail", ErrorKind.TIMEOUT)])
def test_an_approval_timeout_is_rejected_or_a_timeout_as_the_step_says(on_timeout, kind):
    run = run_to_end(make_flow(approval_flow(timeout_seconds=60, on_timeout=on_timeout)))
    sweep(now=timezone.now() + dt.timedelta(hours=1))
    run.refresh_from_db()
    assert (run.status, run.error_kind) == (RunStatus.FAILED, kind)


def test_a_wait_timeout_is_a_timeout():
    run = run_to_end(make_flow(wait_flow()))
    sweep(now=timezone.now() + dt.timedelta(hours=2))
    run.refresh_from_db()
    assert (run.status, run.error_kind) == (RunStatus.FAILED, ErrorKind.TIMEOUT)


def test_completed_and_canceled_runs_have_no_error_kind():
    from workflows.services.runs import run_cancel

    done = run_to_end(make_flow(simple_definition("fine")))
    waiting = run_to_end(make_flow(wait_flow()))
    run_cancel(run=waiting)
    waiting.refresh_from_db()
    assert done.error_kind == "" and waiting.error_kind == ""


def test_the_migration_backfills_error_kinds_of_existing_failed_runs():
    reviewer = user("rita", "reviewers")
    rejected = run_to_end(make_flow(approval_flow()))
    approval_reject(approval=Approval.objects.get(run=rejected), actor=reviewer)
    failed = broken_release_history(good=0, bad=1).bad_runs[0]
    timed_out = run_to_end(make_flow(wait_flow()))
    sweep(now=timezone.now() + dt.timedelta(hours=2))
    Run.objects.update(error_kind="")
    migration = importlib.import_module(
        "workflows.migrations.0006_run_error_kind_rerun_of_callback_sender")

    migration.backfill_error_kinds(global_apps, None)

    kinds = dict(Run.objects.filter(pk__in=[rejected.pk, failed.pk, timed_out.pk])
                 .values_list("pk", "error_kind"))
    assert kinds == {rejected.pk: "rejected", failed.pk: "error", timed_out.pk: "timeout"}


# --- rerun on the live version ------------------------------------------------------------------


def test_rerun_runs_the_same_input_on_the_live_version_and_links_both_runs():
    history = broken_release_history(good=1, bad=1)
    failed = history.bad_runs[0]
    fix = release_live(history.flow, history.v1.definition)
    operator = user("olga", "operators")

    new = run_rerun(run=failed, actor=operator)
    drain()
    new.refresh_from_db()

    assert new.rerun_of_id == failed.pk and new.version_id == fix.pk
    assert new.input == failed.input and new.status == RunStatus.COMPLETED
    assert new.trigger_kind == "rerun" and new.trigger_actor == "olga"
    original = Event.objects.get(run=failed, kind=EventKind.RUN_RERUN)
    assert original.data == {"run": new.pk, "version": fix.number}
    assert original.actor == "olga"
    linked = Event.objects.get(run=new, kind=EventKind.RUN_RERUN_OF)
    assert linked.data == {"run": failed.pk, "version": fix.number}


def test_rerun_needs_the_operator_permission():
    history = broken_release_history(good=0, bad=1)
    with pytest.raises(NotPermitted):
        run_rerun(run=history.bad_runs[0], actor=user("sam", "support"))
    assert not Run.objects.filter(rerun_of=history.bad_runs[0]).exists()


def test_rerun_refuses_without_a_live_version_and_while_the_run_is_active():
    from workflows.services.flows import flow_create

    flow = flow_create(definition=simple_definition("drafty"))
    rehearsal, _ = run_start(flow=flow, draft=True)
    drain()
    rehearsal.refresh_from_db()
    with pytest.raises(Conflict, match="no live version"):
        run_rerun(run=rehearsal)
    waiting = run_to_end(make_flow(wait_flow()))
    with pytest.raises(Conflict, match="still waiting"):
        run_rerun(run=waiting)


def test_rerun_refuses_an_input_the_live_version_does_not_take():
    history = broken_release_history(good=0, bad=1)
    strict = dict(history.v1.definition)
    strict["input"] = {"customer": {"type": "integer", "required": True}}
    release_live(history.flow, strict)
    with pytest.raises(InputInvalid):
        run_rerun(run=history.bad_runs[0])


# --- retry plan and next steps ------------------------------------------------------------------


def test_the_retry_plan_names_the_pinned_version_and_the_reused_steps_like_run_retry():
    history = broken_release_history(good=0, bad=1)
    failed = history.bad_runs[0]
    plan = run_retry_plan(run=failed)
    assert plan["version"] == 2
    assert plan["reuse"] == [{"key": "fetch", "from_run": failed.pk}]
    assert plan["rerun"] == ["transform", "load"]
    retried = run_retry(run=failed)
    reused = {s.key for s in steps_of(retried).values() if s.is_reused}
    assert reused == {r["key"] for r in plan["reuse"]}
    assert run_retry_plan(run=failed, from_step="fetch")["reuse"] == []
    # A retry of the retry reuses fetch from the run that ran it.
    drain()
    retried.refresh_from_db()
    assert run_retry_plan(run=retried)["reuse"] == [{"key": "fetch", "from_run": failed.pk}]


def test_next_steps_say_pinned_live_and_draft_and_what_each_action_runs():
    history = broken_release_history(good=1, bad=1)
    failed = history.bad_runs[0]
    fix = release_live(history.flow, history.v1.definition)

    nxt = run_next_steps(run=failed)

    assert (nxt["pinned_version"], nxt["live_version"]) == (2, fix.number)
    assert nxt["pinned_is_live"] is False and nxt["draft_equals_live"] is True
    assert nxt["diff"] == {"flow": "pipeline", "from": "2", "to": str(fix.number)}
    assert nxt["draft_diff"] is None
    assert nxt["retry"]["allowed"] and nxt["retry"]["version"] == 2
    assert nxt["replay"]["reuse"] == [] and nxt["replay"]["version"] == 2
    assert nxt["rerun"] == {"allowed": True, "version": fix.number}
    good = run_next_steps(run=history.good_runs[0])
    assert good["retry"]["allowed"] is False and "completed" in good["retry"]["reason"]


def test_a_draft_that_differs_from_live_links_its_diff():
    from workflows.services.flows import flow_update_draft

    history = broken_release_history(good=0, bad=1)
    flow_update_draft(flow=history.flow, definition=history.v1.definition)
    nxt = run_next_steps(run=history.bad_runs[0])
    assert nxt["pinned_is_live"] is True and nxt["diff"] is None
    assert nxt["draft_equals_live"] is False
    assert nxt["draft_diff"] == {"flow": "pipeline", "from": "2", "to": "draft"}


# --- callback receipts --------------------------------------------------------------------------


def test_wait_step_info_shows_issue_expiry_receipt_and_sender_but_no_token():
    run = run_to_end(make_flow(wait_flow()))
    step = steps_of(run)["agent_done"]
    token = callback_token(step.callback_nonce)

    before = wait_step_info(step_run=step)
    assert before["issued_at"] is not None and before["expires_at"] is not None
    assert before["received_at"] is None and before["remote_addr"] is None

    callback_receive(token=token, payload={"ok": True}, remote_addr="10.1.2.3",
                     user_agent="agent/1.0")
    step.refresh_from_db()
    info = wait_step_info(step_run=step)
    assert info["received_at"] is not None
    assert (info["remote_addr"], info["user_agent"]) == ("10.1.2.3", "agent/1.0")
    assert token not in repr(info) and token not in repr(
        list(Event.objects.filter(run=run).values_list("data", flat=True)))


def test_wait_step_info_reads_the_sender_from_the_event_for_older_rows():
    run = run_to_end(make_flow(wait_flow()))
    step = steps_of(run)["agent_done"]
    callback_receive(token=callback_token(step.callback_nonce), payload={},
                     remote_addr="10.9.9.9", user_agent="old/2")
    step.refresh_from_db()
    step.callback_remote_addr = step.callback_user_agent = ""
    step.callback_issued_at = None
    info = wait_step_info(step_run=step)
    assert (info["remote_addr"], info["user_agent"]) == ("10.9.9.9", "old/2")
    assert info["issued_at"] == run.created_at
