"""`wf runs watch` and `wf runs start --wait` on a terminal (a real pseudo-terminal), in JSON
lines, and in a pipe; exit 0 only when the run completed."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

import pytest

from tests.factories import make_flow, simple_definition

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

STEPS = [
    {"key": "first", "type": "python", "action": "core.echo", "args": {"n": 1}},
    {"key": "second", "type": "python", "action": "core.echo", "args": {"n": 2}},
]


def on_terminal(wf, *args: str, timeout: float = 120) -> tuple[int, str]:
    """Run wf with stdout on a pseudo-terminal; (exit code, what it showed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WF_")}
    env.update(WF_URL=wf.url, WF_TOKEN=wf.token, WF_CONFIG_DIR=str(wf.config_dir))
    leader, follower = pty.openpty()
    process = subprocess.Popen([str(wf.script), *args], stdin=subprocess.DEVNULL,
                               stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not data:
            break
        shown += data
    os.close(leader)
    code = process.wait(timeout=30)
    return code, shown.decode().replace("\r\n", "\n")


def final_document(shown: str) -> dict:
    return json.loads(shown[shown.index("\n{") + 1:])


def test_watch_shows_each_transition_then_the_run_and_exits_0(wf, qcluster):
    make_flow(simple_definition("watched", steps=STEPS))
    qcluster()
    run = wf("runs", "start", "watched").document
    code, shown = on_terminal(wf, "runs", "watch", str(run["id"]), "--poll", "0.2")
    assert code == 0, shown
    lines = shown[:shown.index("\n{")].splitlines()
    transitions = [line.split()[1:] for line in lines]
    assert ["first", "queued", "→", "running"] in transitions
    assert ["first", "running", "→", "completed"] in transitions
    assert ["second", "running", "→", "completed"] in transitions
    assert transitions[-1][:4] == ["run", "running", "→", "completed"]
    assert final_document(shown)["status"] == "completed"

    # In a pipe: only the run, as one document. With --json: a line per event, then the run.
    piped = wf("runs", "watch", str(run["id"]))
    assert piped.code == 0 and piped.document["id"] == run["id"]
    streamed = wf("runs", "watch", str(run["id"]), "--json", raw=True)
    assert streamed.code == 0
    rows = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert all("kind" in row for row in rows[:-1]) and rows[-1]["status"] == "completed"
    assert [row["id"] for row in rows[:-1]] == sorted(row["id"] for row in rows[:-1])
    assert rows[-2]["kind"] == "run_completed"
    kinds = wf("runs", "watch", str(run["id"]), "--json", "--jq", ".kind // .status", raw=True)
    assert kinds.stdout.splitlines()[-2:] == ["run_completed", "completed"]


def test_start_wait_on_a_terminal_uses_the_same_display(wf, qcluster):
    make_flow(simple_definition("waited", steps=STEPS))
    qcluster()
    code, shown = on_terminal(wf, "runs", "start", "waited", "--wait", "--poll", "0.2")
    assert code == 0, shown
    assert "second" in shown and "running → completed" in shown
    assert final_document(shown)["status"] == "completed"
    # Not a terminal: one JSON document, as before (scripts depend on it).
    piped = wf("runs", "start", "waited", "--wait", "--jq", ".status", raw=True)
    assert piped.code == 0 and piped.stdout == "completed\n"


def test_watch_exits_1_on_a_failed_or_canceled_run_and_3_on_an_unknown_one(wf, qcluster):
    make_flow(simple_definition("parked", steps=STEPS))
    parked = wf("runs", "start", "parked").document  # no worker yet: it stays queued
    assert wf("runs", "cancel", str(parked["id"])).code == 0
    canceled = wf("runs", "watch", str(parked["id"]))
    assert canceled.code == 1 and canceled.document["status"] == "canceled"

    make_flow(simple_definition("broken", steps=[
        {"key": "boom", "type": "python", "action": "core.fail", "args": {"message": "no"}},
    ]))
    qcluster()
    broken = wf("runs", "start", "broken").document
    code, shown = on_terminal(wf, "runs", "watch", str(broken["id"]), "--poll", "0.2")
    assert code == 1, shown
    assert "boom" in shown and final_document(shown)["status"] == "failed"
    assert wf("runs", "watch", "999999").code == 3
