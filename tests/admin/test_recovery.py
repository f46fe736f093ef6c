"""Next steps that know what is broken, reruns linked both ways, one named baseline (issue 24).

The history: v1 runs complete, v2 (live) breaks `transform`. A failed v2 run's first action is
"Roll back to v1 (last good: #N)", a promotion through the promotion service recorded as
`rolled_back`; then "Run this input on v1", a rerun pinned to that release."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from approvals.models import Approval
from approvals.services import approval_approve
from tests.admin.conftest import echo_definition, start
from tests.admin.helpers import messages_of, run_url
from tests.factories import make_flow
from tests.history import broken_release_history, pipeline_definition
from workflows.admin_views.run_page import compare_step_row
from workflows.investigation import run_next_steps
from workflows.models import FlowHistory, Run, StepRun
from workflows.services.flows import flow_promote
from workflows.services.runs import run_rerun
from workflows.states import FlowHistoryKind, RunStatus

pytestmark = pytest.mark.django_db


def next_box(page: str) -> str:
    match = re.search(r'<section class="wf-next" data-section="next".*?</section>', page, re.S)
    assert match, "no next box"
    return match.group(0)


def text_of(html: str) -> str:
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    return re.sub(r" ([,.;:)])", r"\1", text)


@pytest.fixture
def history(db):
    return broken_release_history(good=2, bad=2)


# --- the plan ----------------------------------------------------------------------------------


def test_rolling_back_is_offered_when_live_fails_and_the_last_good_run_was_on_another_version(
        history):
    bad, good = history.bad_runs[-1], history.good_runs[-1]
    plan = run_next_steps(run=Run.objects.select_related("flow", "version").get(pk=bad.pk))
    assert plan["rollback"] == {"version": 1, "last_good_run": good.pk,
                                "failing_step": "transform"}


def test_no_rollback_once_the_failed_version_is_no_longer_live(history):
    bad = history.bad_runs[-1]
    flow_promote(flow=history.flow, number=1)
    plan = run_next_steps(run=Run.objects.select_related("flow", "version").get(pk=bad.pk))
    assert plan["rollback"] is None


def test_no_rollback_when_the_step_never_completed_on_another_version(db):
    flow = make_flow(pipeline_definition("always-broken", transform_action="core.fail"))
    bad = start(flow)
    assert bad.status == RunStatus.FAILED
    assert run_next_steps(run=bad)["rollback"] is None


def test_a_rerun_can_be_pinned_to_a_release(history):
    bad = history.bad_runs[-1]
    new = run_rerun(run=bad, actor=None, version=1)
    assert new.version_id == history.v1.pk and new.rerun_of_id == bad.pk
    assert new.trigger_payload == {"rerun_of": bad.pk, "version": 1}
    assert bad.events.get(kind="run_rerun").reason == f"input rerun on v1 as run {new.pk}"
    history.flow.refresh_from_db()
    assert history.flow.live_version_id == history.v2.pk  # a rerun promotes nothing


def test_the_api_reruns_on_a_named_release_and_lists_reruns(history, admin_client):
    bad = history.bad_runs[-1]
    response = admin_client.post(f"/api/v1/runs/{bad.pk}/rerun", {"version": 1},
                                 content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["version"] == 1 and response.json()["rerun_of"] == bad.pk
    assert admin_client.get(f"/api/v1/runs/{bad.pk}").json()["reruns"] == [response.json()["id"]]
    listed = admin_client.get("/api/v1/runs", {"flow": "pipeline"}).json()["items"]
    assert {i["id"]: i["reruns"] for i in listed}[bad.pk] == [response.json()["id"]]
    missing = admin_client.post(f"/api/v1/runs/{bad.pk}/rerun", {"version": 9},
                                content_type="application/json")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad_version = admin_client.post(f"/api/v1/runs/{bad.pk}/rerun", {"version": "x"},
                                    content_type="application/json")
    assert bad_version.status_code == 422


# --- the failed run's page ---------------------------------------------------------------------


def test_the_first_action_rolls_back_to_the_last_good_version(history, clients):
    bad, good = history.bad_runs[-1], history.good_runs[-1]
    box = next_box(clients["operators"].get(run_url(bad)).content.decode())
    actions = re.findall(r'data-action="([a-z-]+)"', box)
    assert actions[:3] == ["rollback", "rerun-version", "rerun-live"]
    rollback = re.search(r'<a [^>]*data-action="rollback"[^>]*>(.*?)</a>', box)
    assert rollback.group(1) == f"Roll back to v1 (last good: #{good.pk})"
    assert (f'href="/admin/workflows/flow/{history.flow.pk}/promote/?number=1&amp;run={bad.pk}"'
            in rollback.group(0))
    assert "Run this input on v1" in box
    assert re.search(r'<input type="hidden" name="version" value="1">', box)
    # Support reads only: neither action.
    support = next_box(clients["support"].get(run_url(bad)).content.decode())
    assert 'data-action="rollback"' not in support and 'data-action="rerun-version"' not in support


def test_the_rollback_page_says_last_live_and_last_good_and_records_rolled_back(history,
                                                                                clients):
    bad, good = history.bad_runs[-1], history.good_runs[-1]
    url = reverse("admin:workflows_flow_promote", args=[history.flow.pk])
    page = clients["operators"].get(url, {"number": 1, "run": bad.pk}).content.decode()
    facts = text_of(re.search(r'data-section="release-facts".*?</ul>', page, re.S).group(0))
    assert "Live now: v2" in facts and "Last live before it: v1" in facts
    assert f"Last good: v1 (run #{good.pk} completed" in facts
    assert "Roll back: v2 → v1" in text_of(page)
    comment = (f"Roll back: run #{bad.pk} failed on v2; the last good run, #{good.pk}, "
               "ran on v1.")
    assert f">{comment}</textarea>" in page
    response = clients["operators"].post(url, {"number": 1, "comment": comment})
    assert response.status_code == 302
    entry = FlowHistory.objects.filter(flow=history.flow).first()
    assert (entry.kind, entry.from_version, entry.to_version, entry.comment) == (
        FlowHistoryKind.ROLLED_BACK, 2, 1, comment)


def test_a_rollback_under_the_two_person_rule_is_a_request(history, clients, users):
    rule = pipeline_definition(transform_action="core.fail")
    rule["promotion"] = {"requires_approval": True, "approvers": {"groups": ["reviewers"]}}
    from workflows.services.flows import flow_release, flow_update_draft

    flow_update_draft(flow=history.flow, definition=rule)
    v3 = flow_release(flow=history.flow)  # still breaks transform, and brings the rule
    # Its own rule governs its promotion (a request): approved by a reviewer, it goes live.
    approval_approve(approval=flow_promote(flow=history.flow, number=v3.number, actor=users[
        "operators"]), actor=users["reviewers"])
    history.flow.refresh_from_db()
    assert history.flow.live_version_id == v3.pk
    bad = start(history.flow)
    box = next_box(clients["operators"].get(run_url(bad)).content.decode())
    assert "Roll back to v1" in box
    url = reverse("admin:workflows_flow_promote", args=[history.flow.pk])
    page = clients["operators"].get(url, {"number": 1, "run": bad.pk}).content.decode()
    assert "Two-person rule" in page and "Request the rollback to v1" in page
    clients["operators"].post(url, {"number": 1, "comment": "roll back"})
    history.flow.refresh_from_db()
    assert history.flow.live_version.number == 3  # nothing live until someone else approves
    request = Approval.objects.get(flow=history.flow, kind="promotion", status="pending")
    approval_approve(approval=request, actor=users["reviewers"], comment="ok")
    history.flow.refresh_from_db()
    assert history.flow.live_version.number == 1
    assert FlowHistory.objects.filter(flow=history.flow).first().kind == "rolled_back"


def test_the_flow_page_tags_the_last_live_and_last_good_releases(history, admin_client):
    page = admin_client.get(reverse("admin:workflows_flow_change",
                                    args=[history.flow.pk])).content.decode()
    row = re.search(r'<tr data-release="1".*?</tr>', page, re.S).group(0)
    assert "data-last-live" in row and "data-last-good" in row
    assert "data-last-good" not in re.search(r'<tr data-release="2".*?</tr>', page,
                                             re.S).group(0)


# --- reruns link both ways ---------------------------------------------------------------------


def test_reruns_show_in_both_chain_bars(history, clients):
    bad = history.bad_runs[-1]
    client = clients["operators"]
    client.post(reverse("admin:workflows_run_rerun", args=[bad.pk]), {"version": 1})
    new = Run.objects.get(rerun_of=bad)
    chain = text_of(re.search(r'<nav class="wf-chain".*?</nav>',
                              client.get(run_url(bad)).content.decode(), re.S).group(0))
    assert f"#{bad.pk} this run rerun → #{new.pk} (" in chain
    back = text_of(re.search(r'<nav class="wf-chain".*?</nav>',
                             client.get(run_url(new)).content.decode(), re.S).group(0))
    assert back.startswith(f"#{bad.pk} (failed) rerun → #{new.pk} this run")
    page = client.get(run_url(new)).content.decode()
    assert f"rerun of #{bad.pk}" in page  # the trigger says where it came from


def test_a_second_rerun_asks_naming_the_first(history, clients):
    bad = history.bad_runs[-1]
    client = clients["operators"]
    url = reverse("admin:workflows_run_rerun", args=[bad.pk])
    client.post(url)
    first = Run.objects.get(rerun_of=bad)
    box = next_box(client.get(run_url(bad)).content.decode())
    assert re.search(rf'data-confirm="Run #{first.pk} \([^)]*\) already reran this input', box)
    assert f'<input type="hidden" name="again" value="{first.pk}">' in box
    assert f'data-rerun="{first.pk}"' in box  # "Already rerun as #N"
    # A stale page (or a second click) without the confirmation starts nothing.
    response = client.post(url)
    assert response.status_code == 302
    assert Run.objects.filter(rerun_of=bad).count() == 1
    assert any(f"Run #{first.pk}" in m and "already reran" in m for m in messages_of(response))
    client.post(url, {"again": str(first.pk)})
    assert Run.objects.filter(rerun_of=bad).count() == 2


# --- one baseline, named -----------------------------------------------------------------------


def test_the_explanation_and_the_comparison_name_their_runs(history, admin_client):
    first_bad, last_bad = history.bad_runs
    good = history.good_runs[-1]
    box = next_box(admin_client.get(run_url(last_bad)).content.decode())
    assert (f"Compares #{good.pk}, last good → #{first_bad.pk}, first bad"
            in text_of(box))
    fragment = admin_client.get(
        reverse("admin:workflows_run_compare", args=[last_bad.pk]) + "?to=last_good")
    baseline = re.search(r'data-baseline="compare">(.*?)</p>', fragment.content.decode(), re.S)
    assert text_of(baseline.group(1)).startswith(f"#{good.pk}, last good → this run")


def test_the_comparison_uses_the_explanations_last_good_run(db, admin_client):
    """A later completed run where the failing step was reused (a retry) is not evidence: the
    comparison's baseline is the explanation's, not merely the newest completed run."""
    history = broken_release_history(good=1, bad=1)
    bad = history.bad_runs[0]
    other = start(history.flow)  # fails too
    Run.objects.filter(pk=other.pk).update(status=RunStatus.COMPLETED, error=None)
    StepRun.objects.filter(run=other, key="transform").update(
        reused_from=StepRun.objects.get(run=history.good_runs[0], key="transform"))
    later = start(history.flow)
    fragment = admin_client.get(
        reverse("admin:workflows_run_compare", args=[later.pk]) + "?to=last_good")
    assert f'data-compare-with="{history.good_runs[0].pk}"' in fragment.content.decode()
    assert bad.pk < other.pk < later.pk


def test_volatile_response_headers_are_behind_show_all():
    entry = {"key": "fetch", "output": {
        "from": {"status": 200, "headers": {"date": "Mon", "Content-Length": "10",
                                            "x-request-id": "a", "ETag": "1",
                                            "traceparent": "00-a", "x-rate": "5"},
                 "body": {"total": 1}},
        "to": {"status": 200, "headers": {"date": "Tue", "Content-Length": "12",
                                          "x-request-id": "b", "ETag": "2",
                                          "traceparent": "00-b", "x-rate": "4"},
               "body": {"total": 2}}}}
    row = compare_step_row(entry, failing=None)
    assert [v["path"] for v in row["values"]] == ["output.headers.x-rate", "output.body.total"]
    assert sorted(v["path"] for v in row["noise"]) == sorted([
        "output.headers.date", "output.headers.Content-Length", "output.headers.x-request-id",
        "output.headers.ETag", "output.headers.traceparent"])
    only_noise = compare_step_row({"key": "fetch", "output": {
        "from": {"headers": {"date": "Mon"}}, "to": {"headers": {"date": "Tue"}}}},
        failing=None)
    assert only_noise["values"] == [] and only_noise["same"]


def test_the_comparison_page_hides_volatile_headers_until_show_all(db, admin_client):
    flow = make_flow(echo_definition("heads", keys=("fetch",)))
    a, b = start(flow), start(flow)
    for run, day, total in ((a, "Mon", 1), (b, "Tue", 2)):
        StepRun.objects.filter(run=run, key="fetch").update(output={
            "status": 200, "headers": {"date": day, "content-length": str(total)},
            "body": {"total": total}})
    page = admin_client.get(reverse("admin:workflows_run_compare", args=[b.pk])
                            + f"?to={a.pk}").content.decode()
    shown, hidden = page.split('data-toggle="show-all"', 1)
    assert 'data-path="output.body.total"' in shown
    assert "output.headers.date" not in shown and "1 value changed" in shown
    assert 'data-path="output.headers.date"' in hidden
    assert "show all: 2 response headers that change on every call" in text_of(hidden)
