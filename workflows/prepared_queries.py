"""Queries that every API request runs, compiled by the ORM once per process instead of per call.

Compiling a queryset (its joins, the default ordering, the converters) costs 0.2 to 0.4 ms of
CPU, several times what the database spends answering an indexed one-row lookup; the token
check, the flow of a run start and an operator's permissions were each compiled on every
request (docs/performance.md "Throughput"). A `PreparedQuery` asks the ORM for the SQL of its
queryset once per database, with a sentinel in place of the one value that changes, then runs
that SQL with the real value: the statement is the ORM's own, and the rows pass through the
converters the ORM would apply (SQLite's booleans and datetimes, a field's `from_db_value`).

The engine's per-step reads are PreparedQuery too, and on PostgreSQL every PreparedQuery is a
prepared statement (`cursor()`, below): parsed and planned once per connection.

Only for an exact lookup whose value reaches the database unchanged (text, integers): compiling
checks that every parameter is the sentinel itself and raises ImproperlyConfigured otherwise,
so a queryset of another shape fails in the tests instead of running wrong SQL. A value of
another type than the sentinel (a UUID primary key, say) is run through the ORM as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.db.models import Model, QuerySet
from django.db.models.base import ModelState


@dataclass(frozen=True)
class _Compiled:
    sql: str
    param_count: int
    converters: list[tuple[int, tuple[Callable, ...], Any]]
    column_count: int
    trim: bool
    # A model queryset (not values_list): rows become instances of `model` from these columns.
    model: type[Model] | None
    attnames: tuple[str, ...]
    model_columns: slice


class PreparedQuery:
    """`build(value)` is a queryset with `value` in exact lookups (one or more times);
    `rows(value)` runs it and answers its rows, in one statement, without compiling it again:
    tuples for a `values_list` queryset, model instances for a model queryset (built as
    `Model.from_db` builds them, without `Model.__init__`; deferred fields load on access).

    `send(value)` and `read(sent)` split the two halves, so a caller in psycopg's pipeline
    mode can send several statements before reading any answer (the engine does). On
    PostgreSQL the statement is sent through `cursor()`: server-side binding, prepared."""

    def __init__(self, model: type[Model], build: Callable[[Any], QuerySet], *, sentinel: Any):
        self.model = model
        self.build = build
        self.sentinel = sentinel
        self._compiled: dict[str, _Compiled] = {}
        self._for_write: bool | None = None

    def _compile(self, alias: str) -> _Compiled:
        queryset = self.build(self.sentinel)
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        if not params or any(type(p) is not type(self.sentinel) or p != self.sentinel
                             for p in params):
            raise ImproperlyConfigured(
                f"PreparedQuery on {self.model.__name__}: every parameter must be the value "
                f"itself, got {params!r}")
        # As SQLCompiler.results_iter does: the selected columns' converters (they depend on
        # the backend and the settings only, so one set serves every thread's connection), and
        # the columns the ORM adds for a DISTINCT's ORDER BY trimmed off.
        fields = [column[0] for column in compiler.select[:compiler.col_count]]
        converters = compiler.get_converters(fields)
        model, attnames, columns = None, (), slice(0)
        if compiler.klass_info is not None and not queryset.query.values_select:
            selected = compiler.klass_info["select_fields"]
            model = queryset.model
            attnames = tuple(compiler.select[i][0].target.attname for i in selected)
            columns = slice(selected[0], selected[-1] + 1)
        compiled = _Compiled(sql=sql, param_count=len(params),
                             converters=[(position, tuple(functions), expression)
                                         for position, (functions, expression)
                                         in converters.items()],
                             column_count=compiler.col_count, trim=compiler.has_extra_select,
                             model=model, attnames=attnames, model_columns=columns)
        self._compiled[alias] = compiled
        return compiled

    def db_alias(self) -> str:
        """The database the rows are read from, as the ORM chooses it for the model (the
        writer for a `select_for_update()` queryset)."""
        if self._for_write is None:
            self._for_write = bool(self.build(self.sentinel)._for_write)
        if self._for_write:
            return router.db_for_write(self.model)
        return router.db_for_read(self.model)

    def send(self, value: Any) -> tuple[Any, ...]:
        """Send the statement; `read` answers its rows."""
        if type(value) is not type(self.sentinel):
            return (None, list(self.build(value)), None)
        alias = self.db_alias()
        compiled = self._compiled.get(alias) or self._compile(alias)
        connection = connections[alias]
        sent = cursor(connection)
        sent.execute(compiled.sql, [value] * compiled.param_count)
        return (sent, compiled, connection)

    @staticmethod
    def read(sent: tuple[Any, ...]) -> list[Any]:
        statement, compiled, connection = sent
        if statement is None:  # run through the ORM (a value of another type)
            return compiled
        try:
            rows = statement.fetchall()
        finally:
            statement.close()
        if compiled.trim:
            rows = [row[:compiled.column_count] for row in rows]
        if compiled.converters:
            converted = []
            for row in rows:
                row = list(row)
                for position, functions, expression in compiled.converters:
                    value = row[position]
                    for function in functions:
                        value = function(value, expression, connection)
                    row[position] = value
                converted.append(row)
            rows = converted
        if compiled.model is None:
            return [tuple(row) for row in rows]
        return [_instance(compiled.model, connection.alias, compiled.attnames,
                          row[compiled.model_columns]) for row in rows]

    def rows(self, value: Any) -> list[Any]:
        return self.read(self.send(value))


def _instance(model: type[Model], alias: str, attnames: tuple[str, ...], values: Any) -> Model:
    """What `Model.from_db` returns, without `Model.__init__` (its signals and per-field
    defaults cost more than the row itself)."""
    obj = model.__new__(model)
    state = obj._state = ModelState()
    state.adding = False
    state.db = alias
    obj.__dict__.update(zip(attnames, values, strict=True))
    return obj


def concrete_attnames(model: type[Model]) -> list[str]:
    """The attribute names of a model's columns in the order `Model.from_db` takes them."""
    return [field.attname for field in model._meta.concrete_fields]


# --- the cursor: prepared statements on PostgreSQL ---------------------------------------------

# psycopg prepares nothing while a connection's prepare_threshold is None (Django's default,
# for connection poolers). This value lets it prepare what asks for it (`prepare=True`: the
# statements sent through `cursor()`) and, in practice, nothing else.
_ONLY_WHEN_ASKED = 2**31 - 1


def cursor(connection: Any, *, prepare: bool = True) -> Any:
    """A cursor of `connection` for a statement sent again and again. On PostgreSQL with
    WF_PREPARE_STATEMENTS on (the default) it binds parameters server-side and prepares the
    statement on first use (psycopg keeps it per connection), so the server parses and plans
    it once; elsewhere, or with `prepare` False, Django's usual cursor. Either way Django's
    wrapper: query logging, CaptureQueriesContext and error translation see the statement."""
    if prepare and connection.vendor == "postgresql" and settings.WF_PREPARE_STATEMENTS:
        connection.ensure_connection()
        raw = connection.connection
        if raw.prepare_threshold is None:
            raw.prepare_threshold = _ONLY_WHEN_ASKED
        return connection._prepare_cursor(_prepared_cursor_class()(raw))
    return connection.cursor()


@cache
def _prepared_cursor_class() -> type:
    # Imported here: psycopg (and Django's PostgreSQL backend) is only there with PostgreSQL.
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparedCursor(ServerBindingCursor):
        """Server-side binding, and every statement prepared on first use. Django turns
        automatic preparation off (`prepare_threshold` None) for connection poolers;
        WF_PREPARE_STATEMENTS=false does the same here."""

        def execute(self, query, params=None, **kwargs):
            kwargs.setdefault("prepare", True)
            return super().execute(query, params, **kwargs)

        def _send_query_prepared(self, name, pgq, **kwargs):
            # psycopg records the query only when it is not prepared; Django's query log
            # (last_executed_query) reads it.
            self._query = pgq
            return super()._send_query_prepared(name, pgq, **kwargs)

    return PreparedCursor
