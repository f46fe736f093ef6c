"""Spans from the instrumented libraries (ops.tracing_libraries: Django, psycopg, httpx) and the
caller's tracestate, exported over OTLP/HTTP to the receiver on loopback and decoded there."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import Client

from ops import tracing
from tests.factories import (
    callback_definition,
    drain,
    echo,
    make_flow,
    simple_definition,
    token_of,
)
from workflows.models import Flow, Run
from workflows.services.runs import run_start
from workflows.services.tokens import api_token_create
from workflows.steps.actions import action, get_action

pytestmark = pytest.mark.django_db(transaction=True)  # spans are emitted on commit

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
INBOUND = f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"
SERVER, CLIENT = 2, 3  # opentelemetry.proto.trace.v1.Span.SpanKind
PSYCOPG = "opentelemetry.instrumentation.psycopg"
DJANGO = "opentelemetry.instrumentation.django"
on_postgres = pytest.mark.skipif(connection.vendor != "postgresql",
                                 reason="psycopg spans: PostgreSQL only (SQLite has none)")


def run_flow(definition, **kwargs):
    run, _ = run_start(flow=make_flow(definition), input={}, **kwargs)
    drain()
    run.refresh_from_db()
    tracing.flush()
    return run


def db_spans(receiver):
    return [s for s in receiver.spans if s.scope == PSYCOPG]


@pytest.fixture
def orm_action():
    if get_action("tests.orm_reader") is None:
        @action("tests.orm_reader")
        def orm_reader(ctx, **args):
            # A connection this handler thread opened before tracing was turned on in this test
            # process is not instrumented; a worker instruments before its first connection.
            connection.close()
            try:
                return {"flows": Flow.objects.filter(slug__startswith="orm").count()}
            finally:
                connection.close()  # none left open on the test database at its teardown


@on_postgres
def test_the_statements_of_a_handler_are_spans_under_its_attempt(traced, orm_action):
    run = run_flow(simple_definition(slug="orm-traced", steps=[
        {"key": "read", "type": "python", "action": "tests.orm_reader"}]))
    assert run.status == "completed"
    attempt = traced.one("attempt read#1")
    spans = db_spans(traced)
    assert spans, [s.name for s in traced.spans]
    select = next(s for s in spans if "workflows_flow" in s.attributes["db.statement"])
    assert (select.trace_id, select.parent_id) == (run.trace_id, attempt.span_id)
    assert select.kind == CLIENT
    assert select.attributes["db.system"] == "postgresql"
    assert select.name == "SELECT"
    assert attempt.start_ns <= select.start_ns <= select.end_ns <= attempt.end_ns
    assert {s.parent_id for s in spans} == {attempt.span_id}  # the engine's own: not recorded


@on_postgres
def test_the_engines_bookkeeping_statements_are_not_recorded(traced):
    """Claims, attempt rows, events and the next step's queueing run outside any span: the
    sampler drops them (ops.tracing_libraries), so echo steps make no database spans."""
    connection.close()  # this thread's next connection is instrumented
    run = run_flow(simple_definition(slug="bookkeeping", steps=[echo("a"), echo("b")]))
    assert run.status == "completed"
    assert traced.one("step b").trace_id == run.trace_id
    assert db_spans(traced) == []


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite only")
def test_on_sqlite_there_are_no_database_spans(traced, orm_action):
    run = run_flow(simple_definition(slug="orm-sqlite", steps=[
        {"key": "read", "type": "python", "action": "tests.orm_reader"}]))
    assert run.status == "completed" and traced.one("attempt read#1")
    assert db_spans(traced) == []


def test_a_web_request_is_a_django_server_span(traced, admin_user):
    connection.close()  # this thread's next connection is instrumented
    token = api_token_create(user=admin_user, name="t")[1]
    flow = make_flow(simple_definition(slug="web-traced"))
    response = Client().get(f"/api/v1/flows/{flow.slug}", headers={
        "Authorization": f"Bearer {token}", "traceparent": INBOUND})
    assert response.status_code == 200, response.content
    unparented = Client().get("/api/v1/flows", headers={"Authorization": f"Bearer {token}"})
    assert unparented.status_code == 200
    Client().get("/healthz")  # probes make no span
    tracing.flush()
    servers = [s for s in traced.spans if s.scope == DJANGO]
    assert {s.kind for s in servers} == {SERVER}
    [child] = [s for s in servers if s.trace_id == PARENT_TRACE]
    assert child.parent_id == PARENT_SPAN
    assert child.name == "GET api/v1/flows/<slug>"
    assert child.attributes.get("http.status_code",
                                child.attributes.get("http.response.status_code")) == 200
    [root] = [s for s in servers if s.trace_id != PARENT_TRACE]
    assert root.parent_id == "" and root.name == "GET api/v1/flows"
    if connection.vendor == "postgresql":
        spans = db_spans(traced)
        assert spans and {s.parent_id for s in spans} <= {child.span_id, root.span_id}
        assert {s.trace_id for s in spans} == {PARENT_TRACE, root.trace_id}


def test_a_callback_over_http_is_a_span_under_the_requests_own(traced):
    """The sender's trace reads: sender > POST callbacks (Django) > callback <step>, the last
    linked to the wait's span."""
    run, _ = run_start(flow=make_flow(callback_definition()), input={})
    drain()
    response = Client().post(f"/api/v1/callbacks/{token_of(run)}", json.dumps({"pr_url": "x"}),
                             content_type="application/json", headers={"traceparent": INBOUND})
    assert response.status_code == 202, response.content
    drain()
    tracing.flush()
    [request] = [s for s in traced.spans if s.scope == DJANGO]
    assert (request.trace_id, request.parent_id) == (PARENT_TRACE, PARENT_SPAN)
    callback = traced.one("callback hold")
    assert (callback.trace_id, callback.parent_id) == (PARENT_TRACE, request.span_id)
    run.refresh_from_db()
    assert callback.links == [(run.trace_id, traced.one("wait hold").span_id)]


# --- tracestate ----------------------------------------------------------------------------------

def start_over_api(admin_user, headers):
    make_flow(simple_definition(slug="state"))
    token = api_token_create(user=admin_user, name="t")[1]
    response = Client().post("/api/v1/flows/state/runs", json.dumps({"input": {}}),
                             content_type="application/json",
                             headers={"Authorization": f"Bearer {token}", **headers})
    assert response.status_code == 201, response.content
    return Run.objects.get(pk=response.json()["id"])


def test_the_callers_tracestate_is_kept_with_the_run(traced, admin_user):
    run = start_over_api(admin_user, {"traceparent": INBOUND,
                                      "tracestate": " congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"})
    assert run.trace_state == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
    assert run.trace_id == PARENT_TRACE


@pytest.mark.parametrize("bad", [
    "no-equals-sign", "UPPER=case", "k=v=w", "a=1,a=2", "k=" + "x" * 257,
    ",".join(f"k{i}=v" for i in range(33)), "k=v\x00",
])
def test_a_malformed_tracestate_is_ignored(traced, admin_user, bad):
    run = start_over_api(admin_user, {"traceparent": INBOUND, "tracestate": bad})
    assert run.trace_state == "" and run.trace_id == PARENT_TRACE


def test_a_tracestate_without_a_valid_traceparent_is_ignored(traced, admin_user):
    run = start_over_api(admin_user, {"traceparent": "garbage", "tracestate": "congo=t61"})
    assert run.trace_state == "" and run.trace_id != PARENT_TRACE


def test_a_long_tracestate_keeps_the_members_that_fit_in_512_characters(traced):
    members = [f"k{i}={'v' * 60}" for i in range(12)]  # about 64 characters each
    fits = max(n for n in range(13) if len(",".join(members[:n])) <= 512)
    assert fits == 8
    assert tracing.parse_tracestate(",".join(members)) == ",".join(members[:fits])


def test_off_no_tracestate_is_kept(monkeypatch, admin_user):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    tracing.reset()
    run = start_over_api(admin_user, {"traceparent": INBOUND, "tracestate": "congo=t61"})
    assert (run.trace_id, run.trace_state) == ("", "")
