"""Remote agents on a wait step (DESIGN.md §9): the liveness write, the heartbeat deadline, and
the wait's `on_cancel` command.

- `agent_touch`: what a heartbeat, a log post or an artifact writes — one conditional UPDATE of
  the step run's liveness columns by primary key, never the run lock. Its WHERE clause is the
  check that the wait has not ended (not ended, no callback accepted), so a heartbeat that
  arrives after a cancel or a callback writes nothing and revives nothing.
- The heartbeat deadline (`heartbeat_deadline`) is set when the wait pauses and moved on by
  every touch. It is a deadline the engine schedules: a `wake_step` task is sent for it at the
  pause when it is near (`dispatch.wake_later`), and each wake that finds it moved sends the
  next one; the sweeper sends wakes for deadlines coming due before its next pass, and resolves
  any it finds past due (the backstop).
- `on_cancel`: when a wait ends without its callback (canceled, timed out, missed its heartbeat,
  over budget), the outcome marks the command due (`on_cancel_state = due`) and a `wake_step`
  task is sent on commit. Whoever runs it first claims it with a conditional UPDATE
  (due → claimed, only while no callback was accepted), so two workers racing run it once;
  the ssh command runs outside any transaction; its exit code and output are written after.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from connections.errors import SecretDecryptionError
from connections.selectors import connection_secrets_for_step, connections_for_step
from workflows.engine import dispatch, statements
from workflows.engine.context import resolution_context, resource_scope
from workflows.engine.transitions import event_record
from workflows.engine.versions import step_definitions, steps_of_definition, version_get
from workflows.models import Run, StepRun
from workflows.prepared_queries import cursor
from workflows.references import resolve
from workflows.states import RUN_TERMINAL, EventKind, StepStatus
from workflows.steps import get_step_type
from workflows.steps.base import StepFailed
from workflows.steps.ssh import run_once

logger = logging.getLogger(__name__)

__all__ = ["agent_params", "agent_touch", "agent_beat", "wait_params", "on_cancel_mark",
           "on_cancel_run", "heartbeat_deadline_of", "AGENT_OPEN_STATUSES"]

# A wait's callback siblings are accepted while the wait step has not ended.
AGENT_OPEN_STATUSES = (StepStatus.NOT_STARTED, StepStatus.QUEUED, StepStatus.RUNNING,
                       StepStatus.WAITING)
ON_CANCEL_DUE = "due"
ON_CANCEL_CLAIMED = "claimed"
ON_CANCEL_DONE = "done"


def agent_params(run: Run, key: str) -> dict[str, Any]:
    """The wait step's definition (from the per-process version cache: no query when warm)."""
    if run.rehearsal_definition is None and not Run._meta.get_field("version").is_cached(run):
        run.version = version_get(run.version_id)
    return step_definitions(run).get(key, {})


def wait_params(*, run_id: int, version_id: int, rehearsal: bool, key: str) -> dict[str, Any]:
    """`agent_params` from the run's ids alone (a heartbeat reads no Run row): the released
    version from the per-process cache; a rehearsal's own definition read when it is one."""
    if rehearsal:
        return agent_params(Run.objects.only("id", "version_id", "rehearsal_definition")
                            .get(pk=run_id), key)
    return steps_of_definition(version_get(version_id).definition).get(key, {})


def heartbeat_deadline_of(params: dict[str, Any], now: datetime) -> datetime | None:
    seconds = params.get("heartbeat_timeout_seconds")
    if seconds is None or isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    return now + timedelta(seconds=float(seconds))


def agent_touch(step_run_id: int, *, now: datetime, deadline: datetime | None,
                fields: dict[str, Any] | None = None) -> bool:
    """The one write of a log post or an artifact (a heartbeat's is `agent_beat`):
    `heartbeat_at`, the moved deadline and `fields` (artifacts), only while the wait has not
    ended. False when it has (the caller answers 410). No lock: a concurrent end of the wait
    makes this UPDATE match nothing, or lands first and is ignored by the ended step.

    One statement, compiled once per shape (`_touch_sql`) and prepared on PostgreSQL: agents
    post every few seconds, and building the UPDATE through the ORM cost more CPU than
    PostgreSQL spends running it."""
    values: dict[str, Any] = {"heartbeat_at": now, **(fields or {})}
    if deadline is not None:
        values["heartbeat_deadline"] = deadline
    db = connections[router.db_for_write(StepRun)]
    text, set_fields = _touch_sql(db.vendor, tuple(values))
    params = [statements._save_conversion(field, db.vendor)(value, db)
              for field, value in zip(set_fields, values.values(), strict=True)]
    params.append(step_run_id)
    params.extend(_OPEN_STATUS_VALUES)
    return _updated(db, text, params)


def _updated(db: Any, text: str, params: list[Any]) -> bool:
    """Send one UPDATE (prepared on PostgreSQL): whether it matched a row."""
    sent = cursor(db)
    try:
        sent.execute(text, params)
        return sent.rowcount > 0
    finally:
        sent.close()


# The wait's step statuses that accept a touch, as the plain strings the column holds.
_OPEN_STATUS_VALUES = tuple(str(status.value) for status in AGENT_OPEN_STATUSES)
_RUN_TERMINAL_VALUES = tuple(sorted(str(status.value) for status in RUN_TERMINAL))


def agent_beat(step_run_id: int, *, token_hash: str, now: datetime,
               deadline: datetime | None, report: dict[str, Any] | None) -> bool:
    """A heartbeat's whole work in one statement, for a wait whose token the caller has already
    checked once: the UPDATE's WHERE clause re-checks everything the token's read checks — the
    step run still holds this token's hash, the wait has not ended (status, no callback
    accepted), has not timed out, and its run has not ended — so a heartbeat after any of these
    matches nothing and returns False (the caller then reads the token to say 404 or 410).
    `report` (message, progress, usage) is merged into `agent_report` key by key in SQL, and
    `deadline` is set only while the step is `waiting` (a wait not reached yet has none).

    On PostgreSQL the statement is prepared, and outside a transaction its commit does not wait
    for the WAL flush: the statement itself turns `synchronous_commit` off for its own implicit
    transaction (`set_config(..., true)` in an uncorrelated sub-select, evaluated once before
    the update), so no BEGIN, SET LOCAL and COMMIT round trips are needed. A crash can lose the
    last few heartbeats, which only says the agent was alive a moment earlier than it was; that
    wait (milliseconds on a busy disk) is most of a heartbeat's cost otherwise."""
    db = connections[router.db_for_write(StepRun)]
    quick = db.vendor == "postgresql" and not db.in_atomic_block
    keys = tuple(report or ())
    text = _beat_sql(db.vendor, keys, deadline is not None, quick)
    convert = statements._save_conversion(StepRun._meta.get_field("heartbeat_at"), db.vendor)
    params: list[Any] = [convert(now, db)]
    if keys:
        if db.vendor == "postgresql":
            params.append(json.dumps(report))
        else:
            params.extend(json.dumps(report[key]) for key in keys)
    if deadline is not None:
        params.append(convert(deadline, db))
    params.extend((step_run_id, token_hash, *_OPEN_STATUS_VALUES, convert(now, db),
                   *_RUN_TERMINAL_VALUES))
    return _updated(db, text, params)


@cache
def _beat_sql(vendor: str, keys: tuple[str, ...], deadline: bool, quick: bool) -> str:
    """The statement of `agent_beat` for one shape (the report's keys, a deadline or not).
    The keys are written into the SQLite JSON paths: they are the report's known field names
    (`services.agents.heartbeat_parse` refuses any other)."""
    quote = connections[router.db_for_write(StepRun)].ops.quote_name

    def column(name: str) -> str:
        return quote(StepRun._meta.get_field(name).column)

    report = column("agent_report")
    sets = [f"{column('heartbeat_at')} = %s"]
    if keys and vendor == "postgresql":
        sets.append(f"{report} = COALESCE({report}, '{{}}'::jsonb) || %s::jsonb")
    elif keys:
        paths = ", ".join(f"'$.{key}', json(%s)" for key in keys)
        sets.append(f"{report} = json_set(COALESCE({report}, '{{}}'), {paths})")
    if deadline:
        deadline_column = column("heartbeat_deadline")
        sets.append(f"{deadline_column} = CASE WHEN {column('status')} = "
                    f"'{StepStatus.WAITING.value}' THEN %s ELSE {deadline_column} END")
    step_table, run_table = quote(StepRun._meta.db_table), quote(Run._meta.db_table)
    text = (f"UPDATE {step_table} SET {', '.join(sets)}"
            f" WHERE {quote(StepRun._meta.pk.column)} = %s"
            f" AND {column('callback_token_hash')} = %s"
            f" AND {column('status')} IN ({', '.join(['%s'] * len(_OPEN_STATUS_VALUES))})"
            f" AND {column('callback_received_at')} IS NULL"
            f" AND ({column('timeout_at')} IS NULL OR {column('timeout_at')} > %s)"
            f" AND EXISTS (SELECT 1 FROM {run_table} WHERE {run_table}."
            f"{quote(Run._meta.pk.column)} = {step_table}.{column('run')}"
            f" AND {run_table}.{quote(Run._meta.get_field('status').column)} NOT IN "
            f"({', '.join(['%s'] * len(_RUN_TERMINAL_VALUES))}))")
    if quick:
        text += " AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"
    return text


@cache
def _touch_sql(vendor: str, names: tuple[str, ...]) -> tuple[str, tuple]:
    """`UPDATE steprun SET names WHERE id = %s AND status IN (open) AND callback_received_at
    IS NULL`, and the fields of its SET parameters."""
    quote = connections[router.db_for_write(StepRun)].ops.quote_name
    fields = tuple(StepRun._meta.get_field(name) for name in names)
    meta = StepRun._meta
    column = meta.get_field
    text = (f"UPDATE {quote(meta.db_table)} SET "
            + ", ".join(f"{quote(field.column)} = %s" for field in fields)
            + f" WHERE {quote(meta.pk.column)} = %s"
            + f" AND {quote(column('status').column)} IN "
            + f"({', '.join(['%s'] * len(_OPEN_STATUS_VALUES))})"
            + f" AND {quote(column('callback_received_at').column)} IS NULL")
    return text, fields


def on_cancel_mark(step_run: StepRun, params: dict[str, Any]) -> None:
    """The wait ended without its callback: if it has an `on_cancel`, mark it due and send
    the task that runs it once this transaction commits. Called under the run lock by the
    outcome that ended the wait."""
    if not isinstance(params.get("on_cancel"), dict) or step_run.callback_received_at:
        return
    if StepRun.objects.filter(pk=step_run.pk, on_cancel_state="").update(
            on_cancel_state=ON_CANCEL_DUE):
        step_run.on_cancel_state = ON_CANCEL_DUE
        step_run_id = step_run.pk
        transaction.on_commit(lambda: dispatch.wake_now(step_run_id))


def on_cancel_run(step_run_id: int) -> bool:
    """Run a due `on_cancel` once: claim it (due → claimed, a conditional UPDATE: a second
    worker's claim matches nothing), run the ssh command outside any transaction, record its
    exit code and output on the step run, with an Event. False when there was nothing to run
    or another worker claimed it."""
    claimed = StepRun.objects.filter(
        pk=step_run_id, on_cancel_state=ON_CANCEL_DUE, callback_received_at__isnull=True,
    ).exclude(Q(status__in=AGENT_OPEN_STATUSES)).update(on_cancel_state=ON_CANCEL_CLAIMED)
    if not claimed:
        return False
    step = StepRun.objects.select_related("run").get(pk=step_run_id)
    spec = agent_params(step.run, step.key).get("on_cancel") or {}
    started = timezone.now()
    try:
        # `{{ }}` references in the command see what the run's steps saw (e.g. the wait's
        # callback URL, from which the launch step derived where the agent keeps its pid).
        steps = list(StepRun.objects.filter(run_id=step.run_id))
        resolved = resolve(spec, resolution_context(step.run, steps, spec),
                           scope=resource_scope(step.run))
        result = _run_command(resolved)
    except Exception as exc:  # noqa: BLE001 - an unreachable host is recorded, not raised
        result = {"exit_code": None, "output": "",
                  "error": {"type": getattr(exc, "error_type", type(exc).__name__),
                            "message": str(exc)[:1000]}}
    result.update({"connection": spec.get("connection"), "command": spec.get("command"),
                   "started_at": started.isoformat(),
                   "finished_at": timezone.now().isoformat()})
    with transaction.atomic():
        StepRun.objects.filter(pk=step_run_id).update(on_cancel_state=ON_CANCEL_DONE,
                                                      on_cancel_result=result)
        event_record(run_id=step.run_id, step_run_id=step_run_id,
                     kind=EventKind.ON_CANCEL_RAN,
                     reason=f"on_cancel ran on {spec.get('connection')}: exit code "
                            f"{result.get('exit_code')}",
                     data={"exit_code": result.get("exit_code")})
    return True


def _run_command(spec: dict[str, Any]) -> dict[str, Any]:
    """Raises StepFailed (unreachable host, missing connection) for the caller to record."""
    name = spec.get("connection")
    ssh = get_step_type("ssh")
    names = ssh.connections_to_load({"connection": name}) if ssh else [name]
    documents = connections_for_step(names=names)
    missing = [n for n in names if n not in documents]
    if missing:
        raise StepFailed(f"connection(s) {', '.join(missing)} do not exist",
                         error_type="ConnectionMissing")
    try:
        secrets = connection_secrets_for_step(names=names)
    except SecretDecryptionError as exc:
        raise StepFailed(str(exc), error_type="SecretDecryptionError") from exc
    connections = documents
    return run_once(name=name, connections=connections, secrets=secrets,
                    command=str(spec.get("command") or ""))
