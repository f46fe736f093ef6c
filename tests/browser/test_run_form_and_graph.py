"""The run form and the flow graph in a real browser: a wrong-type value is that field's error
and starts nothing, a valid form starts the run; the run page's graph nodes carry data-step and
data-status and open the step panel; a 30-step graph renders whole."""

from __future__ import annotations

import pytest

from tests.admin.conftest import retry_definition
from tests.admin.test_run_form import TYPED
from tests.browser.conftest import admin_login, make_staff
from tests.factories import drain, make_flow
from tests.workflows.definitions.test_layout import wide_definition
from workflows.models import Run, StepRun
from workflows.services.runs import run_start

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_run_form_names_a_wrong_value_and_starts_nothing_then_starts(page, live_server):
    make_staff("olga", "operators")
    flow = make_flow(TYPED)
    admin_login(page, live_server, "olga")
    page.goto(f"{live_server.url}/admin/workflows/flow/{flow.pk}/change/")
    page.click('[data-action="start"]')
    form = page.locator("#start-run form")
    form.locator('[data-input="repo"]').fill("core")
    form.locator('[data-input="limit"]').fill("ten")
    form.locator('[data-input="env"]').select_option(label="production")
    form.locator('[data-action="start-submit"]').click()
    error = page.locator('[data-field-error="limit"]')
    error.wait_for()
    assert error.inner_text() == "must be an integer, got string"
    assert page.locator("[data-field-error]").count() == 1
    assert not Run.objects.filter(flow=flow).exists()
    # The popover is open again with what was typed; fix the value and start.
    assert page.locator('#start-run [data-input="repo"]').input_value() == "core"
    page.locator('#start-run [data-input="limit"]').fill("12")
    page.locator('#start-run [data-action="start-submit"]').click()
    page.wait_for_url("**/admin/workflows/run/*/change/")
    run = Run.objects.get(flow=flow)
    assert run.input["limit"] == 12 and run.input["env"] == "production"
    assert run.input["repo"] == "core" and run.input["dry_run"] is True


def test_the_json_tab_is_one_click_away(page, live_server):
    make_staff("omar", "operators")
    flow = make_flow(TYPED)
    admin_login(page, live_server, "omar")
    page.goto(f"{live_server.url}/admin/workflows/flow/{flow.pk}/change/")
    page.click('[data-action="start"]')
    page.click('[data-start-tab="json"]')
    page.locator('#start-run textarea[name="input"]').fill('{"repo": "docs"}')
    page.locator('#start-run [data-action="start-submit"]').click()
    page.wait_for_url("**/admin/workflows/run/*/change/")
    assert Run.objects.get(flow=flow).input["repo"] == "docs"


def test_the_run_page_graph_carries_step_statuses_and_opens_the_panel(page, live_server):
    make_staff("sue", "support")
    flow = make_flow(retry_definition())
    run, _ = run_start(flow=flow, input={})
    drain()
    admin_login(page, live_server, "sue")
    page.goto(f"{live_server.url}/admin/workflows/run/{run.pk}/change/")
    graph = page.locator('[data-section="graph"]')
    nodes = graph.locator("[data-step]")
    seen = {nodes.nth(i).get_attribute("data-step"): nodes.nth(i).get_attribute("data-status")
            for i in range(nodes.count())}
    assert seen == dict(StepRun.objects.filter(run=run).values_list("key", "status"))
    assert seen["flaky"] == "failed"
    graph.locator('[data-step="flaky"]').click()
    page.locator('#step-panel .sp[data-step="flaky"]').wait_for()
    assert "upstream said no" in page.locator("#step-panel").inner_text()


def test_a_thirty_step_graph_renders_every_node_apart(page, live_server):
    make_staff("bea", "builders")
    flow = make_flow(wide_definition())
    admin_login(page, live_server, "bea")
    page.goto(f"{live_server.url}/admin/workflows/flow/{flow.pk}/change/")
    nodes = page.locator('[data-section="graph"] svg [data-step]')
    assert nodes.count() == 30
    boxes = [nodes.nth(i).bounding_box() for i in range(30)]
    assert all(box and box["width"] > 100 and box["height"] > 30 for box in boxes)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                    or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])
    assert page.locator('[data-section="graph"] .gr-edge').count() == 8 * 4 + 6
