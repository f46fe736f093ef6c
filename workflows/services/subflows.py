"""Subflows: the `flow` step type, which starts a run of another flow's live release and waits
for it (DESIGN.md §9).

The step type is registered by `WorkflowsConfig.ready()`, like the approval step: the engine
knows it only through its hooks. `execute` only pauses the step (a wait without a callback);
`on_pause`, inside the engine's transaction with the parent run locked, starts the child through
the same `run_start` as any run (its version pinned then), linked by `Run.parent_step`. A child
that cannot start (its flow gone or without a live release, too deep, an input it refuses)
ends the step at once through `engine.step_resolve`.

The child's end resolves the parent's step through `engine.step_resolve` too, but only once the
child's own transaction has committed (`transaction.on_commit`), in a transaction that locks
the parent alone. A cancel goes the other way — the parent locked, then each active child — so
no transaction ever holds a child's lock while waiting for its parent's: the two orders never
meet (no deadlock). Retrying the parent reuses a completed `flow` step like any completed step
(its output is the child's), so completed children are not run again.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from workflows import engine
from workflows.errors import WorkflowError
from workflows.models import Flow, FlowVersion, Run, StepInstance, StepRun, TriggerKind
from workflows.services.runs import run_start
from workflows.states import RUN_TERMINAL, EventKind, RunStatus, StepStatus
from workflows.steps.base import (
    Problem,
    StepContext,
    StepFailed,
    StepOutcome,
    StepType,
    problem,
    register_step_type,
)

logger = logging.getLogger(__name__)

__all__ = ["FlowStep", "subflow_problems", "subflow_run_ended", "subflows_repair"]


@register_step_type
class FlowStep(StepType):
    """Runs another flow's live release with `input` and waits for it; its output is the child
    run's output, and a child that fails fails the step."""

    name = "flow"
    param_keys = frozenset({"flow", "input"})
    input_keys = frozenset({"input"})
    # With for_each: one child run per item, each instance waiting for its own child.
    pauses_instances = True

    def validate(self, step: dict[str, Any], path: str) -> list[Problem]:
        problems = super().validate(step, path)
        slug = step.get("flow")
        if not isinstance(slug, str) or not slug:
            problems.append(problem(f"{path}.flow", "required: the slug of the flow to run"))
        if "timeout_seconds" in step:
            # A timed-out wait would fail the step and leave its child running: bound the
            # child's own steps instead.
            problems.append(problem(f"{path}.timeout_seconds",
                                    "a flow step waits for its child run to end; set "
                                    "timeout_seconds on the child flow's steps instead"))
        if "input" in step and not isinstance(step["input"], dict):
            problems.append(problem(f"{path}.input", "must be a mapping of the child run's "
                                                     "input, such as {builds: '{{ steps.build.output }}'}"))
        return problems

    def release_problems(self, step: dict[str, Any], path: str) -> list[Problem]:
        slug = step.get("flow")
        if not isinstance(slug, str) or not slug:
            return []
        flow = Flow.objects.filter(slug=slug).only("id", "live_version_id").first()
        if flow is None:
            return [problem(f"{path}.flow", f"no flow {slug!r}")]
        if flow.live_version_id is None:
            return [problem(f"{path}.flow", f"flow {slug!r} has no live release; release and "
                                            "promote one first")]
        return []

    def execute(self, ctx: StepContext) -> StepOutcome:
        ctx.log(f"starting a run of flow {ctx.step.get('flow')}\n")
        return StepOutcome("wait")

    def on_pause(self, *, run: Any, step_run: Any, steps: dict[str, Any],
                 params: dict[str, Any], attempt_number: int) -> None:
        subflow_start(run=run, step_run=step_run, params=params)

    def on_instance_pause(self, *, run: Any, step_run: Any, instance: Any,
                          params: dict[str, Any]) -> dict[str, Any]:
        child = _child_start(run=run, step_run=step_run, params=params, instance=instance)
        if isinstance(child, tuple):
            raise StepFailed(child[1], error_type=child[0], retryable=False)
        return {"child_run": child}

    def on_cancel(self, *, run: Any, step_run: Any) -> None:
        subflows_cancel(step_run=step_run, reason=f"parent run {run.pk} step {step_run.key} "
                                                  "was canceled")


def _depth(run: Run) -> int:
    """How many subflow levels lie above `run` (0: a top-level run); one query per level."""
    depth = 0
    parent_step_id = run.parent_step_id
    while parent_step_id is not None and depth <= settings.WF_SUBFLOW_MAX_DEPTH:
        depth += 1
        parent_step_id = (Run.objects.filter(step_runs__pk=parent_step_id)
                          .values_list("parent_step_id", flat=True).first())
    return depth


def _fail_step(run: Run, step_run: StepRun, error_type: str, message: str,
               **extra: Any) -> None:
    engine.step_resolve(run=run, step_run=step_run, outcome=engine.Failed(
        error={"type": error_type, "message": message, **extra},
        reason=message))


def subflow_start(*, run: Run, step_run: StepRun, params: dict[str, Any]) -> Run | None:
    """Start the child run of a `flow` step that just paused (parent run locked by the
    engine). Returns the child, or None when the step failed instead."""
    child = _child_start(run=run, step_run=step_run, params=params)
    if isinstance(child, tuple):
        _fail_step(run, step_run, *child)
        return None
    return child


def _child_start(*, run: Run, step_run: StepRun, params: dict[str, Any],
                 instance: StepInstance | None = None) -> Run | tuple[str, str]:
    """Start the child run of `step_run` (of its `instance`, for a fanned-out step: the
    instance's index is in the child's trigger payload and its `parent`). Returns the child,
    or (error type, message) when it cannot start."""
    slug = params.get("flow")
    flow = Flow.objects.filter(slug=slug).first()
    if flow is None or flow.live_version_id is None:
        why = "does not exist" if flow is None else "has no live release"
        return "SubflowUnavailable", f"flow {slug!r} {why}"
    depth = _depth(run) + 1
    if depth > settings.WF_SUBFLOW_MAX_DEPTH:
        return ("SubflowTooDeep",
                f"a run of {slug!r} would be {depth} subflows deep; WF_SUBFLOW_MAX_DEPTH "
                f"allows {settings.WF_SUBFLOW_MAX_DEPTH}")
    payload: dict[str, Any] = {"parent_run": run.pk, "parent_step": step_run.key}
    if instance is not None:
        payload["parent_instance"] = instance.index
    try:
        child, _ = run_start(flow=flow, input=params.get("input") or {},
                             trigger_kind=TriggerKind.SUBFLOW, trigger_payload=payload,
                             parent_step=step_run)
    except WorkflowError as exc:
        return "SubflowNotStarted", f"the run of flow {slug!r} could not start: {exc}"
    where = "" if instance is None else f" for instance {instance.index}"
    engine.event_record(run_id=run.pk, step_run_id=step_run.pk, kind=EventKind.SUBFLOW_STARTED,
                        instance_id=None if instance is None else instance.pk,
                        reason=f"started run {child.pk} of flow {slug}{where}",
                        data={"child_run": child.pk, "flow": slug,
                              **({} if instance is None else {"instance": instance.index})})
    return child


def subflows_cancel(*, step_run: StepRun, reason: str) -> None:
    """Cancel the active children of `step_run` (its run is locked by the caller; each child
    is locked after it, never the other way round)."""
    for child_id in (Run.objects.filter(parent_step=step_run)
                     .exclude(status__in=RUN_TERMINAL).values_list("pk", flat=True)):
        child = engine.lock_run(child_id)
        if child.status not in RUN_TERMINAL:
            engine.run_cancel(child, actor=None, reason=reason)


def subflow_run_ended(*, run: Run, from_status: str) -> None:
    """engine.on_run_ended listener: a child that ended resolves its parent's step once its
    own transaction has committed (see the module docstring)."""
    if run.parent_step_id is None:
        return
    child_id, parent_step_id = run.pk, run.parent_step_id
    transaction.on_commit(lambda: _parent_resolve(child_id, parent_step_id))


def subflows_repair() -> int:
    """The sweep's part: `flow` steps still waiting although their child has ended (the
    process stopped between the child's commit and its parent's resolution). Returns how many
    were resolved."""
    resolved = 0
    for step_id in StepRun.objects.filter(type="flow", status=StepStatus.WAITING).values_list(
            "pk", flat=True):
        child = (Run.objects.filter(parent_step_id=step_id).order_by("-pk")
                 .values_list("pk", "status").first())
        if child is not None and child[1] in RUN_TERMINAL:
            resolved += _parent_resolve(child[0], step_id)
    # Instances of fanned-out `flow` steps waiting on a child that has ended.
    for child_id, step_id in (StepInstance.objects.filter(
            status=StepStatus.WAITING, step_run__type="flow", child_run__status__in=RUN_TERMINAL)
            .values_list("child_run_id", "step_run_id")):
        resolved += _parent_resolve(child_id, step_id)
    return resolved


def _outcome(child: Run) -> Any:
    """The parent's step (or instance) outcome for its ended child."""
    if child.status == RunStatus.COMPLETED:
        return engine.Completed(output=child.output, reason=f"subflow run {child.pk} completed",
                                data={"child_run": child.pk})
    error = child.error or {}
    message = (f"subflow run {child.pk} of {child.flow.slug} {child.status}"
               + (f": {error.get('message')}" if error.get("message") else ""))
    return engine.Failed(
        error={"type": "SubflowFailed", "message": message, "child_run": child.pk,
               "child_error": error or None},
        reason=message, data={"child_run": child.pk})


def _parent_resolve(child_id: int, parent_step_id: int) -> bool:
    instance_id = (StepInstance.objects.filter(step_run_id=parent_step_id, child_run_id=child_id,
                                               status=StepStatus.WAITING)
                   .values_list("pk", flat=True).first())
    if instance_id is not None:
        return _instance_resolve(child_id, instance_id)
    try:
        with transaction.atomic():
            step = StepRun.objects.filter(pk=parent_step_id).only("run_id").first()
            if step is None:
                return False
            parent = engine.lock_run(step.run_id)
            step = StepRun.objects.get(pk=parent_step_id)
            if step.status != StepStatus.WAITING or parent.status in RUN_TERMINAL:
                return False
            child = Run.objects.select_related("flow").get(pk=child_id)
            engine.step_resolve(run=parent, step_run=step, outcome=_outcome(child))
            return True
    except Exception:  # noqa: BLE001 - after commit: nothing to roll back; the sweeper's turn
        logger.exception("could not resolve the parent step %s of subflow run %s",
                         parent_step_id, child_id)
        return False


def _instance_resolve(child_id: int, instance_id: int) -> bool:
    """The child of an instance of a fanned-out `flow` step ended: the instance ends with it
    (`engine.instance_resolve`: no lock on the parent run but to settle the step when this
    was its last instance)."""
    try:
        child = Run.objects.select_related("flow").get(pk=child_id)
        if child.status not in RUN_TERMINAL:
            return False
        return engine.instance_resolve(instance_id=instance_id, outcome=_outcome(child))
    except Exception:  # noqa: BLE001 - after commit: nothing to roll back; the sweeper's turn
        logger.exception("could not resolve instance %s of subflow run %s", instance_id,
                         child_id)
        return False


def subflow_problems(*, slug: str, definition: dict[str, Any]) -> list[Problem]:
    """Release-time check: the flows this definition calls must not call it back, directly or
    through others (following each called flow's live release). One problem per loop, naming
    it, at the `flow` step that closes it."""
    problems: list[Problem] = []
    for index, step in enumerate(definition.get("steps") or []):
        if step.get("type") != "flow" or not isinstance(step.get("flow"), str):
            continue
        loop = _path_back(step["flow"], slug)
        if loop is not None:
            problems.append(problem(f"steps[{index}].flow",
                                    "subflows form a loop: " + " -> ".join([slug, *loop])))
    return problems


def _called(slug: str, cache: dict[str, list[str]]) -> list[str]:
    if slug not in cache:
        version_id = Flow.objects.filter(slug=slug).values_list("live_version_id", flat=True).first()
        steps = []
        if version_id is not None:
            definition = FlowVersion.objects.filter(pk=version_id).values_list(
                "definition", flat=True).first() or {}
            steps = definition.get("steps") or []
        cache[slug] = [s["flow"] for s in steps
                       if s.get("type") == "flow" and isinstance(s.get("flow"), str)]
    return cache[slug]


def _path_back(start: str, target: str) -> list[str] | None:
    """The chain of flows from `start` that calls `target` again, or None."""
    cache: dict[str, list[str]] = {}
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        slug, path = stack.pop()
        if slug == target:
            return path
        if slug in seen:
            continue
        seen.add(slug)
        stack.extend((nxt, [*path, nxt]) for nxt in _called(slug, cache))
    return None


