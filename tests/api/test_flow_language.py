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
    assert child_doc["parent"] == {"run": run.pk, "step": "release", "instance": None}
    assert child_doc["trigger"]["kind"] == "subflow"
    assert child_doc["steps"][0]["child_run"] is None
    assert admin_api.get(f"/api/v1/runs/{run.pk}/steps/release").body["child_run"] == child.pk
    drain()


def test_a_fanned_subflow_lists_its_children_in_item_order_and_each_child_names_its_instance(
        admin_api, django_assert_max_num_queries):
    make_flow(simple_definition(slug="build-one", input={"repo": {"type": "string",
                                                                  "default": ""}},
                                steps=[echo("build", repo="{{ input.repo }}")]))
    run = start(simple_definition(
        slug="parent", input={"repos": {"type": "array", "default": []}},
        steps=[{"key": "builds", "type": "flow", "flow": "build-one",
                "for_each": "{{ input.repos }}", "input": {"repo": "{{ item }}"}}]),
        input={"repos": ["x", "y", "z"]})
    drain_subflows()
    step = steps_of(run)["builds"]
    by_index = dict(step.instances.values_list("index", "child_run_id"))
    expected = [by_index[0], by_index[1], by_index[2]]
    parent_doc = admin_api.get(f"/api/v1/runs/{run.pk}").body
    assert parent_doc["status"] == "completed"
    assert parent_doc["steps"][0]["child_run"] == expected
    assert parent_doc["steps"][0]["output"] == [{"repo": "x"}, {"repo": "y"}, {"repo": "z"}]
    assert admin_api.get(f"/api/v1/runs/{run.pk}/steps/builds").body["child_run"] == expected
    for index, child_id in enumerate(expected):
        child_doc = admin_api.get(f"/api/v1/runs/{child_id}").body
        assert child_doc["parent"] == {"run": run.pk, "step": "builds", "instance": index}
        assert child_doc["input"] == {"repo": "xyz"[index]}
    page = admin_api.get(f"/api/v1/runs/{run.pk}/steps/builds/instances").body
    assert [i["child_run"] for i in page["items"]] == expected
    # The runs list names the children's parents without a query per run.
    with django_assert_max_num_queries(12):
        listed = admin_api.get("/api/v1/runs?limit=10").body
    parents = {r["id"]: r["parent"] for r in listed["items"]}
    assert parents[expected[2]] == {"run": run.pk, "step": "builds", "instance": 2}


def test_instances_waiting_on_their_children_are_listed_and_counted_as_waiting(admin_api):
    make_flow(simple_definition(slug="hold", steps=[{"key": "hold", "type": "wait"}]))
    run = start(simple_definition(
        slug="parent", input={"repos": {"type": "array", "default": []}},
        steps=[{"key": "builds", "type": "flow", "flow": "hold", "max_parallel": 2,
                "for_each": "{{ input.repos }}"}]),
        input={"repos": ["x", "y", "z"]})
    drain_subflows()
    step_doc = admin_api.get(f"/api/v1/runs/{run.pk}").body["steps"][0]
    assert step_doc["instances"] == {"total": 3, "by_status": {"waiting": 2, "not_started": 1}}
    assert step_doc["child_run"][2] is None and None not in step_doc["child_run"][:2]
    page = admin_api.get(f"/api/v1/runs/{run.pk}/steps/builds/instances?status=waiting").body
    assert [i["index"] for i in page["items"]] == [0, 1]
    assert [i["child_run"] for i in page["items"]] == step_doc["child_run"][:2]
