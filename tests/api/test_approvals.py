import pytest

from approvals.models import Approval
from tests.api.conftest import approval_definition, make_user
from tests.factories import drain, make_flow, simple_definition

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting_run(as_user):
    """A run of the `reviewed` flow waiting for its approval."""
    make_flow(approval_definition())
    run = as_user("operator").post("/flows/reviewed/runs", {"input": {}}).body
    drain()
    return run


def pending(api) -> list[dict]:
    response = api.get("/approvals")
    assert response.status == 200, response.body
    return response.body["items"]


def test_reviewers_see_approvals_assigned_to_their_group(as_user, waiting_run):
    items = pending(as_user("reviewer"))
    assert len(items) == 1
    approval = items[0]
    assert approval["run"] == waiting_run["id"] and approval["step"] == "review"
    assert approval["flow"] == "reviewed" and approval["status"] == "pending"
    assert approval["instructions"] == "Look at it"
    assert approval["data"] == {"build": {"built": True}}
    assert approval["assignees"] == {"users": [], "groups": ["reviewers"]}
    assert pending(as_user("support")) == []
    assert len(pending(as_user("admin"))) == 1


def test_approve_then_the_run_completes(as_user, waiting_run):
    reviewer = as_user("reviewer")
    approval_id = pending(reviewer)[0]["id"]
    response = reviewer.post(f"/approvals/{approval_id}/approve", {"comment": "ship it"})
    assert response.status == 200
    assert response.body["status"] == "approved" and response.body["decided_by"] == "reviewer"
    assert response.body["comment"] == "ship it" and response.body["decided_at"]
    drain()
    run = reviewer.get(f"/runs/{waiting_run['id']}").body
    assert run["status"] == "completed"
    review = next(s for s in run["steps"] if s["key"] == "review")
    assert review["output"]["decision"] == "approved"
    assert pending(reviewer) == []
    decided = reviewer.get("/approvals", status="decided").body["items"]
    assert [a["id"] for a in decided] == [approval_id]


def test_deciding_twice_is_a_409(as_user, waiting_run):
    reviewer = as_user("reviewer")
    approval_id = pending(reviewer)[0]["id"]
    assert reviewer.post(f"/approvals/{approval_id}/reject", {"comment": "no"}).status == 200
    again = reviewer.post(f"/approvals/{approval_id}/approve")
    assert again.status == 409 and again.error["code"] == "conflict"
    assert reviewer.get(f"/runs/{waiting_run['id']}").body["status"] == "failed"


def test_a_non_assignee_gets_a_403_and_nothing_changes(as_user, waiting_run):
    approval_id = Approval.objects.get().pk
    response = as_user("support").post(f"/approvals/{approval_id}/approve", {"comment": "me?"})
    assert response.status == 403 and response.error["code"] == "not_an_assignee"
    assert Approval.objects.get().status == "pending"


def test_redo_sends_the_run_back_and_asks_again(as_user, waiting_run):
    reviewer = as_user("reviewer")
    approval_id = pending(reviewer)[0]["id"]
    response = reviewer.post(f"/approvals/{approval_id}/redo", {"comment": "again"})
    assert response.status == 200
    assert response.body["status"] == "redone" and response.body["redo_step"] == "build"
    drain()
    again = pending(reviewer)
    assert len(again) == 1 and again[0]["id"] != approval_id
    bad = reviewer.post(f"/approvals/{again[0]['id']}/redo", {"to_step": "publish"})
    assert bad.status == 409


def test_approvals_named_for_a_user_are_only_theirs(as_user, users):
    make_user("carol")
    make_flow(simple_definition("personal", steps=[
        {"key": "build", "type": "python", "action": "core.echo", "args": {}},
        {"key": "review", "type": "approval", "assignees": {"users": ["reviewer"]}},
    ]))
    as_user("operator").post("/flows/personal/runs", {"input": {}})
    drain()
    assert len(pending(as_user("reviewer"))) == 1
    assert pending(as_user("operator")) == []


def test_approval_pages_and_status_filter(as_user, django_assert_max_num_queries):
    make_flow(approval_definition())
    operator = as_user("operator")
    for _ in range(5):
        operator.post("/flows/reviewed/runs", {"input": {}})
    drain()
    reviewer = as_user("reviewer")
    with django_assert_max_num_queries(8):
        first = reviewer.get("/approvals", limit=2).body
    second = reviewer.get("/approvals", limit=2, cursor=first["next_cursor"]).body
    third = reviewer.get("/approvals", limit=2, cursor=second["next_cursor"]).body
    ids = [a["id"] for page in (first, second, third) for a in page["items"]]
    assert ids == sorted(Approval.objects.values_list("id", flat=True), reverse=True)
    assert third["next_cursor"] is None
    assert reviewer.get("/approvals", status="everything").status == 422
    assert len(reviewer.get("/approvals", status="all").body["items"]) == 5


def test_an_unknown_approval_is_a_404(as_user):
    assert as_user("reviewer").post("/approvals/12345/approve").status == 404
