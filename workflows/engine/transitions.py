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

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from workflows.engine import statements, tracing
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
            _events_insert(_pending.events)
    finally:
        _pending.events = None


class WritesRaced(Exception):
    """A write sent in pipeline mode did not change the rows it expected to (a row changed
    under us). Raised before the transaction commits, so it rolls back: the caller redoes the
    transaction on the portable path, where the lost race is handled as usual."""


def pipeline_available() -> bool:
    return connection.vendor == "postgresql" and settings.WF_PIPELINE


@contextmanager
def writes_pipelined() -> Iterator[None]:
    """`events_batched`, and on PostgreSQL psycopg's pipeline mode for the block: statements
    are sent without waiting for their answers, so writes that do not depend on each other
    share one round trip (a read still waits, after the writes sent before it, which the server
    applies first). Use it inside the transaction, under the run's row lock.

    The conditional UPDATEs of `step_transition` / `run_transition` cannot report "not
    applied" before their answer arrives, so inside this block they return True and their row
    counts are checked when the block ends, before the commit: a mismatch raises WritesRaced
    (the transaction rolls back, nothing is written). Under the run lock, with the step states
    just read, that does not happen unless a row changed without the lock; callers catch it
    and redo the transaction without the pipeline (`pipelined_or_portable`).
    Elsewhere (SQLite, WF_PIPELINE off, or already inside such a block) it is `events_batched`.
    """
    if not pipeline_available() or getattr(_pending, "checks", None) is not None:
        with events_batched():
            yield
        return
    connection.ensure_connection()
    _pending.checks = []
    _pending.returning = []
    try:
        # Errors the server reports for pipelined statements surface as psycopg's own types
        # when the pipeline ends; wrap_database_errors makes them Django's (DataError,
        # IntegrityError...) as on the portable path, so callers catch one set of types.
        with connection.wrap_database_errors, connection.connection.pipeline(), \
                events_batched():
            yield  # leaving the pipeline sends the writes' Sync and reads every answer
        for cursor, expected, what in _pending.checks:
            if cursor.rowcount != expected:
                raise WritesRaced(f"{what}: {cursor.rowcount} rows changed, {expected} expected")
        for cursor, obj in _pending.returning:
            _set_inserted_pk(obj, cursor.fetchone()[0])
    finally:
        for cursor, _, _ in _pending.checks:
            cursor.close()
        _pending.checks = _pending.returning = None


def pipelined_or_portable(body: Callable[[], Any]) -> Any:
    """Run `body` in `transaction.atomic()` with `writes_pipelined()`; if a pipelined write
    raced (WritesRaced, rolled back), run it once more without the pipeline. `body` must be
    safe to run twice: it reads what it needs inside the transaction."""
    if pipeline_available():
        try:
            with transaction.atomic(), writes_pipelined():
                return body()
        except WritesRaced:
            pass
    with transaction.atomic(), events_batched():
        return body()


def write_checked(cursor: Any, expected: int, what: str) -> None:
    """A write sent on `cursor` must change `expected` rows: in a `writes_pipelined` block the
    count is checked when the block ends, elsewhere now; either way a mismatch raises
    WritesRaced (before the commit). Closes the cursor."""
    if pipelining():
        _pending.checks.append((cursor, expected, what))
        return
    try:
        if cursor.rowcount != expected:
            raise WritesRaced(f"{what}: {cursor.rowcount} rows changed, {expected} expected")
    finally:
        cursor.close()


def _conditional_update(model: type, where: dict[str, Any], values: dict[str, Any], what: str,
                        expected: int = 1) -> int:
    """`UPDATE model SET values WHERE where` (statements.update). Returns the rows changed; in
    pipeline mode that is not known yet, so it returns `expected` and the count is checked when
    the `writes_pipelined` block ends."""
    cursor = statements.update(model, where, values)
    if pipelining():
        _pending.checks.append((cursor, expected, what))
        return expected
    try:
        return cursor.rowcount
    finally:
        cursor.close()


def _events_insert(events: list[Event]) -> None:
    """INSERT the events, without RETURNING: nobody reads their primary keys (in pipeline mode
    waiting for them would cost a round trip). Pipelined, the row count is checked at the end
    of the block like the conditional UPDATEs'."""
    for cursor, count in statements.insert_batches(events):
        if pipelining():
            _pending.checks.append((cursor, count, f"insert {count} events"))
        else:
            cursor.close()


def pipelining() -> bool:
    """True inside a `writes_pipelined` block on PostgreSQL."""
    return getattr(_pending, "checks", None) is not None


def row_insert(obj: Any) -> None:
    """`obj.save(force_insert=True)`, in one compiled statement (statements.insert); in
    pipeline mode the INSERT is sent with RETURNING and its primary key read when the block
    ends (or at the next read), not waited for now."""
    if not statements.can_return_from_insert():
        obj.save(force_insert=True)
        return
    cursor = statements.insert([obj], returning=True)
    if pipelining():
        _pending.checks.append((cursor, 1, f"insert {type(obj).__name__}"))
        _pending.returning.append((cursor, obj))
        return
    try:
        _set_inserted_pk(obj, cursor.fetchone()[0])
    finally:
        cursor.close()


def _set_inserted_pk(obj: Any, pk: Any) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = connection.alias


def event_record(
    *, run_id: int, kind: str, actor_kind: str = ActorKind.SYSTEM, actor: str = "",
    step_run_id: int | None = None, from_status: str = "", to_status: str = "",
    reason: str = "", data: dict[str, Any] | None = None, instance_id: int | None = None,
) -> Event:
    """Append an Event. Call inside the transaction that made the change it records."""
    event = Event(
        run_id=run_id, step_run_id=step_run_id, instance_id=instance_id, kind=kind, from_status=from_status,
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
        if not _conditional_update(Run, {"pk": run.pk, "status": from_status},
                                   {"status": to, **values}, f"run {run.pk} {from_status}->{to}"):
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
    if to == StepStatus.RUNNING:
        if "started_at" not in step_run.__dict__:  # not loaded (progress.STATE_FIELDS)
            values.setdefault("started_at", statements.IfNull(now))  # the first run's kept
        elif step_run.started_at is None:
            values.setdefault("started_at", now)
    if to in STEP_TERMINAL:
        values.setdefault("finished_at", now)
        values.setdefault("lease_until", None)
    values["updated_at"] = now
    # savepoint=False: a failure here must abort the caller's whole transaction anyway.
    with transaction.atomic(savepoint=False):
        where = {"pk": step_run.pk, "status": from_status}
        if expected_attempt is not None:
            where["attempt_count"] = expected_attempt
        if not _conditional_update(StepRun, where, {"status": to, **values},
                                   f"step run {step_run.pk} {from_status}->{to}"):
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
        if type(value) is not statements.IfNull:  # left unloaded: read from the row if asked
            setattr(step_run, name, value)
    if to in STEP_TERMINAL:
        tracing.step_ended(step_run, to, values)
    return True


def steps_transition(
    steps: list[StepRun], to: str, *, actor_kind: str = ActorKind.SYSTEM, actor: str = "",
    reason: str = "", fields: dict[str, Any] | None = None,
) -> list[StepRun]:
    """`step_transition` of several step runs of one run, all in the same status, in one
    UPDATE (and one Event each). Returns the ones moved. If some changed under us, only the
    rows the UPDATE moved (read back by the time it set) get their Event and their new status
    in memory; the others are left as they are, as `step_transition` would."""
    if not steps:
        return []
    if len(steps) == 1:
        moved = step_transition(steps[0], to, actor_kind=actor_kind, actor=actor,
                                reason=reason, fields=fields)
        return steps if moved else []
    from_status = steps[0].status
    for step in steps:
        if step.status != from_status:
            raise ValueError("steps_transition moves step runs of one status")
        if not step_transition_allowed(from_status, to):
            raise TransitionNotAllowed(f"step {step.key}", from_status, to)
    now = timezone.now()
    values: dict[str, Any] = dict(fields or {})
    if to == StepStatus.RUNNING:
        values.setdefault("started_at", now)
    if to in STEP_TERMINAL:
        values.setdefault("finished_at", now)
        values.setdefault("lease_until", None)
    values["updated_at"] = now
    ids = [s.pk for s in steps]
    with transaction.atomic(savepoint=False):
        updated = _conditional_update(StepRun, {"pk": ids, "status": from_status},
                                      {"status": to, **values},
                                      f"step runs {ids} {from_status}->{to}", expected=len(ids))
        if updated == len(ids):  # always, pipelined: checked before the commit
            moved = steps
        else:
            done = set(StepRun.objects.filter(pk__in=ids, status=to, updated_at=now)
                       .values_list("pk", flat=True))
            moved = [s for s in steps if s.pk in done]
        for step in moved:
            event_record(
                run_id=step.run_id, step_run_id=step.pk, kind=EventKind.of_step(to),
                from_status=from_status, to_status=to, actor_kind=actor_kind, actor=actor,
                reason=reason,
            )
    for step in moved:
        step.status = to
        for name, value in values.items():
            setattr(step, name, value)
        if to in STEP_TERMINAL:
            tracing.step_ended(step, to, values)
    return moved
