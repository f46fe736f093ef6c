"""Model builders shared by every test package: flows made through the services, and an
in-process drain that runs queued steps the way a worker does.

Unit tests run steps in this process (`drain`), through the same claim/execute/finish code the
workers use; the e2e tests in tests/e2e run a real qcluster instead.
"""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from workflows.engine import executor, sweeper
from workflows.engine import instances as engine_instances
from workflows.engine.callback_tokens import callback_token
from workflows.models import Event, Run, StepInstance, StepRun
from workflows.services.flows import flow_create, flow_promote, flow_release
from workflows.services.runs import run_start
from workflows.states import StepStatus


def make_flow(definition: dict, *, promote: bool = True):
    flow = flow_create(definition=definition)
    if promote:
        version = flow_release(flow=flow)
        flow_promote(flow=flow, number=version.number)
        flow.refresh_from_db()
    return flow


def drain(max_rounds: int = 200) -> None:
    """Run every queued step that is due, and complete due timers, until nothing is left."""
    for _ in range(max_rounds):
        now = timezone.now()
        due = list(
            StepRun.objects.filter(status=StepStatus.QUEUED)
            .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            .order_by("id").values_list("id", flat=True)
        )
        timers = list(StepRun.objects.filter(status=StepStatus.WAITING, not_before__lte=now)
                      .values_list("id", flat=True))
        instances = list(
            StepInstance.objects.filter(status=StepStatus.QUEUED)
            .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
            .order_by("id").values_list("id", flat=True)
        )
        if not due and not timers and not instances:
            return
        for step_id in due:
            executor.advance(step_id)
        for instance_id in instances:
            engine_instances.advance_instance(instance_id)
        for step_id in timers:
            sweeper.step_wake(step_id)
    raise AssertionError("drain did not settle")


def steps_of(run: Run) -> dict[str, StepRun]:
    return {s.key: s for s in StepRun.objects.filter(run=run)}


def simple_definition(slug: str = "simple", steps: list | None = None, **extra) -> dict:
    return {
        "slug": slug,
        "name": slug.title(),
        "steps": steps or [
            {"key": "first", "type": "python", "action": "core.echo", "args": {"n": 1}},
            {"key": "second", "type": "python", "action": "core.echo",
             "args": {"prev": "{{ steps.first.output.n }}"}},
        ],
        **extra,
    }


# --- definitions and runs the engine tests build -----------------------------------------------

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


def callback_definition(**wait):
    return simple_definition(steps=[
        echo("a", url="{{ steps.hold.callback_url }}"),
        {"key": "hold", "type": "wait", "timeout_seconds": 600, **wait},
        {"key": "b", "type": "python", "action": "core.echo",
         "args": {"got": "{{ steps.hold.output.pr_url }}"}},
    ])


def token_of(run, key="hold"):
    return callback_token(steps_of(run)[key].callback_nonce)


def approval_definition():
    return simple_definition(steps=[
        echo("build", artifact="a.tgz"),
        {"key": "agent", "type": "python", "action": "core.echo",
         "args": {"from": "{{ steps.build.output.artifact }}"}},
        {"key": "review", "type": "approval", "assignees": {"groups": ["reviewers"]},
         "instructions": "Ship {{ steps.agent.output.from }}?", "redo_to": "build"},
        echo("publish", needs=["review"]),
    ])


def failing_then_fixed_definition():
    return simple_definition(steps=[
        echo("a", v=1),
        {"key": "b", "type": "python", "action": "core.echo", "args": {"v": 2}},
        {"key": "c", "type": "python", "action": "test.outage"},
        echo("d"),
    ])


def concurrency_definition(policy):
    return simple_definition(
        input={"repo": {"type": "string", "required": True}},
        concurrency={"key": "{{ input.repo }}", "limit": 1, "policy": policy},
        steps=[{"key": "nap", "type": "python", "action": "core.sleep",
                "args": {"seconds": 0}}],
    )
