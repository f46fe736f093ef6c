"""Callback URLs are credentials: whoever holds one can complete the wait. They are redacted
from what attempts store (input, logs, output, error) and from events; only operators see a
wait step's URL, on its panel (issue 10: support users could complete a wait step)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest
from django.test import Client
from django.urls import reverse

from tests.admin.conftest import make_user
from tests.conftest import local_http_server, respond
from tests.factories import drain, make_flow, simple_definition, steps_of
from workflows.engine.callback_tokens import callback_token
from workflows.models import Attempt, Event, LogChunk, Run

pytestmark = pytest.mark.django_db


class Recorder(BaseHTTPRequestHandler):
    paths: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Recorder.paths.append(self.path)
        body = json.dumps({"echo": self.path}).encode()
        respond(self, 200, body)


@pytest.fixture
def server():
    Recorder.paths = []
    with local_http_server(Recorder) as url:
        yield url


@pytest.fixture
def agent_run(server):
    """The agent pattern: a step hands the wait's callback URL to someone else, then waits."""
    flow = make_flow(simple_definition("agent", steps=[
        {"key": "notify", "type": "http",
         "request": {"method": "GET",
                     "url": server + "/start?cb={{ steps.agent_done.callback_url }}"}},
        {"key": "echo", "type": "python", "action": "core.echo",
         "args": {"url": "{{ steps.agent_done.callback_url }}"}},
        {"key": "agent_done", "type": "wait", "timeout_seconds": 3600},
    ]))
    from workflows.services.runs import run_start

    run, _ = run_start(flow=flow, input={})
    drain()
    run.refresh_from_db()
    step = steps_of(run)["agent_done"]
    assert step.status == "waiting"
    return run, callback_token(step.callback_nonce)


def test_the_step_gets_the_url_but_nothing_stored_holds_its_token(agent_run):
    run, token = agent_run
    assert len(Recorder.paths) == 1 and token in Recorder.paths[0]  # the agent got it
    stored = [
        *(json.dumps([a.input, a.output, a.error]) for a in Attempt.objects.all()),
        *(chunk.text for chunk in LogChunk.objects.all()),
        *(json.dumps([e.reason, e.data]) for e in Event.objects.filter(run=run)),
        *(json.dumps([s.output, s.error]) for s in steps_of(run).values()),
    ]
    assert not [text for text in stored if token in text]
    notify = Attempt.objects.get(step_run__key="notify")
    assert "/api/v1/callbacks/***" in notify.input["request"]["url"]
    assert any("/api/v1/callbacks/***" in c.text for c in LogChunk.objects.all())
    assert Attempt.objects.get(step_run__key="echo").output == {
        "url": "http://127.0.0.1:8000/api/v1/callbacks/***"}


def test_support_sees_no_callback_url_in_the_api(agent_run, as_user):
    run, token = agent_run
    support = as_user("support")
    for path in (f"/runs/{run.pk}", f"/runs/{run.pk}/events", f"/runs/{run.pk}/steps/notify",
                 f"/runs/{run.pk}/steps/echo", f"/runs/{run.pk}/steps/agent_done",
                 f"/runs/{run.pk}/steps/notify/logs"):
        response = support.get(path)
        assert response.status == 200, path
        assert token not in json.dumps(response.body), path


def test_only_operators_see_the_wait_steps_url_on_its_panel(agent_run):
    run, token = agent_run
    url = reverse("admin:workflows_run_step", args=[run.pk, "agent_done"])
    pages = {}
    for role in ("operators", "support", "builders", "reviewers"):
        client = Client()
        client.force_login(make_user(role.rstrip("s"), role))
        response = client.get(url, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        pages[role] = response.content.decode()
    assert token in pages["operators"] and "data-callback-url" in pages["operators"]
    for role in ("support", "builders", "reviewers"):
        assert token not in pages[role] and "data-callback-url" not in pages[role], role
    # Once used, the URL is no longer shown to anyone.
    assert Client().post(f"/api/v1/callbacks/{token}", b"{}",
                         content_type="application/json").status_code == 202
    drain()
    assert Run.objects.get(pk=run.pk).status == "completed"
    operator = Client()
    operator.force_login(make_user("operator2", "operators"))
    assert token not in operator.get(url, HTTP_HX_REQUEST="true").content.decode()
