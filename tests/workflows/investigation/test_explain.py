"""Why it broke: the last good run, the first bad one, and what changed between them."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest

from connections.models import Connection
from connections.services import connection_create, connection_update
from tests.conftest import local_http_server, respond
from tests.factories import make_flow
from tests.history import broken_release_history, release_live, run_to_end
from workflows.errors import Conflict
from workflows.investigation import run_explain
from workflows.states import RunStatus

pytestmark = pytest.mark.django_db


def test_explain_names_the_first_bad_run_the_count_and_the_changed_action():
    history = broken_release_history(good=2, bad=3)
    last = history.bad_runs[-1]
    assert last.status == RunStatus.FAILED

    explained = run_explain(run=last)

    assert explained["step"] == "transform"
    assert explained["last_good_run"]["id"] == history.good_runs[-1].pk
    assert explained["last_good_run"]["version"] == 1
    assert explained["first_bad_run"]["id"] == history.bad_runs[0].pk
    assert explained["first_bad_run"]["version"] == 2
    assert explained["first_bad_run"]["step_status"] == "failed"
    assert explained["failing_since_count"] == 3
    version = explained["changes"]["version"]
    assert (version["from"], version["to"]) == (1, 2)
    first = version["definition_value_changes"][0]
    assert first == {"path": "steps.transform.action", "before": "core.echo",
                     "after": "core.fail"}
    # Input differs run to run here; connections: none used.
    assert [c["key"] for c in explained["changes"]["input"]] == ["customer"]
    assert explained["changes"]["connections"] == []
    summary = explained["summary"]
    assert f"failing since #{history.bad_runs[0].pk}, the first run on v2" in summary
    assert "v2 changed steps.transform.action" in summary


def test_the_first_bad_run_explains_itself_and_a_middle_one_counts_all_failures():
    history = broken_release_history(good=1, bad=3)
    first = run_explain(run=history.bad_runs[0])
    middle = run_explain(run=history.bad_runs[1])
    assert first["first_bad_run"]["id"] == middle["first_bad_run"]["id"] == history.bad_runs[0].pk
    assert first["failing_since_count"] == middle["failing_since_count"] == 3


def test_a_fix_and_a_new_break_move_the_last_good_run():
    history = broken_release_history(good=1, bad=1)
    release_live(history.flow, {**history.v1.definition})  # v3: the fix
    fixed = run_to_end(history.flow, customer="bad-0")
    assert fixed.status == RunStatus.COMPLETED
    release_live(history.flow, {**history.v2.definition})  # v4: broken again
    broken = run_to_end(history.flow, customer="bad-0")

    explained = run_explain(run=broken)

    assert explained["last_good_run"]["id"] == fixed.pk
    assert explained["first_bad_run"]["id"] == broken.pk
    assert explained["failing_since_count"] == 1
    assert explained["changes"]["input"] == []
    assert (explained["changes"]["version"]["from"], explained["changes"]["version"]["to"]) \
        == (3, 4)


def test_nothing_changed_points_to_the_outside_world(outage):
    flow = make_flow({"slug": "world", "name": "World", "steps": [
        {"key": "call", "type": "python", "action": "test.outage"}]})
    outage["on"] = False
    good = run_to_end(flow)
    outage["on"] = True
    bad = run_to_end(flow)

    explained = run_explain(run=bad)

    assert explained["last_good_run"]["id"] == good.pk
    assert explained["changes"] == {"version": None, "input": [], "connections": []}
    assert "look outside" in explained["summary"]


class OnlyTheRightToken(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        ok = self.headers.get("Authorization") == "Bearer right-token"
        body = json.dumps({"ok": ok}).encode()
        respond(self, 200 if ok else 401, body)


@pytest.fixture
def api_server():
    with local_http_server(OnlyTheRightToken) as url:
        yield url


def test_a_rotated_connection_of_the_step_is_named_without_its_secret(api_server):
    connection_create(actor=None, name="api", kind="http",
                      config={"base_url": api_server, "auth": "bearer"},
                      secret={"token": "right-token"})
    flow = make_flow({"slug": "calls", "name": "Calls", "steps": [
        {"key": "call", "type": "http", "connection": "api",
         "request": {"method": "GET", "url": f"{api_server}/items"}}]})
    good = run_to_end(flow)
    assert good.status == RunStatus.COMPLETED
    connection_update(actor=None, connection=Connection.objects.get(name="api"),
                      secret={"token": "wrong-token"})
    bad = run_to_end(flow)
    assert bad.status == RunStatus.FAILED

    explained = run_explain(run=bad)

    assert explained["step"] == "call"
    assert explained["last_good_run"]["id"] == good.pk
    assert explained["changes"]["version"] is None
    connections = explained["changes"]["connections"]
    assert [(c["name"], c["change"], c["fields"]) for c in connections] == [
        ("api", "rotated", ["secret"])]
    assert "connection api was rotated" in explained["summary"]
    assert "token" not in repr(connections)


def test_a_run_that_did_not_fail_has_nothing_to_explain():
    history = broken_release_history(good=1, bad=0)
    with pytest.raises(Conflict, match="not failed"):
        run_explain(run=history.good_runs[0])


def test_a_step_that_never_completed_has_no_last_good_run():
    flow = make_flow({"slug": "never", "name": "Never", "steps": [
        {"key": "boom", "type": "python", "action": "core.fail"}]})
    first, second = run_to_end(flow), run_to_end(flow)
    explained = run_explain(run=second)
    assert explained["last_good_run"] is None
    assert explained["first_bad_run"]["id"] == first.pk
    assert explained["failing_since_count"] == 2
    assert "never completed" in explained["summary"]


def test_explain_takes_a_constant_number_of_queries(django_assert_max_num_queries):
    history = broken_release_history(good=3, bad=4)
    run = history.bad_runs[-1]
    with django_assert_max_num_queries(8):
        run_explain(run=run)
