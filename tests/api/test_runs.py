import pytest

from tests.api.conftest import chatty_definition, failing_definition, wait_definition
from tests.factories import drain, make_flow, simple_definition
from workflows.models import Event, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(as_user):
    return as_user("operator")


def start(api, slug: str, **body) -> dict:
    response = api.post(f"/flows/{slug}/runs", {"input": {}, **body})
    assert response.status == 201, response.body
    return response.body


def test_get_a_run_needs_view_permission(as_user, flow):
    run = start(as_user("operator"), "simple")
    assert as_user("support").get(f"/runs/{run['id']}").status == 200
    response = as_user("nobody").get(f"/runs/{run['id']}")
    assert response.status == 403


def test_an_unknown_run_is_a_404(as_user):
    assert as_user("support").get("/runs/999").status == 404
    assert as_user("support").get("/runs/99999999999999999999999").status == 404
    assert as_user("support").get("/runs/abc").status == 404


def test_events_list_every_transition_oldest_first_across_pages(operator, flow):
    run = start(operator, "simple")
    drain()
    expected = list(Event.objects.filter(run_id=run["id"]).order_by("id")
                    .values_list("id", flat=True))
    seen, cursor = [], None
    while True:
        page = operator.get(f"/runs/{run['id']}/events", limit=3,
                            **({"cursor": cursor} if cursor else {})).body
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [e["id"] for e in seen] == expected
    first = seen[0]
    assert first["kind"] == "run_created" and first["from"] == "" and first["to"] == "created"
    assert set(first) == {"id", "at", "kind", "step", "from", "to", "actor", "actor_kind",
                          "reason", "data"}
    step_events = [e for e in seen if e["step"] == "first"]
    assert [e["to"] for e in step_events] == ["queued", "running", "completed"]
    assert seen[-1]["kind"] == "run_completed"


def test_events_take_a_constant_number_of_queries(operator, flow,
                                                   django_assert_max_num_queries):
    run = start(operator, "simple")
    drain()
    with django_assert_max_num_queries(6):
        page = operator.get(f"/runs/{run['id']}/events", limit=200)
    assert len(page.body["items"]) >= 10


def test_a_step_with_its_attempts(operator):
    make_flow(failing_definition())
    run = start(operator, "failing")
    drain()
    step = operator.get(f"/runs/{run['id']}/steps/boom").body
    assert step["status"] == "failed" and step["attempt_count"] == 1
    attempt = step["attempts"][0]
    assert attempt["number"] == 1 and attempt["status"] == "failed"
    assert attempt["error"]["message"] == "nope"
    assert attempt["input"]["args"] == {"message": "nope"}
    assert attempt["duration_ms"] is not None and attempt["worker"]
    assert operator.get(f"/runs/{run['id']}/steps/nope").status == 404


def test_logs_come_after_a_seq_oldest_first(operator):
    make_flow(chatty_definition(lines=5))
    run = start(operator, "chatty")
    drain()
    logs = operator.get(f"/runs/{run['id']}/steps/talk/logs").body
    texts = "".join(chunk["text"] for chunk in logs["items"])
    assert [f"line {n}" in texts for n in range(5)] == [True] * 5
    assert logs["step_status"] == "completed" and logs["next_cursor"] is None
    seqs = [chunk["seq"] for chunk in logs["items"]]
    assert seqs == sorted(seqs) and logs["last_seq"] == seqs[-1]
    assert all(chunk["attempt"] == 1 for chunk in logs["items"])
    later = operator.get(f"/runs/{run['id']}/steps/talk/logs", after=seqs[0]).body
    assert [c["seq"] for c in later["items"]] == seqs[1:]
    if len(seqs) > 1:
        paged = operator.get(f"/runs/{run['id']}/steps/talk/logs", limit=1).body
        assert paged["next_cursor"] == str(seqs[0])
    assert operator.get(f"/runs/{run['id']}/steps/talk/logs", after=-1).status == 422


def test_logs_take_a_constant_number_of_queries(operator, django_assert_max_num_queries):
    make_flow(chatty_definition(lines=40))
    run = start(operator, "chatty")
    drain()
    with django_assert_max_num_queries(8):  # the 8th: the whole log's resource (log_ref)
        logs = operator.get(f"/runs/{run['id']}/steps/talk/logs").body
    assert len("".join(c["text"] for c in logs["items"]).splitlines()) == 40
    assert logs["log_ref"].startswith("res://") and logs["log_size"] > 0


def test_cancel_a_run_then_cancel_again_is_a_409(operator):
    make_flow(wait_definition())
    run = start(operator, "waiting")
    drain()
    canceled = operator.post(f"/runs/{run['id']}/cancel", {"reason": "not needed"})
    assert canceled.status == 200
    assert canceled.body["status"] == "canceled"
    assert {s["status"] for s in canceled.body["steps"]} == {"completed", "canceled"}
    again = operator.post(f"/runs/{run['id']}/cancel")
    assert again.status == 409 and again.error["code"] == "transition_not_allowed"


def test_support_cannot_cancel(as_user):
    make_flow(wait_definition())
    run = start(as_user("operator"), "waiting")
    assert as_user("support").post(f"/runs/{run['id']}/cancel").status == 403
    assert Run.objects.get(pk=run["id"]).status != "canceled"


def test_retry_reuses_completed_steps_and_starts_at_the_failed_one(operator):
    make_flow(failing_definition())
    run = start(operator, "failing")
    drain()
    assert operator.get(f"/runs/{run['id']}").body["status"] == "failed"
    retried = operator.post(f"/runs/{run['id']}/retry")
    assert retried.status == 201
    new = retried.body
    assert new["retry_of"] == run["id"] and new["id"] != run["id"]
    steps = {s["key"]: s for s in new["steps"]}
    assert steps["first"]["reused"] is True and steps["first"]["status"] == "completed"
    assert steps["boom"]["status"] == "queued"


def test_retry_from_a_step_and_the_refusals(operator, flow):
    run = start(operator, "simple")
    assert operator.post(f"/runs/{run['id']}/retry").status == 409  # still running
    drain()
    completed = operator.post(f"/runs/{run['id']}/retry")
    assert completed.status == 409 and "from_step" in completed.error["message"]
    unknown = operator.post(f"/runs/{run['id']}/retry", {"from_step": "nope"})
    assert unknown.status == 404
    redo = operator.post(f"/runs/{run['id']}/retry", {"from_step": "second"})
    assert redo.status == 201
    steps = {s["key"]: s for s in redo.body["steps"]}
    assert steps["first"]["reused"] and steps["second"]["status"] == "queued"
    wrong_type = operator.post(f"/runs/{run['id']}/retry", {"from_step": ["x"]})
    assert wrong_type.status == 422


def test_replay_starts_again_from_the_start(operator, flow):
    run = start(operator, "simple")
    drain()
    replayed = operator.post(f"/runs/{run['id']}/replay")
    assert replayed.status == 201
    assert replayed.body["replay_of"] == run["id"]
    assert replayed.body["trigger"]["kind"] == "replay"
    assert not any(s["reused"] for s in replayed.body["steps"])


def test_compare_with_the_last_good_run_and_with_an_id(operator):
    make_flow(simple_definition("cmp", input={"n": {"type": "integer", "default": 1}}, steps=[
        {"key": "echo", "type": "python", "action": "core.echo", "args": {"n": "{{ input.n }}"}},
    ]))
    good = start(operator, "cmp", input={"n": 1})
    drain()
    other = start(operator, "cmp", input={"n": 2})
    drain()
    compared = operator.get(f"/runs/{other['id']}/compare", to="last_good")
    assert compared.status == 200
    body = compared.body
    assert body["run"] == other["id"] and body["other"] == good["id"]
    assert body["input"] == {"n": {"from": 1, "to": 2}}
    assert body["steps"][0]["output"] == {"from": {"n": 1}, "to": {"n": 2}}
    by_id = operator.get(f"/runs/{good['id']}/compare", to=str(other["id"])).body
    assert by_id["other"] == other["id"]
    assert operator.get(f"/runs/{good['id']}/compare", to="last_good").status == 404
    assert operator.get(f"/runs/{good['id']}/compare", to="yesterday").status == 422
    assert operator.get(f"/runs/{good['id']}/compare").status == 422


def test_run_documents_have_the_contract_fields(operator, flow):
    run = start(operator, "simple")
    assert {"id", "flow", "version", "status", "trigger", "input", "output", "error",
            "created_at", "queued_at", "started_at", "finished_at", "duration_ms", "retry_of",
            "replay_of", "steps", "admin_url"} <= set(run)
    assert {"key", "type", "status", "attempts", "started_at", "finished_at", "duration_ms",
            "output", "error", "reused", "error_kind",
            # a wait's remote agent (CONTRACT.md "Remote agents"); null for other steps
            "heartbeat_at", "message", "progress", "usage", "artifacts",
            "on_cancel", "child_run", "instances"} == set(run["steps"][0])
    assert run["usage"] is None
