"""The engine's hot statements, compiled once per process (issue 14).

Every step sends the same few statements: lock the run and read its step states, move the
step (a conditional UPDATE), write the attempt, claim the next step, write the events. Built
through the ORM (QuerySet, Query, compiler) each of them costs more CPU in the worker than
PostgreSQL spends running it. Here each shape (model, the columns set, the columns tested) is
turned into SQL text once and then run with each field's own conversion (`get_db_prep_save`),
so values are stored exactly as the ORM stores them. (The reads are
`workflows.prepared_queries.PreparedQuery`s: progress.py, executor.py.)

On PostgreSQL these statements use a server-binding cursor (parameters sent apart from the
text, no quoting in Python) and, with WF_PREPARE_STATEMENTS on (the default), are prepared:
parsed and planned once per connection instead of on every call (`prepared_queries.cursor`).
They go through Django's cursor wrapper, so query logging, `CaptureQueriesContext` and error
translation see them like any other statement. Everything else keeps using the ORM.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, models

from workflows.prepared_queries import cursor


def _field(model: type[models.Model], name: str) -> models.Field:
    return model._meta.pk if name == "pk" else model._meta.get_field(name)


class IfNull:
    """An UPDATE value that is written only where the column is still NULL (`col =
    COALESCE(col, value)`): a first time kept, without reading the row first."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


@cache
def _update_sql(model: type[models.Model], vendor: str, set_names: tuple[tuple[str, bool], ...],
                where: tuple[tuple[str, int], ...]) -> tuple[str, tuple, tuple]:
    """UPDATE text for this shape, with the fields of its SET and WHERE parameters.
    `set_names` is ((name, if_null)); `where` is ((name, n)): n == 0 for `column = %s`, n > 0
    for `column IN (%s, ... n times)`."""
    quote = connection.ops.quote_name
    set_fields = tuple(_field(model, n) for n, _ in set_names)
    sets = []
    for field, (_, if_null) in zip(set_fields, set_names, strict=True):
        column = quote(field.column)
        sets.append(f"{column} = COALESCE({column}, %s)" if if_null else f"{column} = %s")
    where_fields = tuple(_field(model, n) for n, _ in where)
    tests = []
    for field, (_, count) in zip(where_fields, where, strict=True):
        if count:
            tests.append(f"{quote(field.column)} IN ({', '.join(['%s'] * count)})")
        else:
            tests.append(f"{quote(field.column)} = %s")
    text = (f"UPDATE {quote(model._meta.db_table)} SET " + ", ".join(sets)
            + " WHERE " + " AND ".join(tests))
    return text, set_fields, where_fields


# Statements naming more rows than this (a run start's bulk INSERTs, a cancel's IN list) are
# rarely sent twice with the same count: not worth a prepared statement on the server each.
PREPARE_MAX_ROWS = 8


def update(model: type[models.Model], where: dict[str, Any], values: dict[str, Any]) -> Any:
    """Send `UPDATE model SET values WHERE where` (equality; a list or tuple value is IN; an
    `IfNull` value only fills a NULL column) and return the cursor, still open: its rowcount
    says how many rows changed (in pipeline mode, once the pipeline has synced). The caller
    closes it."""
    db = connections[DEFAULT_DB_ALIAS]  # not the proxy: each field reads it several times
    shape = tuple((name, len(v) if isinstance(v, (list, tuple)) else 0)
                  for name, v in where.items())
    set_names = tuple((name, type(value) is IfNull) for name, value in values.items())
    text, set_fields, where_fields = _update_sql(model, db.vendor, set_names, shape)
    params = [_save_conversion(field, db.vendor)(
                  value.value if type(value) is IfNull else value, db)
              for field, value in zip(set_fields, values.values(), strict=True)]
    for field, value in zip(where_fields, where.values(), strict=True):
        if isinstance(value, (list, tuple)):
            params.extend(field.get_db_prep_value(v, db) for v in value)
        else:
            params.append(field.get_db_prep_value(value, db))
    sent = cursor(db, prepare=all(count <= PREPARE_MAX_ROWS for _, count in shape))
    sent.execute(text, params)
    return sent


@cache
def _insert_fields(model: type[models.Model]) -> tuple[models.Field, ...]:
    return tuple(f for f in model._meta.concrete_fields if not f.primary_key)


# Values the driver takes as they are, by the field's internal type: for these (and None) the
# ORM's conversion (`get_db_prep_save`) returns the value unchanged, so it is not called.
_AS_IS = {
    "CharField": str, "TextField": str, "SlugField": str, "BooleanField": bool,
    "IntegerField": int, "PositiveIntegerField": int, "BigIntegerField": int,
    "SmallIntegerField": int, "PositiveSmallIntegerField": int, "PositiveBigIntegerField": int,
    "AutoField": int, "BigAutoField": int,
}


@cache
def _save_conversion(field: models.Field, vendor: str) -> Callable[[Any, Any], Any]:
    """`field.get_db_prep_save`, skipped for the values it would return unchanged (aware
    datetimes too, on PostgreSQL)."""
    convert = field.get_db_prep_save
    target = field.target_field if field.is_relation else field
    internal = target.get_internal_type()
    kind = _AS_IS.get(internal)
    if kind is not None:
        def as_is(value: Any, db: Any) -> Any:
            if value is None or type(value) is kind:
                return value
            return convert(value, db)
        return as_is
    if internal == "DateTimeField" and vendor == "postgresql":
        def aware_as_is(value: Any, db: Any) -> Any:
            if value is None or (type(value) is datetime and value.tzinfo is not None):
                return value
            return convert(value, db)
        return aware_as_is
    return convert


@cache
def _insert_columns(model: type[models.Model], vendor: str) -> tuple[tuple, ...]:
    """(field, attname, conversion, needs pre_save) for each column an INSERT writes."""
    return tuple((f, f.attname, _save_conversion(f, vendor),
                  bool(getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)))
                 for f in _insert_fields(model))


@cache
def _insert_sql(model: type[models.Model], vendor: str, rows: int, returning: bool) -> str:
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    text = (f"INSERT INTO {quote(model._meta.db_table)} "
            f"({', '.join(quote(f.column) for f in fields)}) VALUES "
            + ", ".join([one] * rows))
    if returning:
        text += f" RETURNING {quote(model._meta.pk.column)}"
    return text


@cache
def _insert_arrays_sql(model: type[models.Model], returning: bool) -> str:
    """PostgreSQL: INSERT of any number of rows with one array parameter per column."""
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    arrays = ", ".join(f"%s::{_array_type(f)}" for f in fields)
    text = (f"INSERT INTO {quote(model._meta.db_table)} "
            f"({', '.join(quote(f.column) for f in fields)}) SELECT * FROM unnest({arrays})")
    if returning:
        # unnest's rows come in array order, and so do the ids of a plain INSERT ... SELECT.
        text += f" RETURNING {quote(model._meta.pk.column)}"
    return text


def _array_type(field: models.Field) -> str:
    target = field.target_field if field.is_relation else field
    return f"{target.db_type(connection).split('(')[0]}[]"


def insert(objs: list[models.Model], *, returning: bool = False) -> Any:
    """INSERT `objs` (instances of one model, primary keys unset) in one statement, each
    field's value taken as the ORM's INSERT takes it (`pre_save`, then `get_db_prep_save`).
    Returns the cursor, still open; with `returning`, its rows are the new primary keys (in
    pipeline mode, once the pipeline has synced). The caller closes it.

    On PostgreSQL, more rows than PREPARE_MAX_ROWS go as one array per column (`unnest`): a
    statement with one placeholder per value is parsed in Python on every call (psycopg
    caches the conversion of statements of at most 50 parameters only) and is not worth
    preparing; one with an array per column is the same text whatever the rows, prepared
    once per connection."""
    db = connections[DEFAULT_DB_ALIAS]
    model = type(objs[0])
    columns = _insert_columns(model, db.vendor)
    if db.vendor == "postgresql" and len(objs) > PREPARE_MAX_ROWS:
        arrays = [[convert(field.pre_save(obj, True) if pre_save else getattr(obj, attname), db)
                   for obj in objs] for field, attname, convert, pre_save in columns]
        sent = cursor(db)
        sent.execute(_insert_arrays_sql(model, returning), arrays)
        return sent
    params = [convert(field.pre_save(obj, True) if pre_save else getattr(obj, attname), db)
              for obj in objs
              for field, attname, convert, pre_save in columns]
    sent = cursor(db, prepare=len(objs) <= PREPARE_MAX_ROWS)
    sent.execute(_insert_sql(model, db.vendor, len(objs), returning), params)
    return sent


def insert_batches(objs: list[models.Model]) -> list[tuple[Any, int]]:
    """`insert` in batches the backend accepts (SQLite limits the parameters of a
    statement). Returns (cursor, rows inserted) per batch, cursors still open."""
    size = connection.ops.bulk_batch_size(_insert_fields(type(objs[0])), objs) or len(objs)
    return [(insert(objs[i:i + size]), len(objs[i:i + size]))
            for i in range(0, len(objs), size)]


def can_return_from_insert() -> bool:
    return connection.features.can_return_columns_from_insert
