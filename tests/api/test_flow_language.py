"""The flow language through the API: CEL conditions refused at draft time with their path,
and subflow links on the run and step documents."""

from __future__ import annotations

from tests.factories import drain, echo, make_flow, simple_definition, start, steps_of
from tests.workflows.flow_language.test_subflows import drain as drain_subflows
from workflows.models import Run


def test_a_cel_syntax_error_or_unknown_root_is_a_422_at_draft_time(admin_api):
    for when, fragment in (("steps.a.output.n >", "is not valid CEL"),
                           ("env.HOME == '/'", "reads 'env'")):
        response = admin_api.post("/api/v1/flows", {"definition": simple_definition(
            slug="cel", steps=[echo("a", n=1), {**echo("b"), "when": when}])})
        assert response.status == 422, response.body
        details = response.error["details"]
        assert [d["path"] for d in details] == ["steps[1].when"], details
        assert fragment in details[0]["message"]


def test_a_valid_cel_condition_with_a_comprehension_is_accepted(admin_api):
    response = admin_api.post("/api/v1/flows", {"definition": simple_definition(
        slug="cel", input={"repos": {"type": "array", "default": []}},
        steps=[echo("a", n=1), {**echo("b"), "when": "input.repos.all(r, size(r) > 0)",
                                "until": {"condition": "output.n == 1", "every_seconds": 0}}])})
    assert response.status == 201, response.body


def test_the_run_documents_link_parent_and_child_both_ways(admin_api):
    make_flow(simple_definition(slug="release-train", steps=[echo("ship", status="shipped")]))
    run = start(simple_definition(slug="parent", steps=[
        {"key": "release", "type": "flow", "flow": "release-train"}]))
    drain_subflows()
    child = Run.objects.get(parent_step=steps_of(run)["release"])
    parent_doc = admin_api.get(f"/api/v1/runs/{run.pk}").body
    assert parent_doc["parent"] is None
    assert parent_doc["steps"][0]["child_run"] == child.pk
    assert parent_doc["status"] == "completed"
    child_doc = admin_api.get(f"/api/v1/runs/{child.pk}").body
    assert child_doc["parent"] == {"run": run.pk, "step": "release"}
    assert child_doc["trigger"]["kind"] == "subflow"
    assert child_doc["steps"][0]["child_run"] is None
    assert admin_api.get(f"/api/v1/runs/{run.pk}/steps/release").body["child_run"] == child.pk
    drain()
