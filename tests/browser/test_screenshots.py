"""The pages with a realistic history, as a person sees them (and, with WF_SCREENSHOTS=1, the
PNGs in docs/screenshots/ that the README shows)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import admin_login, make_staff, save_screenshot
from tests.browser.scene import build_scene

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_pages_with_a_real_history(page, live_server):
    # ada reviews too: "Waiting for me" lists what is assigned to her (issue 24), not all.
    admin = make_staff("ada", "reviewers", superuser=True)
    reviewer = make_staff("maria", "reviewers")
    scene = build_scene(admin=admin, reviewer=reviewer)
    flow, failed = scene["flow"], scene["failed"]
    page.set_viewport_size({"width": 1500, "height": 1000})
    admin_login(page, live_server, "ada")

    # The workflows home: what waits for me, what failed today, what runs now, each flow.
    page.goto(f"{live_server.url}/admin/")
    failed_rows = page.locator('[data-section="failed-recent"] tr[data-run]')
    assert failed_rows.count() == 2  # v1's and v2's failure (the retry completed)
    assert page.locator(f'[data-section="active"] tr[data-run="{scene["running"].pk}"]'
                        ).count() == 1
    assert page.locator('[data-section="my-approvals"] tr[data-run]').count() == 2
    assert page.locator('[data-count="all-waiting"]').inner_text() == "all waiting: 2"
    assert page.locator('[data-section="flows"] tr[data-flow]').count() == 2
    save_screenshot(page, "home", full_page=True)

    page.goto(f"{live_server.url}/admin/workflows/flow/{flow.pk}/change/")
    page.wait_for_selector("#matrix table.mx")
    # Steps down (the union of both releases), runs across, newest on the left.
    headers = page.locator("th.mx-run").evaluate_all("els => els.map(e => e.dataset.runHeader)")
    assert [int(h) for h in headers] == sorted((int(h) for h in headers), reverse=True)
    steps = page.locator("th.mx-step .mx-key").all_inner_texts()
    assert steps[:2] == ["fetch", "transform"] and "count" in steps and "notify" in steps
    # The release changed between runs: visible at a glance on the header.
    assert page.locator(".mx-ver.changed").count() >= 1
    # A step a version lacks is an empty cell.
    assert page.locator(f'[data-run="{failed.pk}"][data-step="count"][data-status="absent"]'
                        ).count() == 1
    save_screenshot(page, "flow-page", full_page=True)

    page.click(f'[data-run="{failed.pk}"][data-step="transform"]')
    panel = page.locator("#step-panel")
    panel.locator(".sp-attempt").nth(1).wait_for()
    assert panel.locator(".sp-attempt").count() == 2
    assert "column amount_eur missing" in panel.inner_text()
    page.evaluate("window.scrollTo(0, document.querySelector('.wf-layout').offsetTop - 10)")
    save_screenshot(page, "step-panel")

    retry = scene["retry"]
    page.goto(f"{live_server.url}/admin/workflows/run/{retry.pk}/change/")
    page.wait_for_selector("#run-live")
    assert page.locator(f'.wf-chain [data-chain-run="{failed.pk}"]').count() == 1
    page.click(f'#run-live [data-run="{retry.pk}"][data-step="transform"]')
    page.locator("#step-panel .sp-attempt").first.wait_for()
    page.click("[data-action=compare]")
    page.locator("#compare .cmp").wait_for()
    save_screenshot(page, "run-page", full_page=True)

    # A failed run: what happens next (pinned, live, draft; why it broke), then the comparison.
    page.goto(f"{live_server.url}/admin/workflows/run/{failed.pk}/change/")
    page.locator('[data-section="next"] [data-explain]').wait_for()
    page.locator("#compare-next .cmp").wait_for()
    save_screenshot(page, "failed-run", full_page=True)

    page.goto(f"{live_server.url}/admin/approvals/approval/")
    page.wait_for_selector(".ap-card")
    assert page.locator(".ap-card").count() == 2
    save_screenshot(page, "approvals-inbox", full_page=True)
