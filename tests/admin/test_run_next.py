"""A failed run's "what happens next" box, the actions' confirmations, rerun on the live
version, and the lookup box."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from approvals.services import approval_reject
from tests.admin.conftest import retry_definition, start
from tests.admin.helpers import run_url
from tests.factories import callback_definition, make_flow, token_of
from tests.history import broken_release_history, pipeline_definition, release_live
from workflows.admin_views.run_next import retry_from_plan
from workflows.investigation import run_retry_plan
from workflows.models import Run
from workflows.services.runs import run_start
from workflows.states import RunStatus

pytestmark = pytest.mark.django_db


def next_box(page: str) -> str:
    match = re.search(r'<section class="wf-next" data-section="next".*?</section>', page, re.S)
    assert match, "no next box"
    return match.group(0)


def test_the_next_box_explains_the_first_bad_run_of_a_broken_release(admin_client):
    history = broken_release_history(good=2, bad=3)
    first_bad, last = history.bad_runs[0], history.bad_runs[-1]
    page = admin_client.get(run_url(last)).content.decode()
    box = next_box(page)
    # Directly under the error.
    assert page.index('class="run-error"') < page.index('data-section="next"') < page.index(
        "<h2 class=\"wf-h2\">Steps</h2>")
    assert "pinned <strong>v2</strong>" in box and "live <strong>v2</strong>" in box
    assert "draft equal to live" in box
    assert f'data-first-bad-run="{first_bad.pk}"' in box
    assert f'data-last-good-run="{history.good_runs[-1].pk}"' in box
    assert 'data-failing-since-count="3"' in box
    text = re.sub(r"<[^>]+>", "", box)
    assert f"failing since #{first_bad.pk}, the first run on v2" in text
    assert "v2 changed steps.transform.action" in text
    assert f"/admin/workflows/flow/{history.flow.pk}/diff/?from=1&amp;to=2" in box
    # Compare with the last good run sits under the box and loads by itself.
    assert re.search(r'data-section="next".*?data-section="compare".*?hx-trigger="load"', page,
                     re.S)
    assert 'id="compare-section"' not in page


def test_the_next_box_says_when_live_and_the_draft_moved_on(admin_client):
    history = broken_release_history(good=1, bad=1)
    bad = history.bad_runs[0]
    release_live(history.flow, pipeline_definition())  # v3 fixes transform
    draft = pipeline_definition()
    draft["steps"][2]["args"] = {"n": 2}
    from workflows.services.flows import flow_update_draft

    flow_update_draft(flow=history.flow, definition=draft)
    box = next_box(admin_client.get(run_url(bad)).content.decode())
    assert "pinned <strong>v2</strong>" in box and "live <strong>v3</strong>" in box
    assert "draft differs from live" in box
    assert f"/admin/workflows/flow/{history.flow.pk}/diff/?from=2&amp;to=3" in box
    assert f"/admin/workflows/flow/{history.flow.pk}/diff/?from=3&amp;to=draft" in box
    assert "Retry and Replay run v2 again, not the live v3" in box
    assert 'data-action="rerun-live"' in box and "(v3)" in box


def test_confirmations_name_the_version_and_the_steps_reused(admin_client):
    history = broken_release_history(good=1, bad=1)
    bad = history.bad_runs[0]
    release_live(history.flow, pipeline_definition())
    page = admin_client.get(run_url(bad)).content.decode()
    assert re.search(r'data-confirm="Retry run \d+ on v2, the version it is pinned to \(live is '
                     r'v3\): reuses fetch and runs transform, load again\?"', page)
    assert re.search(r'<option value="fetch" data-confirm="Retry run \d+ from fetch on v2[^"]*'
                     r'reuses no step and runs fetch, transform, load again\?"', page)
    assert re.search(r'data-confirm="Replay run \d+ from the start on v2[^"]*reuses no step', page)
    assert 'data-confirm="Start a new run of this input on the live version, v3' in page


def test_the_retry_choices_follow_the_retry_rule(db):
    history = broken_release_history(good=1, bad=1)
    bad = Run.objects.select_related("version").get(pk=history.bad_runs[0].pk)
    steps = list(bad.step_runs.order_by("position"))
    for step in steps:
        ours = retry_from_plan(run=bad, steps=steps, from_step=step.key)
        theirs = run_retry_plan(run=bad, from_step=step.key)
        assert [r["key"] for r in ours["reuse"]] == [r["key"] for r in theirs["reuse"]]
        assert ours["rerun"] == theirs["rerun"]


def test_rerun_on_the_live_version_starts_a_linked_run(clients, users):
    history = broken_release_history(good=1, bad=1)
    bad = history.bad_runs[0]
    v3 = release_live(history.flow, pipeline_definition())
    url = reverse("admin:workflows_run_rerun", args=[bad.pk])
    # Support reads: no button, and a forged POST is refused.
    assert 'data-action="rerun-live"' not in clients["support"].get(run_url(bad)).content.decode()
    assert clients["support"].post(url).status_code == 403
    assert not Run.objects.filter(rerun_of=bad).exists()
    response = clients["operators"].post(url)
    new = Run.objects.get(rerun_of=bad)
    assert response.status_code == 302 and response["Location"] == run_url(new)
    assert new.version_id == v3.pk and new.input == bad.input
    assert bad.events.filter(kind="run_rerun").exists()


def test_rerun_is_a_post(clients):
    run = start(make_flow(retry_definition()))
    assert clients["operators"].get(
        reverse("admin:workflows_run_rerun", args=[run.pk])).status_code == 405


def test_no_next_box_for_a_run_that_did_not_fail(admin_client, completed_run):
    page = admin_client.get(run_url(completed_run)).content.decode()
    assert 'data-section="next"' not in page and 'id="compare-section"' in page


# --- the lookup box --------------------------------------------------------------------------


def lookup(client, text: str):
    return client.get(reverse("admin:lookup"), {"q": text})


def test_the_lookup_goes_straight_to_the_run_from_a_run_or_approval_id(admin_client,
                                                                       waiting_run):
    run = waiting_run
    approval = run.approvals.get()
    for text in (str(run.pk), f"#{run.pk}", f"A{approval.pk}",
                 f"http://testserver/admin/approvals/approval/{approval.pk}/change/"):
        response = lookup(admin_client, text)
        assert response.status_code == 302 and response["Location"] == run_url(run), text


def test_the_lookup_finds_a_run_by_callback_url_token_and_delivery_key(admin_client):
    flow = make_flow(callback_definition())
    run, _ = run_start(flow=flow, input={}, idempotency_key="webhook:dlv-7781")
    token = token_of(run)
    for text in (token, f"http://127.0.0.1:8000/api/v1/callbacks/{token}", "dlv-7781"):
        response = lookup(admin_client, text)
        assert response.status_code == 302 and response["Location"] == run_url(run), text


def test_the_lookup_lists_candidates_or_says_nothing_matched(admin_client):
    flow = make_flow(retry_definition())
    runs = [start(flow, input={"topic": "quarterly-close"}) for _ in range(2)]
    page = lookup(admin_client, "quarterly-close").content.decode()
    assert sorted(int(n) for n in re.findall(r'<tr data-run="(\d+)"', page)) == sorted(
        r.pk for r in runs)
    empty = lookup(admin_client, "no-such-thing-anywhere").content.decode()
    assert "No run matches" in empty
    assert lookup(admin_client, "").status_code == 200


def test_the_lookup_is_for_people_who_may_read_runs(clients, failed_run):
    assert lookup(clients["nobody"], str(failed_run.pk)).status_code == 403
    assert lookup(clients["support"], str(failed_run.pk)).status_code == 302


def test_rejected_runs_read_rejected_in_the_runs_list_and_filter(admin_client, users,
                                                                waiting_run, failed_run):
    approval_reject(approval=waiting_run.approvals.get(), actor=users["reviewers"])
    assert Run.objects.get(pk=waiting_run.pk).status == RunStatus.FAILED
    page = admin_client.get("/admin/workflows/run/?error_kind=rejected").content.decode()
    listed = set(int(n) for n in re.findall(r"/admin/workflows/run/(\d+)/change/", page))
    assert listed == {waiting_run.pk}
    assert 'data-error-kind="rejected"' in page


def test_replay_of_an_active_run_names_its_version_too(admin_client, waiting_run):
    page = admin_client.get(run_url(waiting_run)).content.decode()
    assert (f'data-confirm="Replay run {waiting_run.pk} from the start on v1, the version it is '
            f'pinned to, with the same input: reuses no step?"') in page
