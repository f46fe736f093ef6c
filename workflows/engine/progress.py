"""Moving a run forward after a step changes: which steps are ready (queued in one UPDATE,
`when` conditions skipped on the way) and what the run's status is (`run_settle`).

Every function here runs inside a transaction that holds the run's row lock
(`locking.lock_run`), so two steps of one run finishing at once cannot both miss the step that
needs them both. Status moves go through `transitions`, the attempts a cancel closes through
`attempts`; the tasks of the steps queued here are sent by the verb that called it
(`dispatch.enqueue`), once the transaction commits.
"""

from __future__ import annotations

from collections.abc import Callable

from django.utils import timezone

from workflows.engine import agents, attempts
from workflows.engine.context import resolution_context, resource_scope
from workflows.engine.instance_pauses import instances_released
from workflows.engine.instance_states import instances_cancel, is_fan_out
from workflows.engine.step_conditions import (
    ConditionError,
    optional,
    step_failed_counts,
    when_holds,
)
from workflows.engine.transitions import (
    run_transition,
    step_transition,
    steps_transition,
)
from workflows.engine.versions import step_definitions
from workflows.models import ActorKind, Run, StepRun
from workflows.references import ReferenceUnresolved, is_single_reference, resolve
from workflows.states import (
    READY_REASON,
    RUN_TERMINAL,
    STEP_ACTIVE,
    STEP_DONE,
    STEP_TERMINAL,
    AttemptStatus,
    ErrorKind,
    RunStatus,
    StepStatus,
    error_kind_of,
)
from workflows.steps import get_step_type


def ready_steps(run: Run, steps: dict[str, StepRun], *, actor_kind: str = ActorKind.SYSTEM,
                actor: str = "") -> list[StepRun]:
    """The not-started steps whose `needs` are all done (or failed with `continue_on_error`),
    in definition order. Steps whose `when` is false are skipped on the way, and those whose
    CEL `when` cannot be evaluated fail with `condition_error` (either may make more steps
    ready)."""
    if run.status in RUN_TERMINAL:
        return []
    defs = step_definitions(run)
    changed = True
    while changed:
        changed = False
        ready: list[StepRun] = []
        for step in steps.values():
            if step.status != StepStatus.NOT_STARTED:
                continue
            needs = defs[step.key]["needs"]
            if not all(steps[n].status in STEP_DONE or (
                    steps[n].status == StepStatus.FAILED and optional(defs.get(n)))
                    for n in needs if n in steps):
                continue
            condition = defs[step.key].get("when")
            try:
                holds = condition is None or _holds(run, steps, condition)
            except ConditionError as exc:
                step_transition(step, StepStatus.FAILED, actor_kind=actor_kind, actor=actor,
                                reason=exc.error["message"], fields={"error": exc.error})
                changed = True
                continue
            if not holds:
                step_transition(step, StepStatus.SKIPPED, actor_kind=actor_kind, actor=actor,
                                reason=f"condition {condition} is false")
                changed = True
                continue
            ready.append(step)
    return ready


def queue_steps(ready: list[StepRun], *, actor_kind: str = ActorKind.SYSTEM, actor: str = "",
                reason: str = "") -> list[StepRun]:
    """not_started → queued for each of `ready`, in one UPDATE. Returns the ones queued."""
    return steps_transition(ready, StepStatus.QUEUED, actor_kind=actor_kind, actor=actor,
                            reason=reason or READY_REASON,
                            fields={"enqueued_at": timezone.now(), "not_before": None})



def queue_ready(run: Run, steps: dict[str, StepRun], *, actor_kind: str = ActorKind.SYSTEM,
                actor: str = "", reason: str = "") -> list[StepRun]:
    """Queue every step that is ready (see `ready_steps`). Returns the newly queued ones."""
    return queue_steps(ready_steps(run, steps, actor_kind=actor_kind, actor=actor),
                       actor_kind=actor_kind, actor=actor, reason=reason)


def _holds(run: Run, steps: dict[str, StepRun], condition: str) -> bool:
    """A `{{ ref }}` is truthy; anything else is CEL (raises ConditionError)."""
    if is_single_reference(condition):
        return _truthy(run, steps, condition)
    return when_holds(run, steps, condition)


def _truthy(run: Run, steps: dict[str, StepRun], condition: str) -> bool:
    try:
        return bool(resolve(condition, resolution_context(run, steps.values(), condition),
                            scope=resource_scope(run)))
    except ReferenceUnresolved:
        return False


def failed_settle(run: Run, steps: dict[str, StepRun], step: StepRun, *,
                  actor_kind: str = ActorKind.SYSTEM, actor: str = "",
                  reason: str = "") -> list[StepRun]:
    """`step` just failed: a `continue_on_error` step lets the steps after it go on (queued
    here, returned for the caller to send on commit); then the run's status is settled."""
    queued: list[StepRun] = []
    if step.status == StepStatus.FAILED and optional(step_definitions(run).get(step.key)):
        steps[step.key] = step
        queued = queue_ready(run, steps)
    run_settle(run, steps, actor_kind=actor_kind, actor=actor, reason=reason)
    return queued


def run_settle(run: Run, steps: dict[str, StepRun], *, actor_kind: str = ActorKind.SYSTEM,
               actor: str = "", reason: str = "") -> None:
    """Bring the run's status in line with its steps'. A failed or rejected step fails the run
    and cancels its other active steps, unless it is a failed `continue_on_error` step; all
    steps done (or failed optionally) completes it."""
    if run.status in RUN_TERMINAL:
        return
    statuses = [s.status for s in steps.values()]
    failed = [s for s in steps.values() if s.status in (StepStatus.FAILED, StepStatus.REJECTED)]
    if failed:
        defs = step_definitions(run)
        optional_keys = {s.key for s in failed if not step_failed_counts(s.status, defs.get(s.key))}
        failed = [s for s in failed if s.key not in optional_keys]
        # A failed optional step counts as done for the run's status, as a skipped one does.
        statuses = [StepStatus.SKIPPED if s.key in optional_keys else s.status
                    for s in steps.values()]
    if failed:
        first = failed[0]
        error = {"step": first.key, **(first.error or {"message": f"step {first.key} {first.status}"})}
        cancel_active_steps(run, steps, reason=f"run failed at step {first.key}")
        run_transition(run, RunStatus.FAILED, actor_kind=actor_kind, actor=actor,
                       reason=reason or f"step {first.key} {first.status}",
                       fields={"error": error,
                               "error_kind": error_kind_of(first.status, first.error)})
        run_after_terminal(run)
        return
    if all(s in STEP_TERMINAL for s in statuses):
        if all(s in STEP_DONE for s in statuses):
            last = list(steps.values())[-1]
            run_transition(run, RunStatus.COMPLETED, actor_kind=actor_kind, actor=actor,
                           reason=reason or "all steps done", fields={"output": last.output})
        else:
            run_transition(run, RunStatus.CANCELED, actor_kind=actor_kind, actor=actor,
                           reason=reason or "steps were canceled")
        run_after_terminal(run)
        return
    if any(s in (StepStatus.RUNNING,) for s in statuses) or (
        StepStatus.QUEUED in statuses and run.status != RunStatus.QUEUED
    ):
        target = RunStatus.RUNNING
    elif StepStatus.QUEUED in statuses:
        target = RunStatus.QUEUED
    elif StepStatus.WAITING_FOR_APPROVAL in statuses:
        target = RunStatus.WAITING_FOR_APPROVAL
    elif StepStatus.WAITING in statuses:
        target = RunStatus.WAITING
    else:
        # Nothing active and nothing ready: a step's needs can never be met (should not
        # happen with a validated definition). Fail loudly rather than hang.
        stuck = [s.key for s in steps.values() if s.status == StepStatus.NOT_STARTED]
        run_transition(run, RunStatus.FAILED, actor_kind=actor_kind, actor=actor,
                       reason=f"steps {stuck} can never start",
                       fields={"error": {"message": f"steps {stuck} can never start"},
                               "error_kind": ErrorKind.ERROR})
        run_after_terminal(run)
        return
    if target != run.status:
        run_transition(run, target, actor_kind=actor_kind, actor=actor, reason=reason)


def cancel_active_steps(run: Run, steps: dict[str, StepRun], *, reason: str,
                        actor_kind: str = ActorKind.SYSTEM, actor: str = "",
                        include_not_started: bool = False) -> None:
    for step in steps.values():
        if step.status in STEP_ACTIVE or (
            include_not_started and step.status == StepStatus.NOT_STARTED
        ):
            was = step.status
            step_transition(step, StepStatus.CANCELED, actor_kind=actor_kind, actor=actor,
                            reason=reason)
            if was == StepStatus.RUNNING and is_fan_out(step_definitions(run)[step.key]):
                instances_cancel(step, reason=reason, actor_kind=actor_kind, actor=actor)
                instances_released(run, step)  # a fanned `flow` step: its children
            if was in (StepStatus.WAITING, StepStatus.WAITING_FOR_APPROVAL):
                attempts.attempt_finish(step, AttemptStatus.CANCELED)
                step_type = get_step_type(step.type)
                if step_type is not None:
                    step_type.on_cancel(run=run, step_run=step)
                if was == StepStatus.WAITING:  # a remote agent's wait: its on_cancel command
                    agents.on_cancel_mark(step, step_definitions(run).get(step.key, {}))


# Called as listener(flow_id=..., concurrency_key=...) when a run holding a concurrency slot
# ends. Admission builds on this module, so it registers itself here (`on_slot_freed`) rather
# than being imported: see workflows/engine/admission.py.
_slot_freed_listeners: list[Callable[..., None]] = []


def on_slot_freed(listener: Callable[..., None]) -> None:
    """Register what admits the next held run when a slot frees up (admission does, once)."""
    if listener not in _slot_freed_listeners:
        _slot_freed_listeners.append(listener)


def run_after_terminal(run: Run) -> None:
    """A run ended: admit the next run waiting for its concurrency slot, if any."""
    if run.concurrency_key is not None:
        for listener in _slot_freed_listeners:
            listener(flow_id=run.flow_id, concurrency_key=run.concurrency_key)
