"""Queries that every API request runs, compiled by the ORM once per process instead of per call.

Compiling a queryset (its joins, the default ordering, the converters) costs 0.2 to 0.4 ms of
CPU, several times what the database spends answering an indexed one-row lookup; the token
check, the flow of a run start and an operator's permissions were each compiled on every
request (docs/performance.md "Throughput"). A `PreparedQuery` asks the ORM for the SQL of its
queryset once per database, with a sentinel in place of the one value that changes, then runs
that SQL with the real value: the statement is the ORM's own, and the rows pass through the
converters the ORM would apply (SQLite's booleans and datetimes, a field's `from_db_value`).

Only for an exact lookup whose value reaches the database unchanged (text, integers): compiling
checks that every parameter is the sentinel itself and raises ImproperlyConfigured otherwise,
so a queryset of another shape fails in the tests instead of running wrong SQL. A value of
another type than the sentinel (a UUID primary key, say) is run through the ORM as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.db.models import Model, QuerySet


@dataclass(frozen=True)
class _Compiled:
    sql: str
    param_count: int
    converters: list[tuple[int, tuple[Callable, ...], Any]]
    column_count: int
    trim: bool


class PreparedQuery:
    """`build(value)` is a `values_list` queryset with `value` in exact lookups (one or more
    times); `rows(value)` runs it and answers its rows as tuples, in one statement, without
    compiling it again."""

    def __init__(self, model: type[Model], build: Callable[[Any], QuerySet], *, sentinel: Any):
        self.model = model
        self.build = build
        self.sentinel = sentinel
        self._compiled: dict[str, _Compiled] = {}

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
        compiled = _Compiled(sql=sql, param_count=len(params),
                             converters=[(position, tuple(functions), expression)
                                         for position, (functions, expression)
                                         in converters.items()],
                             column_count=compiler.col_count, trim=compiler.has_extra_select)
        self._compiled[alias] = compiled
        return compiled

    def db_alias(self) -> str:
        """The database the rows are read from (as the ORM chooses it for the model)."""
        return router.db_for_read(self.model)

    def rows(self, value: Any) -> list[tuple]:
        if type(value) is not type(self.sentinel):
            return list(self.build(value))
        alias = self.db_alias()
        compiled = self._compiled.get(alias) or self._compile(alias)
        connection = connections[alias]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, [value] * compiled.param_count)
            rows = cursor.fetchall()
        if compiled.trim:
            rows = [row[:compiled.column_count] for row in rows]
        if not compiled.converters:
            return [tuple(row) for row in rows]
        converted = []
        for row in rows:
            row = list(row)
            for position, functions, expression in compiled.converters:
                value = row[position]
                for function in functions:
                    value = function(value, expression, connection)
                row[position] = value
            converted.append(tuple(row))
        return converted


def concrete_attnames(model: type[Model]) -> list[str]:
    """The attribute names of a model's columns in the order `Model.from_db` takes them."""
    return [field.attname for field in model._meta.concrete_fields]
