"""The support desk at laptop width, in a real headless Chromium at 1366×768 (issue 24): the
runs list fits without horizontal scrolling, and a failed run's page offers the cure (roll back
to the last good version, or run the input there), links its reruns both ways, asks before a
second rerun naming the first, and shows its whole graph."""

from __future__ import annotations

import re

import pytest
from django.db import connection

from tests.admin.conftest import approval_definition
from tests.browser.conftest import admin_login, make_staff, wait_until
from tests.factories import drain, make_flow, simple_definition
from tests.history import broken_release_history
from workflows.models import FlowHistory, Run
from workflows.services.runs import run_rerun, run_retry, run_start
from workflows.states import FlowHistoryKind, RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAPTOP = {"width": 1366, "height": 768}
NO_PAGE_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


def started(flow, **kwargs) -> Run:
    run, _ = run_start(flow=flow, **kwargs)
    drain()
    return Run.objects.get(pk=run.pk)


def six_digit_run_ids() -> None:
    """Runs numbered from 123457 on, as in a deployment that has run for a while (ids as wide
    as a real runs list shows them)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT setval(pg_get_serial_sequence('workflows_run', 'id'), 123456)")
        else:
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = 'workflows_run'")
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('workflows_run', 123456)")


def test_the_runs_list_fits_a_laptop(page, live_server):
    six_digit_run_ids()
    make_staff("sam", "support")
    history = broken_release_history(good=2, bad=2)
    bad = history.bad_runs[-1]
    retry = run_retry(run=bad, actor=None)
    rerun = run_rerun(run=bad, actor=None)
    drain()
    invoices = make_flow(simple_definition(
        "invoice-sync", input={"invoice": {"type": "string"}, "note": {"type": "string"}},
        steps=[{"key": "post", "type": "python", "action": "core.echo"}]))
    started(invoices, input={"invoice": "INV-1010", "note": "a long note " * 20})
    started(invoices, input={"invoice": "INV-1011", "note": "x"}, actor=None,
            trigger_kind="schedule")
    waiting = started(make_flow(approval_definition()), input={})
    assert waiting.status == RunStatus.WAITING_FOR_APPROVAL

    page.set_viewport_size(LAPTOP)
    admin_login(page, live_server, "sam")
    page.goto(f"{live_server.url}/admin/workflows/run/")
    assert page.locator("#nav-sidebar").count() == 0
    assert page.evaluate(NO_PAGE_SCROLL), "the page scrolls sideways"
    results = page.locator("#changelist .results")
    widths = results.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert widths[0] <= widths[1], f"the table scrolls: {widths}"
    # Every column that answers "what ran and why" is on screen.
    for column in ("status_cell", "flow", "run", "trigger", "created", "duration"):
        box = page.locator(f"#result_list th.column-{column}").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1366, column
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == Run.objects.count()
    trigger = page.locator("#result_list td.field-trigger")
    texts = trigger.all_inner_texts()
    assert f"retry of #{bad.pk}" in texts and f"rerun of #{bad.pk}" in texts
    assert "schedule" in texts and "schedule schedule" not in " ".join(texts)
    assert retry.pk != rerun.pk
    # Created: UTC to the second in the cell, the reader's zone on hover.
    created = page.locator("#result_list td.field-created time").first
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", created.inner_text())
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+", created.get_attribute("title"))

    # "Today" filters on the creation time: the run waiting for approval stays.
    page.click('#changelist-filter a:has-text("Today")')
    page.wait_for_url(re.compile(r"created=today"))
    listed = page.locator("#result_list .field-run span[data-run]").evaluate_all(
        "els => els.map(e => +e.dataset.run)")
    assert waiting.pk in listed

    # The search box finds an input value, saying which field matched.
    page.goto(f"{live_server.url}/admin/workflows/run/")
    assert "input value" in page.locator("#searchbar").get_attribute("placeholder")
    page.fill("#searchbar", "INV-1010")
    page.press("#searchbar", "Enter")
    page.wait_for_url(re.compile(r"q=INV-1010"))
    assert page.locator("#result_list tbody tr").count() == 1
    assert page.locator('[data-match-field="input"]').inner_text().startswith("input")
    assert page.evaluate(NO_PAGE_SCROLL)
    assert page.locator("#changelist .results").evaluate("el => el.scrollWidth <= el.clientWidth")


def test_a_failed_runs_page_at_laptop_width_offers_the_cure(page, live_server):
    make_staff("otto", "operators")
    history = broken_release_history(good=2, bad=2)
    bad, good = history.bad_runs[-1], history.good_runs[-1]
    page.set_viewport_size(LAPTOP)
    admin_login(page, live_server, "otto")
    page.goto(f"{live_server.url}/admin/workflows/run/{bad.pk}/change/")
    assert page.locator("#nav-sidebar").count() == 0
    assert page.evaluate(NO_PAGE_SCROLL), "the run page scrolls sideways"

    # The whole graph is visible: the last step is not cut off.
    graph = page.locator('[data-section="graph"] .wf-graph-scroll')
    assert graph.evaluate("el => el.scrollWidth <= el.clientWidth")
    frame = graph.bounding_box()
    last = page.locator('[data-section="graph"] [data-step="load"]').bounding_box()
    assert last["x"] + last["width"] <= frame["x"] + frame["width"]

    # What happens next: roll back first, then run the input on v1, then live.
    box = page.locator('[data-section="next"]')
    actions = box.locator("[data-action]").evaluate_all("els => els.map(e => e.dataset.action)")
    assert actions[:3] == ["rollback", "rerun-version", "rerun-live"]
    assert box.locator('[data-action="rollback"]').inner_text() == (
        f"Roll back to v1 (last good: #{good.pk})")
    assert f"#{good.pk}, last good → #{history.bad_runs[0].pk}, first bad" in " ".join(
        box.locator('[data-baseline="explain"]').inner_text().split())
    compare = page.locator('#compare-next [data-baseline="compare"]')
    compare.wait_for()
    assert compare.inner_text().startswith(f"#{good.pk}, last good → this run")

    # Run this input on v1: a rerun pinned to v1, linked both ways.
    box.locator('[data-action="rerun-version"]').click()
    page.wait_for_url(re.compile(r"/admin/workflows/run/(\d+)/change/$"))
    new = wait_until(lambda: Run.objects.filter(rerun_of=bad).first())
    assert new.version_id == history.v1.pk
    drain()
    page.wait_for_selector('#run-live[data-run-status="completed"]')
    chain = " ".join(page.locator("nav.wf-chain").inner_text().split())
    assert chain.startswith(f"#{bad.pk} (failed) rerun → #{new.pk} this run")
    page.goto(f"{live_server.url}/admin/workflows/run/{bad.pk}/change/")
    chain = " ".join(page.locator("nav.wf-chain").inner_text().split())
    assert f"rerun → #{new.pk} (completed)" in chain

    # A second rerun asks first, naming the first one; dismissed, nothing starts.
    questions: list[str] = []

    def dismiss(dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.evaluate("() => { window.WF_CONFIRM_UNDER_AUTOMATION = true; }")
    page.locator('[data-section="next"] [data-action="rerun-live"]').click()
    wait_until(lambda: questions)
    assert questions[0].startswith(f"Run #{new.pk} (completed) already reran this input")
    assert Run.objects.filter(rerun_of=bad).count() == 1
    page.remove_listener("dialog", dismiss)
    page.evaluate("() => { window.WF_CONFIRM_UNDER_AUTOMATION = false; }")

    # Roll back: the promotion page names the last live and last good versions.
    page.locator('[data-section="next"] [data-action="rollback"]').click()
    page.wait_for_selector('[data-section="release-facts"]')
    facts = " ".join(page.locator('[data-section="release-facts"]').inner_text().split())
    assert "Live now: v2" in facts and "Last live before it: v1" in facts
    assert f"Last good: v1 (run #{new.pk}" in facts
    assert page.evaluate(NO_PAGE_SCROLL)
    page.click('[data-action="confirm-promote"]')
    page.wait_for_selector(".messagelist .success")
    entry = FlowHistory.objects.filter(flow=history.flow).first()
    assert (entry.kind, entry.from_version, entry.to_version) == (
        FlowHistoryKind.ROLLED_BACK, 2, 1)
    assert f"run #{bad.pk} failed on v2" in entry.comment


@pytest.mark.parametrize("width", [1366, 1400])
def test_a_five_step_runs_graph_is_whole_at_laptop_width(page, live_server, width):
    """The run page's graph cut the last step off at 1400 px (issue 24)."""
    make_staff("sue", "support")
    keys = ["fetch", "validate", "transform", "enrich", "load"]
    run = started(make_flow(simple_definition("five", steps=[
        {"key": k, "type": "python", "action": "core.echo", "args": {"k": k}} for k in keys])))
    page.set_viewport_size({"width": width, "height": 800})
    admin_login(page, live_server, "sue")
    page.goto(f"{live_server.url}/admin/workflows/run/{run.pk}/change/")
    graph = page.locator('[data-section="graph"] .wf-graph-scroll')
    frame = graph.bounding_box()
    last = page.locator('[data-section="graph"] [data-step="load"]').bounding_box()
    assert last["x"] + last["width"] <= frame["x"] + frame["width"]
    assert graph.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert page.evaluate(NO_PAGE_SCROLL)
