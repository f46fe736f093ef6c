"""The `wf` console script, as a subprocess against a live server (and a real qcluster where
steps must run): every command prints one JSON document and exits with the documented code."""

from __future__ import annotations

import json
import time

import pytest

from resources.services import resource_create
from tests.factories import make_flow, simple_definition
from tests.otel_receiver import otlp_receiver
from workflows.models import Run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FLOW_YAML = """\
slug: cli-demo
name: CLI demo
input:
  n: {type: integer, default: 1}
steps:
  - key: first
    type: python
    action: core.echo
    args: {n: "{{ input.n }}"}
  - key: nap
    type: python
    action: core.sleep
    args: {seconds: 0.3}
"""


def test_push_release_promote_and_start_with_wait(wf, qcluster, tmp_path):
    qcluster()
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW_YAML)
    created = wf("flows", "push", str(path))
    assert created.code == 0, created.stdout
    assert created.document["action"] == "created" and created.document["slug"] == "cli-demo"
    path.write_text(FLOW_YAML.replace("name: CLI demo", "name: CLI demo 2"))
    replaced = wf("flows", "push", str(path))
    assert replaced.code == 0 and replaced.document["action"] == "draft_replaced"
    assert replaced.document["name"] == "CLI demo 2"

    released = wf("flows", "release", "cli-demo", "--notes", "first")
    assert released.code == 0 and released.document["version"] == 1
    promoted = wf("flows", "promote", "cli-demo", "1")
    assert promoted.code == 0 and promoted.document["live_version"] == 1
    diff = wf("flows", "diff", "cli-demo", "--from", "1", "--to", "draft")
    assert diff.code == 0 and diff.document["from"] == "v1"

    started = wf("runs", "start", "cli-demo", "--input", '{"n": 5}', "--wait", "--timeout", "60")
    assert started.code == 0, started.stdout
    run = started.document
    assert run["status"] == "completed" and run["steps"][0]["output"] == {"n": 5}
    # One document, indented and sorted: stable for scripts and diffs.
    assert started.stdout == json.dumps(run, indent=2, sort_keys=True) + "\n"

    got = wf("runs", "get", str(run["id"]))
    assert got.code == 0 and got.document["id"] == run["id"]
    events = wf("runs", "events", str(run["id"]))
    assert events.code == 0 and events.document["next_cursor"] is None
    assert events.document["items"][-1]["kind"] == "run_completed"
    logs = wf("runs", "logs", str(run["id"]), "nap")
    assert logs.code == 0
    assert "sleeping" in "".join(c["text"] for c in logs.document["items"])
    listed = wf("runs", "list", "cli-demo")
    assert [r["id"] for r in listed.document["items"]] == [run["id"]]
    again = wf("runs", "start", "cli-demo", "--idempotency-key", "k1")
    same = wf("runs", "start", "cli-demo", "--idempotency-key", "k1")
    assert again.document["id"] == same.document["id"]
    compared = wf("runs", "compare", str(again.document["id"]), "--to", str(run["id"]))
    assert compared.code == 0 and compared.document["other"] == run["id"]


def test_logs_follow_tails_the_step_and_prints_one_document_when_it_ends(wf, qcluster):
    make_flow(simple_definition("napper", steps=[
        {"key": "nap", "type": "python", "action": "core.sleep", "args": {"seconds": 1}},
    ]))
    run = wf("runs", "start", "napper").document
    qcluster()
    followed = wf("runs", "logs", str(run["id"]), "nap", "--follow", "--timeout", "60")
    assert followed.code == 0, followed.stdout
    chunks = followed.document["items"]
    assert chunks and all({"seq", "at", "stream", "text", "attempt"} <= set(c) for c in chunks)
    assert followed.document["step_status"] == "completed"
    assert "sleeping 1s" in "".join(c["text"] for c in chunks)
    assert "sleeping 1s" in followed.stderr
    assert Run.objects.get(pk=run["id"]).status == "completed"


def test_approve_from_the_cli(wf, qcluster):
    qcluster()
    make_flow(simple_definition("reviewed", steps=[
        {"key": "build", "type": "python", "action": "core.echo", "args": {"built": True}},
        {"key": "review", "type": "approval", "assignees": {"users": ["cli-admin"]}},
        {"key": "publish", "type": "python", "action": "core.echo", "args": {"done": True}},
    ]))
    waited = wf("runs", "start", "reviewed", "--wait", "--timeout", "2")
    assert waited.code == 5
    run = waited.document
    # --wait gives up before the run ends (it waits for its approval): exit 5 with the run
    # attached. On a loaded machine the worker may not have reached the approval in 2 s yet.
    assert run["error"]["code"] == "wait_timeout"
    assert run["error"]["run"]["status"] in {"queued", "running", "waiting_for_approval"}
    run_id = run["error"]["run"]["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = wf("runs", "get", str(run_id)).document["status"]
        if status == "waiting_for_approval":
            break
        time.sleep(0.3)
    assert status == "waiting_for_approval"
    listed = wf("approvals", "list")
    assert listed.code == 0 and len(listed.document["items"]) == 1
    approval = listed.document["items"][0]
    decided = wf("approvals", "approve", str(approval["id"]), "--comment", "ok")
    assert decided.code == 0 and decided.document["status"] == "approved"
    assert decided.document["comment"] == "ok"
    again = wf("approvals", "reject", str(approval["id"]), "--comment", "late")
    assert again.code == 4 and again.error["code"] == "conflict"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = wf("runs", "get", str(run_id)).document["status"]
        if status == "completed":
            break
        time.sleep(0.3)
    assert status == "completed"


def test_cancel_retry_and_replay(wf):
    make_flow(simple_definition("parked", steps=[
        {"key": "first", "type": "python", "action": "core.echo", "args": {}},
        {"key": "second", "type": "python", "action": "core.echo", "args": {}},
    ]))
    run = wf("runs", "start", "parked").document  # no worker: it stays queued
    canceled = wf("runs", "cancel", str(run["id"]), "--reason", "testing")
    assert canceled.code == 0 and canceled.document["status"] == "canceled"
    conflict = wf("runs", "cancel", str(run["id"]))
    assert conflict.code == 4 and conflict.error["code"] == "transition_not_allowed"
    retried = wf("runs", "retry", str(run["id"]))
    assert retried.code == 0 and retried.document["retry_of"] == run["id"]
    from_step = wf("runs", "retry", str(run["id"]), "--from-step", "second")
    assert from_step.code == 0 and from_step.document["trigger"]["payload"]["from_step"] == \
        "second"
    replayed = wf("runs", "replay", str(run["id"]))
    assert replayed.code == 0 and replayed.document["replay_of"] == run["id"]


def test_resources_get_downloads_the_file(wf, tmp_path):
    resource = resource_create(content=b"report body", name="report.txt",
                               content_type="text/plain")
    target = tmp_path / "out.txt"
    result = wf("resources", "get", resource.uri, "-o", str(target))
    assert result.code == 0, result.stdout
    assert target.read_bytes() == b"report body"
    assert result.document["path"] == str(target.resolve())
    assert result.document["sha256"] == resource.sha256


def test_exit_codes(wf, tmp_path):
    make_flow(simple_definition("typed", input={"n": {"type": "integer"}}))
    not_found = wf("flows", "get", "no-such-flow")
    assert not_found.code == 3 and not_found.error["code"] == "not_found"
    assert wf("runs", "get", "999999").code == 3

    invalid_input = wf("runs", "start", "typed", "--input", '{"n": "x", "m": 1}')
    assert invalid_input.code == 4 and invalid_input.error["code"] == "input_invalid"
    assert {d["path"] for d in invalid_input.error["details"]} == {"input.n", "input.m"}
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("slug: bad-flow\nsteps: []\n")
    invalid_definition = wf("flows", "push", str(bad_file))
    assert invalid_definition.code == 4 and invalid_definition.error["details"]

    usage = wf("runs", "start")
    assert usage.code == 2 and usage.error["code"] == "usage"
    assert wf("runs", "start", "typed", "--input", "{not json").code == 2
    assert wf("flows", "push", str(tmp_path / "missing.yaml")).code == 2
    assert wf("bogus").code == 2

    network = wf("flows", "list", url="http://127.0.0.1:9")
    assert network.code == 5 and network.error["code"] == "network_error"

    # A token the server does not know (revoked, expired, mistyped) or none at all: exit 3,
    # saying how to log in. A known user without the role stays exit 1 (403).
    refused = wf("flows", "list", token="wf_wrong")
    assert refused.code == 3 and refused.error["code"] == "unauthorized"
    assert "wf auth login" in refused.error["message"]
    anonymous = wf("flows", "list", token=None)
    assert anonymous.code == 3 and "wf auth login" in anonymous.error["message"]


def test_flows_list_and_get(wf):
    make_flow(simple_definition("listed"))
    listed = wf("flows", "list")
    assert listed.code == 0 and [f["slug"] for f in listed.document["items"]] == ["listed"]
    every = wf("flows", "list", "--all")
    assert every.document["next_cursor"] is None
    got = wf("flows", "get", "listed")
    assert got.code == 0 and got.document["live_version"] == 1


def test_connections_test_prints_the_answer(wf):
    from connections.services import connection_create

    connection_create(actor=None, name="down-api", kind="http",
                      config={"base_url": "http://127.0.0.1:9", "auth": "bearer"},
                      secret={"token": "tok-CLI-SECRET-1"})
    result = wf("connections", "test", "down-api")
    assert result.code == 0, result.stdout
    assert result.document["ok"] is False
    assert result.document["error"]["type"] == "ConnectError"
    assert "tok-CLI-SECRET-1" not in result.stdout
    missing = wf("connections", "test", "nope")
    assert missing.code == 3 and missing.error["code"] == "not_found"


def test_notification_secret_rotates_and_prints_once(wf):
    flow = make_flow(simple_definition("cli-notify"))
    rotated = wf("flows", "notification-secret", "cli-notify")
    assert rotated.code == 0, rotated.stdout
    assert rotated.document["signature_header"] == "X-Workflows-Notification-Signature"
    flow.refresh_from_db()
    assert rotated.document["notification_secret"] == flow.notification_signing_secret()


def test_runs_start_sends_the_callers_traceparent(wf, monkeypatch):
    from ops import tracing

    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        tracing.reset()  # the live server runs in this process
        try:
            make_flow(simple_definition("cli-traced"))
            parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            started = wf("runs", "start", "cli-traced", env={"TRACEPARENT": parent})
            assert started.code == 0, started.stderr
            assert started.document["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
            fresh = wf("runs", "start", "cli-traced", env={"TRACEPARENT": "nonsense"})
            assert fresh.code == 0 and fresh.document["trace_id"] not in (
                None, "4bf92f3577b34da6a3ce929d0e0e4736")
        finally:
            monkeypatch.undo()
            tracing.reset()


def test_logs_follow_shows_a_remote_agents_log_live(wf, live_server):
    """`wf runs logs RUN WAIT --follow` prints what the wait's remote agent posts (stream
    `remote`) while it waits, and ends when the agent's callback completes the wait."""
    import threading

    import httpx

    from tests.factories import drain
    from workflows import engine
    from workflows.models import StepRun

    make_flow(simple_definition("agentic", steps=[
        {"key": "agent_done", "type": "wait", "timeout_seconds": 600},
    ]))
    run = wf("runs", "start", "agentic").document
    drain()
    step = StepRun.objects.get(run_id=run["id"], key="agent_done")
    url = f"{live_server.url}/api/v1/callbacks/{engine.callback_token(step.callback_nonce)}"
    text = {"Content-Type": "text/plain"}
    assert httpx.post(url + "/logs", content=b"first remote line\n", headers=text
                      ).status_code == 200

    def agent_goes_on() -> None:
        time.sleep(1.5)
        httpx.post(url + "/logs", content=b"second remote line\n", headers=text)
        httpx.post(url, json={"ok": True})

    thread = threading.Thread(target=agent_goes_on)
    thread.start()
    followed = wf("runs", "logs", str(run["id"]), "agent_done", "--follow", "--timeout", "60")
    thread.join()
    assert followed.code == 0, followed.stdout
    streams = [(c["stream"], c["text"]) for c in followed.document["items"]]
    assert ("remote", "first remote line\n") in streams
    assert ("remote", "second remote line\n") in streams
    assert "second remote line" in followed.stderr
    assert followed.document["step_status"] == "completed"
