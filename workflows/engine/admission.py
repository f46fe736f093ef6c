"""Admission: the concurrency policy of a flow (`concurrency: {key, limit, policy}`).

A new run is admitted (created → queued, its first ready steps queued) when its concurrency
key has a free slot; otherwise the policy decides: `queue` holds it (created, event run_held)
until a run of the same key ends, `skip` cancels it, `cancel_running` cancels the oldest active
runs to make room. Every function here runs inside the caller's transaction; the flow row lock
taken by `run_admit` serializes two starts that race for the last slot.

`progress.run_after_terminal` calls back into `run_admit_next` when a run ends: progress sits
below admission, so admission registers that listener with `progress.on_slot_freed` when it is
imported (the `workflows.engine` package imports it, so it is always set).
"""

from __future__ import annotations

from workflows.engine import dispatch, progress
from workflows.engine.locking import load_steps
from workflows.engine.transitions import event_record, run_transition
from workflows.errors import TransitionNotAllowed
from workflows.models import ActorKind, Flow, Run, StepRun
from workflows.permissions import actor_name
from workflows.states import RUN_TERMINAL, EventKind, RunStatus

ACTIVE_RUN_STATUSES = (
    RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING, RunStatus.WAITING_FOR_APPROVAL,
)


def run_admit(run: Run, *, steps: dict[str, StepRun] | None = None) -> None:
    """Apply the flow's concurrency policy, holding the flow row lock so two starts cannot both
    take the last slot. A run with no concurrency key takes no lock (it may have been written
    `queued` already by its creator, see `services.runs`). `steps`: the run's step runs as just
    written, if the caller has them (saves reading them back)."""
    concurrency = run.definition.get("concurrency") or {}
    if run.concurrency_key is None:
        _admit(run, steps)
        return
    Flow.objects.select_for_update().filter(pk=run.flow_id).first()
    active = list(
        Run.objects.filter(flow_id=run.flow_id, concurrency_key=run.concurrency_key,
                           status__in=ACTIVE_RUN_STATUSES).order_by("id")
    )
    limit = int(concurrency.get("limit") or 1)
    if len(active) < limit:
        _admit(run)
        return
    policy = concurrency.get("policy", "queue")
    reason = f"concurrency limit {limit} reached for key {run.concurrency_key!r}"
    if policy == "skip":
        run_cancel(run, actor=None, reason=f"skipped: {reason}")
        return
    if policy == "cancel_running":
        for older in active[: len(active) - limit + 1]:
            run_cancel(older, actor=None, reason=f"canceled by run {run.pk}: {reason}",
                              admit_next=False)
        _admit(run)
        return
    event_record(run_id=run.pk, kind=EventKind.RUN_HELD, reason=f"waiting: {reason}")


def _admit(run: Run, steps: dict[str, StepRun] | None = None) -> None:
    if run.status == RunStatus.CREATED:
        run_transition(run, RunStatus.QUEUED, reason="admitted")
    if steps is None or any(s.pk is None for s in steps.values()):
        steps = load_steps(run)
    queued = progress.queue_ready(run, steps)
    progress.run_settle(run, steps)
    dispatch.enqueue([s.pk for s in queued])


def run_admit_next(*, flow_id: int, concurrency_key: str) -> None:
    """A slot freed up: admit the oldest run held for this concurrency key."""
    held = (Run.objects.filter(flow_id=flow_id, concurrency_key=concurrency_key,
                               status=RunStatus.CREATED).select_related("version")
            .order_by("id").first())
    if held is not None:
        run_admit(held)


def run_cancel(run: Run, *, actor, reason: str, admit_next: bool = True) -> None:
    """Cancel `run` (locked by the caller) and every step that has not ended. Raises
    TransitionNotAllowed when the run has already ended."""
    if run.status in RUN_TERMINAL:
        raise TransitionNotAllowed("run", run.status, RunStatus.CANCELED,
                                   f"run {run.pk} has already ended")
    actor_kind = ActorKind.SYSTEM if actor is None else ActorKind.USER
    steps = load_steps(run)
    progress.cancel_active_steps(run, steps, reason=reason, actor_kind=actor_kind,
                                 actor=actor_name(actor), include_not_started=True)
    run_transition(run, RunStatus.CANCELED, actor_kind=actor_kind, actor=actor_name(actor),
                   reason=reason)
    if admit_next:
        progress.run_after_terminal(run)


progress.on_slot_freed(run_admit_next)
