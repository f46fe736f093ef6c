from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.services import approval_approve
from tests.admin.conftest import echo_definition, retry_definition, start
from tests.admin.helpers import cells, messages_of, run_url
from tests.factories import drain, make_flow
from workflows.models import Event, Run
from workflows.services.runs import run_replay, run_retry
from workflows.states import RunStatus

pytestmark = pytest.mark.django_db


def live_url(run, v: int = 0) -> str:
    return reverse("admin:workflows_run_live", args=[run.pk]) + f"?v={v}"


def test_the_run_page_is_the_run_admin_change_view(admin_client, failed_run):
    assert run_url(failed_run) == f"/admin/workflows/run/{failed_run.pk}/change/"
    page = admin_client.get(run_url(failed_run)).content.decode()
    assert f"Run #{failed_run.pk}" in page
    assert "manual" in page and "v1" in page  # trigger and pinned version
    assert "&quot;weekly&quot;" in page  # the input
    assert 'data-run-status="failed"' in page
    assert cells(page) >= {(failed_run.pk, "flaky", "failed")}
    assert 'id="step-panel"' in page


def test_the_full_timeline_lists_every_event_with_its_transition(admin_client, failed_run):
    page = admin_client.get(run_url(failed_run) + "?timeline=full").content.decode()
    events = Event.objects.filter(run=failed_run)
    assert page.count('class="tl-item"') == events.count()
    assert 'data-timeline-mode="full"' in page
    fragment = admin_client.get(live_url(failed_run) + "&timeline=full", HTTP_HX_REQUEST="true")
    assert 'data-timeline-mode="full"' in fragment.content.decode()
    assert re.search(r'<span class="tl-step">flaky</span>\s*<span class="tl-from">running</span>'
                     r' → <strong class="tl-to">failed</strong>', page)
    assert "upstream said no" in page


def test_the_chain_links_retries_and_replays_both_ways(admin_client, failed_run):
    retry = run_retry(run=failed_run)
    drain()
    replay = run_replay(run=retry)
    drain()
    page = admin_client.get(run_url(retry)).content.decode()
    assert f'data-chain-run="{failed_run.pk}"' in page
    assert f'data-chain-run="{replay.pk}"' in page
    assert "retry →" in page and "replay →" in page
    first = admin_client.get(run_url(failed_run)).content.decode()
    assert f'data-chain-run="{retry.pk}"' in first and f'data-chain-run="{replay.pk}"' in first


def test_the_live_part_of_an_ended_run_stops_polling_with_286(admin_client, failed_run):
    response = admin_client.get(live_url(failed_run), HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    assert "hx-trigger=\"every" not in response.content.decode()  # no more polling


def test_the_live_part_answers_204_until_a_new_event(admin_client, waiting_run):
    page = admin_client.get(run_url(waiting_run)).content.decode()
    assert 'hx-trigger="every 2s"' in page
    last = Event.objects.filter(run=waiting_run).order_by("-id").first().pk
    assert f"v={last}" in page
    assert admin_client.get(live_url(waiting_run, last)).status_code == 204
    response = admin_client.get(live_url(waiting_run, last - 1))
    assert response.status_code == 200
    assert 'data-run-status="waiting_for_approval"' in response.content.decode()


def test_the_run_page_makes_a_bounded_number_of_queries(admin_client, failed_run):
    # A failed run's page also reads what happens next: the live and draft versions, the retry
    # plan and the explanation of the first bad run (run_next_steps, run_explain): about 8;
    # the rollback offer (the last good run's release) and the reruns made: 2 more (issue 24).
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(run_url(failed_run))
    assert len(queries) <= 20
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(live_url(failed_run))
    assert len(queries) <= 18
    for _ in range(5):  # a longer history costs nothing more
        start(failed_run.flow)
    with CaptureQueriesContext(connection) as more:
        admin_client.get(run_url(failed_run))
    assert len(more) <= 18


def test_compare_with_the_last_good_run(admin_client):
    flow = make_flow(retry_definition())
    from workflows.services.flows import flow_promote, flow_release, flow_update_draft

    good_definition = retry_definition()
    good_definition["steps"][1] = {"key": "flaky", "type": "python", "action": "core.echo",
                                   "args": {"ok": True}}
    flow_update_draft(flow=flow, definition=good_definition)
    flow_promote(flow=flow, number=flow_release(flow=flow).number)
    flow.refresh_from_db()
    good = start(flow, input={"topic": "a"})
    assert good.status == RunStatus.COMPLETED
    flow_promote(flow=flow, number=1)
    flow.refresh_from_db()
    bad = start(flow, input={"topic": "b"})
    url = reverse("admin:workflows_run_compare", args=[bad.pk]) + "?to=last_good"
    body = admin_client.get(url).content.decode()
    assert f"#{good.pk}" in body
    assert "v2" in body and "v1" in body  # the version changed
    assert "topic" in body and "&quot;a&quot;" in body and "&quot;b&quot;" in body
    assert "completed" in body and "failed" in body
    none = admin_client.get(reverse("admin:workflows_run_compare", args=[good.pk])
                            + "?to=last_good").content.decode()
    assert "No earlier completed run" in none
    # The failing step comes first and open; changed keys are marked value by value.
    steps = re.findall(r'data-compare-step="(\w+)"', body)
    assert steps[0] == "flaky" and 'data-compare-step="flaky" data-failing open' in body
    assert re.search(r'data-path="steps.flaky.action"><th><code>steps.flaky.action</code></th>'
                     r'<td><del class="cmp-before">&quot;core.echo&quot;</del></td>'
                     r'<td><ins class="cmp-after">&quot;core.fail&quot;</ins>', body)
    assert 'data-path="topic"' in body
    assert re.search(r'data-compare-step="fetch".*?data-path="output.topic">.*?'
                     r'<del class="cmp-before">&quot;a&quot;</del>.*?'
                     r'<ins class="cmp-after">&quot;b&quot;</ins>', body, re.S)
    assert 'data-path="error"' in body  # the step had no error before, one now


# --- actions -------------------------------------------------------------------------------------


def _events(run) -> int:
    return Event.objects.filter(run=run).count()


def test_an_operator_cancels_a_run_with_a_reason(clients, waiting_run):
    url = reverse("admin:workflows_run_cancel", args=[waiting_run.pk])
    response = clients["operators"].post(url, {"comment": "not needed"})
    assert response.status_code == 302
    waiting_run.refresh_from_db()
    assert waiting_run.status == RunStatus.CANCELED
    event = Event.objects.filter(run=waiting_run, kind="run_canceled").get()
    assert event.actor == "operator" and event.reason == "not needed"
    assert waiting_run.approvals.get().status == "canceled"


@pytest.mark.parametrize("role", ["support", "reviewers", "builders"])
def test_other_roles_cannot_cancel_and_nothing_changes(clients, waiting_run, role):
    before = _events(waiting_run)
    response = clients[role].post(reverse("admin:workflows_run_cancel", args=[waiting_run.pk]))
    assert response.status_code == 403
    assert "not allowed" in response.content.decode()
    waiting_run.refresh_from_db()
    assert waiting_run.status == RunStatus.WAITING_FOR_APPROVAL
    assert _events(waiting_run) == before


def test_canceling_an_ended_run_is_a_message_and_changes_nothing(clients, completed_run):
    before = _events(completed_run)
    response = clients["operators"].post(
        reverse("admin:workflows_run_cancel", args=[completed_run.pk]))
    assert response.status_code == 302
    assert any("already ended" in m for m in messages_of(response))
    completed_run.refresh_from_db()
    assert completed_run.status == RunStatus.COMPLETED and _events(completed_run) == before


def test_an_operator_retries_a_failed_run(clients, failed_run):
    response = clients["operators"].post(
        reverse("admin:workflows_run_retry", args=[failed_run.pk]))
    new = Run.objects.get(retry_of=failed_run)
    assert response.status_code == 302 and response["Location"] == run_url(new)
    assert new.trigger_kind == "retry" and new.trigger_actor == "operator"


def test_retry_can_redo_from_a_chosen_step(clients, completed_run):
    response = clients["operators"].post(
        reverse("admin:workflows_run_retry", args=[completed_run.pk]), {"from_step": "second"})
    new = Run.objects.get(retry_of=completed_run)
    assert response.status_code == 302
    assert new.trigger_payload["from_step"] == "second"
    assert new.step_runs.get(key="first").reused_from_id is not None
    assert new.step_runs.get(key="second").reused_from_id is None


def test_retrying_an_active_run_is_a_message_and_starts_nothing(clients, waiting_run):
    response = clients["operators"].post(
        reverse("admin:workflows_run_retry", args=[waiting_run.pk]))
    assert response.status_code == 302
    assert any("still waiting_for_approval" in m for m in messages_of(response))
    assert not Run.objects.filter(retry_of=waiting_run).exists()


def test_retrying_a_completed_run_without_a_step_is_a_message(clients, completed_run):
    response = clients["operators"].post(
        reverse("admin:workflows_run_retry", args=[completed_run.pk]), follow=True)
    assert "name from_step" in response.content.decode()
    assert not Run.objects.filter(retry_of=completed_run).exists()


@pytest.mark.parametrize("action", ["retry", "replay"])
def test_support_cannot_retry_or_replay(clients, failed_run, action):
    response = clients["support"].post(
        reverse(f"admin:workflows_run_{action}", args=[failed_run.pk]))
    assert response.status_code == 403
    assert Run.objects.count() == 1


def test_an_operator_replays_a_run(clients, completed_run):
    response = clients["operators"].post(
        reverse("admin:workflows_run_replay", args=[completed_run.pk]))
    new = Run.objects.get(replay_of=completed_run)
    assert response.status_code == 302 and response["Location"] == run_url(new)
    assert new.input == completed_run.input and new.version_id == completed_run.version_id


def test_the_buttons_follow_the_role_and_the_state(clients, failed_run, waiting_run):
    operator = clients["operators"]
    failed = operator.get(run_url(failed_run)).content.decode()
    assert 'data-action="retry"' in failed and 'data-action="replay"' in failed
    assert 'data-action="cancel"' not in failed
    waiting = operator.get(run_url(waiting_run)).content.decode()
    assert 'data-action="cancel"' in waiting and 'data-action="retry"' not in waiting
    assert 'data-action="approve"' not in waiting  # operators are not reviewers
    support = clients["support"].get(run_url(waiting_run)).content.decode()
    for action in ("cancel", "retry", "replay", "approve", "reject", "redo"):
        assert f'data-action="{action}"' not in support
    reviewer = clients["reviewers"].get(run_url(waiting_run)).content.decode()
    assert 'data-action="approve"' in reviewer and 'data-action="cancel"' not in reviewer


def test_a_redirect_target_off_site_is_ignored(clients, waiting_run):
    response = clients["operators"].post(
        reverse("admin:workflows_run_cancel", args=[waiting_run.pk]),
        {"next": "https://evil.example.com/"})
    assert response["Location"] == run_url(waiting_run)


def test_a_run_page_for_a_missing_run_is_404(admin_client):
    assert admin_client.get("/admin/workflows/run/999/change/").status_code == 404
    assert admin_client.get("/admin/workflows/run/999/steps/x/").status_code == 404


def test_the_run_page_for_a_rehearsal(admin_client):
    flow = make_flow(echo_definition(), promote=False)
    run = start(flow, draft=True)
    page = admin_client.get(run_url(run)).content.decode()
    assert "draft rehearsal" in page and 'data-run-status="completed"' in page


def test_a_live_run_page_keeps_its_timeline_mode_when_it_polls(admin_client, waiting_run):
    page = admin_client.get(run_url(waiting_run) + "?timeline=full").content.decode()
    polled = re.search(r'id="run-live"[^>]*hx-get="([^"]+)"', page).group(1)
    assert "timeline=full" in polled


def test_the_compact_timeline_hides_queued_running_and_needs_satisfied_moves(
        admin_client, failed_run):
    page = admin_client.get(run_url(failed_run)).content.decode()
    assert 'data-timeline-mode="compact"' in page
    shown = re.findall(r'class="tl-item" data-event="([a-z_]+)"', page)
    routine = {"run_queued", "run_running", "step_queued", "step_running"}
    assert shown and not routine & set(shown)
    assert "step_failed" in shown and "run_failed" in shown
    total = Event.objects.filter(run=failed_run).count()
    assert len(shown) < total and f"{len(shown)} of {total} events" in page
    assert f'href="{run_url(failed_run)}?timeline=full#timeline"' in page
    # Each event shows its date and the time since the one before.
    assert page.count('class="tl-date"') == len(shown)
    assert page.count('class="tl-delta wf-muted"') == len(shown)


def test_a_decision_reads_as_a_sentence_on_the_timeline(admin_client, waiting_run):
    rita = User.objects.create_user("rita", is_staff=True, is_superuser=True)
    approval_approve(approval=waiting_run.approvals.get(), actor=rita, comment="ship it")
    drain()
    page = admin_client.get(run_url(waiting_run)).content.decode()
    assert re.search(r'data-decision="approval_approved">approved by rita: ship it<', page)


def test_a_failure_without_a_traceback_shows_none_on_the_run_page(admin_client, failed_run):
    failed_run.refresh_from_db()
    assert failed_run.status == "failed" and failed_run.error.get("traceback") == ""
    page = admin_client.get(run_url(failed_run)).content.decode()
    error = page[page.index('<div class="run-error">'):]
    error = error[:error.index("</div>")]
    assert "ActionFailed" in error or "message" in error
    assert "traceback" not in error
