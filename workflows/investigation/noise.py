"""Values that change on every call and say nothing about why a run broke (issue 24): an http
step's response headers such as `date`, `content-length`, `x-request-id`, `etag` and the
tracing headers. The comparison leaves them out of "values changed" by default and shows them
behind a "show all" toggle; nothing is dropped from the data itself.
"""

from __future__ import annotations

import re

VOLATILE_HEADERS = frozenset({
    "date", "content-length", "x-request-id", "request-id", "x-correlation-id", "etag",
    "age", "expires", "last-modified", "server-timing",
    # tracing: W3C trace context, B3 (Zipkin), Jaeger, AWS X-Ray, Google Cloud, Datadog, Sentry
    "traceparent", "tracestate", "baggage", "b3", "x-b3-traceid", "x-b3-spanid",
    "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "uber-trace-id", "x-amzn-trace-id",
    "x-cloud-trace-context", "x-datadog-trace-id", "x-datadog-parent-id", "sentry-trace",
})
HEADER_PATH = re.compile(r"output\.headers\.([^.\[]+)$", re.IGNORECASE)


def is_volatile(path: str) -> bool:
    """True for the path of a response header that changes on every call
    (`output.headers.date`, any case)."""
    match = HEADER_PATH.fullmatch(path or "")
    return bool(match) and match[1].lower() in VOLATILE_HEADERS
