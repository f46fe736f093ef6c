"""A reply holding what a database cannot store inline (`1e400`, NUL) never crashes the worker
and never comes back as a lost worker: the step runs once and the run ends (issue 10, the
`1e400` defect; the storage rule keeps such values as resources).
Runs on SQLite and on PostgreSQL (the PostgreSQL pass of the suite)."""

from __future__ import annotations

import math
from datetime import timedelta
from http.server import BaseHTTPRequestHandler

import pytest
from django.utils import timezone

from resources.payloads import is_descriptor, value_load
from tests.conftest import local_http_server, respond
from tests.factories import drain, make_flow, simple_definition, steps_of
from workflows.engine import sweeper
from workflows.models import Attempt, Event
from workflows.services.runs import run_start

pytestmark = pytest.mark.django_db


class Counter(BaseHTTPRequestHandler):
    received: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        Counter.received.append(self.path)
        body = b'{"x": 1e400}' if self.path == "/huge" else b'{"s": "a\\u0000b"}'
        respond(self, 200, body)


@pytest.fixture
def server():
    Counter.received = []
    with local_http_server(Counter) as url:
        yield url


def _run(url: str):
    flow = make_flow(simple_definition(steps=[
        {"key": "fetch", "type": "http", "request": {"method": "GET", "url": url},
         "retry": {"max_attempts": 1}},
        {"key": "after", "type": "python", "action": "core.echo", "args": {"ok": True}},
    ]))
    run, _ = run_start(flow=flow, input={})
    drain()
    return run


def test_a_non_finite_number_in_a_reply_is_kept_losslessly_and_the_step_runs_once(server):
    # The storage rule keeps `1e400` as a resource (a database cannot store it inline) instead
    # of letting the write crash the worker and the sweeper re-run the step as a lost worker.
    run = _run(f"{server}/huge")
    # Any lease the worker could have left behind is long expired: the sweeper finds nothing.
    assert sweeper.sweep(now=timezone.now() + timedelta(days=1))["expired_leases"] == 0
    drain()
    run.refresh_from_db()
    assert Counter.received == ["/huge"]
    assert run.status == "completed"
    fetch = steps_of(run)["fetch"]
    attempts = list(Attempt.objects.filter(step_run=fetch))
    assert [(a.number, a.status) for a in attempts] == [(1, "completed")]
    output = fetch.output
    if is_descriptor(output):
        output = value_load(output)
    body = output["body"]
    if is_descriptor(body):
        body = value_load(body)
    assert body == {"x": math.inf}
    assert not Attempt.objects.filter(error__type="WorkerLost").exists()
    assert not Event.objects.filter(run=run, reason__icontains="lost").exists()
    assert steps_of(run)["after"].status == "completed"


def test_a_reply_the_database_may_refuse_never_reruns_the_step(server):
    """NUL is storable on SQLite and refused by PostgreSQL: the run ends either way, after one
    request."""
    run = _run(f"{server}/nul")
    sweeper.sweep(now=timezone.now() + timedelta(days=1))
    drain()
    run.refresh_from_db()
    assert Counter.received == ["/nul"]
    assert run.status in ("completed", "failed")
    assert not Attempt.objects.filter(error__type="WorkerLost").exists()
