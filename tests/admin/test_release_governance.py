"""The admin side of issue 13: the flow history section, the Releases table's "live since",
the diff page, the promote confirmation and promotion requests in the inbox."""

from __future__ import annotations

import re

from django.urls import reverse

from approvals.models import Approval
from tests.admin.helpers import flow_url, messages_of
from tests.factories import echo, make_flow, simple_definition
from workflows.models import Run
from workflows.services.flows import flow_promote, flow_release, flow_update_draft
from workflows.services.runs import run_start


def _two_releases(actor=None):
    flow = make_flow(simple_definition("gov", steps=[echo("transform", topic="a")]))
    flow_update_draft(flow=flow, definition=simple_definition(
        "gov", steps=[echo("transform", topic="b")]))
    flow_release(flow=flow, notes="second")
    return flow


def test_history_rows_and_live_since_on_the_flow_page(clients, users):
    flow = _two_releases()
    flow_promote(flow=flow, number=2, actor=users["operators"], comment="go")
    page = clients["support"].get(flow_url(flow)).content.decode()
    section = page[page.index('data-section="flow-history"'):]
    kinds = re.findall(r'data-promotion="([a-z_]+)"', section)
    assert kinds == ["promoted", "released", "draft_edited", "promoted", "released",
                     "draft_edited"]
    assert "v1 → v2" in section and "go" in section
    live_row = page[page.index('data-release="2"'):page.index('data-release="1"')]
    assert "live since" in live_row and "by operator" in live_row
    assert 'data-action="diff-previous"' in live_row


def test_the_diff_page_lists_each_changed_value(clients):
    flow = _two_releases()
    url = reverse("admin:workflows_flow_diff", args=[flow.pk]) + "?from=1&to=v2"
    page = clients["support"].get(url).content.decode()
    assert "v1 → v2: 1 change" in page
    assert 'data-path="steps.transform.args.topic"' in page
    assert clients["support"].get(
        reverse("admin:workflows_flow_diff", args=[flow.pk]) + "?from=9&to=draft"
    ).status_code == 404


def test_the_promote_confirmation_counts_changes_and_pinned_runs(clients):
    flow = _two_releases()
    run_start(flow=flow, input={})  # stays queued: in flight on v1
    assert Run.objects.filter(flow=flow).count() == 1
    url = reverse("admin:workflows_flow_promote", args=[flow.pk]) + "?number=2"
    page = clients["operators"].get(url).content.decode()
    assert "v1 → v2: 1 change" in page
    assert 'data-pinned="1"' in page and "1 run in flight stays pinned" in page
    assert "?from=1&amp;to=2" in page
    response = clients["operators"].post(
        reverse("admin:workflows_flow_promote", args=[flow.pk]),
        {"number": 2, "comment": "because"}, follow=True)
    assert "v2 is live." in messages_of(response)
    flow.refresh_from_db()
    assert flow.live_version.number == 2
    assert flow.history.first().comment == "because"


def test_a_promotion_request_shows_in_the_inbox_with_its_diff(clients, users):
    definition = simple_definition("gov2", steps=[echo("transform", topic="a")], promotion={
        "requires_approval": True, "approvers": {"groups": ["reviewers"]}})
    flow = make_flow(definition, promote=False)
    flow_release(flow=flow)
    flow_promote(flow=flow, number=1, actor=users["operators"])
    approval = Approval.objects.get(kind="promotion")
    inbox = reverse("admin:approvals_approval_changelist")
    page = clients["reviewers"].get(inbox).content.decode()
    assert 'data-kind="promotion"' in page and 'data-action="approve"' in page
    assert 'data-path="steps"' in page  # nothing live yet: the whole definition is new
    flow_page = clients["operators"].get(flow_url(flow)).content.decode()
    assert f'data-pending-promotion="{approval.pk}"' in flow_page
    # The requester, were they an approver, is never offered the approve button.
    detail = clients["operators"].get(
        reverse("admin:approvals_approval_change", args=[approval.pk])).content.decode()
    assert "data-own-request" in detail and 'data-action="approve"' not in detail
    response = clients["reviewers"].post(
        reverse("admin:approvals_approval_approve", args=[approval.pk]), follow=True)
    assert any("promotion of v1 of gov2" in m for m in messages_of(response))
    flow.refresh_from_db()
    assert flow.live_version.number == 1
    decided = clients["reviewers"].get(inbox + "?tab=decided").content.decode()
    assert "promotion of v1" in decided
