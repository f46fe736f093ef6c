"""An OTLP/HTTP receiver on loopback for the tracing tests: a real HTTP server decoding real
OTLP protobuf (`ExportTraceServiceRequest`, opentelemetry-proto), keeping what it received."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.conftest import local_http_server, respond


@dataclass
class ReceivedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int  # 2: error (opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR)
    events: list[tuple[str, dict[str, Any]]]
    links: list[tuple[str, str]]
    service: str
    kind: int = 0  # opentelemetry.proto.trace.v1.Span.SpanKind: 1 internal, 2 server, 3 client
    scope: str = ""  # the instrumentation scope (the library that made the span)
    trace_state: str = ""


@dataclass
class Receiver:
    url: str = ""
    spans: list[ReceivedSpan] = field(default_factory=list)
    content_types: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def named(self, prefix: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name.startswith(prefix)]

    def one(self, name: str) -> ReceivedSpan:
        found = [s for s in self.spans if s.name == name]
        assert len(found) == 1, (name, [s.name for s in self.spans])
        return found[0]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def _decode(body: bytes) -> list[ReceivedSpan]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope.name
            for span in scope_spans.spans:
                spans.append(ReceivedSpan(
                    name=span.name, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_id=span.parent_span_id.hex(), start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    attributes={a.key: _value(a.value) for a in span.attributes},
                    status_code=span.status.code,
                    events=[(e.name, {a.key: _value(a.value) for a in e.attributes})
                            for e in span.events],
                    links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                    service=str(resource.get("service.name")),
                    kind=span.kind, scope=scope, trace_state=span.trace_state,
                ))
    return spans


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/v1/traces":
                respond(self, 404)
                return
            spans = _decode(body)
            with receiver.lock:
                receiver.content_types.add(self.headers.get("Content-Type") or "")
                receiver.spans.extend(spans)
            respond(self, 200, ExportTraceServiceResponse().SerializeToString(),
                    content_type="application/x-protobuf")

        def log_message(self, *args: Any) -> None:
            pass

    with local_http_server(Handler) as url:
        receiver.url = url
        yield receiver
