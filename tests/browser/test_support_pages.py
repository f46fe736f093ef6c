"""Support pages in a real browser: the step panel's input apart from its collapsed
configuration and a reused step's link to its source; a decided approval read as a decision;
the inbox filters; times in the reader's zone (the browser's own, through the wf_tz cookie)."""

from __future__ import annotations

import re

import pytest

from approvals.models import Approval
from approvals.services import approval_approve, approval_reject
from tests.admin.conftest import approval_definition, retry_definition
from tests.browser.conftest import admin_login, make_staff
from tests.factories import drain, make_flow
from workflows.services.runs import run_retry, run_start

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_step_panel_shows_the_input_received_and_folds_the_configuration(
        page, live_server):
    make_staff("sam", "support")
    operator = make_staff("olga", "operators")
    flow = make_flow(retry_definition())
    run, _ = run_start(flow=flow, input={"topic": "monthly"})
    drain()
    admin_login(page, live_server, "sam")
    page.goto(f"{live_server.url}/admin/workflows/run/{run.pk}/change/")
    page.click(f'#run-live [data-run="{run.pk}"][data-step="flaky"]')
    panel = page.locator('#step-panel .sp[data-step="flaky"]')
    panel.wait_for()
    received = panel.locator('[data-section="step-input"]')
    assert "upstream said no" in received.inner_text()
    assert "max_attempts" not in received.inner_text()
    config = panel.locator('details[data-section="step-config"]')
    assert config.get_attribute("open") is None
    assert not config.locator(".wf-json").is_visible()  # collapsed
    config.locator("summary").click()
    assert config.locator(".wf-json").is_visible()
    assert "max_attempts" in config.inner_text() and "core.fail" in config.inner_text()
    assert panel.locator(".sp-trace").count() == 0  # ActionFailed carries no traceback
    # The input was resolved from the run's input.
    page.click(f'#run-live [data-run="{run.pk}"][data-step="fetch"]')
    fetch = page.locator('#step-panel .sp[data-step="fetch"]')
    fetch.wait_for()
    assert "monthly" in fetch.locator('[data-section="step-input"]').inner_text()

    # A retry reuses `fetch`: its panel links to fetch of this run, which opens its panel.
    retry = run_retry(run=run, actor=operator)
    page.goto(f"{live_server.url}/admin/workflows/run/{retry.pk}/change/")
    page.click(f'#run-live [data-run="{retry.pk}"][data-step="fetch"]')
    link = page.locator('#step-panel [data-reused-link]')
    link.wait_for()
    assert link.inner_text() == f"fetch of run #{run.pk}"
    link.click()
    page.wait_for_url(re.compile(rf"/run/{run.pk}/change/#step=fetch$"))
    page.locator(f'#step-panel .sp[data-run="{run.pk}"][data-step="fetch"]').wait_for()
    assert "monthly" in page.locator('#step-panel [data-section="step-input"]').inner_text()


def test_a_decided_approval_reads_as_a_decision(page, live_server):
    rita = make_staff("rita", "reviewers")
    flow = make_flow(approval_definition())
    run, _ = run_start(flow=flow, input={})
    drain()
    approval = Approval.objects.get(run=run)
    approval_approve(approval=approval, actor=rita, comment="ship it")
    admin_login(page, live_server, "rita")
    page.goto(f"{live_server.url}/admin/approvals/approval/{approval.pk}/change/")
    decision = page.locator('[data-section="decision"]')
    assert decision.get_attribute("data-status") == "approved"
    text = decision.inner_text()
    assert "approved" in text and "rita" in text and "ship it" in text
    assert decision.locator("time").count() == 1
    assert page.locator("[data-action]").count() == 0
    assert page.locator("textarea[name=comment]").count() == 0
    assert "times out" not in page.locator("#content").inner_text()
    assert "waiting" not in page.locator("#content").inner_text()


def test_the_inbox_filters_decisions_by_flow_status_and_decider_and_searches(
        page, live_server):
    rita = make_staff("rita", "reviewers")
    raj = make_staff("raj", "reviewers")
    make_staff("sue", "support")
    reports = make_flow(approval_definition("reports"))
    invoices = make_flow(approval_definition("invoices"))
    decided = {}
    for name, flow, decider, decide, comment in (
            ("a", reports, rita, approval_approve, "fine"),
            ("b", invoices, raj, approval_reject, "totals are off"),
            ("c", invoices, rita, approval_approve, "ok now")):
        run, _ = run_start(flow=flow, input={})
        drain()
        approval = Approval.objects.get(run=run)
        decide(approval=approval, actor=decider, comment=comment)
        decided[name] = approval.pk
    admin_login(page, live_server, "sue")
    page.goto(f"{live_server.url}/admin/approvals/approval/?tab=decided")

    def shown() -> set[int]:
        return {int(r.get_attribute("data-approval"))
                for r in page.locator("table.ap-decided tr[data-approval]").all()}

    assert shown() == set(decided.values())
    form = page.locator("form[data-inbox-filters]")
    form.locator("select[name=flow]").select_option("invoices")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"flow=invoices"))
    assert shown() == {decided["b"], decided["c"]}
    form.locator("select[name=decider]").select_option("rita")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"decider=rita"))
    assert shown() == {decided["c"]}
    form.locator("select[name=decider]").select_option("")
    form.locator("select[name=status]").select_option("rejected")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"status=rejected"))
    assert shown() == {decided["b"]}
    page.locator("[data-clear-filters]").click()
    page.wait_for_url(re.compile(r"\?tab=decided$"))
    form.locator("input[name=q]").fill("totals")
    form.locator("input[name=q]").press("Enter")
    page.wait_for_url(re.compile(r"q=totals"))
    assert shown() == {decided["b"]}
    # The tabs keep the filters.
    assert "q=totals" in page.locator('[data-tab="pending"]').get_attribute("href")


def test_times_show_in_the_browsers_zone_from_the_next_page_on(browser, live_server,
                                                               transactional_db):
    from tests.browser.conftest import ensure_roles

    ensure_roles()
    make_staff("ada", superuser=True)
    flow = make_flow(approval_definition())
    run, _ = run_start(flow=flow, input={})
    drain()
    context = browser.new_context(timezone_id="Asia/Tokyo")
    try:
        page = context.new_page()
        admin_login(page, live_server, "ada")
        page.goto(f"{live_server.url}/admin/workflows/run/{run.pk}/change/")
        assert any(c["name"] == "wf_tz" and c["value"] == "Asia/Tokyo"
                   for c in context.cookies())
        page.reload()
        created = page.locator(".wf-sub time").first
        assert created.inner_text().endswith(" JST")
        assert created.get_attribute("datetime").endswith("Z")
        assert "ago" in created.get_attribute("title") or created.get_attribute(
            "title") == "just now"
    finally:
        context.close()
