"""The threads step handlers run in (executor.execute), kept for the next attempt.

Starting a thread per attempt cost about 0.1 ms of a step's 2 (docs/performance.md): a
worker now hands the handler to an idle thread of its process, and starts one only when none
is idle. The database connection a handler opens in its thread (the ORM in a python action) is
closed after the attempt when unusable or past CONN_MAX_AGE, as at the end of a web request. A
handler that is abandoned (past its timeout, or canceled and ignoring it) keeps its
thread until it returns, as before; the thread then goes back to the idle ones. The threads are
daemons, as the per-attempt ones were, so a stuck handler never keeps a recycled worker process
alive. A forked child (django-q2 forks its workers) starts with no idle threads: threads do not
survive a fork.
"""

from __future__ import annotations

import contextvars
import os
import threading
import traceback
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

from django.db import close_old_connections

from ops import tracing as otel

# More idle threads than this are let go (a process rarely runs more handlers at once).
MAX_IDLE = 8

_lock = threading.Lock()
_idle: list[SimpleQueue] = []


def handler_start(execute: Callable[[], Any], ctx: Any, result: Any, *,
                  name: str) -> threading.Event:
    """Run a step handler (`execute`, e.g. `step_type.execute(ctx)`) in a handler thread, in a
    copy of the caller's context (its log lines name the step). Its outcome, or the exception
    it raised with the traceback, lands on `result` (`outcome`, `error`, `trace`): a handler's
    failure is data, recorded on the Attempt. Returns the event set when it has returned; the
    context is woken then too, so the worker's wait ends at once. With tracing on, the
    attempt's span is the current span meanwhile: what the handler queries or calls over HTTP
    makes spans under it (ops.tracing_libraries)."""
    done = threading.Event()
    traceparent = getattr(ctx, "traceparent", None)

    def target() -> None:
        token = otel.attach_parent(traceparent, getattr(ctx, "tracestate", None)) \
            if traceparent else None
        try:
            result.outcome = execute()
        except BaseException as exc:  # noqa: BLE001 - recorded, never raised here
            result.error = exc
            result.trace = traceback.format_exc()
        finally:
            otel.detach_parent(token)
            done.set()
            ctx.wake()

    context = contextvars.copy_context()
    run(lambda: context.run(target), name=name)
    return done


def run(job: Callable[[], None], *, name: str) -> None:
    """Run `job` in an idle handler thread (named `name` meanwhile), or a new one. `job` must
    not raise: it records its own outcome."""
    with _lock:
        inbox = _idle.pop() if _idle else None
    if inbox is None:
        inbox = SimpleQueue()
        threading.Thread(target=_serve, args=(inbox,), name=name, daemon=True).start()
    inbox.put((job, name))


def _serve(inbox: SimpleQueue) -> None:
    thread = threading.current_thread()
    while True:
        job, name = inbox.get()
        thread.name = name
        try:
            job()
        finally:
            thread.name = "step-handler-idle"
            # A handler that used the ORM opened this thread's own connection: keep it only
            # while it is usable and within CONN_MAX_AGE, as a web request's is.
            close_old_connections()
        with _lock:
            if len(_idle) >= MAX_IDLE:
                return
            _idle.append(inbox)


def _forget_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    _idle.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
