"""A wait's callback siblings (CONTRACT.md "Remote agents"): heartbeat, logs, artifacts; the
wait's heartbeat_timeout_seconds, budget and on_cancel (against a real sshd)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from resources.models import Resource
from tests.api.conftest import wait_definition
from tests.factories import drain, make_flow, simple_definition
from tests.workflows.test_ssh_step import ssh_connection
from workflows import engine
from workflows.models import Event, LogChunk, Run, StepRun
from workflows.services.agents import agent_heartbeat

pytestmark = pytest.mark.django_db


def agent_definition(slug: str = "agent", **wait) -> dict:
    return simple_definition(slug, steps=[
        {"key": "start", "type": "python", "action": "core.echo", "args": {"n": 1}},
        {"key": "agent_done", "type": "wait", "timeout_seconds": 3600, **wait},
        {"key": "finish", "type": "python", "action": "core.echo",
         "args": {"got": "{{ steps.agent_done.output }}"}},
    ])


def start(as_user, slug: str = "agent", definition: dict | None = None):
    make_flow(definition or agent_definition(slug))
    run = as_user("operator").post(f"/flows/{slug}/runs", {"input": {}}).body
    drain()
    step = StepRun.objects.get(run_id=run["id"], key="agent_done")
    assert step.status == "waiting"
    token = engine.callback_token(step.callback_nonce)
    return run["id"], token, f"/callbacks/{token}"


@pytest.fixture
def agent(as_user):
    return start(as_user)


def step_of(run_id: int) -> StepRun:
    return StepRun.objects.get(run_id=run_id, key="agent_done")


def test_a_heartbeat_records_message_progress_and_usage(anon_api, as_user, agent):
    run_id, _, path = agent
    usage = {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.42}
    response = anon_api.post(f"{path}/heartbeat", {"message": "running tests",
                                                   "progress": {"done": 3, "total": 10},
                                                   "usage": usage})
    assert response.status == 200 and response.body == {"status": "waiting"}
    document = as_user("operator").get(f"/runs/{run_id}").body
    step = next(s for s in document["steps"] if s["key"] == "agent_done")
    assert step["message"] == "running tests"
    assert step["progress"] == {"done": 3, "total": 10}
    assert step["usage"] == usage and step["heartbeat_at"]
    assert document["usage"] == usage
    assert step_of(run_id).status == "waiting"


@pytest.mark.parametrize(("body", "field"), [
    ({"usage": {"cost_usd": "12"}}, "usage.cost_usd"),
    ({"usage": {"cost_usd": -1}}, "usage.cost_usd"),
    ({"usage": {"input_tokens": True}}, "usage.input_tokens"),
    ({"usage": {"tokens": 1}}, "usage.tokens"),
    ({"usage": [1]}, "usage"),
    ({"progress": {"done": 5, "total": 2}}, "progress.done"),
    ({"message": 3}, "message"),
    ({"message": "a\u0000b"}, "message"),
    ({"extra": 1}, "extra"),
])
def test_a_malformed_heartbeat_is_a_400_naming_the_field_and_writes_nothing(
        anon_api, agent, body, field):
    run_id, _, path = agent
    response = anon_api.post(f"{path}/heartbeat", body)
    assert response.status == 400, response.body
    assert response.error["details"][0]["path"] == field
    assert step_of(run_id).heartbeat_at is None


def test_non_finite_and_oversized_heartbeats_are_refused(anon_api, agent):
    run_id, _, path = agent
    for raw in (b'{"usage": {"cost_usd": NaN}}', b'{"usage": {"cost_usd": Infinity}}',
                b'{"usage": {"cost_usd": 1e400}}', b"\xff\xfe", b"[1]",
                b'{"message": "\\ud800"}', b'{"message": "a\\u0000"}'):
        response = anon_api.post(f"{path}/heartbeat", raw=raw)
        assert response.status == 400, raw
    big = anon_api.post(f"{path}/heartbeat", {"message": "x" * (17 * 1024)})
    assert big.status == 413 and "16384" in big.error["message"]
    assert step_of(run_id).heartbeat_at is None


def test_unknown_and_forged_tokens_are_404_on_every_sibling(anon_api, agent):
    _, token, _ = agent
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for prefix in ("/callbacks/not-a-token", f"/callbacks/{forged}", "/callbacks/" + "x" * 300):
        assert anon_api.post(f"{prefix}/heartbeat", {}).status == 404
        assert anon_api.post(f"{prefix}/logs", raw=b"hi", content_type="text/plain"
                             ).status == 404
        assert anon_api.put(f"{prefix}/artifacts/a.txt", raw=b"x",
                            content_type="text/plain").status == 404
    assert not Resource.objects.filter(kind="artifact").exists()


def test_logs_append_to_the_wait_as_stream_remote(anon_api, as_user, agent):
    run_id, _, path = agent
    assert anon_api.post(f"{path}/logs", raw=b"step 1\n", content_type="text/plain"
                         ).status == 200
    assert anon_api.post(f"{path}/logs", {"text": "step 2\n"}).status == 200
    chunks = LogChunk.objects.filter(step_run__run_id=run_id, stream="remote").order_by("seq")
    assert [c.text for c in chunks] == ["step 1\n", "step 2\n"]
    logs = as_user("operator").get(f"/runs/{run_id}/steps/agent_done/logs").body
    assert [i["text"] for i in logs["items"] if i["stream"] == "remote"] == [
        "step 1\n", "step 2\n"]
    assert step_of(run_id).heartbeat_at is not None


def test_bad_log_posts_are_refused_and_write_nothing(anon_api, agent):
    run_id, _, path = agent
    assert anon_api.post(f"{path}/logs", raw=b"a\x00b", content_type="text/plain"
                         ).status == 400
    assert anon_api.post(f"{path}/logs", raw=b"\xff\xfe\x00", content_type="text/plain"
                         ).status == 400
    assert anon_api.post(f"{path}/logs", {"text": 5}).status == 400
    big = anon_api.post(f"{path}/logs", raw=b"x" * (1024 * 1024 + 1), content_type="text/plain")
    assert big.status == 413 and "1048576" in big.error["message"]
    assert not LogChunk.objects.filter(step_run__run_id=run_id, stream="remote").exists()


def test_an_artifact_is_streamed_to_a_resource_and_joins_the_output(anon_api, agent):
    run_id, _, path = agent
    patch = b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n"
    response = anon_api.put(f"{path}/artifacts/fix.patch", raw=patch, content_type="text/x-diff")
    assert response.status == 201
    assert response.body["sha256"] == hashlib.sha256(patch).hexdigest()
    assert response.body["size"] == len(patch) and response.body["uri"].startswith("res://")
    assert response.body["content_type"] == "text/x-diff"
    assert anon_api.post(path, {"pr_url": "u"}).status == 202
    drain()
    output = step_of(run_id).output
    assert output["pr_url"] == "u"
    assert output["artifacts"]["fix.patch"]["$resource"] == response.body["uri"]
    assert Run.objects.get(pk=run_id).status == "completed"


@pytest.mark.parametrize("name", ["..", ".", "a/b", "a%2Fb", "x" * 129, "sp ace", "é"])
def test_bad_artifact_names_are_a_400_or_no_route(anon_api, agent, name):
    _, _, path = agent
    response = anon_api.put(f"{path}/artifacts/{name}", raw=b"x", content_type="text/plain")
    assert response.status in (400, 404)
    assert not Resource.objects.filter(kind="artifact").exists()


def test_an_artifact_over_the_cap_is_a_413_naming_the_setting_and_keeps_nothing(
        anon_api, agent, settings):
    run_id, _, path = agent
    settings.WF_ARTIFACT_MAX_BYTES = 10
    response = anon_api.put(f"{path}/artifacts/big.bin", raw=b"x" * 11,
                            content_type="application/octet-stream")
    assert response.status == 413 and "WF_ARTIFACT_MAX_BYTES" in response.error["message"]
    assert not Resource.objects.filter(kind="artifact").exists() and step_of(run_id).agent_artifacts is None


def test_every_sibling_is_410_once_the_wait_ended_and_heartbeats_do_not_revive_it(
        anon_api, as_user, agent):
    run_id, token, path = agent
    as_user("operator").post(f"/runs/{run_id}/cancel")
    for response in (anon_api.post(f"{path}/heartbeat", {"message": "still here"}),
                     anon_api.post(f"{path}/logs", raw=b"x", content_type="text/plain"),
                     anon_api.put(f"{path}/artifacts/a", raw=b"x", content_type="text/plain")):
        assert response.status == 410 and response.error["code"] == "callback_expired"
    step = step_of(run_id)
    assert step.status == "canceled" and step.agent_message == ""
    assert not Resource.objects.filter(kind="artifact").exists()


def test_usage_beyond_the_budget_fails_the_wait(anon_api, as_user):
    run_id, _, path = start(as_user, "budgeted", agent_definition(
        "budgeted", budget={"cost_usd": 1, "tokens": 1000}))
    assert anon_api.post(f"{path}/heartbeat", {"usage": {"cost_usd": 0.5}}).status == 200
    over = anon_api.post(f"{path}/heartbeat", {"usage": {"cost_usd": 1.5}})
    assert over.status == 410 and "budget" in over.error["message"]
    step = step_of(run_id)
    assert step.status == "failed" and step.error["type"] == "BudgetExceeded"
    run = Run.objects.get(pk=run_id)
    assert run.status == "failed" and run.error_kind == "budget_exceeded"
    document = as_user("operator").get(f"/runs/{run_id}").body
    assert next(s for s in document["steps"] if s["key"] == "agent_done")[
        "error_kind"] == "budget_exceeded"


def test_tokens_beyond_the_budget_fail_the_wait_in_process(as_user):
    run_id, token, _ = start(as_user, "tokens", agent_definition("tokens", budget={"tokens": 10}))
    from workflows.errors import CallbackExpired

    with pytest.raises(CallbackExpired):
        agent_heartbeat(token=token, payload={"usage": {"input_tokens": 6, "output_tokens": 6}})
    assert step_of(run_id).error["kind"] == "budget_exceeded"


def test_a_missed_heartbeat_fails_the_wait_when_its_deadline_is_woken(anon_api, as_user):
    run_id, _, path = start(as_user, "beating", agent_definition(
        "beating", heartbeat_timeout_seconds=60))
    step = step_of(run_id)
    assert step.heartbeat_deadline is not None
    first = step.heartbeat_deadline
    assert anon_api.post(f"{path}/heartbeat", {}).status == 200
    assert step_of(run_id).heartbeat_deadline >= first
    # Not due yet: a wake does nothing.
    assert engine.step_wake(step.pk) is False
    StepRun.objects.filter(pk=step.pk).update(
        heartbeat_deadline=timezone.now() - timedelta(seconds=1))
    assert engine.step_wake(step.pk) is True
    step = step_of(run_id)
    assert step.status == "failed" and step.error["type"] == "HeartbeatTimeout"
    assert Run.objects.get(pk=run_id).error_kind == "heartbeat_timeout"
    assert Event.objects.filter(step_run=step, kind="heartbeat_timed_out").exists()
    assert anon_api.post(f"{path}/heartbeat", {}).status == 410


def test_the_sweeper_is_the_backstop_for_missed_heartbeats(as_user):
    run_id, _, _ = start(as_user, "swept", agent_definition(
        "swept", heartbeat_timeout_seconds=60))
    StepRun.objects.filter(run_id=run_id, key="agent_done").update(
        heartbeat_deadline=timezone.now() - timedelta(seconds=1))
    assert engine.sweep()["heartbeat_timeouts"] == 1
    assert step_of(run_id).status == "failed"


@pytest.mark.parametrize(("wait", "path"), [
    ({"heartbeat_timeout_seconds": 0}, "steps[1].heartbeat_timeout_seconds"),
    ({"heartbeat_timeout_seconds": "5"}, "steps[1].heartbeat_timeout_seconds"),
    ({"budget": {"cost_usd": -1}}, "steps[1].budget.cost_usd"),
    ({"budget": {"tokens": 1.5}}, "steps[1].budget.tokens"),
    ({"budget": {"dollars": 1}}, "steps[1].budget.dollars"),
    ({"budget": 5}, "steps[1].budget"),
    ({"on_cancel": {"connection": "vm"}}, "steps[1].on_cancel.command"),
    ({"on_cancel": "kill"}, "steps[1].on_cancel"),
])
def test_agent_fields_are_validated_at_draft_time(as_user, wait, path):
    response = as_user("builder").post("/flows", {"definition": agent_definition("bad", **wait)})
    assert response.status == 422, response.body
    assert path in [d["path"] for d in response.error["details"]], response.error


def test_on_cancel_runs_once_over_ssh_when_the_run_is_canceled(anon_api, as_user, sshd,
                                                                tmp_path):
    ssh_connection(sshd, "agent-vm")
    marker = tmp_path / "stopped"
    run_id, _, path = start(as_user, "stoppable", agent_definition(
        "stoppable", on_cancel={"connection": "agent-vm",
                                "command": f"echo stopping; echo x >> {marker}; exit 3"}))
    as_user("operator").post(f"/runs/{run_id}/cancel")
    step = step_of(run_id)
    assert step.on_cancel_state == "due"
    assert engine.step_wake(step.pk) is True
    assert engine.step_wake(step.pk) is False  # a second worker: claimed already
    assert engine.sweep()["on_cancel"] == 0
    step = step_of(run_id)
    assert step.on_cancel_state == "done"
    assert step.on_cancel_result["exit_code"] == 3
    assert "stopping" in step.on_cancel_result["output"]
    assert marker.read_text() == "x\n"  # ran exactly once
    document = as_user("operator").get(f"/runs/{run_id}").body
    assert next(s for s in document["steps"] if s["key"] == "agent_done")[
        "on_cancel"]["exit_code"] == 3
    assert Event.objects.filter(step_run=step, kind="on_cancel_ran").count() == 1


def test_on_cancel_does_not_run_when_the_callback_arrived(anon_api, as_user, sshd):
    ssh_connection(sshd, "agent-vm")
    run_id, _, path = start(as_user, "finished", agent_definition(
        "finished", on_cancel={"connection": "agent-vm", "command": "true"}))
    assert anon_api.post(path, {"ok": True}).status == 202
    drain()
    step = step_of(run_id)
    assert step.status == "completed" and step.on_cancel_state == ""


def test_the_plain_wait_definition_still_works(anon_api, as_user):
    make_flow(wait_definition("plain"))
    run = as_user("operator").post("/flows/plain/runs", {"input": {}}).body
    drain()
    step = step_of(run["id"])
    token = engine.callback_token(step.callback_nonce)
    assert anon_api.post(f"/callbacks/{token}/heartbeat", {"message": "hi"}).status == 200


def test_metrics_export_agent_cost_and_heartbeat_timeouts_by_flow(anon_api, as_user):
    from ops.metrics import metrics_text

    run_id, _, path = start(as_user, "metered", agent_definition(
        "metered", heartbeat_timeout_seconds=30))
    assert anon_api.post(f"{path}/heartbeat", {"usage": {"cost_usd": 0.25}}).status == 200
    StepRun.objects.filter(run_id=run_id, key="agent_done").update(
        heartbeat_deadline=timezone.now() - timedelta(seconds=1))
    engine.sweep()
    text = metrics_text().decode()
    assert 'workflows_agent_cost_usd_total{flow="metered"} 0.25' in text
    assert 'workflows_heartbeat_timeouts_total{flow="metered"} 1.0' in text


def test_the_panel_matrix_run_page_and_flow_page_show_the_agent(anon_api, as_user, admin_client):
    from django.urls import reverse

    from workflows.models import Flow

    run_id, _, path = start(as_user)
    anon_api.post(f"{path}/heartbeat", {"message": "running <tests>",
                                        "progress": {"done": 1, "total": 4},
                                        "usage": {"input_tokens": 10, "output_tokens": 5,
                                                  "cost_usd": 1.25}})
    anon_api.post(f"{path}/logs", raw=b"remote line\n", content_type="text/plain")
    anon_api.put(f"{path}/artifacts/fix.patch", raw=b"--- a/x\n+++ b/x\n",
                 content_type="text/x-diff")
    panel = admin_client.get(reverse("admin:workflows_run_step",
                                     args=[run_id, "agent_done"])).content.decode()
    assert 'data-section="agent"' in panel
    assert "running &lt;tests&gt;" in panel and "<tests>" not in panel
    assert '<progress max="100" value="25"' in panel and "$1.2500" in panel
    assert "fix.patch" in panel and "remote line" in panel
    run_page = admin_client.get(f"/admin/workflows/run/{run_id}/change/").content.decode()
    assert "data-run-cost" in run_page and "$1.2500" in run_page
    flow = Flow.objects.get(slug="agent")
    flow_page = admin_client.get(f"/admin/workflows/flow/{flow.pk}/change/").content.decode()
    from workflows.selectors import flow_agent_costs
    assert flow_agent_costs(flow=flow) == [{"run": run_id, "cost_usd": 1.25}]
    assert 'data-section="agent-costs"' in flow_page
    assert f'data-run="{run_id}" data-cost="1.25"' in flow_page
    assert 'data-progress="25"' in flow_page  # the waiting agent's matrix cell


def test_the_wake_task_fails_a_wait_whose_agent_went_silent(as_user):
    from workflows.tasks import wake_step

    run_id, _, _ = start(as_user, "silent", agent_definition(
        "silent", heartbeat_timeout_seconds=60))
    step = step_of(run_id)
    StepRun.objects.filter(pk=step.pk).update(
        heartbeat_deadline=timezone.now() - timedelta(milliseconds=10))
    wake_step(step.pk)
    step = step_of(run_id)
    assert step.status == "failed" and step.error["kind"] == "heartbeat_timeout"


# --- a large remote log follows the log storage rule -------------------------------------------

def test_a_large_remote_log_goes_to_a_resource_with_head_and_tail_inline(
        anon_api, as_user, agent, settings, django_capture_on_commit_callbacks):
    from resources.logs import OMITTED_STREAM, remote_log_resource_id

    settings.WF_LOG_INLINE_BYTES = 400
    run_id, _, path = agent
    posts = [f"line {i:03d} " + "x" * 40 + "\n" for i in range(40)]  # 2,000 bytes in all
    for text in posts:
        assert anon_api.post(f"{path}/logs", raw=text.encode(),
                             content_type="text/plain").status == 200
    step = step_of(run_id)
    whole = remote_log_resource_id(step_run_id=step.pk, attempt_number=step.attempt_count,
                                   nonce=step.callback_nonce)
    chunks = list(LogChunk.objects.filter(step_run_id=step.pk).order_by("seq"))
    remote = [c.text for c in chunks if c.stream == "remote"]
    assert remote[0] == posts[0] and remote[-1] == posts[-1]  # head and newest tail inline
    assert sum(len(t) for t in remote) <= 400 < sum(len(t) for t in posts)
    marker = next(c for c in chunks if c.stream == OMITTED_STREAM)
    assert f"res://{whole}" in marker.text and "bytes omitted" in marker.text
    assert not Resource.objects.filter(pk=whole).exists()  # the wait has not ended yet

    with django_capture_on_commit_callbacks(execute=True):
        assert anon_api.post(path, {"pr_url": "u"}).status == 202
    resource = Resource.objects.get(pk=whole)
    assert resource.kind == "log" and resource.step_run_id == step.pk
    with resource.file.open("rb") as handle:
        assert handle.read().decode() == "".join(posts)  # the whole log, in order
    assert resource.size == sum(len(p) for p in posts)
    logs = as_user("operator").get(f"/runs/{run_id}/steps/agent_done/logs").body
    assert any(f"res://{whole}" in item["text"] for item in logs["items"])


def test_a_canceled_waits_remote_log_is_kept_whole_and_a_quiet_wait_leaves_none(
        anon_api, as_user, agent, django_capture_on_commit_callbacks):
    from resources.logs import remote_log_resource_id

    run_id, _, path = agent
    for text in ("one\n", "two\n"):
        anon_api.post(f"{path}/logs", raw=text.encode(), content_type="text/plain")
    with django_capture_on_commit_callbacks(execute=True):
        as_user("operator").post(f"/runs/{run_id}/cancel")
    step = step_of(run_id)
    resource = Resource.objects.get(pk=remote_log_resource_id(
        step_run_id=step.pk, attempt_number=step.attempt_count, nonce=step.callback_nonce))
    with resource.file.open("rb") as handle:
        assert handle.read() == b"one\ntwo\n"

    other_run, _, other_path = start(as_user, "quiet")
    with django_capture_on_commit_callbacks(execute=True):
        assert anon_api.post(other_path, {"ok": True}).status == 202
    quiet = step_of(other_run)
    assert not Resource.objects.filter(pk=remote_log_resource_id(
        step_run_id=quiet.pk, attempt_number=quiet.attempt_count,
        nonce=quiet.callback_nonce)).exists()
