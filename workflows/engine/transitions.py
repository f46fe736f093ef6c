"""The one place statuses change (DESIGN.md §3); the bottom of the engine.

Each function checks the move against the tables in `workflows.states`, applies it with a
conditional UPDATE (`... WHERE status = expected`) and writes an Event in the same transaction.
An illegal move raises `TransitionNotAllowed`; a lost race (the row is no longer in the expected
status) returns False and writes nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.utils import timezone

from workflows.errors import TransitionNotAllowed
from workflows.models import ActorKind, Event, Run, StepRun
from workflows.states import (
    RUN_TERMINAL,
    STEP_TERMINAL,
    EventKind,
    RunStatus,
    StepStatus,
    run_transition_allowed,
    step_transition_allowed,
)

_pending = threading.local()

# Called as listener(run=..., from_status=...) inside the transaction that moved a run to a
# terminal status, after its Event. Notifications register here (WorkflowsConfig.ready), so
# the engine tells what happened without importing what listens (the services above it).
_run_ended_listeners: list[Callable[..., None]] = []


def on_run_ended(listener: Callable[..., None]) -> None:
    """Register `listener` for runs that reach a terminal status. A listener runs in the
    engine's transaction: it must only write rows (an outbox) and never raise."""
    if listener not in _run_ended_listeners:
        _run_ended_listeners.append(listener)


@contextmanager
def events_batched() -> Iterator[None]:
    """Write the Events recorded inside this block in one INSERT when it ends.

    Use it inside the transaction whose changes the events record (`with transaction.atomic(),
    events_batched():`) so they are written before that transaction commits; if the block
    raises, nothing is written (and the transaction rolls back anyway).
    """
    outer = getattr(_pending, "events", None)
    if outer is not None:  # already batching: the outer block writes them
        yield
        return
    _pending.events = []
    try:
        yield
        if _pending.events:
            Event.objects.bulk_create(_pending.events)
    finally:
        _pending.events = None


def event_record(
    *, run_id: int, kind: str, actor_kind: str = ActorKind.SYSTEM, actor: str = "",
    step_run_id: int | None = None, from_status: str = "", to_status: str = "",
    reason: str = "", data: dict[str, Any] | None = None,
) -> Event:
    """Append an Event. Call inside the transaction that made the change it records."""
    event = Event(
        run_id=run_id, step_run_id=step_run_id, kind=kind, from_status=from_status,
        to_status=to_status, actor_kind=actor_kind, actor=actor, reason=reason, data=data or {},
        at=timezone.now(),
    )
    batch = getattr(_pending, "events", None)
    if batch is not None:
        batch.append(event)
    else:
        event.save(force_insert=True)
    return event


def run_transition(
    run: Run, to: str, *, actor_kind: str = ActorKind.SYSTEM, actor: str = "",
    reason: str = "", data: dict[str, Any] | None = None, kind: str | None = None,
    fields: dict[str, Any] | None = None,
) -> bool:
    """Move `run` from its current (in-memory) status to `to`.

    Returns False (and writes nothing) when the row's status changed under us.
    `fields` are extra columns set in the same UPDATE (timestamps, output, error).
    """
    from_status = run.status
    if not run_transition_allowed(from_status, to):
        raise TransitionNotAllowed("run", from_status, to)
    now = timezone.now()
    values: dict[str, Any] = dict(fields or {})
    if to == RunStatus.QUEUED and run.queued_at is None:
        values.setdefault("queued_at", now)
    if to == RunStatus.RUNNING and run.started_at is None:
        values.setdefault("started_at", now)
    if to in RUN_TERMINAL:
        values.setdefault("finished_at", now)
        if run.started_at is None:
            values.setdefault("started_at", now)
    # savepoint=False: a failure here must abort the caller's whole transaction anyway.
    with transaction.atomic(savepoint=False):
        updated = Run.objects.filter(pk=run.pk, status=from_status).update(status=to, **values)
        if not updated:
            return False
        event_record(
            run_id=run.pk, kind=kind or EventKind.of_run(to), from_status=from_status, to_status=to,
            actor_kind=actor_kind, actor=actor, reason=reason, data=data,
        )
    run.status = to
    for name, value in values.items():
        setattr(run, name, value)
    if to in RUN_TERMINAL:
        for listener in _run_ended_listeners:
            listener(run=run, from_status=from_status)
    return True


def step_transition(
    step_run: StepRun, to: str, *, actor_kind: str = ActorKind.SYSTEM, actor: str = "",
    reason: str = "", data: dict[str, Any] | None = None, kind: str | None = None,
    fields: dict[str, Any] | None = None, redo: bool = False,
    expected_attempt: int | None = None, via: str | None = None, via_reason: str = "",
) -> bool:
    """Move `step_run` from its current (in-memory) status to `to`; see `run_transition`.

    `redo=True` additionally allows the moves back that only an approval's redo may make.
    `expected_attempt` makes the update also require that attempt to still be the current one,
    so a worker whose lease was taken back cannot record its late outcome.
    `via` passes through an intermediate status in the same UPDATE (both moves are checked and
    both get their Event): a worker claiming a step the moment it becomes ready goes
    not_started → queued → running in one statement.
    """
    from_status = step_run.status
    hops = [(from_status, via), (via, to)] if via else [(from_status, to)]
    for a, b in hops:
        if not step_transition_allowed(a, b, redo=redo):
            raise TransitionNotAllowed(f"step {step_run.key}", a, b)
    now = timezone.now()
    values: dict[str, Any] = dict(fields or {})
    if to == StepStatus.RUNNING and step_run.started_at is None:
        values.setdefault("started_at", now)
    if to in STEP_TERMINAL:
        values.setdefault("finished_at", now)
        values.setdefault("lease_until", None)
    values["updated_at"] = now
    # savepoint=False: a failure here must abort the caller's whole transaction anyway.
    with transaction.atomic(savepoint=False):
        rows = StepRun.objects.filter(pk=step_run.pk, status=from_status)
        if expected_attempt is not None:
            rows = rows.filter(attempt_count=expected_attempt)
        updated = rows.update(status=to, **values)
        if not updated:
            return False
        if via:
            event_record(
                run_id=step_run.run_id, step_run_id=step_run.pk, kind=EventKind.of_step(via),
                from_status=from_status, to_status=via, actor_kind=actor_kind, actor=actor,
                reason=via_reason,
            )
        event_record(
            run_id=step_run.run_id, step_run_id=step_run.pk, kind=kind or EventKind.of_step(to),
            from_status=via or from_status, to_status=to, actor_kind=actor_kind, actor=actor,
            reason=reason, data=data,
        )
    step_run.status = to
    for name, value in values.items():
        setattr(step_run, name, value)
    return True
