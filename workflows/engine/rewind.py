"""Rewind (redo): send a run back to an earlier step.

The one sanctioned way back through the state machine (`STEP_REDO_TRANSITIONS`): the target
step gets a new attempt, the steps between it and the step that asked for the rewind start
again (their attempts and events stay), wait steps get fresh callback tokens. An approval's
"redo" decision is the caller today (`approvals.services.approval_redo`).
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from workflows.definitions import step_ancestors, step_descendants
from workflows.engine import progress
from workflows.engine.callback_tokens import callback_mint
from workflows.engine.transitions import run_transition, step_transition
from workflows.errors import Conflict
from workflows.models import ActorKind, Run, StepRun
from workflows.states import EventKind, RunStatus, StepStatus


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


def run_rewind(*, run: Run, step_run: StepRun, target: str, actor: str, reason: str) -> None:
    """Rewind `run` from `step_run` (paused; its attempt already closed by the caller) to
    `target`: reset the steps from the target up to `step_run` and queue the target. Holds the
    run lock (call inside transaction.atomic(), after `lock_run`)."""
    definition = run.definition
    between = step_descendants(definition, target) & step_ancestors(definition, step_run.key)
    steps = progress.load_steps(run)
    for key in [k for k in steps if k in between or k == step_run.key]:
        _reset(steps[key], actor, reason)
    _reset(steps[target], actor, reason, queue=True)
    if run.status != RunStatus.RUNNING:
        run_transition(run, RunStatus.RUNNING, actor_kind=ActorKind.USER, actor=actor,
                       kind=EventKind.RUN_REDO, reason=reason)
    progress.enqueue([steps[target].pk])


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
    step_transition(step, StepStatus.QUEUED if queue else StepStatus.NOT_STARTED,
                    actor_kind=ActorKind.USER, actor=actor, kind=EventKind.STEP_REDO,
                    reason=reason, fields=fields, redo=True)
