"""The http step against a real HTTP server on loopback."""

import json
from http.server import BaseHTTPRequestHandler

import pytest

from connections.services import connection_create
from tests.conftest import local_http_server, respond
from tests.factories import drain, make_flow, simple_definition, steps_of
from workflows.models import Attempt
from workflows.services.runs import run_start

pytestmark = pytest.mark.django_db


REQUESTS: list[str] = []


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status, body, content_type="application/json"):
        respond(self, status, body.encode() if isinstance(body, str) else body,
                content_type=content_type)

    def do_GET(self):
        REQUESTS.append(self.path)
        if self.path.startswith("/reports/"):
            self._send(200, json.dumps({"count": 7, "repo": self.path.rsplit("/", 1)[-1]}))
        elif self.path == "/text":
            self._send(200, "plain words", "text/plain")
        elif self.path == "/whoami":
            self._send(200, json.dumps({"authorization": self.headers.get("Authorization")}))
        elif self.path.startswith("/status/"):
            self._send(int(self.path.rsplit("/", 1)[-1]), json.dumps({"error": "nope"}))
        else:
            self._send(404, "{}")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._send(201, json.dumps({"received": json.loads(self.rfile.read(length) or b"null")}))


@pytest.fixture(scope="module")
def server():
    with local_http_server(Handler) as url:
        yield url


def run_steps(*steps, input=None, declared=None):
    flow = make_flow(simple_definition(steps=list(steps), input=declared or {}))
    run, _ = run_start(flow=flow, input=input or {})
    drain()
    run.refresh_from_db()
    return run


def test_the_output_is_status_headers_and_parsed_json_body(server):
    run = run_steps(
        {"key": "fetch", "type": "http",
         "request": {"method": "GET", "url": f"{server}/reports/{{{{ input.repo }}}}"}},
        {"key": "count", "type": "python", "action": "core.echo",
         "args": {"value": "{{ steps.fetch.output.body.count }}"}},
        input={"repo": "core"}, declared={"repo": {"type": "string", "required": True}},
    )
    assert run.status == "completed"
    fetch = steps_of(run)["fetch"].output
    assert fetch["status"] == 200 and fetch["body"] == {"count": 7, "repo": "core"}
    assert fetch["headers"]["content-type"] == "application/json"
    assert steps_of(run)["count"].output == {"value": 7}


def test_a_text_body_stays_text_and_a_json_body_is_posted(server):
    run = run_steps(
        {"key": "text", "type": "http", "request": {"url": f"{server}/text"}},
        {"key": "post", "type": "http",
         "request": {"method": "POST", "url": f"{server}/submit", "json": {"a": [1, 2]}}},
    )
    assert steps_of(run)["text"].output["body"] == "plain words"
    assert steps_of(run)["post"].output["body"] == {"received": {"a": [1, 2]}}


def test_a_status_of_400_or_more_fails_the_attempt_and_is_retried(server):
    run = run_steps({"key": "broken", "type": "http", "request": {"url": f"{server}/status/503"},
                     "retry": {"max_attempts": 2}})
    assert run.status == "failed"
    attempts = list(Attempt.objects.filter(step_run__run=run).order_by("number"))
    assert len(attempts) == 2
    assert attempts[0].error["type"] == "HTTPStatusError"
    assert attempts[0].output["status"] == 503 and attempts[0].output["body"] == {"error": "nope"}


def test_a_step_may_accept_error_statuses(server):
    run = run_steps(
        {"key": "lenient", "type": "http", "request": {"url": f"{server}/status/404"},
         "fail_on_status": False},
        {"key": "listed", "type": "http", "request": {"url": f"{server}/status/409"},
         "accept_statuses": [409]},
    )
    assert run.status == "completed"
    assert steps_of(run)["listed"].output["status"] == 409


def test_a_connection_gives_the_base_url_and_auth_and_the_token_is_redacted(server):
    connection_create(actor=None, name="reports-api", kind="http",
                      config={"base_url": server, "auth": "bearer"},
                      secret={"token": "tok-SECRET-123456"})
    run = run_steps({"key": "who", "type": "http", "connection": "reports-api",
                     "request": {"url": "/whoami"}})
    assert run.status == "completed"
    output = steps_of(run)["who"].output
    assert output["body"] == {"authorization": "Bearer ***"}
    assert "tok-SECRET" not in json.dumps(output)


def test_a_refused_connection_is_a_failed_attempt_with_the_reason():
    run = run_steps({"key": "down", "type": "http",
                     "request": {"url": "http://127.0.0.1:9/nothing"}, "timeout_seconds": 2})
    assert run.status == "failed"
    assert Attempt.objects.get(step_run__run=run).error["type"] == "ConnectError"


# --- secrets stay bound to their connection's host -----------------------------------------------


@pytest.fixture
def scoped(server):
    REQUESTS.clear()
    connection_create(actor=None, name="reports-api", kind="http",
                      config={"base_url": f"{server}/reports", "auth": "bearer"},
                      secret={"token": "tok-SCOPED-98765"})
    return server


@pytest.mark.parametrize("url", [
    "http://elsewhere.example.com/reports/x",
    "https://127.0.0.1/reports/x",
    "{server}/whoami",
    "{server}/reportsx",
    "http://127.0.0.1:9/reports/x",
])
def test_a_literal_url_outside_the_connection_is_refused_at_release(scoped, url):
    from workflows.definitions import validate_definition
    from workflows.errors import DefinitionInvalid

    definition = simple_definition(steps=[{
        "key": "call", "type": "http", "connection": "reports-api",
        "request": {"url": url.format(server=scoped)},
    }])
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(definition, check_connections=True)
    [found] = caught.value.problems
    assert found["path"] == "steps[0].request.url"
    assert "only sends to URLs under" in found["message"]


def test_urls_under_the_base_url_are_sent(scoped):
    run = run_steps(
        {"key": "relative", "type": "http", "connection": "reports-api",
         "request": {"url": "/core"}},
        {"key": "absolute", "type": "http", "connection": "reports-api",
         "request": {"url": f"{scoped}/reports/edge"}},
    )
    assert run.status == "completed"
    assert REQUESTS == ["/reports/core", "/reports/edge"]


@pytest.mark.parametrize("url", [
    "http://collector.example.com/steal",
    "{server}/whoami",
    "/../whoami",
    "/%2e%2e/whoami",
    "//evil.example.com/reports/x",
])
def test_a_url_from_a_reference_outside_the_scope_fails_and_sends_nothing(scoped, url):
    run = run_steps(
        {"key": "call", "type": "http", "connection": "reports-api",
         "request": {"url": "{{ input.url }}"}, "retry": {"max_attempts": 3}},
        input={"url": url.format(server=scoped)},
        declared={"url": {"type": "string"}},
    )
    assert run.status == "failed"
    attempts = Attempt.objects.filter(step_run__run=run)
    assert attempts.count() == 1  # never retried
    assert attempts[0].error["type"] == "ConnectionScopeViolation"
    assert "nothing was sent" in attempts[0].error["message"]
    assert REQUESTS == []
    assert "tok-SCOPED" not in json.dumps(attempts[0].error)


def test_a_connection_without_base_url_sends_to_no_absolute_url(server):
    REQUESTS.clear()
    connection_create(actor=None, name="bare", kind="http", config={"auth": "bearer"},
                      secret={"token": "tok-BARE-123456"})
    run = run_steps({"key": "call", "type": "http", "connection": "bare",
                     "request": {"url": "{{ input.url }}"}},
                    input={"url": f"{server}/whoami"}, declared={"url": {"type": "string"}})
    attempt = Attempt.objects.get(step_run__run=run)
    assert attempt.error["type"] == "ConnectionScopeViolation"
    assert "has no base_url" in attempt.error["message"]
    assert REQUESTS == []
