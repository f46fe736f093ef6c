from __future__ import annotations

import pytest
from django.urls import reverse

from approvals.models import Approval, ApprovalStatus
from tests.admin.conftest import approval_definition, make_user, start
from tests.admin.helpers import messages_of, run_url
from tests.factories import drain, make_flow
from workflows.models import Event
from workflows.states import RunStatus

pytestmark = pytest.mark.django_db

INBOX = "/admin/approvals/approval/"


def decide_url(approval, decision: str) -> str:
    return reverse(f"admin:approvals_approval_{decision}", args=[approval.pk])


def test_the_inbox_is_the_approval_changelist():
    assert reverse("admin:approvals_approval_changelist") == INBOX


def test_a_reviewer_sees_what_they_may_decide_with_its_data(clients, waiting_run):
    page = clients["reviewers"].get(INBOX).content.decode()
    approval = waiting_run.approvals.get()
    assert f'data-approval="{approval.pk}"' in page
    assert "Approve publishing q3 report" in page  # instructions, references resolved
    assert "&quot;q3 report&quot;" in page  # the data to approve
    assert "Reviewed" in page and f'href="{run_url(waiting_run)}"' in page
    assert 'data-action="approve"' in page and 'data-action="reject"' in page
    assert 'data-action="redo"' in page and '<option value="prepare" selected>' in page
    assert "times out" not in page  # this approval has no timeout


@pytest.mark.parametrize("role", ["support", "operators", "builders", "nobody"])
def test_others_have_nothing_waiting(clients, waiting_run, role):
    page = clients[role].get(INBOX).content.decode()
    assert "Nothing waiting" in page and 'data-action="approve"' not in page


def test_support_reads_every_pending_approval_without_deciding(clients, waiting_run):
    page = clients["support"].get(INBOX + "?tab=all").content.decode()
    assert f'data-approval="{waiting_run.approvals.get().pk}"' in page
    assert 'data-action="approve"' not in page
    assert "All pending" not in clients["builders"].get(INBOX).content.decode()


def test_a_user_named_as_assignee_sees_it(db, waiting_run):
    flow = make_flow({**approval_definition("named"), "steps": [
        {"key": "ask", "type": "approval", "assignees": {"users": ["zoe"]},
         "instructions": "Zoe decides"},
    ]})
    zoe = make_user("zoe")
    run = start(flow)
    from tests.admin.conftest import login

    page = login(zoe).get(INBOX).content.decode()
    assert f'data-approval="{run.approvals.get().pk}"' in page
    assert f'data-approval="{waiting_run.approvals.get().pk}"' not in page


def test_approving_from_the_inbox_moves_the_run_on(clients, users, waiting_run):
    approval = waiting_run.approvals.get()
    response = clients["reviewers"].post(decide_url(approval, "approve"),
                                         {"comment": "ship it", "next": INBOX})
    assert response.status_code == 302 and response["Location"] == INBOX
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert approval.comment == "ship it" and approval.decision_actor == users["reviewers"]
    drain()
    waiting_run.refresh_from_db()
    assert waiting_run.status == RunStatus.COMPLETED
    review = waiting_run.step_runs.get(key="review")
    assert review.output["decision"] == "approved" and review.output["actor"] == "reviewer"


def test_rejecting_fails_the_run(clients, waiting_run):
    approval = waiting_run.approvals.get()
    clients["reviewers"].post(decide_url(approval, "reject"), {"comment": "numbers are off"})
    waiting_run.refresh_from_db()
    assert waiting_run.status == RunStatus.FAILED
    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.REJECTED
    assert Event.objects.filter(run=waiting_run, kind="approval_rejected",
                                reason="numbers are off").exists()


def test_redo_sends_the_run_back_to_the_chosen_step_and_asks_again(clients, waiting_run):
    approval = waiting_run.approvals.get()
    response = clients["reviewers"].post(decide_url(approval, "redo"),
                                         {"comment": "again", "to_step": "prepare"})
    assert response.status_code == 302
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.REDONE and approval.redo_step == "prepare"
    drain()
    assert waiting_run.approvals.filter(status=ApprovalStatus.PENDING).count() == 1
    assert waiting_run.step_runs.get(key="prepare").attempt_count == 2


@pytest.mark.parametrize("role", ["support", "operators", "builders", "nobody"])
@pytest.mark.parametrize("decision", ["approve", "reject", "redo"])
def test_a_forged_decision_from_a_non_assignee_is_403_and_changes_nothing(
        clients, waiting_run, role, decision):
    approval = waiting_run.approvals.get()
    events = Event.objects.filter(run=waiting_run).count()
    response = clients[role].post(decide_url(approval, decision), {"comment": "sneaky"})
    assert response.status_code == 403
    assert "not an assignee" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING and approval.comment == ""
    waiting_run.refresh_from_db()
    assert waiting_run.status == RunStatus.WAITING_FOR_APPROVAL
    assert Event.objects.filter(run=waiting_run).count() == events


def test_deciding_twice_is_a_message_and_changes_nothing(clients, waiting_run):
    approval = waiting_run.approvals.get()
    clients["reviewers"].post(decide_url(approval, "approve"), {"comment": "first"})
    events = Event.objects.filter(run=waiting_run).count()
    response = clients["reviewers"].post(decide_url(approval, "reject"), {"comment": "second"})
    assert response.status_code == 302
    assert any("already approved" in m for m in messages_of(response))
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED and approval.comment == "first"
    assert Event.objects.filter(run=waiting_run).count() == events


def test_redo_to_a_step_that_is_not_before_is_a_message(clients, waiting_run):
    approval = waiting_run.approvals.get()
    response = clients["reviewers"].post(decide_url(approval, "redo"), {"to_step": "publish"},
                                         follow=True)
    assert "does not come before" in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING


def test_the_decided_tab_lists_decisions_with_actor_comment_and_time(clients, waiting_run):
    approval = waiting_run.approvals.get()
    clients["reviewers"].post(decide_url(approval, "approve"), {"comment": "lgtm"})
    page = clients["reviewers"].get(INBOX + "?tab=decided").content.decode()
    assert f'data-approval="{approval.pk}" data-status="approved"' in page
    assert "lgtm" in page and "reviewer" in page
    support = clients["support"].get(INBOX + "?tab=decided").content.decode()
    assert "lgtm" in support  # support reads everything
    nobody = clients["nobody"].get(INBOX + "?tab=decided").content.decode()
    assert "lgtm" not in nobody  # only their own decisions


def test_the_approval_page_shows_one_approval(clients, waiting_run):
    approval = waiting_run.approvals.get()
    url = reverse("admin:approvals_approval_change", args=[approval.pk])
    assert 'data-action="approve"' in clients["reviewers"].get(url).content.decode()
    assert clients["support"].get(url).status_code == 200
    assert clients["nobody"].get(url).status_code == 403


def test_the_step_panel_of_a_waiting_approval_has_the_decision_form(clients, waiting_run):
    url = reverse("admin:workflows_run_step", args=[waiting_run.pk, "review"])
    page = clients["reviewers"].get(url, HTTP_HX_REQUEST="true",
                                    HTTP_HX_CURRENT_URL="http://testserver" + run_url(
                                        waiting_run)).content.decode()
    assert 'data-action="approve"' in page
    assert f'name="next" value="{run_url(waiting_run)}"' in page
