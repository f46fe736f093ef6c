"""The engine: moving runs through their states. Services call it through the names below and
nothing else; the engine imports nothing above it (services, approvals, edges), and knows step
types only through their `StepType` hooks (`on_pause`, `on_cancel`, `on_timeout`).

Modules, bottom up:
- `transitions`: the one compare-and-set move of a status, with its Event;
- `callback_tokens`: minting and hashing the single-use tokens of wait steps;
- `progress`: which steps are ready, settling the run's status, handing steps to workers;
- `admission`: the concurrency policy (admit, hold, skip, cancel the oldest), cancelling a run;
- `rewind`: sending a run back to an earlier step (an approval's redo);
- `executor`: a worker claiming and running one attempt; `sweeper`: the periodic repairs.
Workers reach `executor` and `sweeper` through `workflows.tasks`.

Entry points (all run in the caller's transaction; those taking a locked run need `lock_run`
first, inside `transaction.atomic()`):
"""

from workflows.engine.admission import run_admit, run_admit_next, run_cancel_locked
from workflows.engine.callback_tokens import callback_mint, callback_token, callback_url, token_hash
from workflows.engine.progress import (
    attempt_finish,
    enqueue,
    load_steps,
    lock_run,
    queue_ready,
    run_settle,
    version_get,
    wait_complete,
)
from workflows.engine.rewind import rewind_target, run_rewind
from workflows.engine.transitions import (
    event_record,
    events_batched,
    on_run_ended,
    run_transition,
    step_transition,
)

__all__ = [
    # admission: start a created run under its flow's concurrency policy; cancel a locked run
    "run_admit",
    "run_admit_next",
    "run_cancel_locked",
    # callback tokens of wait steps
    "callback_mint",
    "callback_token",
    "callback_url",
    "token_hash",
    # moving a locked run on after a step changed
    "attempt_finish",
    "enqueue",
    "load_steps",
    "lock_run",
    "queue_ready",
    "run_settle",
    "version_get",
    "wait_complete",
    # rewind (redo)
    "rewind_target",
    "run_rewind",
    # the one transition function and the event log
    "event_record",
    "events_batched",
    # what listens for runs that end (notifications), registered in WorkflowsConfig.ready
    "on_run_ended",
    "run_transition",
    "step_transition",
]
