"""Log context and formats (LOG_FORMAT in settings).

The django-q2 task entry points (workflows/tasks.py) set which run, step run and flow a worker
is busy with in a context variable; RunContextFilter copies it onto every log record, so every
engine line carries `run_id`, `step_run_id` and `flow` (None outside a task, e.g. in the
sweeper, which spans many runs), and with tracing on (ops.tracing) `trace_id` and `span_id`
(the run's trace, the attempt's span), so a log line leads to its place in the trace. JsonFormatter writes one JSON object per line.

This module imports nothing from the apps, so any layer may use it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

FIELDS = ("run_id", "step_run_id", "flow", "trace_id", "span_id")
_context: ContextVar[dict[str, Any]] = ContextVar("wf_log_context", default={})  # noqa: B039


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Within the block, log records carry these fields (run_id, step_run_id, flow)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def log_context_update(**fields: Any) -> None:
    """Change fields of the current context (a worker going on with the next step inline);
    the enclosing log_context restores the previous values on exit. Outside any log_context
    (the engine called directly, not through a task) it does nothing, so nothing leaks into
    later lines of the process."""
    current = _context.get()
    if current:
        _context.set({**current, **fields})


class RunContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name))
        return True


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601 UTC), level, logger, message, run_id,
    step_run_id, flow, trace_id, span_id, any `extra=` fields, and `exc_info` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            entry[name] = getattr(record, name, None)
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
