"""The support desk in a real browser (issue 12): the workflows home's sections, the lookup box
reaching the run from each kind of key, running a failed run's input on the live version, the
first bad run explained on a history where v2 broke a step, and the compact timeline."""

from __future__ import annotations

import re

import pytest

from tests.admin.conftest import approval_definition, echo_definition
from tests.browser.conftest import admin_login, make_staff, wait_until
from tests.factories import callback_definition, drain, make_flow, token_of
from tests.history import broken_release_history, pipeline_definition, release_live
from workflows.models import Run
from workflows.services.runs import run_start
from workflows.states import RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def started(flow, **kwargs) -> Run:
    run, _ = run_start(flow=flow, **kwargs)
    drain()
    return Run.objects.get(pk=run.pk)


def test_the_home_shows_my_approvals_failures_active_runs_and_flows(page, live_server):
    make_staff("rita", "reviewers", "operators")
    history = broken_release_history(good=2, bad=2)
    waiting = started(make_flow(approval_definition()), input={})
    started(make_flow(echo_definition()), input={})
    admin_login(page, live_server, "rita")
    page.goto(f"{live_server.url}/admin/")
    assert page.locator("#site-name").inner_text() == "Workflows"
    mine = page.locator('[data-section="my-approvals"] tr[data-run]')
    assert mine.evaluate_all("rows => rows.map(r => +r.dataset.run)") == [waiting.pk]
    assert "minute" in mine.first.locator("td").nth(4).inner_text()  # how long it has waited
    failed = page.locator('[data-section="failed-recent"] tr[data-run]')
    assert sorted(failed.evaluate_all("rows => rows.map(r => +r.dataset.run)")) == sorted(
        r.pk for r in history.bad_runs)
    assert "transform" in failed.first.inner_text()
    active = page.locator('[data-section="active"] tr[data-run]')
    assert active.evaluate_all("rows => rows.map(r => +r.dataset.run)") == [waiting.pk]
    flows = page.locator('[data-section="flows"] tr[data-flow="pipeline"]')
    assert "v2" in flows.inner_text() and "50%" in flows.inner_text()
    # A failure row leads to its run; "All tables" keeps Django's index reachable.
    failed.first.locator("a[href*='/workflows/run/']").click()
    page.wait_for_selector('#run-live[data-run-status="failed"]')
    page.goto(f"{live_server.url}/admin/")
    page.click('[data-link="tables"]')
    page.wait_for_selector("#content-main .app-workflows")


def test_the_lookup_box_reaches_the_run_from_each_kind_of_key(page, live_server):
    make_staff("sam", "support")
    waiting = started(make_flow(approval_definition()), input={})
    approval = waiting.approvals.get()
    hook_run = started(make_flow(callback_definition()), input={},
                       idempotency_key="webhook:dlv-20931")
    token = token_of(hook_run)
    admin_login(page, live_server, "sam")
    keys = [
        (str(waiting.pk), waiting), (f"A{approval.pk}", waiting),
        (f"{live_server.url}/admin/approvals/approval/{approval.pk}/change/", waiting),
        (f"http://127.0.0.1:8000/api/v1/callbacks/{token}", hook_run), (token, hook_run),
        ("dlv-20931", hook_run),
    ]
    # From the home page's box, then from the box on top of another page.
    for n, (text, run) in enumerate(keys):
        page.goto(f"{live_server.url}/admin/" if n % 2 == 0
                  else f"{live_server.url}/admin/workflows/flow/")
        box = page.locator("form[data-lookup]")
        assert box.count() == 1
        box.locator("input[name=q]").fill(text)
        box.locator("input[name=q]").press("Enter")
        page.wait_for_url(re.compile(rf"/admin/workflows/run/{run.pk}/change/$"))
        assert page.locator("#run-live").count() == 1
    # Several matches: the candidates, each linking to its run.
    flow = make_flow(approval_definition("quarterly"))
    runs = [started(flow, input={"topic": "quarterly-close"}) for _ in range(2)]
    page.goto(f"{live_server.url}/admin/")
    page.fill("form[data-lookup] input[name=q]", "quarterly-close")
    page.press("form[data-lookup] input[name=q]", "Enter")
    page.wait_for_selector('[data-section="lookup-results"]')
    listed = page.locator('[data-section="lookup-results"] tr[data-run]').evaluate_all(
        "rows => rows.map(r => +r.dataset.run)")
    assert sorted(listed) == sorted(r.pk for r in runs)


def test_a_failed_run_explains_its_first_bad_run_and_reruns_on_live(page, live_server):
    make_staff("otto", "operators")
    history = broken_release_history(good=2, bad=3)
    first_bad, failed = history.bad_runs[0], history.bad_runs[-1]
    admin_login(page, live_server, "otto")
    page.goto(f"{live_server.url}/admin/workflows/run/{failed.pk}/change/")
    box = page.locator('[data-section="next"]')
    why = box.locator("[data-explain]")
    assert why.get_attribute("data-first-bad-run") == str(first_bad.pk)
    assert why.get_attribute("data-last-good-run") == str(history.good_runs[-1].pk)
    text = " ".join(why.inner_text().split())
    assert f"failing since #{first_bad.pk}, the first run on v2" in text
    assert "v2 changed steps.transform.action" in text
    assert "pinned v2" in box.inner_text() and "live v2" in box.inner_text()
    # Compare with the last good run loads under the box, the failing step open first.
    failing = page.locator('#compare-next details[data-compare-step="transform"][open]')
    failing.wait_for()
    assert page.locator("#compare-next [data-compare-step]").first.get_attribute(
        "data-compare-step") == "transform"
    assert failing.locator('[data-path^="error"]').count() >= 1  # no error before, one now
    assert page.locator('#compare-next [data-path="steps.transform.action"]').count() == 1

    # The fix is released: run this input on the live version, from the box.
    v3 = release_live(history.flow, pipeline_definition())
    page.reload()
    assert "live v3" in page.locator('[data-section="next"]').inner_text()
    page.click('[data-section="next"] [data-action="rerun-live"]')
    page.wait_for_url(re.compile(r"/admin/workflows/run/(\d+)/change/$"))
    new = wait_until(lambda: Run.objects.filter(rerun_of=failed).first())
    assert page.url.endswith(f"/admin/workflows/run/{new.pk}/change/")
    assert new.version_id == v3.pk and new.input == failed.input
    drain()
    page.wait_for_selector('#run-live[data-run-status="completed"]')
    assert Run.objects.get(pk=new.pk).status == RunStatus.COMPLETED


def test_the_timeline_is_compact_until_asked_for_everything(page, live_server):
    make_staff("rita", "reviewers")
    run = started(make_flow(approval_definition()), input={})
    admin_login(page, live_server, "rita")
    page.goto(f"{live_server.url}/admin/approvals/approval/")
    card = page.locator(f'[data-approval="{run.approvals.get().pk}"]')
    card.locator("textarea[name=comment]").fill("ship it")
    card.locator('[data-action="approve"]').click()
    page.wait_for_selector(".messagelist .success")
    drain()
    page.goto(f"{live_server.url}/admin/workflows/run/{run.pk}/change/")
    timeline = page.locator('[data-section="timeline"]')
    assert timeline.get_attribute("data-timeline-mode") == "compact"
    kinds = timeline.locator(".tl-item").evaluate_all("els => els.map(e => e.dataset.event)")
    assert not {"step_queued", "step_running", "run_queued", "run_running"} & set(kinds)
    assert "approved by rita: ship it" in timeline.inner_text()
    assert timeline.locator(".tl-date").count() == len(kinds)
    compact = len(kinds)
    page.click('[data-timeline-link="full"]')
    page.wait_for_selector('[data-section="timeline"][data-timeline-mode="full"]')
    assert page.locator('[data-section="timeline"] .tl-item').count() > compact
