"""The run's row lock and the step states read under it: the first two statements of every
change to a live run.

Every write to a run's step runs and attempts happens in a transaction holding the run's row
lock (`lock_run`), so two steps of one run finishing at once cannot both miss the step that
needs them both, and a decision, a callback and a worker never move one step at once.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.transaction import TransactionManagementError

from workflows.engine import tracing
from workflows.engine.versions import version_get
from workflows.models import Run, StepRun
from workflows.prepared_queries import PreparedQuery

# Columns moving a run on never reads (loaded on access if some caller does).
RUN_DEFERRED = ("trigger_payload", "output", "error")

# What moving a run on needs to know of each step. Outputs, errors and payloads are loaded
# only where they are used (`context.step_outputs`), so a step's cost does not grow with the
# size of every other step's output. Timestamps neither (reading them was a third of the cost
# of a state row): a step's first start is kept in SQL (`statements.IfNull`), and a wait
# step's `callback_received_at` is read when that step pauses.
STATE_FIELDS = (
    "id", "run_id", "key", "type", "status", "attempt_count", "retry_base", "callback_nonce",
)


# The two statements every step sends first, compiled once (and prepared on PostgreSQL).
_locked_run = PreparedQuery(
    Run, lambda run_id: Run.objects.select_for_update().defer(*RUN_DEFERRED).filter(pk=run_id),
    sentinel=-7_319_101)
_step_states = PreparedQuery(
    StepRun, lambda run_id: StepRun.objects.filter(run_id=run_id).order_by("position")
    .only(*STATE_FIELDS), sentinel=-7_319_102)


def lock_run(run_id: int) -> Run:
    """Lock and return the run row, with its pinned version. Must be called inside
    transaction.atomic(). Released versions are immutable, so each process keeps the ones it
    has read (a draft, which can change, is read every time)."""
    return _pin_version(_first_run(_locked_run.read(_send_lock(run_id)), run_id))


def _pin_version(run: Run) -> Run:
    run.version = version_get(run.version_id)
    tracing.run_locked(run)  # the run whose spans this thread may end
    return run


def _send_lock(run_id: int) -> Any:
    if connection.get_autocommit():
        raise TransactionManagementError("locking a run needs a transaction")
    return _locked_run.send(run_id)


def _first_run(runs: list[Run], run_id: int) -> Run:
    if not runs:
        raise Run.DoesNotExist(f"run {run_id} does not exist")
    return runs[0]


def lock_run_and_load_steps(run_id: int) -> tuple[Run, dict[str, StepRun]]:
    """`lock_run` then `load_steps` (state fields). Both statements are sent before either
    answer is read: in pipeline mode they (and the BEGIN before them) go in one round trip,
    and the server runs the read after the lock is granted, so it sees every step change
    committed by the previous holder of the lock. (One statement that locks the run and reads
    its steps would not: under READ COMMITTED its snapshot predates the wait for the lock.)"""
    lock = _send_lock(run_id)
    states = _step_states.send(run_id)
    run = _pin_version(_first_run(_locked_run.read(lock), run_id))
    return run, {s.key: s for s in _step_states.read(states)}


def load_steps(run: Run) -> dict[str, StepRun]:
    """The run's step runs by key, in definition order (state fields only)."""
    return {s.key: s for s in _step_states.rows(run.pk)}
