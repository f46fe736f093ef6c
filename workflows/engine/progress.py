"""Moving a run forward after a step changes: which steps are ready, what the run's status is,
and handing queued steps to the workers.

Every function here runs inside a transaction that holds the run's row lock (`lock_run`), so
two steps of one run finishing at once cannot both miss the step that needs them both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone

from workflows.engine.callback_tokens import callback_url
from workflows.engine.transitions import (
    run_transition,
    step_transition,
    steps_transition,
)
from workflows.models import ActorKind, Attempt, FlowVersion, Run, StepRun
from workflows.prepared_queries import PreparedQuery
from workflows.references import (
    ReferenceSyntaxError,
    ReferenceUnresolved,
    ResourceScope,
    find_references,
    parse_reference,
    resolve,
)
from workflows.states import (
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

logger = logging.getLogger(__name__)


_released_versions: dict[int, FlowVersion] = {}
# Columns moving a run on never reads (loaded on access if some caller does).
RUN_DEFERRED = ("trigger_payload", "output", "error")


def forget_versions() -> None:
    """Drop the cache of released versions (tests roll back and reuse primary keys)."""
    _released_versions.clear()
    _derived.clear()


def lock_run(run_id: int) -> Run:
    """Lock and return the run row, with its pinned version. Must be called inside
    transaction.atomic(). Released versions are immutable, so each process keeps the ones it
    has read (a draft, which can change, is read every time)."""
    return _pin_version(_first_run(_locked_run.read(_send_lock(run_id)), run_id))


def _pin_version(run: Run) -> Run:
    run.version = version_get(run.version_id)
    return run


def version_get(version_id: int) -> FlowVersion:
    """The flow version; a released one (immutable) from this process's cache once read."""
    version = _released_versions.get(version_id)
    if version is None:
        version = FlowVersion.objects.get(pk=version_id)
        if version.number is not None:
            _released_versions[version.pk] = version
    return version


# What moving a run on needs to know of each step. Outputs, errors and payloads are loaded
# only where they are used (`step_outputs`), so a step's cost does not grow with the size of
# every other step's output. Timestamps neither (reading them was a third of the cost of a
# state row): a step's first start is kept in SQL (`statements.IfNull`), and a wait step's
# `callback_received_at` is read when that step pauses.
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


def load_steps(run: Run, *, full: bool = False) -> dict[str, StepRun]:
    """The run's step runs by key, in definition order (state fields only unless `full`)."""
    if not full:
        return {s.key: s for s in _step_states.rows(run.pk)}
    return {s.key: s for s in StepRun.objects.filter(run_id=run.pk).order_by("position")}


def step_outputs(run: Run, keys: Iterable[str]) -> dict[str, Any]:
    """{key: output} of the named steps that are done (one query; none when no keys)."""
    keys = list(keys)
    if not keys:
        return {}
    return dict(
        StepRun.objects.filter(run_id=run.pk, key__in=keys, status__in=STEP_DONE)
        .values_list("key", "output")
    )


def referenced_steps(value: Any) -> set[str]:
    """Keys of the steps whose output `value` refers to."""
    keys = set()
    for _, expr in find_references(value):
        try:
            parts = parse_reference(expr)
        except ReferenceSyntaxError:
            continue
        if len(parts) >= 3 and parts[0] == "steps" and parts[2] == "output":
            keys.add(str(parts[1]))
    return keys


# What is derived from a definition, kept while the same definition object is in use (a
# released version is one object per process: see version_get). Keyed by id() and checked
# by identity, so a new object (a draft read again) is never served an old entry.
_derived: dict[tuple[int, str], tuple[dict, Any]] = {}
_DERIVED_MAX = 512


def _derive(definition: dict, what: str, compute: Callable[[dict], Any]) -> Any:
    entry = _derived.get((id(definition), what))
    if entry is not None and entry[0] is definition:
        return entry[1]
    value = compute(definition)
    if len(_derived) >= _DERIVED_MAX:
        _derived.clear()
    _derived[(id(definition), what)] = (definition, value)
    return value


def step_definitions(run: Run) -> dict[str, dict[str, Any]]:
    """{key: step definition} of the run's definition. Shared: callers must not change it."""
    return _derive(run.definition, "steps",
                   lambda d: {step["key"]: step for step in d["steps"]})


def resolution_context(run: Run, steps: Iterable[StepRun], value: Any) -> dict[str, Any]:
    """What the `{{ }}` references in `value` see: the run's input, the outputs of the done
    steps it refers to, and every wait step's callback URL."""
    outputs = step_outputs(run, referenced_steps(value))
    step_values: dict[str, Any] = {}
    for s in steps:
        entry: dict[str, Any] = {}
        if s.key in outputs:
            entry["output"] = outputs[s.key]
        if s.type == "wait" and s.callback_nonce:
            entry["callback_url"] = callback_url(s.callback_nonce)
        step_values[s.key] = entry
    names = _connection_names(run)
    return {"input": run.input, "steps": step_values, "connections": {n: n for n in names}}


def resource_scope(run: Run) -> ResourceScope:
    """The runs whose resources `run`'s references may load: its own, and those its reused
    steps' outputs came from (a retry or replay reuses the original step run's output, whose
    descriptors name the original run's resources). One query, on the first load only."""

    def runs() -> set[int]:
        return {run.pk, *StepRun.objects.filter(run_id=run.pk, reused_from__isnull=False)
                .values_list("reused_from__run_id", flat=True)}

    return ResourceScope(runs)


def _connection_names(run: Run) -> list[str]:
    return _derive(run.definition, "connection names", _names_of_connections)


def _names_of_connections(definition: dict) -> list[str]:
    names: set[str] = set()
    for step in definition["steps"]:
        step_type = get_step_type(step["type"])
        if step_type is not None:
            names.update(step_type.connection_names(step))
    return sorted(names)


def enqueue(step_run_ids: list[int]) -> None:
    """Hand queued steps to django-q2 once the transaction that queued them commits."""
    if not step_run_ids:
        return

    def send() -> None:
        # Lazy: django-q2 is loaded only when a task is actually sent (not a cycle).
        from django_q.tasks import async_task

        # save=False: a task's success is recorded in our tables, not django-q2's (whose
        # bookkeeping of successes, a locked read of up to Q_SAVE_LIMIT rows per task, cost
        # more than the step itself); failures of the task itself are still saved.
        for step_run_id in step_run_ids:
            async_task("workflows.tasks.advance_step", step_run_id,
                       task_name=f"step-{step_run_id}", group="workflow-steps", save=False)

    transaction.on_commit(send)


def ready_steps(run: Run, steps: dict[str, StepRun], *, actor_kind: str = ActorKind.SYSTEM,
                actor: str = "") -> list[StepRun]:
    """The not-started steps whose `needs` are all done, in definition order. Steps whose
    `when` is falsy are skipped on the way (which may make more steps ready)."""
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
            if not all(steps[n].status in STEP_DONE for n in needs if n in steps):
                continue
            condition = defs[step.key].get("when")
            if condition is not None and not _truthy(run, steps, condition):
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


READY_REASON = "needs satisfied"


def queue_ready(run: Run, steps: dict[str, StepRun], *, actor_kind: str = ActorKind.SYSTEM,
                actor: str = "", reason: str = "") -> list[StepRun]:
    """Queue every step that is ready (see `ready_steps`). Returns the newly queued ones."""
    return queue_steps(ready_steps(run, steps, actor_kind=actor_kind, actor=actor),
                       actor_kind=actor_kind, actor=actor, reason=reason)


def _truthy(run: Run, steps: dict[str, StepRun], condition: str) -> bool:
    try:
        return bool(resolve(condition, resolution_context(run, steps.values(), condition),
                            scope=resource_scope(run)))
    except ReferenceUnresolved:
        return False


def run_settle(run: Run, steps: dict[str, StepRun], *, actor_kind: str = ActorKind.SYSTEM,
               actor: str = "", reason: str = "") -> None:
    """Bring the run's status in line with its steps'. A failed or rejected step fails the run
    and cancels its other active steps; all steps done completes it."""
    if run.status in RUN_TERMINAL:
        return
    statuses = [s.status for s in steps.values()]
    failed = [s for s in steps.values() if s.status in (StepStatus.FAILED, StepStatus.REJECTED)]
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
            if was in (StepStatus.WAITING, StepStatus.WAITING_FOR_APPROVAL):
                attempt_finish(step, AttemptStatus.CANCELED)
                step_type = get_step_type(step.type)
                if step_type is not None:
                    step_type.on_cancel(run=run, step_run=step)


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


def attempt_finish(step: StepRun, status: str, *, output: Any = None,
                   error: dict[str, Any] | None = None, exit_code: int | None = None,
                   record_missing: bool = False) -> None:
    """Close the step's current attempt (if it is still open). With `record_missing`, an
    attempt its worker never wrote (it died within its first moments) is recorded closed."""
    now = timezone.now()
    attempt = (
        Attempt.objects.filter(step_run_id=step.pk, number=step.attempt_count)
        .only("id", "started_at").first()
    )
    if attempt is None:
        if record_missing and step.attempt_count:
            started = step.started_at or now
            Attempt.objects.create(
                step_run_id=step.pk, number=step.attempt_count, status=status,
                worker=step.worker, output=output, error=error, exit_code=exit_code,
                started_at=started, finished_at=now,
                duration_ms=int((now - started).total_seconds() * 1000),
            )
        return
    Attempt.objects.filter(
        pk=attempt.pk, status__in=(AttemptStatus.RUNNING, AttemptStatus.WAITING)
    ).update(
        status=status, output=output, error=error, exit_code=exit_code, finished_at=now,
        duration_ms=int((now - attempt.started_at).total_seconds() * 1000),
    )


def wait_complete(*, run: Run, step_run: StepRun, output: Any, actor_kind: str,
                  actor: str = "", reason: str = "", data: dict[str, Any] | None = None) -> None:
    """Complete a waiting step (callback received, timer elapsed, or timeout with `continue`)
    and move the run on. Holds the run lock (call inside transaction.atomic())."""
    if not step_transition(step_run, StepStatus.COMPLETED, actor_kind=actor_kind, actor=actor,
                           reason=reason, data=data, fields={"output": output}):
        return
    attempt_finish(step_run, AttemptStatus.COMPLETED, output=output)
    steps = load_steps(run)
    steps[step_run.key] = step_run
    queued = queue_ready(run, steps)
    run_settle(run, steps)
    enqueue([s.pk for s in queued])


def backoff_seconds(retry: dict[str, Any], failures: int) -> float:
    base = float(retry.get("backoff_seconds") or 0)
    factor = float(retry.get("backoff_factor") or 1)
    return base * (factor ** max(failures - 1, 0))


def timeout_at(seconds: float | None) -> Any:
    if not seconds:
        return None
    return timezone.now() + timedelta(seconds=float(seconds))


def default_step_timeout() -> float:
    return float(settings.WF_DEFAULT_STEP_TIMEOUT_SECONDS)
