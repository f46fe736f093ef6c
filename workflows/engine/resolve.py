"""Ending a step from outside its worker: `step_resolve(run=, step_run=, outcome=, actor=)`.

Whatever ends a paused step — a reviewer's decision, a callback, a timer, a timeout — and a
worker the sweeper found dead end it here, and only here: the outcome says *what* happened
(`Completed`, `Failed`, `Rejected`, `CallbackReceived`, `WorkerLost`), and this module writes
it in the one order the exactly-once argument is checked against:

1. the step's move (`transitions.step_transition`: a compare-and-set with its Event); a move
   that lost its race writes nothing more;
2. its attempt closed (`attempts.attempt_finish`);
3. for a completion, the steps it makes ready queued (`progress.queue_ready`);
4. the run's status settled (`progress.run_settle`);
5. the queued steps' tasks sent when the transaction commits (`dispatch.enqueue`).

Callers (approvals, callbacks, the sweeper, the executor for a callback that came early) hold
the run's row lock (`locking.lock_run`, inside `transaction.atomic()`) and have read the step
run under it; they check their own rules (who may decide, whether a token is spent) and never
order these writes themselves. The run's own moves are attributed to the person who decided
(`ActorKind.USER`), and to the system otherwise (a callback, a timer, a timeout).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from workflows.engine import agents, attempts, dispatch, progress
from workflows.engine.locking import load_steps
from workflows.engine.transitions import event_record, step_transition
from workflows.models import ActorKind, Run, StepRun
from workflows.states import AttemptStatus, EventKind, StepStatus

__all__ = ["CallbackReceived", "Completed", "Failed", "Rejected", "WaitEnded", "WorkerLost",
           "step_resolve"]


def step_resolve(*, run: Run, step_run: StepRun, outcome: Any,
                 actor_kind: str = ActorKind.SYSTEM, actor: str = "") -> bool:
    """End `step_run` with `outcome` (one of this module's outcome types) and move the run on.
    Needs the run's row lock (see the module docstring). Returns False when the step had
    already moved on (nothing written)."""
    return outcome.apply(run, step_run, actor_kind, actor)


def _run_actor(actor_kind: str, actor: str) -> dict[str, str]:
    if actor_kind == ActorKind.USER:
        return {"actor_kind": actor_kind, "actor": actor}
    return {"actor_kind": ActorKind.SYSTEM, "actor": ""}


@dataclass(frozen=True)
class Completed:
    """The step completes with `output`; the steps it makes ready are queued and sent.
    `kind`: the step's Event kind (default `step_completed`)."""

    output: Any
    kind: str | None = None
    reason: str = ""
    data: dict[str, Any] | None = None

    def apply(self, run: Run, step_run: StepRun, actor_kind: str, actor: str) -> bool:
        if not step_transition(step_run, StepStatus.COMPLETED, actor_kind=actor_kind,
                               actor=actor, kind=self.kind, reason=self.reason, data=self.data,
                               fields={"output": self.output}):
            return False
        attempts.attempt_finish(step_run, AttemptStatus.COMPLETED, output=self.output)
        steps = load_steps(run)
        steps[step_run.key] = step_run
        queued = progress.queue_ready(run, steps)
        progress.run_settle(run, steps, **_run_actor(actor_kind, actor))
        dispatch.enqueue([s.pk for s in queued])
        return True


@dataclass(frozen=True)
class Failed:
    """The step ends `status` (failed, or rejected by a timeout's `on_timeout: reject`) with
    `error`, its attempt failed with the same error; the run fails (`run_reason`)."""

    error: dict[str, Any]
    status: str = StepStatus.FAILED
    kind: str | None = None
    reason: str = ""
    data: dict[str, Any] | None = None
    run_reason: str = ""

    def apply(self, run: Run, step_run: StepRun, actor_kind: str, actor: str) -> bool:
        if not step_transition(step_run, self.status, actor_kind=actor_kind, actor=actor,
                               kind=self.kind, reason=self.reason, data=self.data,
                               fields={"error": self.error}):
            return False
        attempts.attempt_finish(step_run, AttemptStatus.FAILED, error=self.error)
        queued = progress.failed_settle(run, load_steps(run), step_run,
                                        **_run_actor(actor_kind, actor), reason=self.run_reason)
        dispatch.enqueue([s.pk for s in queued])
        return True


@dataclass(frozen=True)
class Rejected:
    """A reviewer rejected: the step is rejected with the decision as `output` and `error`,
    its attempt rejected with the decision as output; the run fails (`run_reason`)."""

    output: Any
    error: dict[str, Any]
    kind: str | None = None
    reason: str = ""
    data: dict[str, Any] | None = None
    run_reason: str = ""

    def apply(self, run: Run, step_run: StepRun, actor_kind: str, actor: str) -> bool:
        if not step_transition(step_run, StepStatus.REJECTED, actor_kind=actor_kind,
                               actor=actor, kind=self.kind, reason=self.reason, data=self.data,
                               fields={"output": self.output, "error": self.error}):
            return False
        attempts.attempt_finish(step_run, AttemptStatus.REJECTED, output=self.output)
        progress.run_settle(run, load_steps(run), **_run_actor(actor_kind, actor),
                            reason=self.run_reason)
        return True


@dataclass(frozen=True)
class CallbackReceived:
    """A wait step's callback arrived with `payload` (already storable). Who sent it is kept
    for the step panel (never the token). A waiting step completes with the payload; a step
    not waiting yet keeps it, and completes with it when it reaches its wait (executor)."""

    payload: Any
    remote_addr: str = ""
    user_agent: str = ""

    def apply(self, run: Run, step_run: StepRun, actor_kind: str, actor: str) -> bool:
        now = timezone.now()
        sender = {"callback_remote_addr": self.remote_addr[:64],
                  "callback_user_agent": self.user_agent[:300]}
        StepRun.objects.filter(pk=step_run.pk).update(
            callback_payload=self.payload, callback_received_at=now, **sender
        )
        step_run.callback_payload = self.payload
        step_run.callback_received_at = now
        for name, value in sender.items():
            setattr(step_run, name, value)
        data = {"remote_addr": self.remote_addr[:64], "user_agent": self.user_agent[:300]}
        if step_run.status == StepStatus.WAITING:
            Completed(output=self.payload, reason="callback received", data=data).apply(
                run, step_run, actor_kind, actor)
        else:
            event_record(
                run_id=run.pk, step_run_id=step_run.pk, kind=EventKind.CALLBACK_RECEIVED_EARLY,
                actor_kind=actor_kind, actor=actor,
                reason="callback arrived before the wait was reached; kept", data=data,
            )
        return True


@dataclass(frozen=True)
class WorkerLost:
    """The running step's worker stopped heartbeating and its lease expired (seen at `now`).
    Its attempt fails with WorkerLost (recorded even if the worker never wrote it). Not the
    step's fault, so it does not use up a retry: the step is queued again, until it has lost
    `attempts.MAX_WORKER_LOSSES` workers; then it fails and so does the run."""

    now: datetime

    def apply(self, run: Run, step_run: StepRun, actor_kind: str, actor: str) -> bool:
        number = step_run.attempt_count
        error = {"type": "WorkerLost",
                 "message": f"the worker ({step_run.worker}) stopped heartbeating; "
                            "lease expired"}
        attempts.attempt_finish(step_run, AttemptStatus.FAILED, error=error, record_missing=True)
        losses = attempts.worker_losses(step_run)
        if losses < attempts.MAX_WORKER_LOSSES:
            step_transition(
                step_run, StepStatus.QUEUED, actor_kind=actor_kind, actor=actor,
                kind=EventKind.LEASE_EXPIRED, expected_attempt=number,
                reason=error["message"] + "; queued again",
                data={"attempt": number, "worker": step_run.worker},
                fields={"retry_base": step_run.retry_base + 1, "enqueued_at": self.now,
                        "lease_until": None, "not_before": None},
            )
            dispatch.enqueue([step_run.pk])
        else:
            step_transition(step_run, StepStatus.FAILED, actor_kind=actor_kind, actor=actor,
                            kind=EventKind.LEASE_EXPIRED, expected_attempt=number,
                            fields={"error": error},
                            reason=f"{error['message']}; {losses} workers lost, giving up")
            progress.run_settle(run, load_steps(run))
        return True


@dataclass(frozen=True)
class WaitEnded:
    """A wait ends without its callback (timed out, missed its agent's heartbeat, went over
    its agent's budget): `outcome` (a `Failed` or a `Completed`) ends it, then the wait's
    `on_cancel` command, if it has one, is marked due and sent once the transaction commits
    (`agents.on_cancel_mark`; it runs at most once, see workflows/engine/agents.py)."""

    outcome: Any
    params: dict[str, Any]

    def apply(self, run: Run, step_run: StepRun, actor_kind: str, actor: str) -> bool:
        if not self.outcome.apply(run, step_run, actor_kind, actor):
            return False
        agents.on_cancel_mark(step_run, self.params)
        return True
