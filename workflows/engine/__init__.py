"""The engine: moving runs through their states. Everything outside the engine calls it through
the names below and nothing else (an import-linter contract forbids importing its modules from
outside); the engine imports nothing above it (services, approvals, edges), and knows step
types only through their `StepType` hooks (`on_pause`, `on_cancel`, `on_timeout`).

The verbs (each runs in the caller's transaction; those taking a `run` need it locked with
`lock_run` first, inside `transaction.atomic()`):
- `run_admit`: start a created run under its flow's concurrency policy (admit, hold, skip,
  cancel the oldest), queueing its first steps;
- `run_cancel`: cancel a run and every step that has not ended;
- `run_rewind`: send a run back from a paused step to an earlier one (an approval's redo);
- `step_resolve`: end a step from outside its worker with an outcome — `Completed`,
  `Failed`, `Rejected` (a decision, a timer, a timeout), `CallbackReceived`, `WorkerLost`,
  `WaitEnded` (a wait ended without its callback: its `on_cancel` runs after);
- `instance_resolve`: end a paused for_each instance from outside its worker with `Completed`
  or `Failed` (a fanned-out `flow` step's child run ended: engine/instance_pauses.py);
- `agent_touch`: a remote agent's heartbeat, log post or artifact refreshes its wait's liveness
  columns (one conditional UPDATE, no run lock; `agents`); `agent_beat`: a heartbeat whose
  token was checked once already, in one statement that re-checks the wait;
- workers: `advance` (run a queued step run), `advance_instance` (run a queued instance of a
  `for_each` step: engine/instances.py), `step_wake` (a paused step's short timer or
  timeout is due), `sweep` (the periodic repairs), and `task`, which registers the task
  functions the engine sends (`ADVANCE_STEP`, `WAKE_STEP`) so it never names them by string.

Beside the verbs, what services read or record around them: `lock_run`, the run's event log
(`event_record`, `events_batched`), the callback tokens of wait steps, the cache of released
versions (`version_get`) and the hook of runs that end (`on_run_ended`).

Inside, bottom up: `statements` (compiled hot statements), `transitions` (the one
compare-and-set move of a status, with its Event), `callback_tokens`, `versions` (the
per-process version cache), `locking` (the run lock and the step states), `context` (what
references and handlers see), `attempts` (every Attempt write), `dispatch` (every django-q2
send), `progress` (ready steps, the run's status), `resolve`, `admission`, `rewind`,
`executor` (a worker's attempt), `agents` (remote agents' liveness and `on_cancel`),
`instance_states`, `fan_out`, `instances`, `instance_pauses` and `instance_resolve`
(for_each) and
`sweeper`. docs/architecture.md "Life of a step" shows
which module makes each write.
"""

from workflows.engine.admission import run_admit, run_cancel
from workflows.engine.agents import (
    AGENT_OPEN_STATUSES,
    agent_beat,
    agent_params,
    agent_touch,
    heartbeat_deadline_of,
    wait_params,
)
from workflows.engine.callback_tokens import callback_mint, callback_token, callback_url, token_hash
from workflows.engine.dispatch import ADVANCE_INSTANCE, ADVANCE_STEP, WAKE_STEP, task
from workflows.engine.executor import advance
from workflows.engine.instance_resolve import instance_resolve
from workflows.engine.instances import advance_instance
from workflows.engine.locking import lock_run
from workflows.engine.resolve import (
    CallbackReceived,
    Completed,
    Failed,
    Rejected,
    WaitEnded,
    WorkerLost,
    step_resolve,
)
from workflows.engine.rewind import run_rewind
from workflows.engine.sweeper import step_wake, sweep
from workflows.engine.tracing import inbound_linked as trace_inbound
from workflows.engine.tracing import run_ended as _trace_run_ended
from workflows.engine.transitions import event_record, events_batched, on_run_ended
from workflows.engine.versions import version_get

on_run_ended(_trace_run_ended)  # the run's span, when it ends (workflows.engine.tracing)

__all__ = [
    # the verbs
    "run_admit",
    "run_cancel",
    "run_rewind",
    "step_resolve",
    "instance_resolve",
    # what step_resolve is told
    "CallbackReceived",
    "Completed",
    "Failed",
    "Rejected",
    "WaitEnded",
    "WorkerLost",
    # the workers' verbs, and the task functions they are sent as
    "advance",
    "advance_instance",
    "step_wake",
    "sweep",
    "task",
    "ADVANCE_STEP",
    "WAKE_STEP",
    "ADVANCE_INSTANCE",
    # the lock every verb on a live run is called under
    "lock_run",
    # the run's event log
    "event_record",
    "events_batched",
    # callback tokens of wait steps
    "callback_mint",
    "callback_token",
    "callback_url",
    "token_hash",
    # a wait's remote agent: its definition, its one liveness write, its heartbeat deadline
    "AGENT_OPEN_STATUSES",
    "agent_params",
    "agent_touch",
    "agent_beat",
    "wait_params",
    "heartbeat_deadline_of",
    # released versions, cached per process
    "version_get",
    # what listens for runs that end (notifications), registered in WorkflowsConfig.ready
    "on_run_ended",
    # a callback carrying a traceparent, linked to the wait's span (OpenTelemetry)
    "trace_inbound",
]
