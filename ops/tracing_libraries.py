"""Spans from the libraries the platform calls: Django (a server span per web request), psycopg 3
(a client span per SQL statement on PostgreSQL) and httpx (a client span per outbound request:
http steps, notifications). Each is the upstream OpenTelemetry instrumentation
(`opentelemetry-instrumentation-django`, `-psycopg`, `-httpx`, in the `[otel]` extra).
Imported by ops.tracing only when tracing is on, so the off path never loads any of it.

SQLite has no instrumentation among these (Django's sqlite3 backend is not psycopg): on SQLite a
trace has no database spans.

What is recorded is decided by the sampler (`ParentBased(ServerRoots)`):
- a span whose parent is recorded: a statement or an outbound call made inside a web request
  (the request's span is current), or inside a step's handler (the attempt's span is current:
  `ops.tracing.attach_parent`, called by the handler thread), which is how an http step's call
  and an action's queries land under the attempt;
- a server span with no parent: a web request without a `traceparent` starts its own trace;
- nothing else. A statement with no span around it is the engine's own bookkeeping in a worker
  (claiming a step, writing the attempt, its events, logs and heartbeats, queuing the next): about
  ten statements per step, which the run's events already show; recording them would add ten
  spans to every step and more than the step-overhead budget of tracing (docs/performance.md).
  Even dropped, a statement paid the instrumentation's span machinery (about 30 µs on a loaded
  machine, ten times a step), so psycopg's cursor tracer is replaced by `ParentOnlyCursorTracer`,
  which hands a statement with no current span straight to psycopg (one context read).

The spans go to ops.tracing's one batch processor (bounded queue, drops counted), built lazily
after the process forked, through `Forward`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import SpanKind

logger = logging.getLogger(__name__)

# Probes and scrapes, and static files: no span (OTEL_PYTHON_DJANGO_EXCLUDED_URLS overrides).
EXCLUDED_URLS = "healthz,readyz,metrics,static/"
_LIBRARIES = (
    ("opentelemetry.instrumentation.django", "DjangoInstrumentor"),
    ("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor"),
    ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor"),
)
_active: list[Any] = []
_original_cursor_tracer: Any = None

_RECORD = SamplingResult(Decision.RECORD_AND_SAMPLE)
_DROP = SamplingResult(Decision.DROP)


class ServerRoots(Sampler):
    """The root sampler: only a server span (a web request) starts a trace."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str,
                      kind: SpanKind | None = None, attributes: Any = None, links: Any = None,
                      trace_state: Any = None) -> SamplingResult:
        if kind == SpanKind.SERVER:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return _DROP

    def get_description(self) -> str:
        return "ServerRoots"


class Forward(SpanProcessor):
    """Hands ended spans to ops.tracing's batch processor (made on first use)."""

    def __init__(self, ended: Callable[[Any], None]) -> None:
        self._ended = ended

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        self._ended(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _parent_only_cursor_tracer() -> None:
    """psycopg's instrumentation makes its per-connection cursor tracer from the module's
    `CursorTracer` when a connection opens: a subclass that skips statements with no span
    around them (the sampler would drop them anyway, at ten times the cost)."""
    global _original_cursor_tracer
    from opentelemetry.instrumentation import psycopg as traced_psycopg
    from opentelemetry.trace import get_current_span

    base = traced_psycopg.CursorTracer

    class ParentOnlyCursorTracer(base):
        def traced_execution(self, cursor: Any, query_method: Any, *args: Any,
                             **kwargs: Any) -> Any:
            if not get_current_span().get_span_context().is_valid:
                return query_method(*args, **kwargs)
            return super().traced_execution(cursor, query_method, *args, **kwargs)

    _original_cursor_tracer = base
    traced_psycopg.CursorTracer = ParentOnlyCursorTracer


def instrument(ended: Callable[[Any], None], resource: Resource) -> None:
    """Instrument the libraries that are installed (each one once per process)."""
    if _active:
        return
    provider = TracerProvider(sampler=ParentBased(ServerRoots()), resource=resource,
                              shutdown_on_exit=False)
    provider.add_span_processor(Forward(ended))
    for module_name, class_name in _LIBRARIES:
        try:
            module = __import__(module_name, fromlist=[class_name])
            instrumentor = getattr(module, class_name)()
            options: dict[str, Any] = {"tracer_provider": provider}
            if class_name == "DjangoInstrumentor" \
                    and not os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS"):
                options["excluded_urls"] = EXCLUDED_URLS
            instrumentor.instrument(**options)
        except Exception:  # noqa: BLE001 - a missing or broken instrumentation: traces go on
            logger.warning("could not instrument %s", module_name, exc_info=True)
            continue
        if instrumentor.is_instrumented_by_opentelemetry:
            _active.append(instrumentor)
            if class_name == "PsycopgInstrumentor":
                _parent_only_cursor_tracer()


def uninstrument() -> None:
    """Undo `instrument` (tests and benches that turn tracing off in the same process;
    connections opened meanwhile keep their traced cursors until they close)."""
    global _original_cursor_tracer
    if _original_cursor_tracer is not None:
        from opentelemetry.instrumentation import psycopg as traced_psycopg
        traced_psycopg.CursorTracer, _original_cursor_tracer = _original_cursor_tracer, None
    while _active:
        instrumentor = _active.pop()
        try:
            instrumentor.uninstrument()
        except Exception:  # noqa: BLE001
            logger.warning("could not uninstrument %s", instrumentor, exc_info=True)
