"""The set-based statements of a batch of for_each instances (engine/instances.py).

A batch of up to WF_FOR_EACH_BATCH instances is claimed with one UPDATE, its outcomes are
recorded with one UPDATE ... FROM (VALUES ...) (on PostgreSQL `FROM unnest(array per
column)`: one text whatever the rows, prepared once), and the `max_parallel` window moves with one
UPDATE of the lowest not-started instances (`FOR UPDATE SKIP LOCKED` on PostgreSQL). None of
them touches a row shared by the other instances of the step (neither the run's nor the step
run's nor the FanOut's), so batches of one step never wait for each other's commits
(docs/architecture.md "for_each instances").

The writes are sent through `transitions.write_checked`: inside a `writes_pipelined` block on
PostgreSQL they share round trips and their row counts are checked before the commit (a
mismatch raises `WritesRaced`, the transaction rolls back and the caller records the batch
row by row); elsewhere the count is checked at once and a mismatch raises the same. The text
works on both PostgreSQL and SQLite (3.35+: `UPDATE ... FROM`, `RETURNING`, `MATERIALIZED`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection

from workflows.engine.transitions import write_checked
from workflows.models import StepInstance
from workflows.prepared_queries import cursor as prepared_cursor
from workflows.states import StepStatus

__all__ = ["claim_update", "outcomes_update", "window_take"]


def _column(name: str) -> str:
    return connection.ops.quote_name(StepInstance._meta.get_field(name).column)


def _prep(name: str, value: Any) -> Any:
    """A value as the ORM would send it for column `name` (JSON adapted, datetimes
    converted on SQLite)."""
    return StepInstance._meta.get_field(name).get_db_prep_save(value, connection)


@cache
def _table() -> str:
    return connection.ops.quote_name(StepInstance._meta.db_table)


def claim_update(ids: Sequence[int], *, worker: str, lease: datetime, now: datetime) -> None:
    """queued → running for `ids` (rows the caller holds locked, all queued): one UPDATE, its
    row count checked."""
    status, attempt_count = _column("status"), _column("attempt_count")
    started = _column("started_at")
    text = (f"UPDATE {_table()} SET {status} = %s, {attempt_count} = {attempt_count} + 1, "
            f"{_column('worker')} = %s, {_column('not_before')} = NULL, "
            f"{_column('lease_until')} = %s, {started} = COALESCE({started}, %s) "
            f"WHERE {_column('id')} IN ({', '.join(['%s'] * len(ids))}) AND {status} = %s")
    cursor = connection.cursor()
    cursor.execute(text, [StepStatus.RUNNING, worker, _prep("lease_until", lease),
                          _prep("started_at", now), *ids, StepStatus.QUEUED])
    write_checked(cursor, len(ids), f"claim {len(ids)} instances")


# The columns an instance's end sets (on PostgreSQL each sent as an array of its own type).
_OUTCOME_COLUMNS = ("status", "output", "error", "finished_at")


def outcomes_update(rows: Sequence[tuple[int, int, str, Any, Any, datetime]]) -> None:
    """End instances in one statement. `rows` are (id, attempt number, status, output, error,
    finished_at); each row changes only while its instance is still running at that attempt
    (a canceled instance, or one the sweeper took back, is left alone, and the row count then
    falls short: `WritesRaced`)."""
    postgres = connection.vendor == "postgresql"
    table = _table()
    sets = ", ".join(f"{_column(n)} = v.column{i}" for i, n in enumerate(_OUTCOME_COLUMNS, 3))
    where = (f"WHERE {table}.{_column('id')} = v.column1 AND {table}.{_column('status')} = %s "
             f"AND {table}.{_column('attempt_count')} = v.column2")
    converted = [(pk, attempt, status, _prep("output", output), _prep("error", error),
                  _prep("finished_at", finished_at))
                 for pk, attempt, status, output, error, finished_at in rows]
    if postgres:
        # One array per column: the same text whatever the rows (psycopg converts it once,
        # the server prepares it once); `unnest` gives the rows in order.
        types = ["bigint", "integer", *(
            StepInstance._meta.get_field(n).db_type(connection).split("(")[0]
            for n in _OUTCOME_COLUMNS)]
        arrays = ", ".join(f"%s::{t}[]" for t in types)
        names = ", ".join(f"column{i}" for i in range(1, len(types) + 1))
        text = (f"UPDATE {table} SET {sets}, {_column('lease_until')} = NULL "
                f"FROM unnest({arrays}) AS v ({names}) {where}")
        params: list[Any] = [list(column) for column in zip(*converted, strict=True)]
        params.append(StepStatus.RUNNING)
        cursor = prepared_cursor(connection)
    else:
        # VALUES columns are column1, column2...: (id, attempt, status, output, error,
        # finished_at). Not `WITH v (...) AS (VALUES ...) UPDATE`: Python's sqlite3 reports no
        # row count for a statement that does not begin with UPDATE.
        one = "(" + ", ".join(["%s"] * (2 + len(_OUTCOME_COLUMNS))) + ")"
        text = (f"UPDATE {table} SET {sets}, {_column('lease_until')} = NULL "
                f"FROM (VALUES {', '.join([one] * len(rows))}) AS v {where}")
        params = [value for row in converted for value in row]
        params.append(StepStatus.RUNNING)
        cursor = connection.cursor()
    cursor.execute(text, params)
    write_checked(cursor, len(rows), f"end {len(rows)} instances")


def window_take(step_run_id: int, count: int, *, now: datetime) -> list[tuple[int, int]]:
    """not_started → queued for the `count` lowest not-started instances of the step (fewer
    when fewer are left): the `max_parallel` window moves by the instances that ended. Rows
    another transaction is queueing are skipped on PostgreSQL (it queues them), so two
    batches ending at once never wait for each other. Returns [(id, index)] in index order."""
    status, index, pk = _column("status"), _column("index"), _column("id")
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked \
        else ""
    table = _table()
    # MATERIALIZED: the rows are picked once. As a plain `IN (subquery)` PostgreSQL may run
    # the subquery again for each row it updates, and each run skips the rows the earlier
    # ones just took: more than `count` rows would be queued.
    text = (f"WITH picked AS MATERIALIZED (SELECT {pk} FROM {table} "
            f"WHERE {_column('step_run')} = %s AND {status} = %s "
            f"AND NOT {_column('superseded')} ORDER BY {index} "
            f"LIMIT %s{lock}) "
            f"UPDATE {table} SET {status} = %s, {_column('enqueued_at')} = %s "
            f"WHERE {pk} IN (SELECT {pk} FROM picked) AND {status} = %s "
            f"RETURNING {pk}, {index}")
    with connection.cursor() as cursor:
        cursor.execute(text, [step_run_id, StepStatus.NOT_STARTED, count, StepStatus.QUEUED,
                              _prep("enqueued_at", now), StepStatus.NOT_STARTED])
        return sorted(((int(a), int(b)) for a, b in cursor.fetchall()), key=lambda r: r[1])
