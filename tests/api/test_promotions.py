"""The flow history and the two-person promotion rule through the API (issue 13)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from approvals.models import Approval
from connections.models import Connection
from connections.services import connection_create
from tests.factories import make_flow, simple_definition
from workflows.models import Flow
from workflows.services.maintenance import sweep_all


def two_person_definition(slug: str = "guarded", steps: list | None = None,
                          **promotion) -> dict:
    return simple_definition(slug, steps=steps, promotion={
        "requires_approval": True, "approvers": {"groups": ["reviewers"]}, **promotion})


def released(api, slug: str, definition: dict | None = None) -> int:
    if definition is not None:
        assert api.put(f"/flows/{slug}/draft", {"definition": definition}).status == 200
    response = api.post(f"/flows/{slug}/releases", {"notes": "next"})
    assert response.status == 201, response.body
    return response.body["version"]


def test_history_lists_every_change_newest_first_with_a_cursor(as_user):
    admin = as_user("admin")
    assert admin.post("/flows", {"definition": simple_definition("hist")}).status == 201
    v1 = released(admin, "hist")
    assert admin.post(f"/flows/hist/releases/{v1}/promote", {"comment": "first"}).status == 200
    changed = simple_definition("hist", name="Hist two")
    v2 = released(admin, "hist", changed)
    assert admin.post(f"/flows/hist/releases/{v2}/promote").status == 200
    assert admin.post(f"/flows/hist/releases/{v1}/promote", {"comment": "oops"}).status == 200
    assert admin.post("/flows/hist/webhook-secret").status == 200

    body = admin.get("/flows/hist/history").body
    kinds = [(i["kind"], i["from_version"], i["to_version"]) for i in body["items"]]
    assert kinds == [
        ("webhook_secret_rotated", None, None),
        ("rolled_back", 2, 1),
        ("promoted", 1, 2),
        ("released", None, 2),
        ("draft_edited", None, None),
        ("promoted", None, 1),
        ("released", None, 1),
        ("draft_edited", None, None),
    ]
    first = body["items"][1]
    assert first["actor"] == "admin" and first["comment"] == "oops" and first["at"]
    assert body["items"][4]["data"]["content_hash"] == Flow.objects.get(
        slug="hist").versions.get(number=None).content_hash
    assert "secret" not in str(body["items"][0]["data"])

    page = admin.get("/flows/hist/history", limit=3).body
    assert len(page["items"]) == 3 and page["next_cursor"]
    rest = admin.get("/flows/hist/history", limit=10, cursor=page["next_cursor"]).body
    assert [i["id"] for i in page["items"] + rest["items"]] == [i["id"] for i in body["items"]]


def test_history_of_an_unknown_flow_is_a_404_and_needs_a_login(as_user, anon_api):
    assert as_user("support").get("/flows/nope/history").status == 404
    assert anon_api.get("/flows/nope/history").status == 401


def test_promotion_with_approval_answers_202_and_nothing_goes_live(as_user, users):
    operator, reviewer = as_user("operator"), as_user("reviewer")
    flow = make_flow(two_person_definition(), promote=False)
    v1 = released(as_user("admin"), flow.slug)

    response = operator.post(f"/flows/{flow.slug}/releases/{v1}/promote",
                             {"comment": "ship it"})
    assert response.status == 202, response.body
    request = response.body["request"]
    assert request["kind"] == "promotion" and request["flow"] == "guarded"
    assert request["version"] == v1 and request["requested_by"] == "operator"
    assert request["run"] is None and request["step"] is None
    assert request["status"] == "pending"
    assert request["data"]["changes"], "the request carries the value diff against live"
    assert operator.get(f"/flows/{flow.slug}").body["live_version"] is None

    listed = reviewer.get("/approvals").body["items"]
    assert [(a["id"], a["kind"], a["flow"], a["version"]) for a in listed] == [
        (request["id"], "promotion", "guarded", v1)]
    assert reviewer.get("/approvals", kind="step").body["items"] == []
    assert [h["kind"] for h in operator.get("/flows/guarded/history").body["items"]][:1] == [
        "promotion_requested"]

    # A second request while one is pending is a conflict naming it.
    again = operator.post(f"/flows/{flow.slug}/releases/{v1}/promote")
    assert again.status == 409 and str(request["id"]) in again.error["message"]

    decided = reviewer.post(f"/approvals/{request['id']}/approve", {"comment": "ok"})
    assert decided.status == 200, decided.body
    assert decided.body["status"] == "approved" and decided.body["decided_by"] == "reviewer"
    assert operator.get(f"/flows/{flow.slug}").body["live_version"] == v1
    promoted = operator.get("/flows/guarded/history").body["items"][0]
    assert promoted["kind"] == "promoted" and promoted["actor"] == "reviewer"
    assert promoted["to_version"] == v1 and promoted["comment"] == "ok"
    assert promoted["data"]["requested_by"] == "operator"
    assert promoted["data"]["request_comment"] == "ship it"


def test_approving_your_own_promotion_request_is_a_403(as_user):
    admin = as_user("admin")
    flow = make_flow(two_person_definition(), promote=False)
    v1 = released(admin, flow.slug)
    request = admin.post(f"/flows/{flow.slug}/releases/{v1}/promote").body["request"]

    response = admin.post(f"/approvals/{request['id']}/approve")
    assert response.status == 403
    assert response.error["code"] == "own_promotion_request"
    assert Approval.objects.get(pk=request["id"]).status == "pending"
    assert admin.get(f"/flows/{flow.slug}").body["live_version"] is None
    # Someone who is not an approver may not decide it either.
    assert as_user("support").post(f"/approvals/{request['id']}/approve").status == 403
    # The redo of a step approval does not apply to a promotion request.
    assert as_user("reviewer").post(f"/approvals/{request['id']}/redo").status == 409


def test_rejection_and_expiry_are_recorded_and_nothing_goes_live(as_user):
    operator = as_user("operator")
    flow = make_flow(two_person_definition(timeout_seconds=3600), promote=False)
    v1 = released(as_user("admin"), flow.slug)
    first = operator.post(f"/flows/{flow.slug}/releases/{v1}/promote").body["request"]
    assert as_user("reviewer").post(f"/approvals/{first['id']}/reject",
                                    {"comment": "not now"}).status == 200

    second = operator.post(f"/flows/{flow.slug}/releases/{v1}/promote").body["request"]
    counts = sweep_all(now=timezone.now() + timedelta(seconds=3601))
    assert counts["promotion_requests_expired"] == 1
    assert Approval.objects.get(pk=second["id"]).status == "expired"
    assert operator.get(f"/flows/{flow.slug}").body["live_version"] is None
    items = operator.get(f"/flows/{flow.slug}/history").body["items"]
    assert [(i["kind"], i["actor"]) for i in items[:4]] == [
        ("promotion_expired", None), ("promotion_requested", "operator"),
        ("promotion_rejected", "reviewer"), ("promotion_requested", "operator")]
    assert items[2]["comment"] == "not now"


def test_checks_run_again_at_approval_time(as_user):
    operator = as_user("operator")
    definition = two_person_definition(steps=[
        {"key": "call", "type": "http", "connection": "api-conn",
         "request": {"method": "GET", "url": "/x"}}])
    connection_create(name="api-conn", kind="http", config={"base_url": "http://example.com"},
                      secret={}, actor=None)
    flow = make_flow(definition, promote=False)
    v1 = released(as_user("admin"), flow.slug)
    request = operator.post(f"/flows/{flow.slug}/releases/{v1}/promote").body["request"]
    Connection.objects.filter(name="api-conn").delete()
    response = as_user("reviewer").post(f"/approvals/{request['id']}/approve")
    assert response.status == 422
    assert "api-conn" in str(response.body)
    assert Approval.objects.get(pk=request["id"]).status == "pending"


def test_a_live_rule_governs_a_release_that_drops_it(as_user):
    admin, operator = as_user("admin"), as_user("operator")
    flow = make_flow(two_person_definition(), promote=False)
    v1 = released(admin, flow.slug)
    request = operator.post(f"/flows/{flow.slug}/releases/{v1}/promote").body["request"]
    assert admin.post(f"/approvals/{request['id']}/approve").status == 200
    v2 = released(admin, flow.slug, simple_definition("guarded"))
    # v2 has no promotion block, but v1 (live) requires approval: still a request.
    assert operator.post(f"/flows/{flow.slug}/releases/{v2}/promote").status == 202


def test_the_promotion_field_is_validated_with_paths(as_user):
    bad = simple_definition("badpromo", promotion={
        "requires_approval": "yes", "approvers": {"groups": "reviewers", "teams": []},
        "timeout_seconds": 5, "extra": 1})
    response = as_user("admin").post("/flows", {"definition": bad})
    assert response.status == 422
    paths = {d["path"] for d in response.error["details"]}
    assert {"promotion.requires_approval", "promotion.approvers.groups",
            "promotion.approvers.teams", "promotion.timeout_seconds",
            "promotion.extra"} <= paths


def test_who_reads_a_promotion_request_is_one_rule_in_the_api_and_the_admin(as_user, users):
    """Issue 25 (notes): the API let a builder read promotion requests that the admin page
    refused. One rule now (approvals.selectors.approval_readable): whoever may decide it, decided
    it or requested it, and the roles that read approvals; not a builder."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission
    from django.test import Client
    from django.urls import reverse

    from tests.api.conftest import ApiClient
    from workflows.services.tokens import api_token_create

    flow = make_flow(two_person_definition(), promote=False)
    v1 = released(as_user("admin"), flow.slug)
    # A requester who holds the promote permission but no role that reads approvals.
    promoters = Group.objects.create(name="promoters-only")
    promoters.permissions.add(*Permission.objects.filter(
        codename__in=["promote_flow", "view_flow", "view_run"]))
    requester = users["nobody"]
    requester.groups.add(promoters)
    requester.is_staff = True
    requester.save()
    own = ApiClient(api_token_create(user=requester, name="t")[1])
    request = own.post(f"/flows/{flow.slug}/releases/{v1}/promote").body["request"]
    page = reverse("admin:approvals_approval_change", args=[request["id"]])
    get_user_model().objects.update(is_staff=True)  # the admin's door needs staff

    expected = {"builder": 403, "nobody": 200, "operator": 200, "reviewer": 200,
                "support": 200, "admin": 200}
    for name, status in expected.items():
        api = own if name == "nobody" else as_user(name)
        assert api.get(f"/approvals/{request['id']}").status == status, name
        browser = Client()
        browser.force_login(get_user_model().objects.get(pk=users[name].pk))
        assert browser.get(page).status_code == status, name


def test_a_two_person_flow_runs_no_rehearsal(as_user):
    """Issue 25 (notes): an operator's rehearsal run of a two-person flow's draft needed no
    approval. Refused outright now (403 rehearsal_not_allowed), for every role, whether the
    rule is in the live release or only in the draft; retries and replays of an earlier
    rehearsal too. A flow without the rule still rehearses."""
    from workflows.models import Run
    from workflows.services.runs import run_start

    admin, operator = as_user("admin"), as_user("operator")
    guarded = make_flow(two_person_definition(), promote=False)
    v1 = released(admin, guarded.slug)
    request = operator.post(f"/flows/{guarded.slug}/releases/{v1}/promote").body["request"]
    assert as_user("reviewer").post(f"/approvals/{request['id']}/approve").status == 200
    assert admin.get(f"/flows/{guarded.slug}").body["live_version"] == v1  # carries the rule
    for api in (admin, operator):
        response = api.post(f"/flows/{guarded.slug}/runs", {"input": {}, "draft": True})
        assert response.status == 403, response.body
        assert response.error["code"] == "rehearsal_not_allowed"
    # A draft that drops the rule cannot lift the live release's.
    assert admin.put(f"/flows/{guarded.slug}/draft",
                     {"definition": simple_definition("guarded")}).status == 200
    response = operator.post(f"/flows/{guarded.slug}/runs", {"draft": True})
    assert response.status == 403, (response.status, response.body)
    assert response.error["code"] == "rehearsal_not_allowed"
    # The rule only in the draft of a flow that had none: refused as well, and so are the retry
    # and the replay of a rehearsal run started before the rule came in.
    plain = make_flow(simple_definition("plain"))
    earlier = operator.post("/flows/plain/runs", {"draft": True})
    assert earlier.status == 201 and earlier.body["rehearsal"] is True
    assert admin.put("/flows/plain/draft",
                     {"definition": two_person_definition("plain")}).status == 200
    assert operator.post("/flows/plain/runs", {"draft": True}).status == 403
    for action in ("retry", "replay"):
        response = operator.post(f"/runs/{earlier.body['id']}/{action}")
        assert response.status == 403 and response.error["code"] == "rehearsal_not_allowed"
    assert Run.objects.filter(flow=plain).count() == 1
    assert Run.objects.filter(flow=guarded).count() == 0
    # Live runs of a two-person flow start as before.
    assert operator.post(f"/flows/{guarded.slug}/runs", {"input": {}}).status == 201
    run, _ = run_start(flow=make_flow(simple_definition("free")), draft=True)
    assert run.is_rehearsal
