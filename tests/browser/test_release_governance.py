"""Release governance in a real browser (issue 13): a promotion request made by one person and
approved by another (the requester cannot approve it), the flow history rows, the diff page."""

from __future__ import annotations

import pytest

from approvals.models import Approval, ApprovalStatus
from tests.browser.conftest import admin_login, make_staff
from tests.factories import echo, make_flow, simple_definition
from workflows.models import Flow
from workflows.services.flows import flow_release, flow_update_draft

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _guarded_flow() -> Flow:
    definition = simple_definition("guarded", steps=[echo("transform", topic="a")], promotion={
        "requires_approval": True, "approvers": {"groups": ["reviewers"]}})
    flow = make_flow(definition, promote=False)
    flow_release(flow=flow)
    return flow


def _history_kinds(page) -> list[str]:
    rows = page.locator('[data-section="flow-history"] [data-promotion]')
    return [rows.nth(i).get_attribute("data-promotion") for i in range(rows.count())]


def test_a_promotion_request_goes_live_only_when_someone_else_approves(page, live_server):
    make_staff("olga", "operators", "reviewers")
    make_staff("maria", "reviewers")
    flow = _guarded_flow()
    flow_url = f"{live_server.url}/admin/workflows/flow/{flow.pk}/change/"

    admin_login(page, live_server, "olga")
    page.goto(flow_url)
    page.click('[data-action="promote"][data-version="1"]')
    page.wait_for_selector('[data-section="promote-confirm"]')
    assert "Two-person rule" in page.inner_text('[data-section="promote-confirm"]')
    page.fill("#promote-comment", "first release")
    page.click('[data-action="confirm-promote"]')
    page.wait_for_selector("[data-pending-promotion]")
    flow.refresh_from_db()
    assert flow.live_version_id is None
    approval = Approval.objects.get(kind="promotion")
    assert _history_kinds(page)[0] == "promotion_requested"

    # The requester sees the request in the inbox (as a reviewer) but cannot approve it.
    page.goto(f"{live_server.url}/admin/approvals/approval/")
    card = page.locator(f'[data-approval="{approval.pk}"][data-kind="promotion"]')
    card.wait_for()
    assert card.locator("[data-own-request]").count() == 1
    assert card.locator('[data-action="approve"]').count() == 0

    page.context.clear_cookies()
    admin_login(page, live_server, "maria")
    page.goto(f"{live_server.url}/admin/approvals/approval/")
    card = page.locator(f'[data-approval="{approval.pk}"][data-kind="promotion"]')
    assert card.locator('[data-path="steps"]').count() == 1
    card.locator('textarea[name="comment"]').fill("looks right")
    card.locator('[data-action="approve"]').click()
    page.wait_for_selector(".messagelist")
    assert Approval.objects.get(pk=approval.pk).status == ApprovalStatus.APPROVED
    flow.refresh_from_db()
    assert flow.live_version.number == 1

    page.goto(flow_url)
    assert _history_kinds(page) == ["promoted", "promotion_requested", "released",
                                    "draft_edited"]
    promoted = page.locator('[data-section="flow-history"] [data-promotion="promoted"]')
    assert "maria" in promoted.inner_text() and "requested by olga" in promoted.inner_text()
    assert "looks right" in promoted.inner_text()
    live_row = page.locator('[data-release="1"] [data-live-since]')
    assert "live since" in live_row.inner_text() and "by maria" in live_row.inner_text()


def test_the_diff_page_from_a_release_row(page, live_server):
    make_staff("sam", "support")
    flow = make_flow(simple_definition("diffy", steps=[echo("transform", topic="a")]))
    flow_update_draft(flow=flow, definition=simple_definition(
        "diffy", steps=[echo("transform", topic="b"), echo("publish", done=True)]))
    flow_release(flow=flow)
    admin_login(page, live_server, "sam")
    page.goto(f"{live_server.url}/admin/workflows/flow/{flow.pk}/change/")
    page.click('[data-release="2"] [data-action="diff-previous"]')
    section = page.locator('[data-section="diff"]')
    section.wait_for()
    assert section.get_attribute("data-from") == "1" and section.get_attribute("data-to") == "2"
    assert page.inner_text("[data-summary]") == "v1 → v2: 2 changes"
    row = page.locator('[data-path="steps.transform.args.topic"]')
    assert row.locator("td").nth(0).inner_text() == "a"
    assert row.locator("td").nth(1).inner_text() == "b"
    assert page.locator('[data-path="steps.publish"]').count() == 1
    # Choose other versions with the form: the draft against v1.
    page.select_option('select[name="to"]', "draft")
    page.click('[data-section="diff"] button[type="submit"]')
    page.wait_for_selector('[data-section="diff"][data-to="draft"]')
    assert page.inner_text("[data-summary]") == "v1 → draft: 2 changes"
