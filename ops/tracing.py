"""OpenTelemetry traces: the SDK, set up only when the standard OTEL_* variables ask for it.

Off (no OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_TRACES_EXPORTER
unset or "none", or OTEL_SDK_DISABLED=true, or the `[otel]` extra not installed) every function
here returns at its first line and the SDK is never imported: `enabled()` is one global read.

Spans are not kept open across the life of a run: a run, a step or an attempt may start in one
process and end in another (a web process resolving a callback, the sweeper). So each span is
created when its subject ends, with explicit start and end times and *known ids*: the run's trace
id and span id are stored on the run row (`run_ids`), and the ids of its step, attempt and pause
spans are derived from them (`derived_id`), so whichever process ends a span puts it in the same
trace under the right parent. A span that has ended is all we ever make, so it is built as
the SDK's `ReadableSpan` and handed to the batch processor directly.

The spans of the instrumented libraries (Django requests, psycopg statements, httpx calls:
ops.tracing_libraries) are live spans of the SDK's tracer, made where the call happens: a step's
handler thread runs with its attempt's span current (`attach_parent`), so they are its children.

Export is the SDK's BatchSpanProcessor (a bounded queue, a background thread) with the
OTLP/HTTP protobuf exporter: a collector that is down or slow never slows a step; what cannot be
queued or exported is dropped and counted in the database (`TraceDrop`, read by /metrics), so
every process adds to one figure.

This module imports nothing from the apps but ops.models, so any layer may use it.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

logger = logging.getLogger(__name__)

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
PERSIST_DROPS_EVERY_SECONDS = 5.0
MAX_TRACESTATE = 512  # characters kept (W3C: propagate at least 512)

_enabled: bool | None = None  # decided once per process (reset() decides again)
_lock = threading.Lock()
_processor: Any = None
_sdk: dict[str, Any] = {}
_drops: dict[str, int] = {}
_drops_lock = threading.Lock()
_drops_persisted_at = 0.0


# --- on or off ---------------------------------------------------------------------------------

def _wanted() -> bool:
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def enabled() -> bool:
    """Whether this process exports traces (decided from the environment at the first call)."""
    if _enabled is None:
        return _decide()
    return _enabled


def _decide() -> bool:
    global _enabled
    with _lock:
        if _enabled is None:
            on = _wanted()
            if on:
                try:
                    import opentelemetry.exporter.otlp.proto.http.trace_exporter  # noqa: F401
                    import opentelemetry.sdk.trace  # noqa: F401
                except ImportError:
                    logger.warning("OTEL_* variables are set but the [otel] extra is not "
                                   "installed: traces are off")
                    on = False
            if on:
                from ops import tracing_libraries
                tracing_libraries.instrument(_library_span_ended, _resource())
            _enabled = on
    return _enabled


def reset() -> None:
    """Flush and drop the SDK set-up, and decide again from the environment (tests, and a
    process that changed its OTEL_* variables)."""
    global _enabled, _processor
    with _lock:
        if _processor is not None:
            _processor.force_flush(2000)
            _processor.shutdown()
        if _enabled:
            from ops import tracing_libraries
            tracing_libraries.uninstrument()
        _enabled = _processor = None
    _decide()  # instrumentations in place before the next request or connection


def flush(timeout_millis: int = 5000) -> None:
    """Export what is queued, then record the drops counted so far (tests; process exit)."""
    if _processor is not None:
        _processor.force_flush(timeout_millis)
    drops_persist(force=True)


# --- ids and traceparent -----------------------------------------------------------------------

def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, span id) of a W3C `traceparent`, or None when it is absent or malformed
    (then the run starts a fresh trace)."""
    if not value or len(value) > 512:
        return None
    match = _TRACEPARENT.match(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE \
            or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id


def traceparent(trace_id: str, span_id: str) -> str:
    return f"00-{trace_id}-{span_id}-01"


def parse_tracestate(value: str | None) -> str:
    """A W3C `tracestate` as it is passed on (normalized: `key=value` members joined by ","),
    or "" when it is absent or malformed: a member that breaks the key/value grammar, a
    duplicate key, or more than 32 members drop all of it (the API's TraceState parser). Members
    are dropped from the end until it fits in 512 characters, as the spec allows."""
    if not value or len(value) > 8192 or not enabled():
        return ""
    from opentelemetry.trace.span import TraceState

    members = list(TraceState.from_header([value]).items())
    header = ""
    while members:
        header = ",".join(f"{key}={val}" for key, val in members)
        if len(header) <= MAX_TRACESTATE:
            break
        members.pop()
    return header if members else ""


def run_ids(inbound: str | None = None, state: str | None = None) -> dict[str, str]:
    """The trace columns of a new run: a fresh trace, or the inbound `traceparent`'s trace with
    the run span as its child (with the caller's `tracestate`, passed on with the trace). Empty
    when tracing is off (the run is not traced)."""
    if not enabled():
        return {}
    parent = parse_traceparent(inbound)
    trace_id, parent_id = parent if parent else (secrets.token_hex(16), "")
    return {"trace_id": trace_id, "trace_span_id": secrets.token_hex(8),
            "trace_parent_id": parent_id, "trace_state": parse_tracestate(state) if parent else ""}


def attach_parent(traceparent: str | None, tracestate: str | None = None) -> Any:
    """Make the span `traceparent` names (an attempt's) the current span of this thread's
    context, so the spans the instrumented libraries make here (ops.tracing_libraries: SQL
    statements, outbound HTTP) are its children. Returns the token for `detach_parent`, or None
    (tracing off, no traceparent)."""
    if not traceparent or not enabled():
        return None
    ids = parse_traceparent(traceparent)
    if ids is None:
        return None
    from opentelemetry import context, trace
    from opentelemetry.trace.span import TraceState

    state = TraceState.from_header([tracestate]) if tracestate else None
    parent = trace.NonRecordingSpan(trace.SpanContext(
        int(ids[0], 16), int(ids[1], 16), is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED), trace_state=state))
    return context.attach(trace.set_span_in_context(parent))


def current_span_ids() -> tuple[str, str] | None:
    """(trace id, span id) of this thread's current span (a web request's server span, with the
    Django instrumentation), or None: none, or tracing off."""
    if not enabled():
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def detach_parent(token: Any) -> None:
    if token is not None:
        from opentelemetry import context

        context.detach(token)


def derived_id(trace_id: str, *parts: Any) -> str:
    """A span id derived from the trace and what the span is (step run id, attempt number…):
    every process computes the same one, so a span ended anywhere has the right parent."""
    digest = hashlib.blake2b(":".join([trace_id, *map(str, parts)]).encode(),
                             digest_size=8).hexdigest()
    return digest if digest != _ZERO_SPAN else "0" * 15 + "1"


# --- emitting ----------------------------------------------------------------------------------

def _setup() -> Any:
    """The span processor, built on first use in this process (after django-q2 forked it)."""
    global _processor, _sdk
    with _lock:
        if _processor is not None:
            return _processor
        from opentelemetry import trace as api
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import Event, ReadableSpan
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        class CountingExporter(OTLPSpanExporter):
            def export(self, spans: Any) -> Any:
                try:
                    result = super().export(spans)
                except Exception:  # noqa: BLE001 - a broken collector is counted, not raised
                    logger.warning("exporting %d spans failed", len(spans), exc_info=True)
                    result = SpanExportResult.FAILURE
                if result != SpanExportResult.SUCCESS:
                    drop_count("export_failed", len(spans))
                drops_persist()
                return result

        class BoundedProcessor(BatchSpanProcessor):
            def on_end(self, span: Any) -> None:
                inner = getattr(self, "_batch_processor", None)
                queue = getattr(inner, "_queue", None)
                if queue is not None and len(queue) >= inner._max_queue_size:
                    drop_count("queue_full", 1)  # counted, not logged span by span
                    return
                super().on_end(span)

        _sdk = {
            "api": api, "Event": Event, "ReadableSpan": ReadableSpan, "resource": _resource(),
            "scope": InstrumentationScope("workflows"),
            "sampled": api.TraceFlags(api.TraceFlags.SAMPLED),
        }
        _processor = BoundedProcessor(CountingExporter())
        return _processor


def _library_span_ended(span: Any) -> None:
    """A span of an instrumented library (ops.tracing_libraries) ended: into the same batch. A
    cursor traced before tracing was turned off in this process (tests, the bench) adds none."""
    if _enabled:
        (_processor or _setup()).on_end(span)


def _resource() -> Any:
    """The process's resource (service.name, OTEL_RESOURCE_ATTRIBUTES), with its hash kept: the
    exporter groups every span by resource, and the SDK's hash serializes it to JSON each time
    (a fifth of the export thread's work per span)."""
    from opentelemetry.sdk.resources import Resource

    class KeptHashResource(Resource):
        _hash: int | None = None

        def __hash__(self) -> int:
            if self._hash is None:
                self._hash = super().__hash__()
            return self._hash

        def __eq__(self, other: object) -> bool:
            return super().__eq__(other)

    created = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME")
                               or "workflows"})
    return KeptHashResource(created.attributes, created.schema_url)


def span_emit(name: str, *, trace_id: str, span_id: str, parent_id: str = "",
              start: datetime | None, end: datetime | None = None,
              attributes: Mapping[str, Any] | None = None,
              error: Mapping[str, Any] | None = None,
              links: Iterable[tuple[str, str]] = (), kind: str = "internal") -> None:
    """Export one finished span with the given ids and times. `error` ({type, message,
    traceback}) sets the error status and records it as the span's exception event. Never
    raises: tracing must not fail a step."""
    if not enabled() or not trace_id or not span_id:
        return
    try:
        _emit(name, trace_id, span_id, parent_id, start, end, attributes, error, links, kind)
    except Exception:  # noqa: BLE001
        logger.warning("could not record span %s", name, exc_info=True)


def _emit(name: str, trace_id: str, span_id: str, parent_id: str, start: datetime | None,
          end: datetime | None, attributes: Mapping[str, Any] | None,
          error: Mapping[str, Any] | None, links: Iterable[tuple[str, str]], kind: str) -> None:
    """The finished span, built as the SDK's ReadableSpan and handed to the batch processor:
    a span that has already ended needs none of the tracer's live-span machinery (context,
    sampler, id generator), which cost several times more per span."""
    processor = _processor or _setup()
    api = _sdk["api"]
    sampled = _sdk["sampled"]
    trace = int(trace_id, 16)
    end_ns = _ns(end) if end else time.time_ns()
    start_ns = min(_ns(start), end_ns) if start else end_ns
    parent = api.SpanContext(trace, int(parent_id, 16), is_remote=True,
                             trace_flags=sampled) if parent_id else None
    span_links = [api.Link(api.SpanContext(int(t, 16), int(s, 16), is_remote=True,
                                           trace_flags=sampled))
                  for t, s in links if t and s]
    events = ()
    status = api.Status(api.StatusCode.UNSET)
    if error:
        events = (_sdk["Event"]("exception", {
            "exception.type": str(error.get("type") or "Error"),
            "exception.message": str(error.get("message") or ""),
            "exception.stacktrace": str(error.get("traceback") or ""),
        }, timestamp=end_ns),)
        status = api.Status(api.StatusCode.ERROR, str(error.get("message") or "")[:500])
    span = _sdk["ReadableSpan"](
        name=name,
        context=api.SpanContext(trace, int(span_id, 16), is_remote=False, trace_flags=sampled),
        parent=parent, resource=_sdk["resource"],
        attributes={k: v for k, v in (attributes or {}).items() if v is not None and v != ""},
        events=events, links=span_links, kind=getattr(api.SpanKind, kind.upper()),
        status=status, start_time=start_ns, end_time=end_ns,
        instrumentation_scope=_sdk["scope"])
    processor.on_end(span)


def _ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


# --- drops -------------------------------------------------------------------------------------

def drop_count(reason: str, count: int) -> None:
    with _drops_lock:
        _drops[reason] = _drops.get(reason, 0) + count


def drops_persist(*, force: bool = False) -> None:
    """Add the drops counted in memory to the database counters (at most every few seconds,
    from the exporter's thread, which then closes its connection: never from a step's
    transaction)."""
    global _drops_persisted_at
    now = time.monotonic()
    with _drops_lock:
        if not _drops or (not force and now - _drops_persisted_at < PERSIST_DROPS_EVERY_SECONDS):
            return
        pending = dict(_drops)
        _drops.clear()
        _drops_persisted_at = now
    try:
        from ops.models import TraceDrop
        TraceDrop.add(pending)
    except Exception:  # noqa: BLE001 - the database is down too: keep the count for later
        logger.warning("could not record %s dropped spans", pending, exc_info=True)
        for reason, count in pending.items():
            drop_count(reason, count)
    finally:
        if threading.current_thread() is not threading.main_thread() and not force:
            from django.db import connection
            connection.close()


atexit.register(lambda: flush(2000) if _processor is not None else None)
