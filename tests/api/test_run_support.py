"""GET /runs (search across flows), POST /runs/{id}/rerun, GET /runs/{id}/explain."""

from __future__ import annotations

import pytest

from tests.factories import drain
from tests.history import broken_release_history, release_live
from workflows.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(db):
    return broken_release_history(good=2, bad=3)


def test_runs_list_searches_across_flows_newest_first_with_cursor_pages(as_user, history):
    api = as_user("support")
    seen, cursor = [], None
    while True:
        page = api.get("/runs", limit=2, **({"cursor": cursor} if cursor else {})).body
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [r["id"] for r in seen] == list(Run.objects.order_by("-id").values_list("id",
                                                                                   flat=True))
    failed = [r for r in seen if r["status"] == "failed"]
    assert {r["error_kind"] for r in failed} == {"error"}
    assert all(r["error_kind"] is None for r in seen if r["status"] == "completed")
    assert all("rerun_of" in r for r in seen)


def test_runs_list_filters(as_user, history):
    api = as_user("support")
    bad = [r.pk for r in reversed(history.bad_runs)]
    assert [r["id"] for r in api.get("/runs", status="failed").body["items"]] == bad
    assert [r["id"] for r in api.get("/runs", error_kind="error", flow="pipeline")
            .body["items"]] == bad
    assert [r["id"] for r in api.get("/runs", q="bad-2").body["items"]] == [
        history.bad_runs[2].pk]
    assert [r["id"] for r in api.get("/runs", q="transform exploded", limit=1)
            .body["items"]] == bad[:1]
    first_bad = Run.objects.get(pk=history.bad_runs[0].pk)
    after = api.get("/runs", finished_after=first_bad.finished_at.isoformat()).body["items"]
    assert [r["id"] for r in after] == bad
    before = api.get("/runs", finished_before=first_bad.finished_at.isoformat()).body["items"]
    assert [r["id"] for r in before] == [r.pk for r in reversed(history.good_runs)]


@pytest.mark.parametrize(("params", "path"), [
    ({"status": "broken"}, "status"), ({"error_kind": "oops"}, "error_kind"),
    ({"finished_after": "yesterday"}, "finished_after"), ({"q": "x" * 501}, "q"),
])
def test_runs_list_refuses_bad_parameters_with_a_422(as_user, history, params, path):
    response = as_user("support").get("/runs", **params)
    assert response.status == 422, response.body
    assert path in repr(response.error["details"])


def test_runs_list_refuses_a_bad_cursor_and_needs_the_view_permission(as_user, history):
    assert as_user("support").get("/runs", cursor="%%%").status == 400
    assert as_user("nobody").get("/runs").status == 403


def test_runs_list_takes_a_constant_number_of_queries(as_user, history,
                                                      django_assert_max_num_queries):
    api = as_user("support")
    api.get("/runs")  # warm the token's last_used_at write
    with django_assert_max_num_queries(9):
        assert len(api.get("/runs", q="exploded").body["items"]) == 3
    broken_release_history(slug="more", good=3, bad=3)
    with django_assert_max_num_queries(9):
        assert len(api.get("/runs", q="exploded").body["items"]) == 6
    with django_assert_max_num_queries(9):
        assert len(api.get("/runs").body["items"]) == 11


def test_rerun_starts_the_input_on_the_live_version(as_user, history):
    failed = history.bad_runs[0]
    fix = release_live(history.flow, history.v1.definition)
    response = as_user("operator").post(f"/runs/{failed.pk}/rerun")
    assert response.status == 201, response.body
    assert response.body["rerun_of"] == failed.pk
    assert response.body["version"] == fix.number
    assert response.body["input"] == failed.input
    assert response.body["trigger"]["kind"] == "rerun"
    drain()
    again = as_user("support").get(f"/runs/{response.body['id']}").body
    assert again["status"] == "completed" and again["rerun_of"] == failed.pk


def test_rerun_is_refused_for_support_and_for_an_unknown_run(as_user, history):
    assert as_user("support").post(f"/runs/{history.bad_runs[0].pk}/rerun").status == 403
    assert as_user("operator").post("/runs/999999/rerun").status == 404
    assert not Run.objects.filter(rerun_of__isnull=False).exists()


def test_rerun_without_a_live_version_is_a_409(as_user, history):
    from workflows.models import Flow

    Flow.objects.filter(pk=history.flow.pk).update(live_version=None)
    response = as_user("operator").post(f"/runs/{history.bad_runs[0].pk}/rerun")
    assert response.status == 409
    assert "no live version" in response.error["message"]


def test_explain_serves_the_first_bad_run_and_what_changed(as_user, history):
    response = as_user("support").get(f"/runs/{history.bad_runs[-1].pk}/explain")
    assert response.status == 200, response.body
    body = response.body
    assert body["step"] == "transform"
    assert body["last_good_run"]["id"] == history.good_runs[-1].pk
    assert body["first_bad_run"]["id"] == history.bad_runs[0].pk
    assert body["first_bad_run"]["version"] == 2
    assert body["failing_since_count"] == 3
    version = body["changes"]["version"]
    assert (version["from"], version["to"]) == (1, 2)
    assert version["definition_value_changes"][0] == {
        "path": "steps.transform.action", "before": "core.echo", "after": "core.fail"}
    assert set(body["changes"]) == {"version", "input", "connections"}
    assert "v2 changed steps.transform.action" in body["summary"]


def test_explain_of_a_run_that_did_not_fail_is_a_409(as_user, history):
    response = as_user("support").get(f"/runs/{history.good_runs[0].pk}/explain")
    assert response.status == 409
    assert response.error["code"] == "conflict"
    assert as_user("support").get("/runs/999999/explain").status == 404
    assert as_user("nobody").get(f"/runs/{history.bad_runs[0].pk}/explain").status == 403
