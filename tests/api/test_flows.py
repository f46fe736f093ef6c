import json

import pytest

from tests.api.conftest import approval_definition
from tests.factories import drain, make_flow, simple_definition
from workflows.models import Flow, FlowVersion, Run

pytestmark = pytest.mark.django_db

YAML_DEFINITION = """\
slug: from-yaml
name: From YAML
description: Written as YAML text.
input:
  who: {type: string, required: true}
triggers:
  - {type: webhook}
steps:
  - key: hello
    type: python
    action: core.echo
    args: {greeting: "hi {{ input.who }}"}
"""


def test_a_builder_creates_a_flow_from_yaml_text(as_user):
    response = as_user("builder").post("/flows", {"definition": YAML_DEFINITION})
    assert response.status == 201, response.body
    flow = response.body
    assert flow["slug"] == "from-yaml" and flow["name"] == "From YAML"
    assert flow["live_version"] is None and flow["triggers"] == []
    assert flow["draft"]["definition"]["steps"][0]["key"] == "hello"
    assert len(flow["draft"]["hash"]) == 64
    assert flow["webhook_url"].endswith("/api/v1/hooks/from-yaml")
    pk = Flow.objects.get(slug="from-yaml").pk
    assert flow["admin_url"].endswith(f"/admin/workflows/flow/{pk}/change/")
    assert flow["created_at"].endswith("Z")


def test_an_invalid_definition_is_a_422_listing_every_problem(as_user):
    response = as_user("builder").post("/flows", {"definition": {
        "slug": "Bad Slug", "name": "x",
        "steps": [{"key": "a", "type": "python", "action": "no.such"},
                  {"key": "a", "type": "teleport"}],
    }})
    assert response.status == 422
    assert response.error["code"] == "definition_invalid"
    paths = {d["path"] for d in response.error["details"]}
    assert {"slug", "steps[0].action", "steps[1].key", "steps[1].type"} <= paths
    assert not Flow.objects.exists()


def test_a_deeply_nested_definition_is_a_422_not_a_500(as_user):
    nested = "slug: deep\nname: Deep\nsteps: " + "[" * 800 + "]" * 800
    response = as_user("builder").post("/flows", {"definition": nested})
    assert response.status == 422 and response.error["code"] == "definition_invalid"
    assert "nests deeper than 64 levels" in response.error["message"]
    assert not Flow.objects.exists()


def _many_steps(count: int) -> dict:
    return simple_definition("many", steps=[
        {"key": f"s{n}", "type": "python", "action": "core.echo", "args": {"n": n}}
        for n in range(count)])


def test_more_steps_than_wf_max_steps_is_a_422_naming_the_limit(as_user, settings):
    settings.WF_MAX_STEPS = 20
    response = as_user("builder").post("/flows", {"definition": _many_steps(21)})
    assert response.status == 422 and response.error["code"] == "definition_invalid"
    assert response.error["details"] == [
        {"path": "steps", "message": "21 steps; WF_MAX_STEPS allows at most 20"}]
    assert not Flow.objects.exists()
    assert as_user("builder").post("/flows", {"definition": _many_steps(20)}).status == 201


def test_the_default_limits_take_500_steps(as_user, settings):
    assert settings.WF_MAX_STEPS == 500 and settings.WF_MAX_DEFINITION_BYTES == 512 * 1024
    assert as_user("builder").post("/flows", {"definition": _many_steps(500)}).status == 201
    refused = as_user("builder").put("/flows/many/draft", {"definition": _many_steps(501)})
    assert refused.status == 422 and "WF_MAX_STEPS" in refused.error["message"]


def test_a_definition_over_wf_max_definition_bytes_is_a_422_naming_the_limit(as_user, settings):
    settings.WF_MAX_DEFINITION_BYTES = 2000
    big = simple_definition("big", description="x" * 3000)
    for definition in (big, json.dumps(big)):  # a parsed definition or its text
        response = as_user("builder").post("/flows", {"definition": definition})
        assert response.status == 422 and response.error["code"] == "definition_invalid"
        assert "WF_MAX_DEFINITION_BYTES allows at most 2,000" in response.error["message"]
        assert response.error["details"][0]["path"] == "(document)"
    assert not Flow.objects.exists()


def test_a_duplicate_slug_is_a_422_on_the_slug(as_user, flow):
    response = as_user("builder").post("/flows", {"definition": simple_definition("simple")})
    assert response.status == 422
    assert response.error["details"] == [{"path": "slug", "message": response.error["details"][0]
                                          ["message"]}]


def test_support_may_read_but_not_create_flows(as_user, flow):
    support = as_user("support")
    assert support.get("/flows/simple").status == 200
    response = support.post("/flows", {"definition": simple_definition("other")})
    assert response.status == 403
    assert response.error["code"] == "forbidden"
    assert not Flow.objects.filter(slug="other").exists()


def test_a_user_without_any_role_cannot_read_flows(as_user, flow):
    assert as_user("nobody").get("/flows").status == 403
    assert as_user("nobody").get("/flows/simple").status == 403


def test_get_a_flow_shows_its_live_version_triggers_and_draft(as_user):
    make_flow(simple_definition("hooked", triggers=[{"type": "webhook"}]))
    flow = as_user("support").get("/flows/hooked").body
    assert flow["live_version"] == 1
    assert flow["triggers"] == [{"type": "webhook"}]
    assert flow["webhook_enabled"] is True
    assert "webhook_secret" not in flow


def test_an_unknown_flow_is_a_404(as_user):
    response = as_user("support").get("/flows/nope")
    assert response.status == 404 and response.error["code"] == "not_found"
    assert as_user("support").get("/flows/NOT%20A%20SLUG").status == 404


def test_replace_the_draft_then_release_promote_and_diff(as_user, flow):
    builder, operator = as_user("builder"), as_user("operator")
    changed = simple_definition("simple", steps=[
        {"key": "first", "type": "python", "action": "core.echo", "args": {"n": 2}},
    ])
    response = builder.put("/flows/simple/draft", {"definition": changed})
    assert response.status == 200
    assert response.body["draft"]["definition"]["steps"][0]["args"] == {"n": 2}

    release = builder.post("/flows/simple/releases", {"notes": "fewer steps"})
    assert release.status == 201
    assert release.body["version"] == 2 and release.body["notes"] == "fewer steps"
    assert release.body["live"] is False and release.body["created_by"] == "builder"

    releases = builder.get("/flows/simple/releases").body["items"]
    assert [r["version"] for r in releases] == [2, 1]
    assert [r["live"] for r in releases] == [False, True]

    assert builder.post("/flows/simple/releases/2/promote").status == 403
    promoted = operator.post("/flows/simple/releases/2/promote")
    assert promoted.status == 200 and promoted.body["live_version"] == 2

    diff = builder.get("/flows/simple/diff", **{"from": "1", "to": "v2"})
    assert diff.status == 200
    assert diff.body["from"] == "v1" and diff.body["to"] == "v2"
    assert diff.body["changes"]["steps"]["removed"] == ["second"]
    assert diff.body["changes"]["steps"]["changed"]["first"]["args"] == {
        "from": {"n": 1}, "to": {"n": 2}}
    same = builder.get("/flows/simple/diff", **{"from": "live", "to": "draft"}).body
    assert same["changes"]["steps"] == {"added": [], "removed": [], "changed": {}, "order": {}}


def test_diff_refuses_unknown_versions(as_user, flow):
    support = as_user("support")
    assert support.get("/flows/simple/diff", **{"from": "9", "to": "draft"}).status == 404
    bad = support.get("/flows/simple/diff", **{"from": "latest", "to": "draft"})
    assert bad.status == 422 and bad.error["details"][0]["path"] == "query.from"
    missing = support.get("/flows/simple/diff", to="draft")
    assert missing.status == 422 and missing.error["code"] == "validation_error"


def test_an_invalid_draft_is_a_422_and_the_draft_stays(as_user, flow):
    before = FlowVersion.objects.get(flow=flow, number__isnull=True).definition
    response = as_user("builder").put("/flows/simple/draft", {"definition": "slug: simple\n"})
    assert response.status == 422
    assert {d["path"] for d in response.error["details"]} >= {"name", "steps"}
    assert FlowVersion.objects.get(flow=flow, number__isnull=True).definition == before


def test_a_release_whose_checks_fail_is_a_422(as_user):
    make_flow(simple_definition("needs-conn", steps=[
        {"key": "call", "type": "http", "connection": "missing-api",
         "request": {"method": "GET", "url": "/x"}},
    ]), promote=False)
    response = as_user("builder").post("/flows/needs-conn/releases")
    assert response.status == 422
    assert any("missing-api" in d["message"] for d in response.error["details"])
    assert not FlowVersion.objects.filter(flow__slug="needs-conn", number__isnull=False).exists()


def test_promoting_a_missing_release_is_a_404(as_user, flow):
    assert as_user("operator").post("/flows/simple/releases/7/promote").status == 404
    assert as_user("operator").post("/flows/simple/releases/99999999999/promote").status == 404


def test_the_webhook_secret_is_shown_only_when_rotated(as_user, flow):
    old = flow.webhook_signing_secret()
    # A builder may not start runs, so may not hold a secret that starts them either.
    refused = as_user("builder").post("/flows/simple/webhook-secret")
    assert refused.status == 403 and refused.error["code"] == "forbidden"
    assert as_user("support").post("/flows/simple/webhook-secret").status == 403
    flow.refresh_from_db()
    assert flow.webhook_signing_secret() == old
    response = as_user("operator").post("/flows/simple/webhook-secret")
    assert response.status == 200
    secret = response.body["webhook_secret"]
    assert secret != old and len(secret) >= 32
    flow.refresh_from_db()
    assert flow.webhook_signing_secret() == secret
    assert secret not in flow.webhook_secret  # stored encrypted
    assert secret not in str(as_user("admin").get("/flows/simple").body)


def test_flows_are_listed_newest_first_across_pages_without_holes(as_user):
    for index in range(7):
        make_flow(simple_definition(f"flow-{index}"), promote=False)
    api = as_user("support")
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/flows", **params).body
        seen += [f["slug"] for f in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"flow-{index}" for index in reversed(range(7))]


def test_listing_flows_takes_a_constant_number_of_queries(as_user, django_assert_max_num_queries):
    for index in range(12):
        make_flow(simple_definition(f"flow-{index}"))
    api = as_user("support")
    with django_assert_max_num_queries(8):
        page = api.get("/flows", limit=200)
    assert len(page.body["items"]) == 12


def test_start_a_run_and_follow_it_to_completion(as_user, flow):
    api = as_user("operator")
    response = api.post("/flows/simple/runs", {"input": {}})
    assert response.status == 201
    run = response.body
    assert run["status"] == "queued" and run["flow"] == "simple" and run["version"] == 1
    assert run["trigger"] == {"kind": "manual", "actor": "operator", "payload": {},
                              "delivery": None}
    assert [s["key"] for s in run["steps"]] == ["first", "second"]
    drain()
    done = api.get(f"/runs/{run['id']}").body
    assert done["status"] == "completed"
    assert done["output"] == {"prev": 1}
    assert done["duration_ms"] is not None and done["finished_at"].endswith("Z")
    assert done["steps"][1]["output"] == {"prev": 1}
    assert done["admin_url"].endswith(f"/admin/workflows/run/{run['id']}/change/")


def test_a_repeated_idempotency_key_returns_the_same_run_with_200(as_user, flow):
    api = as_user("operator")
    first = api.post("/flows/simple/runs", {"input": {}, "idempotency_key": "order-1"})
    again = api.post("/flows/simple/runs", {"input": {}, "idempotency_key": "order-1"})
    assert (first.status, again.status) == (201, 200)
    assert first.body["id"] == again.body["id"]
    assert Run.objects.count() == 1


def test_a_draft_run_rehearses_the_draft(as_user):
    make_flow(simple_definition("unreleased"), promote=False)
    api = as_user("operator")
    refused = api.post("/flows/unreleased/runs", {"input": {}})
    assert refused.status == 409 and refused.error["code"] == "conflict"
    response = api.post("/flows/unreleased/runs", {"input": {}, "draft": True})
    assert response.status == 201
    assert response.body["rehearsal"] is True and response.body["version"] is None


def test_wrong_input_is_a_422_with_every_problem(as_user):
    make_flow(simple_definition("typed", input={
        "repo": {"type": "string", "required": True}, "limit": {"type": "integer"}}))
    response = as_user("operator").post("/flows/typed/runs",
                                        {"input": {"limit": "ten", "extra": 1}})
    assert response.status == 422
    assert response.error["code"] == "input_invalid"
    assert {d["path"] for d in response.error["details"]} == {
        "input.repo", "input.limit", "input.extra"}
    assert not Run.objects.exists()


def test_support_cannot_start_runs(as_user, flow):
    response = as_user("support").post("/flows/simple/runs", {"input": {}})
    assert response.status == 403
    assert not Run.objects.exists()


def test_the_flow_runs_list_filters_by_status_newest_first(as_user, flow):
    api = as_user("operator")
    ids = [api.post("/flows/simple/runs", {"input": {}}).body["id"] for _ in range(3)]
    drain()
    api.post("/flows/simple/runs", {"input": {}})
    completed = api.get("/flows/simple/runs", status="completed").body["items"]
    assert [r["id"] for r in completed] == list(reversed(ids))
    assert api.get("/flows/simple/runs", status="exploded").status == 422


def test_listing_runs_takes_a_constant_number_of_queries(as_user, flow,
                                                          django_assert_max_num_queries):
    api = as_user("operator")
    for _ in range(3):
        api.post("/flows/simple/runs", {"input": {}})
    with django_assert_max_num_queries(10) as few:
        api.get("/flows/simple/runs", limit=200)
    baseline = len(few.captured_queries)
    for _ in range(12):
        api.post("/flows/simple/runs", {"input": {}})
    with django_assert_max_num_queries(baseline):
        page = api.get("/flows/simple/runs", limit=200)
    assert len(page.body["items"]) == 15


def test_run_pages_have_no_duplicates_or_holes(as_user, flow):
    api = as_user("operator")
    ids = [api.post("/flows/simple/runs", {"input": {}}).body["id"] for _ in range(5)]
    first = api.get("/flows/simple/runs", limit=2).body
    api.post("/flows/simple/runs", {"input": {}})  # a new run must not shift the pages
    second = api.get("/flows/simple/runs", limit=2, cursor=first["next_cursor"]).body
    third = api.get("/flows/simple/runs", limit=2, cursor=second["next_cursor"]).body
    seen = [r["id"] for page in (first, second, third) for r in page["items"]]
    assert seen == list(reversed(ids))
    assert third["next_cursor"] is None


def test_a_forged_cursor_is_a_400(as_user, flow):
    response = as_user("support").get("/flows/simple/runs", cursor="not-a-cursor")
    assert response.status == 400 and "cursor" in response.error["message"]


def test_the_matrix_shows_steps_by_runs(as_user, flow, django_assert_max_num_queries):
    api = as_user("operator")
    for _ in range(3):
        api.post("/flows/simple/runs", {"input": {}})
    drain()
    with django_assert_max_num_queries(8):
        matrix = api.get("/flows/simple/matrix", limit=2).body
    assert [s["key"] for s in matrix["steps"]] == ["first", "second"]
    assert len(matrix["runs"]) == 2 and matrix["next_before"] == matrix["runs"][-1]["id"]
    cell = matrix["runs"][0]["cells"]["first"]
    assert cell["status"] == "completed" and cell["attempts"] == 1
    older = api.get("/flows/simple/matrix", before=matrix["next_before"]).body
    assert len(older["runs"]) == 1 and older["next_before"] is None


def test_reviewers_see_the_approval_flow_but_cannot_start_it(as_user):
    make_flow(approval_definition())
    assert as_user("reviewer").get("/flows/reviewed").status == 200
    assert as_user("reviewer").post("/flows/reviewed/runs", {"input": {}}).status == 403


def test_starting_a_run_through_the_api_costs_a_fixed_few_statements(as_user, tokens):
    """The token (one indexed lookup), the flow, the operator's permissions (one read), the
    start (at most six) and no re-read for the answer, whatever the flow's size."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    steps = [{"key": f"s{i}", "type": "python", "action": "core.echo", "args": {"i": i}}
             for i in range(30)]
    make_flow(simple_definition("wide", steps=steps))
    api = as_user("operator")
    assert api.post("/flows/wide/runs", {"input": {}}).status == 201  # last_used_at written
    with CaptureQueriesContext(connection) as queries:
        response = api.post("/flows/wide/runs", {"input": {}})
    assert response.status == 201
    assert len(queries) <= 9, [q["sql"][:70] for q in queries]
    assert response.body["status"] == "queued"
    assert [s["status"] for s in response.body["steps"]] == ["queued"] + ["not_started"] * 29
    assert response.body["steps"][0]["key"] == "s0" and response.body["queued_at"]


START_CASES = {
    "live release": ("simple", {"input": {}}),
    "declared inputs with defaults": ("typed-start", {"input": {"repo": "core"}}),
    "idempotency key": ("simple", {"input": {}, "idempotency_key": "order-7"}),
    "rehearsal of the draft (version null)": ("draft-only", {"input": {}, "draft": True}),
    "a wait step (callback token minted)": ("waiting", {"input": {}}),
    "a concurrency limit (run held as created)": ("limited", {"input": {"repo": "x"}}),
}


@pytest.mark.parametrize("case", START_CASES)
def test_a_started_runs_answer_is_byte_for_byte_what_the_response_schema_writes(
        as_user, flow, monkeypatch, case):
    """The 201 of a start is rendered from `run_document` without django-ninja's validation
    against RunOut (workflows/api/rendering.py): the bytes and headers must be those the
    schema's path writes, and the same document as reading the run back."""
    from ninja.responses import NinjaJSONEncoder

    from tests.api.conftest import wait_definition
    from workflows.api import flows as flows_api
    from workflows.api.schemas import RunOut

    make_flow(simple_definition("typed-start", input={
        "repo": {"type": "string", "required": True}, "limit": {"type": "integer", "default": 10}}))
    make_flow(simple_definition("draft-only"), promote=False)
    make_flow(wait_definition())
    make_flow(simple_definition("limited", input={"repo": {"type": "string"}},
                                concurrency={"key": "{{ input.repo }}", "limit": 1,
                                             "policy": "queue"}))
    as_user("operator").post("/flows/limited/runs", {"input": {"repo": "x"}})  # holds the slot
    documents = []
    real_document = flows_api.run_document
    monkeypatch.setattr(flows_api, "run_document",
                        lambda run: documents.append(real_document(run)) or documents[-1])
    slug, body = START_CASES[case]
    api = as_user("operator")
    response = api.client.post(f"/api/v1/flows/{slug}/runs", json.dumps(body),
                               content_type="application/json",
                               headers={"Authorization": f"Bearer {api.token}"})
    assert response.status_code == 201, response.content
    through_schema = json.dumps(RunOut.model_validate(documents[-1]).model_dump(),
                                cls=NinjaJSONEncoder)
    assert response.content == through_schema.encode()
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(response.content) == api.get(f"/runs/{documents[-1]['id']}").body
