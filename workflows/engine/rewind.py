"""Rewind (redo): send a run back to an earlier step.

The one sanctioned way back through the state machine (`STEP_REDO_TRANSITIONS`): the target
step gets a new attempt, the steps between it and the step that asked for the rewind start
again (their attempts and events stay), wait steps get fresh callback tokens. An approval's
"redo" decision is the caller today (`approvals.services`); it checks who may decide, this
module writes everything the rewind changes.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from workflows.definitions import step_ancestors, step_descendants
from workflows.engine import attempts, dispatch
from workflows.engine.callback_tokens import callback_mint
from workflows.engine.locking import load_steps
from workflows.engine.transitions import run_transition, step_transition
from workflows.errors import Conflict
from workflows.models import ActorKind, FanOut, Run, StepInstance, StepRun
from workflows.states import AttemptStatus, EventKind, RunStatus, StepStatus


def rewind_target(*, definition: dict[str, Any], step_key: str, to_step: str | None) -> str:
    """The step a rewind from `step_key` goes back to: `to_step`, or the step just before it.
    Raises Conflict when there is none or it does not come before `step_key`."""
    keys = [s["key"] for s in definition["steps"]]
    target = to_step
    if not target:
        position = keys.index(step_key)
        if position == 0:
            raise Conflict("the approval is the first step; there is nothing to redo")
        target = keys[position - 1]
    if target not in keys:
        raise Conflict(f"there is no step {target!r} to redo")
    if target not in step_ancestors(definition, step_key):
        raise Conflict(f"step {target!r} does not come before {step_key!r}")
    return target


def run_rewind(*, run: Run, step_run: StepRun, to_step: str | None, actor: str,
               comment: str = "", output: Any = None) -> str:
    """Rewind `run` from the paused `step_run` to `to_step` (or the step just before it; see
    `rewind_target`) and return the target's key: the paused step's attempt is closed as
    canceled with `output` (what was decided), the steps from the target up to `step_run` are
    reset and the target is queued. Raises Conflict, having written nothing, when there is no
    such earlier step. Holds the run lock (call inside transaction.atomic(), after
    `lock_run`)."""
    target = rewind_target(definition=run.definition, step_key=step_run.key, to_step=to_step)
    attempts.attempt_finish(step_run, AttemptStatus.CANCELED, output=output)
    reason = f"redo to {target} by {actor}" + (f": {comment}" if comment else "")
    definition = run.definition
    between = step_descendants(definition, target) & step_ancestors(definition, step_run.key)
    steps = load_steps(run)
    for key in [k for k in steps if k in between or k == step_run.key]:
        _reset(steps[key], actor, reason)
    _reset(steps[target], actor, reason, queue=True)
    if run.status != RunStatus.RUNNING:
        run_transition(run, RunStatus.RUNNING, actor_kind=ActorKind.USER, actor=actor,
                       kind=EventKind.RUN_REDO, reason=reason)
    dispatch.enqueue([steps[target].pk])
    return target


def _reset(step: StepRun, actor: str, reason: str, *, queue: bool = False) -> None:
    fields: dict[str, Any] = {
        "retry_base": step.attempt_count, "output": None, "error": None, "started_at": None,
        "finished_at": None, "timeout_at": None, "not_before": None,
    }
    if step.type == "wait":
        nonce, digest = callback_mint()
        fields.update(callback_nonce=nonce, callback_token_hash=digest, callback_payload=None,
                      callback_received_at=None, callback_issued_at=timezone.now(),
                      callback_remote_addr="", callback_user_agent="")
    if queue:
        fields["enqueued_at"] = timezone.now()
    superseded = _fan_out_superseded(step)
    step_transition(step, StepStatus.QUEUED if queue else StepStatus.NOT_STARTED,
                    actor_kind=ActorKind.USER, actor=actor, kind=EventKind.STEP_REDO,
                    reason=reason, fields=fields, redo=True,
                    data={"superseded_instances": superseded} if superseded else None)


def _fan_out_superseded(step: StepRun) -> int:
    """Close a `for_each` step's last round so its next start fans out again: its instances
    become history (`superseded`, kept with their attempts, logs and events) and its window's
    counters go. Returns how many instances were superseded. The round has ended (a redo goes
    back through steps that have ended), so no worker holds one of them."""
    count = StepInstance.objects.filter(step_run=step).update(superseded=True)
    FanOut.objects.filter(step_run=step).delete()
    return count
