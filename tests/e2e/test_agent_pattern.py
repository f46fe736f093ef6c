"""The VM-backed agent pattern, end to end: an ssh step starts a background job on a "VM" (the
loopback OpenSSH server), the job POSTs its result to the wait step's callback URL on a live
server, a reviewer decides, the run completes.

The demo flow itself (workflows/demo/agent-demo.yaml) runs here, with its `build-vm` connection
pointed at the loopback sshd and PUBLIC_BASE_URL at pytest-django's live server. The engine is
driven in-process with `drain()` from the test thread; the callback arrives through the real
HTTP API, handled by the live server's thread.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from django.contrib.auth.models import Group

from approvals.models import Approval
from approvals.services import approval_approve, approval_redo
from resources.models import Resource
from tests.e2e.conftest import wait_for, wait_for_run
from tests.factories import drain, make_flow, steps_of
from tests.workflows.test_ssh_step import logs_of, ssh_connection
from workflows.definitions import parse_definition, validate_definition
from workflows.engine.callback_tokens import callback_token
from workflows.engine.sweeper import sweep
from workflows.errors import DefinitionInvalid
from workflows.models import Event, Run
from workflows.services.callbacks import callback_receive
from workflows.services.flows import flow_create, flow_promote, flow_release
from workflows.services.runs import run_start

DEMO = Path(__file__).resolve().parents[2] / "workflows" / "demo" / "agent-demo.yaml"
PR_URL = "https://git.example.com/demo/pulls/42"


def drain_until(run: Run, predicate, *, timeout: float = 30.0, what: str = "") -> None:
    """Drive the engine in this thread until `predicate(steps)` holds (the callback arrives
    from another process meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        drain()
        steps = steps_of(run)
        if predicate(steps):
            return
        if time.monotonic() > deadline:
            statuses = {k: s.status for k, s in steps.items()}
            raise AssertionError(f"timed out waiting for {what}; steps: {statuses}")
        time.sleep(0.1)


def load_demo_flow():
    flow = flow_create(definition=DEMO.read_text())
    version = flow_release(flow=flow)
    flow_promote(flow=flow, number=version.number)
    flow.refresh_from_db()
    return flow


@pytest.fixture
def reviewer(django_user_model):
    user = django_user_model.objects.create_user(username="rita", password="x")
    group, _ = Group.objects.get_or_create(name="reviewers")
    user.groups.add(group)
    return user


# --- the demo definition -----------------------------------------------------------------------

AGENT_SCRIPT = str(Path(__file__).resolve().parents[2] / "workflows" / "demo" / "agent"
                   / "agent.py")


@pytest.mark.django_db
def test_the_agent_demo_is_valid_and_its_release_needs_the_build_vm_connection():
    definition = parse_definition(DEMO.read_text())
    normalized = validate_definition(definition)
    assert [s["key"] for s in normalized["steps"]] == ["agent", "agent_done", "review", "publish"]
    wait = normalized["steps"][1]
    assert wait["heartbeat_timeout_seconds"] == 120 and wait["budget"]["cost_usd"] == 5
    with pytest.raises(DefinitionInvalid) as caught:
        validate_definition(definition, check_connections=True)
    assert caught.value.problems == [
        {"path": "steps[0].connection", "message": "no connection named 'build-vm'"},
        {"path": "steps[1].on_cancel.connection", "message": "no connection named 'build-vm'"},
    ]


def test_the_agent_demo_starts_its_job_the_plain_way():
    """The README's promise: a background job written as in a terminal, no pty and no
    `setsid nohup` incantation; the agent is a script in the repository."""
    definition = parse_definition(DEMO.read_text())
    agent = definition["steps"][0]
    assert "pty" not in agent
    assert "setsid" not in agent["command"] and "nohup" not in agent["command"]
    assert 'python3 "$AGENT"' in agent["command"]
    assert Path(AGENT_SCRIPT).is_file()


# --- end to end --------------------------------------------------------------------------------


def start_demo(sshd, **input):
    ssh_connection(sshd, "build-vm")
    flow = load_demo_flow()
    run, _ = run_start(flow=flow, input={"agent_script": AGENT_SCRIPT, **input})
    return run


@pytest.mark.ssh
@pytest.mark.django_db(transaction=True)
def test_the_agent_heartbeats_streams_uploads_its_patch_calls_back_and_is_approved(
    sshd, live_server, settings, reviewer
):
    settings.PUBLIC_BASE_URL = live_server.url
    run = start_demo(sshd, task='Fix it\'s "quoting"', agent_seconds=1)

    drain_until(
        run,
        lambda s: s["review"].status == "waiting_for_approval",
        what="the agent's callback and the review request",
    )
    steps = steps_of(run)
    assert steps["agent"].status == "completed"
    assert steps["agent"].output["exit_code"] == 0
    agent_log = logs_of(steps["agent"], "stdout")
    assert 'starting the agent for: Fix it\'s "quoting"' in agent_log
    assert "will call back" in agent_log
    done = steps["agent_done"]
    # The agent reported while it worked: heartbeat, progress, usage, its log, its patch.
    assert done.heartbeat_at is not None and done.agent_message == "done"
    assert done.agent_progress == {"done": 4, "total": 4}
    assert done.agent_usage["input_tokens"] == 6000 and done.agent_usage["cost_usd"] > 0
    remote = logs_of(done, "remote")
    assert "agent started: Fix it's \"quoting\"" in remote
    assert "[4/4] running the tests" in remote and "uploaded the patch" in remote
    patch = done.output["artifacts"]["patch"]
    assert patch["content_type"] == "text/x-diff"
    resource = Resource.objects.get(pk=patch["$resource"].removeprefix("res://"))
    with resource.file.open("rb") as handle:
        assert b"+today = datetime.now(tz).date()" in handle.read()
    assert done.output["pr_url"] == PR_URL
    assert done.finished_at > steps["agent"].finished_at
    completed = Event.objects.get(step_run=done, to_status="completed")
    assert completed.actor_kind == "callback" and completed.reason == "callback received"

    # The reviewer is shown the patch, as a descriptor the approval card renders as a diff.
    approval = Approval.objects.get(step_run=steps["review"], status="pending")
    assert approval.instructions.startswith(f"Review {PR_URL} (demo agent finished: ")
    assert patch["$resource"] in str(approval.data)
    approval_approve(approval=approval, actor=reviewer, comment="ship it")
    drain()
    run.refresh_from_db()
    assert run.status == "completed"
    steps = steps_of(run)
    assert steps["review"].output["decision"] == "approved"
    assert steps["publish"].output == {"published": True, "pr_url": PR_URL}
    assert steps["agent_done"].on_cancel_state == ""  # it called back: nothing to stop

    # The callback URL was single-use, and its siblings are closed now.
    token = callback_token(steps["agent_done"].callback_nonce)
    response = httpx.post(f"{live_server.url}/api/v1/callbacks/{token}", json={"again": True})
    assert response.status_code == 409, response.text
    beat = httpx.post(f"{live_server.url}/api/v1/callbacks/{token}/heartbeat", json={})
    assert beat.status_code == 410 and beat.json()["error"]["code"] == "callback_expired"


@pytest.mark.ssh
@pytest.mark.django_db(transaction=True)
def test_canceling_the_run_stops_the_agent_on_the_vm(sshd, live_server, settings,
                                                     django_user_model):
    """The agent works for a long time; canceling the run runs on_cancel over ssh, which kills
    it (its pid found under the callback URL's hash), once."""
    settings.PUBLIC_BASE_URL = live_server.url
    run = start_demo(sshd, agent_seconds=600)
    drain_until(run, lambda s: s["agent_done"].status == "waiting"
                and s["agent_done"].heartbeat_at is not None, what="the agent's first heartbeat")
    from workflows.services.runs import run_cancel

    admin = django_user_model.objects.create_superuser(username="ops", password="x")
    run_cancel(run=run, actor=admin, reason="changed my mind")
    step = steps_of(run)["agent_done"]
    assert step.on_cancel_state == "due"
    from workflows import engine

    engine.step_wake(step.pk)
    step.refresh_from_db()
    assert step.on_cancel_state == "done", step.on_cancel_result
    assert step.on_cancel_result["exit_code"] == 0, step.on_cancel_result
    assert "stopped the agent (pid " in step.on_cancel_result["output"]
    pid = int(step.on_cancel_result["output"].split("(pid ")[1].split(")")[0])
    wait_for(lambda: not _alive(pid), timeout=10, what="the agent to stop")
    assert engine.step_wake(step.pk) is False  # never a second on_cancel


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (the sshd session reaps it later) counts as stopped
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.mark.ssh
@pytest.mark.django_db(transaction=True)
def test_redo_runs_the_agent_again_with_a_fresh_callback_url(sshd, live_server, settings, reviewer):
    settings.PUBLIC_BASE_URL = live_server.url
    run = start_demo(sshd, agent_seconds=0)
    drain_until(
        run, lambda s: s["review"].status == "waiting_for_approval", what="the first review request"
    )
    first_nonce = steps_of(run)["agent_done"].callback_nonce
    approval = Approval.objects.get(run=run, status="pending")
    approval_redo(approval=approval, actor=reviewer, comment="add a test")

    drain_until(
        run,
        lambda s: (
            s["review"].status == "waiting_for_approval"
            and Approval.objects.filter(run=run, status="pending").exists()
        ),
        what="the agent's second callback and a new review request",
    )
    steps = steps_of(run)
    assert steps["agent"].attempt_count == 2
    assert steps["agent_done"].callback_nonce != first_nonce
    assert steps["agent_done"].output["pr_url"] == PR_URL
    assert steps["agent_done"].output["artifacts"]["patch"]["$resource"].startswith("res://")
    approval_approve(approval=Approval.objects.get(run=run, status="pending"), actor=reviewer)
    drain()
    run.refresh_from_db()
    assert run.status == "completed"


@pytest.mark.ssh
@pytest.mark.django_db(transaction=True)
def test_a_callback_that_arrives_before_the_wait_is_reached_is_kept(sshd, live_server, settings):
    """The agent calls back while its own ssh step is still running: the engine keeps the
    payload, and the wait completes the moment the run reaches it."""
    settings.PUBLIC_BASE_URL = live_server.url
    ssh_connection(sshd, "build-vm")
    flow = make_flow(
        {
            "slug": "eager-agent",
            "name": "Eager agent",
            "steps": [
                {
                    "key": "agent",
                    "type": "ssh",
                    "connection": "build-vm",
                    # In the foreground: the POST is answered before the step ends.
                    "command": "curl -fsS -X POST -H 'Content-Type: application/json' "
                    '-d \'{"pr_url": "' + PR_URL + "\"}' "
                    "'{{ steps.agent_done.callback_url }}'; echo; echo posted",
                },
                {"key": "agent_done", "type": "wait", "timeout_seconds": 600},
                {
                    "key": "after",
                    "type": "python",
                    "action": "core.echo",
                    "args": {"pr": "{{ steps.agent_done.output.pr_url }}"},
                },
            ],
        }
    )
    run, _ = run_start(flow=flow, input={})
    drain()
    run.refresh_from_db()
    assert run.status == "completed", steps_of(run)["agent"].error
    steps = steps_of(run)
    assert '"status":"accepted"' in logs_of(steps["agent"], "stdout").replace(" ", "")
    kinds = list(Event.objects.filter(run=run).order_by("id").values_list("kind", "reason"))
    early = kinds.index(
        ("callback_received_early", "callback arrived before the wait was reached; kept")
    )
    agent_done = [
        i
        for i, (kind, reason) in enumerate(kinds)
        if reason == "callback had arrived before the wait was reached"
    ]
    assert agent_done and agent_done[0] > early
    assert steps["agent_done"].output == {"pr_url": PR_URL}
    assert steps["after"].output == {"pr": PR_URL}


@pytest.mark.e2e
@pytest.mark.ssh
def test_the_agent_pattern_through_a_real_worker(
    sshd, live_server, cluster_env, qcluster, reviewer
):
    """The demo with a real qcluster doing the work: the worker runs the ssh step, the agent's
    heartbeats, log, patch and callback are handled by the live server, the callback queues the
    review, the approval queues publish."""
    cluster_env["PUBLIC_BASE_URL"] = live_server.url  # the worker writes the callback URL
    run = start_demo(sshd, agent_seconds=1)
    qcluster()
    wait_for(
        lambda: Approval.objects.filter(run=run, status="pending").exists(),
        timeout=60,
        what="the agent's callback and the review request",
    )
    steps = steps_of(run)
    assert steps["agent_done"].output["summary"].startswith("demo agent finished")
    assert steps["agent_done"].callback_received_at is not None
    assert steps["agent_done"].output["artifacts"]["patch"]["$resource"].startswith("res://")
    assert "running the tests" in logs_of(steps["agent_done"], "remote")
    approval_approve(approval=Approval.objects.get(run=run, status="pending"), actor=reviewer)
    wait_for_run(run)
    assert run.status == "completed"
    assert steps_of(run)["publish"].output == {"published": True, "pr_url": PR_URL}


# --- waits that time out -----------------------------------------------------------------------


def waiting_flow(on_timeout: str):
    return make_flow(
        {
            "slug": f"wait-{on_timeout}",
            "name": "Wait",
            "steps": [
                {
                    "key": "agent_done",
                    "type": "wait",
                    "timeout_seconds": 1,
                    "on_timeout": on_timeout,
                },
                {
                    "key": "after",
                    "type": "python",
                    "action": "core.echo",
                    "args": {"got": "{{ steps.agent_done.output }}"},
                },
            ],
        }
    )


@pytest.mark.django_db
def test_a_wait_that_times_out_fails_the_run_when_it_says_fail():
    run, _ = run_start(flow=waiting_flow("fail"), input={})
    drain()
    assert steps_of(run)["agent_done"].status == "waiting"
    sweep()  # not yet due
    assert steps_of(run)["agent_done"].status == "waiting"
    time.sleep(1.1)
    assert sweep()["wait_timeouts"] == 1
    run.refresh_from_db()
    steps = steps_of(run)
    assert run.status == "failed"
    assert steps["agent_done"].status == "failed"
    assert steps["agent_done"].error["type"] == "WaitTimeout"
    assert steps["after"].status in ("not_started", "canceled", "skipped")
    assert Event.objects.filter(run=run, kind="wait_timed_out").exists()
    # The callback came too late: expired.
    from workflows.errors import CallbackExpired

    with pytest.raises(CallbackExpired):
        callback_receive(
            token=callback_token(steps["agent_done"].callback_nonce), payload={"late": True}
        )


@pytest.mark.django_db
def test_a_wait_that_times_out_continues_the_run_when_it_says_continue():
    run, _ = run_start(flow=waiting_flow("continue"), input={})
    drain()
    time.sleep(1.1)
    sweep()
    drain()
    run.refresh_from_db()
    steps = steps_of(run)
    assert run.status == "completed"
    assert steps["agent_done"].output == {"timed_out": True}
    assert steps["after"].output == {"got": {"timed_out": True}}
