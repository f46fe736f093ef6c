"""A descriptor-shaped value that came from outside (an API run input, a callback body, an http
response body) never makes the references resolver read another run's resource: a path into it
is ReferenceUnresolved and nothing of the resource reaches the run. A run's own resources, and
those of the run its retry reuses steps from, still load."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

from resources.payloads import is_descriptor
from tests.conftest import local_http_server, respond
from tests.factories import drain, make_flow, simple_definition, steps_of, token_of
from workflows.models import Attempt, Event, Run
from workflows.services.callbacks import callback_receive
from workflows.services.runs import run_retry, run_start

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-of-another-flow"


@pytest.fixture
def foreign(settings):
    """What an attacker sends: the bare descriptor `{"$resource": "res://…"}` of a run of
    another flow (its resource holds SECRET), after that run read it back itself."""
    settings.WF_INLINE_OUTPUT_BYTES = 200
    flow = make_flow(simple_definition("producer", steps=[
        {"key": "make", "type": "python", "action": "core.echo",
         "args": {"secret": SECRET, "pad": "x" * 400}},
        {"key": "check", "type": "python", "action": "core.echo",
         "args": {"own": "{{ steps.make.output.secret }}"}},
    ]))
    run, _ = run_start(flow=flow, input={})
    drain()
    steps = steps_of(run)
    assert is_descriptor(steps["make"].output)
    assert steps["check"].output == {"own": SECRET}  # a run's own resource loads
    return {"$resource": steps["make"].output["$resource"]}


def refused_by_scope(run: Run, key: str) -> None:
    run.refresh_from_db()
    step = steps_of(run)[key]
    assert step.status == "failed" and step.error["type"] == "ReferenceUnresolved"
    assert "does not belong to this run" in step.error["message"]
    recorded = json.dumps([
        list(Attempt.objects.filter(step_run__run=run).values("input", "output", "error")),
        list(Event.objects.filter(run=run).values("reason", "data")),
        [s.output for s in steps_of(run).values()], run.error])
    assert SECRET not in recorded


def test_an_api_input_naming_another_runs_resource_is_not_loaded(foreign):
    flow = make_flow(simple_definition(
        "consumer", input={"data": {"type": "object"}},
        concurrency={"key": "{{ input.data.secret }}", "limit": 1, "policy": "queue"},
        steps=[{"key": "use", "type": "python", "action": "core.echo",
                "args": {"got": "{{ input.data.secret }}"}}]))
    run, _ = run_start(flow=flow, input={"data": foreign})
    assert run.concurrency_key != SECRET
    drain()
    refused_by_scope(run, "use")


def test_a_callback_body_naming_another_runs_resource_is_not_loaded(foreign):
    flow = make_flow(simple_definition("waiting", steps=[
        {"key": "hold", "type": "wait", "timeout_seconds": 600},
        {"key": "use", "type": "python", "action": "core.echo",
         "args": {"got": "{{ steps.hold.output.secret }}"}},
    ]))
    run, _ = run_start(flow=flow, input={})
    drain()
    callback_receive(token=token_of(run), payload=foreign)
    drain()
    refused_by_scope(run, "use")


def test_an_http_response_naming_another_runs_resource_is_not_loaded(foreign, settings):
    settings.WF_INLINE_OUTPUT_BYTES = 64 * 1024  # the response stays inline, as data
    class Answer(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802 - http.server's naming
            respond(self, 200, json.dumps(foreign).encode())

    with local_http_server(Answer) as url:
        flow = make_flow(simple_definition("fetching", input={"url": {"type": "string"}},
                                           steps=[
            {"key": "fetch", "type": "http", "request": {"url": "{{ input.url }}"}},
            {"key": "use", "type": "python", "action": "core.echo",
             "args": {"got": "{{ steps.fetch.output.body.secret }}"}},
        ]))
        run, _ = run_start(flow=flow, input={"url": f"{url}/x"})
        drain()
    assert steps_of(run)["fetch"].output["body"] == foreign  # kept as data
    refused_by_scope(run, "use")


def test_a_retry_loads_the_resources_of_the_steps_it_reuses(settings, outage):
    settings.WF_INLINE_OUTPUT_BYTES = 200
    flow = make_flow(simple_definition("retried", steps=[
        {"key": "make", "type": "python", "action": "core.echo",
         "args": {"secret": SECRET, "pad": "x" * 400}},
        {"key": "down", "type": "python", "action": "test.outage"},
        {"key": "use", "type": "python", "action": "core.echo",
         "args": {"got": "{{ steps.make.output.secret }}"}},
    ]))
    run, _ = run_start(flow=flow, input={})
    drain()
    run.refresh_from_db()
    assert run.status == "failed"
    outage["on"] = False
    retried = run_retry(run=run)
    drain()
    retried.refresh_from_db()
    steps = steps_of(retried)
    assert steps["make"].is_reused and retried.status == "completed"
    assert steps["use"].output == {"got": SECRET}
