"""OpenTelemetry traces end to end: runs drained through the real executor export over
OTLP/HTTP (the SDK's exporter, protobuf) to a real receiver on loopback (tests/otel_receiver.py),
which decodes what it got with opentelemetry-proto."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from django.test import Client

from ops import tracing
from ops.logs import JsonFormatter, RunContextFilter
from ops.models import TraceDrop
from tests.conftest import free_port, local_http_server, respond
from tests.factories import (
    callback_definition,
    drain,
    echo,
    make_flow,
    simple_definition,
    steps_of,
    token_of,
)
from workflows.api.documents import run_document
from workflows.models import Run
from workflows.services.callbacks import callback_receive
from workflows.services.runs import run_start
from workflows.services.tokens import api_token_create
from workflows.steps.actions import action, get_action

pytestmark = pytest.mark.django_db(transaction=True)  # spans are emitted on commit

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
INBOUND = f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"


@pytest.fixture
def outage(monkeypatch):
    from workflows.steps import actions
    from workflows.steps.base import StepFailed

    def depends_on_the_world(ctx, **args):
        raise StepFailed("the service is down", error_type="Outage")

    monkeypatch.setitem(actions._ACTIONS, "test.outage", depends_on_the_world)


def run_flow(definition, *, input=None, traceparent=None, tracestate=None):
    flow = make_flow(definition)
    run, _ = run_start(flow=flow, input=input or {}, traceparent=traceparent,
                       tracestate=tracestate)
    drain()
    run.refresh_from_db()
    tracing.flush()
    return run


def test_one_trace_per_run_with_a_span_per_step_and_attempt(traced):
    run = run_flow(simple_definition(slug="traced"))
    assert run.status == "completed" and len(run.trace_id) == 32
    assert {s.trace_id for s in traced.spans} == {run.trace_id}
    assert traced.content_types == {"application/x-protobuf"}
    root = traced.one("run traced")
    assert root.parent_id == "" and root.span_id == run.trace_span_id
    assert root.service == "wf-tests"
    assert root.attributes["workflow.flow"] == "traced"
    assert root.attributes["workflow.run_id"] == run.pk
    assert root.attributes["workflow.version"] == 1
    assert root.attributes["workflow.status"] == "completed"
    for key in ("first", "second"):
        step = traced.one(f"step {key}")
        attempt = traced.one(f"attempt {key}#1")
        assert step.parent_id == root.span_id and attempt.parent_id == step.span_id
        assert step.attributes["workflow.step"] == key
        assert attempt.attributes["workflow.attempt"] == 1
        assert attempt.attributes["workflow.status"] == "completed"
        assert root.start_ns <= step.start_ns <= attempt.start_ns <= attempt.end_ns
        assert attempt.end_ns <= step.end_ns <= root.end_ns
        assert step.status_code != 2
    assert run_document(run)["trace_id"] == run.trace_id


def test_two_runs_are_two_traces(traced):
    first = run_flow(simple_definition(slug="a"))
    second = run_flow(simple_definition(slug="b"))
    assert first.trace_id != second.trace_id
    assert {s.trace_id for s in traced.named("run ")} == {first.trace_id, second.trace_id}


def test_the_run_is_the_child_of_an_inbound_traceparent(traced):
    run = run_flow(simple_definition(slug="child"), traceparent=INBOUND)
    assert run.trace_id == PARENT_TRACE
    root = traced.one("run child")
    assert root.trace_id == PARENT_TRACE and root.parent_id == PARENT_SPAN
    assert traced.one("step first").trace_id == PARENT_TRACE


@pytest.mark.parametrize("bad", [
    "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", f"00-{PARENT_TRACE}-{'0' * 16}-01",
    f"ff-{PARENT_TRACE}-{PARENT_SPAN}-01", f"00-{PARENT_TRACE.upper()}-{PARENT_SPAN}-01",
    f"00-{PARENT_TRACE}-{PARENT_SPAN}-01-extra", "",
])
def test_a_malformed_traceparent_starts_a_fresh_trace(traced, bad):
    run = run_flow(simple_definition(slug="fresh"), traceparent=bad)
    assert run.status == "completed"
    assert run.trace_id != PARENT_TRACE and len(run.trace_id) == 32
    assert traced.one("run fresh").parent_id == ""


def test_post_runs_passes_the_callers_traceparent(traced, admin_user):
    make_flow(simple_definition(slug="api-child"))
    token = api_token_create(user=admin_user, name="t")[1]
    response = Client().post("/api/v1/flows/api-child/runs", json.dumps({"input": {}}),
                             content_type="application/json",
                             headers={"Authorization": f"Bearer {token}",
                                      "traceparent": INBOUND})
    assert response.status_code == 201, response.content
    assert response.json()["trace_id"] == PARENT_TRACE
    run = Run.objects.get(pk=response.json()["id"])
    assert run.trace_parent_id == PARENT_SPAN


def test_failed_attempts_have_error_status_and_the_exception(traced, outage):
    run = run_flow(simple_definition(slug="flaky", steps=[
        {"key": "c", "type": "python", "action": "test.outage",
         "retry": {"max_attempts": 2, "backoff_seconds": 0}}]))
    assert run.status == "failed"
    attempts = sorted(traced.named("attempt c#"), key=lambda s: s.name)
    assert [a.name for a in attempts] == ["attempt c#1", "attempt c#2"]
    for attempt in attempts:
        assert attempt.status_code == 2
        assert attempt.attributes["workflow.status"] == "failed"
        assert attempt.attributes["workflow.error_kind"] == "Outage"
        name, event = attempt.events[0]
        assert name == "exception" and event["exception.type"] == "Outage"
        assert "the service is down" in event["exception.message"]
    step = traced.one("step c")
    assert step.status_code == 2 and step.attributes["workflow.attempt"] == 2
    assert step.start_ns <= attempts[0].start_ns
    assert traced.one("run flaky").status_code == 2


class Headers(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802
        Headers.seen.append(dict(self.headers))
        respond(self, 200, b"{}")

    def log_message(self, *args) -> None:
        pass


def test_an_http_step_call_is_a_client_span_under_the_attempt_and_sends_its_traceparent(traced):
    """The httpx instrumentation: the request is a client span, child of the attempt's span, and
    the server receives that span's traceparent, and the caller's tracestate with it."""
    Headers.seen = []
    with local_http_server(Headers) as url:
        run = run_flow(simple_definition(slug="calls", steps=[
            {"key": "fetch", "type": "http", "request": {"method": "GET", "url": url}}]),
            traceparent=INBOUND, tracestate="vendor=opaque,rojo=00f067aa0ba902b7")
    assert run.status == "completed"
    assert run.trace_state == "vendor=opaque,rojo=00f067aa0ba902b7"
    attempt = traced.one("attempt fetch#1")
    [call] = [s for s in traced.spans if s.scope == "opentelemetry.instrumentation.httpx"]
    assert call.kind == 3 and call.name == "GET"  # SPAN_KIND_CLIENT
    assert (call.trace_id, call.parent_id) == (run.trace_id, attempt.span_id)
    assert attempt.start_ns <= call.start_ns <= call.end_ns <= attempt.end_ns
    assert call.attributes.get("http.status_code", call.attributes.get(
        "http.response.status_code")) == 200
    assert Headers.seen[0]["traceparent"] == f"00-{run.trace_id}-{call.span_id}-01"
    assert Headers.seen[0]["tracestate"] == "vendor=opaque,rojo=00f067aa0ba902b7"
    assert call.trace_state == "vendor=opaque,rojo=00f067aa0ba902b7"


def test_an_ssh_step_exports_traceparent_to_the_remote_command(traced, sshd):
    from tests.workflows.test_ssh_step import ssh_connection, ssh_definition

    ssh_connection(sshd)
    run = run_flow(ssh_definition('echo "tp=$TRACEPARENT ts=${TRACESTATE:-none}"',
                                  slug="remote-traced"))
    assert run.status == "completed", steps_of(run)["remote"].error
    attempt = traced.one("attempt remote#1")
    expected = f"tp=00-{run.trace_id}-{attempt.span_id}-01 ts=none"
    assert expected in steps_of(run)["remote"].output["stdout_tail"]
    child = run_flow(ssh_definition('echo "ts=$TRACESTATE"', slug="remote-state"),
                     traceparent=INBOUND, tracestate="congo=t61rcWkgMzE")
    assert "ts=congo=t61rcWkgMzE" in steps_of(child)["remote"].output["stdout_tail"]


def test_a_wait_is_a_span_over_the_pause_linked_to_the_callbacks_trace(traced):
    flow = make_flow(callback_definition())
    run, _ = run_start(flow=flow, input={})
    drain()
    callback_receive(token=token_of(run), payload={"pr_url": "x"}, traceparent=INBOUND)
    drain()
    run.refresh_from_db()
    tracing.flush()
    assert run.status == "completed"
    attempt = traced.one("attempt hold#1")
    pause = traced.one("wait hold")
    assert pause.trace_id == run.trace_id and pause.parent_id == attempt.span_id
    assert attempt.start_ns <= pause.start_ns <= pause.end_ns
    assert pause.links == [(PARENT_TRACE, PARENT_SPAN)]
    callback = traced.one("callback hold")
    assert callback.trace_id == PARENT_TRACE and callback.parent_id == PARENT_SPAN
    assert callback.links == [(run.trace_id, pause.span_id)]
    assert traced.one("step hold").attributes["workflow.status"] == "completed"


def test_a_collector_that_is_down_never_fails_a_step_and_drops_are_counted(
        monkeypatch, metrics_token):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    tracing.reset()
    try:
        run = run_flow(simple_definition(slug="nobody-listens", steps=[echo("a"), echo("b")]))
        assert run.status == "completed" and run.trace_id
        tracing.flush()
        dropped = TraceDrop.objects.get(reason="export_failed").count
        assert dropped >= 5  # the run, two steps, two attempts
        text = Client().get("/metrics", headers={
            "Authorization": f"Bearer {metrics_token}"}).content.decode()
        assert f'wf_trace_spans_dropped_total{{reason="export_failed"}} {float(dropped)}' in text
    finally:
        monkeypatch.undo()
        tracing.reset()


def test_off_the_run_has_no_trace_and_sends_no_traceparent(monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    tracing.reset()
    Headers.seen = []
    with local_http_server(Headers) as url:
        run = run_flow(simple_definition(slug="untraced", steps=[
            {"key": "fetch", "type": "http", "request": {"method": "GET", "url": url}}]))
    assert run.status == "completed" and run.trace_id == ""
    assert "traceparent" not in {k.lower() for k in Headers.seen[0]}
    assert run_document(run)["trace_id"] is None


@pytest.mark.skipif(os.environ.get("WF_TRACING_OFF_PROBE") != "1",
                    reason="run in a fresh interpreter by the test below")
def test_probe_off_imports_no_sdk():
    run = run_flow(simple_definition(slug="probe"))
    assert run.status == "completed" and run.trace_id == ""
    # redis-py 8 imports parts of the OpenTelemetry API and SDK (trace API, resources) for its
    # own optional metrics when they are installed, so those may be loaded by the Redis client;
    # the tracing SDK, the exporter and the protobuf messages are only ever loaded by us.
    ours = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "opentelemetry.proto",
            "opentelemetry.instrumentation")
    if "redis" not in sys.modules:
        ours = ("opentelemetry",)  # nothing else imports any of it
    loaded = sorted(m for m in sys.modules if m.startswith(ours))
    assert loaded == [], loaded
    assert tracing._processor is None


def test_off_a_step_imports_no_sdk():
    """In a fresh interpreter without OTEL_* variables, running steps imports no OpenTelemetry
    module at all (this process has imported the SDK for the other tests)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["WF_TRACING_OFF_PROBE"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         f"{__file__}::test_probe_off_imports_no_sdk"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
        timeout=300)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr


def test_json_log_lines_of_an_attempt_carry_its_trace_and_span(traced):
    from workflows import tasks
    from workflows.models import StepRun

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RunContextFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        if get_action("tests.trace_log_line") is None:
            @action("tests.trace_log_line")
            def log_line(ctx, **args):
                logging.getLogger("workflows.steps.test").info("tracing %s", ctx.step_key)
                return {}

        flow = make_flow(simple_definition("logged-traced", steps=[
            {"key": "one", "type": "python", "action": "tests.trace_log_line"}]))
        run, _ = run_start(flow=flow, input={})
        tasks.advance_step(StepRun.objects.get(run=run, key="one").pk)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
    tracing.flush()
    run.refresh_from_db()
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    line = next(x for x in lines if x["message"] == "tracing one")
    assert line["trace_id"] == run.trace_id
    assert line["span_id"] == traced.one("attempt one#1").span_id


def test_the_run_page_and_the_step_panel_link_to_the_trace(traced, admin_client, settings):
    settings.WF_TRACE_URL = "https://tempo.example.com/trace?id={trace_id}&span={span_id}"
    run = run_flow(simple_definition(slug="linked"))
    page = admin_client.get(f"/admin/workflows/run/{run.pk}/change/").content.decode()
    assert (f'href="https://tempo.example.com/trace?id={run.trace_id}&amp;'
            f'span={run.trace_span_id}"') in page
    panel = admin_client.get(f"/admin/workflows/run/{run.pk}/steps/first/").content.decode()
    step_span = traced.one("step first").span_id
    assert f"id={run.trace_id}&amp;span={step_span}" in panel
    settings.WF_TRACE_URL = ""
    assert "data-trace" not in admin_client.get(
        f"/admin/workflows/run/{run.pk}/change/").content.decode()


def test_the_webhook_passes_the_callers_traceparent(traced):
    from workflows.services.webhooks import webhook_sign

    flow = make_flow(simple_definition("hooked-traced", triggers=[{"type": "webhook"}]))
    body = json.dumps({"input": {}}).encode()
    response = Client().post(
        "/api/v1/hooks/hooked-traced", body, content_type="application/json",
        headers={"X-Signature": webhook_sign(secret=flow.webhook_signing_secret(), body=body),
                 "traceparent": INBOUND, "tracestate": "rojo=00f067aa0ba902b7"})
    assert response.status_code == 202, response.content
    run = Run.objects.get(pk=response.json()["id"])
    assert (run.trace_id, run.trace_parent_id) == (PARENT_TRACE, PARENT_SPAN)
    assert run.trace_state == "rojo=00f067aa0ba902b7"


def test_an_approval_is_a_span_over_the_pause_and_a_rejection_is_an_error(traced):
    from django.contrib.auth.models import Group, User

    from approvals.models import Approval
    from approvals.services import approval_reject
    from tests.factories import approval_definition

    reviewer = User.objects.create_user("rita")
    reviewer.groups.add(Group.objects.get_or_create(name="reviewers")[0])
    flow = make_flow(approval_definition())
    run, _ = run_start(flow=flow, input={})
    drain()
    approval_reject(approval=Approval.objects.get(run=run), actor=reviewer, comment="no")
    run.refresh_from_db()
    tracing.flush()
    assert run.status == "failed"
    attempt = traced.one("attempt review#1")
    pause = traced.one("approval review")
    assert pause.parent_id == attempt.span_id and pause.trace_id == run.trace_id
    assert attempt.start_ns <= pause.start_ns <= pause.end_ns <= attempt.end_ns + 1
    step = traced.one("step review")
    assert step.attributes["workflow.status"] == "rejected" and step.status_code == 2
    assert attempt.attributes["workflow.status"] == "rejected" and attempt.status_code == 2
    root = traced.one("run simple")
    assert root.status_code == 2 and root.attributes["workflow.error_kind"] == "rejected"
