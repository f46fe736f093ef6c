"""CEL `when`, `until:` polling and `continue_on_error`, run in-process through the same
claim/execute/finish code the workers use (tests.factories.drain)."""

from __future__ import annotations

import pytest

from tests.factories import drain, echo, simple_definition, start, steps_of
from workflows.models import Attempt, Event, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def counter(monkeypatch):
    """An action whose output is its attempt number: a status that changes as it is polled."""
    from workflows.steps import actions

    def count(ctx, **args):
        return {"n": ctx.attempt_number, "healthy": ctx.attempt_number >= int(args.get("at", 3))}

    monkeypatch.setitem(actions._ACTIONS, "test.count", count)


def _fail(key, **extra):
    return {"key": key, "type": "python", "action": "core.fail",
            "args": {"message": f"{key} broke"}, **extra}


# --- when -----------------------------------------------------------------------------------

def test_cel_when_compares_outputs_and_input():
    run = start(simple_definition(
        input={"repos": {"type": "array", "default": ["a", "b"]}},
        steps=[echo("check", count=12, status="shipped"),
               {**echo("big", needs=["check"]),
                "when": 'steps.check.output.count > 10 && size(input.repos) > 1'},
               {**echo("small", needs=["check"]), "when": "steps.check.output.count <= 10"},
               {**echo("shipped", needs=["check"]),
                "when": 'steps.check.status == "completed" && steps.check.output.status == "shipped"'}],
    ))
    drain()
    run.refresh_from_db()
    steps = steps_of(run)
    assert run.status == "completed"
    assert steps["big"].status == "completed"
    assert steps["small"].status == "skipped"
    assert steps["shipped"].status == "completed"


def test_a_bare_reference_keeps_meaning_truthy():
    run = start(simple_definition(steps=[
        echo("a", ok=0), {**echo("b"), "when": "{{ steps.a.output.ok }}"}, echo("c")]))
    drain()
    assert steps_of(run)["b"].status == "skipped"
    assert Run.objects.get(pk=run.pk).status == "completed"


def test_a_when_that_cannot_be_evaluated_fails_the_step_with_condition_error():
    run = start(simple_definition(steps=[
        echo("a", n=1), {**echo("b"), "when": "steps.a.output.missing > 1"}, echo("c")]))
    drain()
    run.refresh_from_db()
    b = steps_of(run)["b"]
    assert b.status == "failed"
    assert b.error["type"] == "condition_error"
    assert "steps.a.output.missing > 1" in b.error["message"]
    assert run.status == "failed"
    assert run.error["step"] == "b"
    assert steps_of(run)["c"].status in ("not_started", "canceled")


# --- continue_on_error -------------------------------------------------------------------------

def test_an_optional_step_fails_and_the_run_completes_with_dependents_seeing_its_status():
    run = start(simple_definition(steps=[
        echo("a"),
        _fail("chat", continue_on_error=True),
        {**echo("after", needs=["chat"], was="{{ steps.a.output }}"),
         "when": 'steps.chat.status == "failed"'},
        {**echo("never", needs=["chat"]), "when": 'steps.chat.status == "completed"'},
    ]))
    drain()
    run.refresh_from_db()
    steps = steps_of(run)
    assert steps["chat"].status == "failed"
    assert steps["chat"].error["message"] == "chat broke"
    assert steps["after"].status == "completed"
    assert steps["never"].status == "skipped"
    assert run.status == "completed"
    assert run.error is None


def test_a_step_without_continue_on_error_still_fails_the_run():
    run = start(simple_definition(steps=[_fail("chat", continue_on_error=False), echo("after")]))
    drain()
    run.refresh_from_db()
    assert run.status == "failed"
    assert steps_of(run)["after"].status in ("not_started", "canceled")


def test_an_optional_step_with_a_broken_when_does_not_fail_the_run():
    run = start(simple_definition(steps=[
        echo("a"), {**echo("b", continue_on_error=None), "when": "input.nothing.here",
                    "continue_on_error": True}, echo("c")]))
    drain()
    run.refresh_from_db()
    assert steps_of(run)["b"].error["type"] == "condition_error"
    assert steps_of(run)["c"].status == "completed"
    assert run.status == "completed"


# --- until -------------------------------------------------------------------------------------

def test_until_repeats_the_step_as_attempts_until_the_output_holds(counter):
    run = start(simple_definition(steps=[
        {"key": "deploy", "type": "python", "action": "test.count", "args": {"at": 3},
         "until": {"condition": "output.healthy", "every_seconds": 0, "max_times": 5}},
        echo("after", n="{{ steps.deploy.output.n }}"),
    ]))
    drain()
    run.refresh_from_db()
    deploy = steps_of(run)["deploy"]
    assert run.status == "completed"
    assert deploy.status == "completed"
    assert deploy.output == {"n": 3, "healthy": True}
    assert list(Attempt.objects.filter(step_run=deploy).order_by("number")
                .values_list("status", flat=True)) == ["completed"] * 3
    assert Event.objects.filter(step_run=deploy, kind="step_repeat_scheduled").count() == 2
    assert steps_of(run)["after"].output == {"n": 3}


def test_until_exhausted_fails_with_condition_not_met_and_the_last_output(counter):
    run = start(simple_definition(steps=[
        {"key": "deploy", "type": "python", "action": "test.count", "args": {"at": 99},
         "until": {"condition": "output.healthy", "every_seconds": 0, "max_times": 2}}]))
    drain()
    run.refresh_from_db()
    deploy = steps_of(run)["deploy"]
    assert deploy.status == "failed"
    assert deploy.error["type"] == "condition_not_met"
    assert deploy.output == {"n": 2, "healthy": False}
    assert run.status == "failed"
    assert Attempt.objects.filter(step_run=deploy).count() == 2


def test_until_that_cannot_be_evaluated_fails_with_condition_error(counter):
    run = start(simple_definition(steps=[
        {"key": "deploy", "type": "python", "action": "test.count",
         "until": "output.nope == 1"}]))
    drain()
    deploy = steps_of(run)["deploy"]
    assert deploy.status == "failed"
    assert deploy.error["type"] == "condition_error"
    assert "output.nope == 1" in deploy.error["message"]


def test_a_long_repetition_waits_in_the_database_not_in_a_worker(counter, settings):
    settings.WF_INLINE_DELAY_SECONDS = 1
    run = start(simple_definition(steps=[
        {"key": "deploy", "type": "python", "action": "test.count",
         "until": {"condition": "output.healthy", "every_seconds": 3600, "max_times": 3}}]))
    drain()  # one attempt; the next is due in an hour: the worker does not wait for it
    deploy = steps_of(run)["deploy"]
    assert deploy.status == "queued"
    assert deploy.not_before is not None
    assert deploy.attempt_count == 1
    assert deploy.output == {"n": 1, "healthy": False}
