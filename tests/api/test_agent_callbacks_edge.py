"""The lean path of the callback siblings (workflows/api/agent_callbacks.py): every answer the
contract names, through the real WSGI application (config.wsgi: Django's handler and the
MIDDLEWARE of the settings), the same answers from the django-ninja routes when the lean
middleware is taken out, refusals counted for /metrics, the security headers kept."""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import pytest
from django.test import override_settings

from ops.models import InboundRefusal
from resources.models import Resource
from tests.api.test_agents import agent_definition, start, step_of
from tests.factories import make_flow
from workflows import engine
from workflows.models import LogChunk, StepRun

pytestmark = pytest.mark.django_db

LEAN = "workflows.api.agent_callbacks.AgentCallbackMiddleware"


def wsgi(method: str, path: str, body: bytes = b"", content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request through config.wsgi.application, as gunicorn hands it over (the test's
    database connection is kept open across it, as Django's test client does)."""
    from django.core import signals
    from django.db import close_old_connections

    from config.wsgi import application

    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "testserver", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver", "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(), "wsgi.url_scheme": "http", "wsgi.version": (1, 0),
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()},
    }
    answer: dict = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"] = int(status.split()[0])
        answer["headers"] = {k.lower(): v for k, v in response_headers}

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, start_response)
        try:
            content = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return answer["status"], answer["headers"], content


def error_of(content: bytes) -> dict:
    return json.loads(content)["error"]


@pytest.fixture(params=["lean", "ninja"])
def via(request, settings):
    """Both ways in: the lean middleware (installed by the settings) and the Ninja routes."""
    if request.param == "ninja":
        with override_settings(MIDDLEWARE=[m for m in settings.MIDDLEWARE if m != LEAN]):
            yield request.param
    else:
        assert LEAN in settings.MIDDLEWARE
        yield request.param


def test_every_answer_of_the_siblings_through_the_wsgi_app(as_user, via):
    run_id, token, path = start(as_user)
    base = f"/api/v1{path}"
    status, headers, content = wsgi("POST", f"{base}/heartbeat", json.dumps(
        {"message": "m", "progress": {"done": 1, "total": 2},
         "usage": {"input_tokens": 1, "output_tokens": 2, "cost_usd": 0.5}}).encode())
    assert (status, json.loads(content)) == (200, {"status": "waiting"})
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(content))  # not chunked by the server
    assert headers["x-content-type-options"] == "nosniff"  # SecurityMiddleware still answers
    assert "set-cookie" not in headers
    step = step_of(run_id)
    assert step.agent_report["usage"]["cost_usd"] == 0.5 and step.heartbeat_at

    status, _, content = wsgi("POST", f"{base}/logs", b"hello\n", "text/plain")
    assert status == 200 and json.loads(content)["status"] == "waiting"
    assert json.loads(content)["seq"] >= 1
    status, _, content = wsgi("POST", f"{base}/logs", json.dumps({"text": "json\n"}).encode())
    assert status == 200
    assert [c.text for c in LogChunk.objects.filter(step_run=step, stream="remote")
            .order_by("seq")] == ["hello\n", "json\n"]

    status, _, content = wsgi("PUT", f"{base}/artifacts/out.txt", b"abc", "text/plain")
    assert status == 201 and json.loads(content)["size"] == 3
    assert json.loads(content)["uri"].startswith("res://")

    # 400 naming the field; 413 naming the limit; nothing written by either
    status, _, content = wsgi("POST", f"{base}/heartbeat", b'{"usage": {"cost_usd": -1}}')
    assert status == 400 and error_of(content)["details"][0]["path"] == "usage.cost_usd"
    status, _, content = wsgi("POST", f"{base}/heartbeat", b'{"usage": {"cost_usd": NaN}}')
    assert status == 400
    status, _, content = wsgi("POST", f"{base}/heartbeat", b"x" * (16 * 1024 + 1))
    assert status == 413 and "16384" in error_of(content)["message"]
    status, _, content = wsgi("POST", f"{base}/logs", b"x" * (1024 * 1024 + 1), "text/plain")
    assert status == 413 and "1048576" in error_of(content)["message"]
    status, _, content = wsgi("POST", f"{base}/logs", b"\xff\xfe", "text/plain")
    assert status == 400
    status, _, content = wsgi("PUT", f"{base}/artifacts/..", b"x", "text/plain")
    assert status == 400 and error_of(content)["details"][0]["path"] == "name"
    assert step_of(run_id).agent_report["message"] == "m"

    # 404 for unknown, forged and malformed tokens, on every sibling
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (forged, "not-a-token", "x" * 300):
        for method, suffix, body, kind in (("POST", "heartbeat", b"{}", "application/json"),
                                           ("POST", "logs", b"hi", "text/plain"),
                                           ("PUT", "artifacts/a.txt", b"x", "text/plain")):
            status, _, content = wsgi(method, f"/api/v1/callbacks/{bad}/{suffix}", body, kind)
            assert status == 404, (bad, suffix)
            if bad == forged:
                assert error_of(content)["code"] == "callback_unknown"

    # the wrong method is Django's and Ninja's answer, as before
    status, _, _ = wsgi("GET", f"{base}/heartbeat")
    assert status == 405

    # 410 once the wait ended, on every sibling; nothing revived, nothing kept
    as_user("operator").post(f"/runs/{run_id}/cancel")
    kept = Resource.objects.filter(kind="artifact").count()
    for method, suffix, body in (("POST", "heartbeat", b'{"message": "late"}'),
                                 ("POST", "logs", b"late\n"),
                                 ("PUT", "artifacts/late.txt", b"x")):
        status, _, content = wsgi(method, f"{base}/{suffix}", body, "text/plain"
                                  if suffix != "heartbeat" else "application/json")
        assert status == 410 and error_of(content)["code"] == "callback_expired"
    step = step_of(run_id)
    assert step.status == "canceled" and step.agent_report["message"] == "m"
    assert Resource.objects.filter(kind="artifact").count() == kept


def test_a_log_before_the_wait_is_reached_is_a_409_and_a_heartbeat_is_accepted(via):
    from workflows.services.runs import run_start

    flow = make_flow(agent_definition("early"))
    run, _ = run_start(flow=flow, input={})  # not drained: the wait is not reached yet
    step = StepRun.objects.get(run_id=run.pk, key="agent_done")
    token = engine.callback_token(step.callback_nonce)
    status, _, content = wsgi("POST", f"/api/v1/callbacks/{token}/logs", b"x", "text/plain")
    assert status == 409 and error_of(content)["code"] == "wait_not_reached"
    status, _, _ = wsgi("POST", f"/api/v1/callbacks/{token}/heartbeat", b"")
    assert status == 200
    assert StepRun.objects.get(pk=step.pk).heartbeat_at is not None


def test_refusals_on_the_lean_path_are_counted_for_metrics():
    for _ in range(2):
        wsgi("POST", f"/api/v1/callbacks/{'A' * 43}/heartbeat", b"{}")
    counted = InboundRefusal.objects.get(endpoint="callback", code="callback_unknown")
    assert counted.count == 2


def test_a_url_with_nul_or_a_disallowed_host_is_refused(as_user):
    _, token, _ = start(as_user)
    status, _, content = wsgi("POST", f"/api/v1/callbacks/{token}\x00/heartbeat", b"{}")
    assert status in (400, 404)
    status, _, _ = wsgi("POST", f"/api/v1/callbacks/{token}/heartbeat", b"{}",
                        headers={"Host": "evil.example"})
    assert status == 400
    # an artifact name with an encoded slash is not one of the three URLs: no route
    status, _, _ = wsgi("PUT", f"/api/v1/callbacks/{token}/artifacts/{quote('a/b', safe='')}"
                        .replace("%2F", "/"), b"x", "text/plain")
    assert status == 404


@pytest.mark.django_db(transaction=True)
def test_a_known_tokens_heartbeat_is_one_statement_and_leaves_the_sessions_commit_mode_alone():
    """Outside any transaction (as in the web server), a token's first heartbeat in a process
    is the read by the token's hash and one UPDATE, and every later one that UPDATE alone; it
    merges the report key by key, and on PostgreSQL turns synchronous commit off for itself
    only."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import drain
    from workflows.services.agents import agent_heartbeat
    from workflows.services.runs import run_start

    flow = make_flow(agent_definition("beats", heartbeat_timeout_seconds=60))
    run, _ = run_start(flow=flow, input={})
    drain()
    step = StepRun.objects.get(run_id=run.pk, key="agent_done")
    token = engine.callback_token(step.callback_nonce)
    with CaptureQueriesContext(connection) as first:
        agent_heartbeat(token=token, payload={"message": "warm",
                                              "progress": {"done": 1, "total": 4}})
    assert [q["sql"].split()[0] for q in first.captured_queries] == ["SELECT", "UPDATE"]
    with CaptureQueriesContext(connection) as queries:
        agent_heartbeat(token=token, payload={"message": "working", "usage": {"cost_usd": 1}})
    assert len(queries.captured_queries) == 1, queries.captured_queries
    update = queries.captured_queries[0]["sql"]
    assert update.startswith("UPDATE")
    step = StepRun.objects.get(pk=step.pk)
    assert step.agent_report == {"message": "working", "progress": {"done": 1, "total": 4},
                                 "usage": {"cost_usd": 1}}
    assert step.heartbeat_deadline > step.heartbeat_at
    with CaptureQueriesContext(connection) as empty:
        agent_heartbeat(token=token, payload={})
    assert len(empty.captured_queries) == 1
    assert StepRun.objects.get(pk=step.pk).agent_report == step.agent_report
    # A field given replaces that field's whole value (usage is a running total).
    agent_heartbeat(token=token, payload={"usage": {"input_tokens": 5}})
    assert StepRun.objects.get(pk=step.pk).agent_report["usage"] == {"input_tokens": 5}
    # An agent's text reaches the SQL merge as a parameter, whatever it holds.
    odd = "ünï \"q\" \\ ' \u2028 😀 '); DROP TABLE x; --"
    agent_heartbeat(token=token, payload={"message": odd})
    assert StepRun.objects.get(pk=step.pk).agent_report["message"] == odd
    if connection.vendor == "postgresql":
        assert "set_config('synchronous_commit', 'off', true)" in update
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("end", ["cancel", "timeout", "callback", "run_ended", "new_token",
                                 "status"])
def test_a_known_tokens_heartbeat_is_refused_once_its_wait_ended_and_writes_nothing(end):
    """The one-statement heartbeat re-checks the wait in its WHERE clause: after a cancel, a
    timeout, an accepted callback, its run's end, a new token (a redo) or any status the wait
    left, the process's knowledge of the token is not enough — 410 (404 for the replaced
    token), nothing written, the step not revived."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import drain
    from workflows.errors import CallbackExpired, CallbackUnknown
    from workflows.models import Run
    from workflows.services.agents import agent_heartbeat
    from workflows.services.runs import run_cancel, run_start
    from workflows.states import RunStatus, StepStatus

    flow = make_flow(agent_definition("ended", heartbeat_timeout_seconds=60))
    run, _ = run_start(flow=flow, input={})
    drain()
    step = StepRun.objects.get(run_id=run.pk, key="agent_done")
    token = engine.callback_token(step.callback_nonce)
    agent_heartbeat(token=token, payload={"message": "known"})  # this process knows it now
    expected = CallbackExpired
    if end == "cancel":
        run_cancel(run=run, reason="test")
    elif end == "timeout":
        StepRun.objects.filter(pk=step.pk).update(timeout_at=timezone.now() - timedelta(1))
    elif end == "callback":
        StepRun.objects.filter(pk=step.pk).update(callback_received_at=timezone.now())
    elif end == "run_ended":
        Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    elif end == "new_token":
        StepRun.objects.filter(pk=step.pk).update(callback_token_hash=engine.token_hash("x"))
        expected = CallbackUnknown
    else:
        StepRun.objects.filter(pk=step.pk).update(status=StepStatus.FAILED)
    before = StepRun.objects.get(pk=step.pk)
    with pytest.raises(expected):
        agent_heartbeat(token=token, payload={"message": "after the end"})
    after = StepRun.objects.get(pk=step.pk)
    assert after.agent_report == before.agent_report == {"message": "known"}
    assert after.heartbeat_at == before.heartbeat_at
    assert after.status == before.status


@pytest.mark.django_db(transaction=True)  # spans are emitted on commit
def test_heartbeats_and_log_posts_carrying_a_traceparent_are_linked_to_the_waits_span(
        monkeypatch):
    """With tracing on, the lean path hands an inbound `traceparent` on: a span in the
    sender's trace per heartbeat and log post, linked to the wait's pause span."""
    from ops import tracing
    from tests.factories import callback_definition, drain, token_of
    from tests.otel_receiver import otlp_receiver
    from workflows.services.callbacks import callback_receive
    from workflows.services.runs import run_start

    parent_trace, parent_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    inbound = f"00-{parent_trace}-{parent_span}-01"
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "wf-tests")
        tracing.reset()
        try:
            run, _ = run_start(flow=make_flow(callback_definition()), input={})
            drain()
            token = token_of(run)
            status, _, _ = wsgi("POST", f"/api/v1/callbacks/{token}/heartbeat",
                                b'{"message": "m"}', headers={"traceparent": inbound})
            assert status == 200
            status, _, _ = wsgi("POST", f"/api/v1/callbacks/{token}/logs", b"line\n",
                                "text/plain", headers={"traceparent": inbound})
            assert status == 200
            callback_receive(token=token, payload={"pr_url": "x"})
            drain()
            run.refresh_from_db()
            tracing.flush()
            pause = receiver.one("wait hold")
            for name in ("heartbeat hold", "log hold"):
                span = receiver.one(name)
                assert span.trace_id == parent_trace and span.parent_id == parent_span
                assert span.links == [(run.trace_id, pause.span_id)]
        finally:
            tracing.flush()
            monkeypatch.undo()
            tracing.reset()


def test_the_known_waits_are_bounded_and_keep_the_newest():
    from workflows.services.agents import _KnownWaits

    known = _KnownWaits(4)
    for number in range(6):
        known.remember(f"digest {number}", number)
    # full at the fifth: the oldest half goes (0, 1), then 4 and 5 join
    assert [known.get(f"digest {n}") for n in range(6)] == [None, None, 2, 3, 4, 5]
    known.forget("digest 4")
    assert known.get("digest 4") is None and known.get("") is None
