"""The admin pages in a real browser: the matrix opens the step panel, an approval decided in
the inbox moves the run page on without a reload, a running step's log tails live."""

from __future__ import annotations

import pytest

from approvals.models import ApprovalStatus
from tests.admin.conftest import approval_definition, retry_definition
from tests.browser.conftest import admin_login, make_staff, wait_until
from tests.factories import drain, make_flow
from workflows.engine import attempts, executor
from workflows.models import LogChunk, Run, StepRun
from workflows.services.runs import run_start
from workflows.states import RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_failed_cell_opens_the_panel_with_the_error_and_both_attempts(page, live_server):
    make_staff("sam", "support")
    flow = make_flow(retry_definition())
    run, _ = run_start(flow=flow, input={})
    drain()
    admin_login(page, live_server, "sam")
    page.goto(f"{live_server.url}/admin/workflows/flow/{flow.pk}/change/")
    cell = page.locator(f'[data-run="{run.pk}"][data-step="flaky"][data-status="failed"]')
    cell.click()
    panel = page.locator("#step-panel")
    panel.locator('.sp[data-step="flaky"]').wait_for()
    attempts = panel.locator(".sp-attempt")
    assert attempts.count() == 2
    assert attempts.nth(0).get_attribute("data-status") == "failed"
    assert attempts.nth(1).get_attribute("data-status") == "failed"
    assert "upstream said no" in panel.inner_text()
    assert "ActionFailed" in panel.inner_text()
    assert "is-selected" in cell.get_attribute("class")
    # Another cell replaces the panel's content, not the panel.
    page.click(f'[data-run="{run.pk}"][data-step="fetch"]')
    panel.locator('.sp[data-step="fetch"]').wait_for()
    assert page.locator("#step-panel").count() == 1
    # Support reads, it does not act.
    assert page.locator("[data-action]").count() == 0


def test_approving_in_the_inbox_completes_the_open_run_page_without_a_reload(
        page, live_server):
    make_staff("maria", "reviewers")
    flow = make_flow(approval_definition())
    run, _ = run_start(flow=flow, input={})
    drain()
    assert Run.objects.get(pk=run.pk).status == RunStatus.WAITING_FOR_APPROVAL
    admin_login(page, live_server, "maria")

    page.goto(f"{live_server.url}/admin/workflows/run/{run.pk}/change/")
    page.wait_for_selector('#run-live[data-run-status="waiting_for_approval"]')
    page.evaluate("window.__notReloaded = 'yes'")
    page.click(f'#run-live [data-run="{run.pk}"][data-step="review"]')
    page.locator('#step-panel .sp[data-step="review"]').wait_for()

    inbox = page.context.new_page()
    inbox.goto(f"{live_server.url}/admin/approvals/approval/")
    card = inbox.locator(f'[data-approval="{run.approvals.get().pk}"]')
    card.locator("textarea[name=comment]").fill("looks good")
    card.locator('[data-action="approve"]').click()
    inbox.wait_for_selector(".messagelist .success")
    assert run.approvals.get().status == ApprovalStatus.APPROVED

    drain()  # the engine runs `publish` while the run page is open
    assert Run.objects.get(pk=run.pk).status == RunStatus.COMPLETED
    page.wait_for_selector('#run-live[data-run-status="completed"]', timeout=10_000)
    assert page.evaluate("window.__notReloaded") == "yes"
    # The polling stopped (286) and the open panel followed its own step to the end.
    page.locator('#step-panel .sp-status[data-status="completed"]').wait_for(timeout=10_000)
    assert page.locator('#step-panel .sp[data-step="review"]').count() == 1
    assert page.locator("#run-live[hx-trigger]").count() == 0
    assert "looks good" in page.locator(".wf-timeline").inner_text()


def test_a_running_step_tails_its_log_live(page, live_server):
    make_staff("ada", superuser=True)
    flow = make_flow({"slug": "tail", "name": "Tail", "steps": [
        {"key": "work", "type": "python", "action": "core.echo", "args": {"x": 1}}]})
    run, _ = run_start(flow=flow, input={})
    step = StepRun.objects.get(run=run, key="work")
    claimed = executor.claim(step.pk)
    attempts.attempt_write(claimed.attempt)  # what the worker writes at its first check
    admin_login(page, live_server, "ada")
    page.goto(f"{live_server.url}/admin/workflows/run/{run.pk}/change/")
    page.click(f'#run-live [data-run="{run.pk}"][data-step="work"]')
    page.locator('#step-panel .sp[data-step="work"]').wait_for()
    for n in (1, 2, 3):
        LogChunk.objects.create(step_run=step, attempt=claimed.attempt, seq=n,
                                text=f"progress {n}/3\n")
    # a locator, not wait_for_function: the CSP forbids evaluating strings in the page
    page.locator("#sp-log-lines", has_text="progress 3/3").wait_for(timeout=10_000)
    assert page.locator("#sp-log-lines .log-chunk").count() == 3
    executor.finish(claimed, executor.execute(claimed))
    page.locator('#step-panel .sp-status[data-status="completed"]').wait_for(timeout=10_000)
    page.wait_for_selector('#run-live[data-run-status="completed"]', timeout=10_000)
    assert page.locator("#sp-log-lines .log-chunk").count() == 3  # appended once, not twice


def test_cancel_asks_for_confirmation_and_a_reason(page, live_server):
    make_staff("otto", "operators")
    flow = make_flow(approval_definition())
    run, _ = run_start(flow=flow, input={})
    drain()
    admin_login(page, live_server, "otto")
    page.goto(f"{live_server.url}/admin/workflows/run/{run.pk}/change/")
    page.fill("#run-live input[name=comment]", "wrong input")
    dialogs = []

    def answer(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss() if len(dialogs) == 1 else dialog.accept()

    page.on("dialog", answer)
    # People get the dialog; automation only when it asks for it (see admin.js).
    page.evaluate("window.WF_CONFIRM_UNDER_AUTOMATION = true")
    page.click('button[data-action="cancel"]')
    page.wait_for_timeout(300)
    assert Run.objects.get(pk=run.pk).status == RunStatus.WAITING_FOR_APPROVAL  # dismissed
    page.click('button[data-action="cancel"]')
    page.wait_for_selector('#run-live[data-run-status="canceled"]')
    assert len(dialogs) == 2 and "Cancel run" in dialogs[0]
    wait_until(lambda: Run.objects.get(pk=run.pk).status == RunStatus.CANCELED)
    assert "wrong input" in page.locator(".wf-timeline").inner_text()


def test_automation_that_expects_no_dialog_still_acts(page, live_server):
    make_staff("opal", "operators")
    flow = make_flow(approval_definition())
    run, _ = run_start(flow=flow, input={})
    drain()
    admin_login(page, live_server, "opal")
    page.goto(f"{live_server.url}/admin/workflows/run/{run.pk}/change/")
    page.click('button[data-action="cancel"]')
    page.wait_for_selector('#run-live[data-run-status="canceled"]')
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELED
