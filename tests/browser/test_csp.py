"""The admin pages work under the Content-Security-Policy: nothing they load is refused."""

from __future__ import annotations

import pytest

from tests.browser.conftest import admin_login, make_staff
from tests.factories import make_flow, simple_definition
from workflows.services.runs import run_start

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_pages_and_api_docs_load_without_csp_violations(page, live_server):
    make_staff("csp-admin", superuser=True)
    flow = make_flow(simple_definition("csp"))
    run, _ = run_start(flow=flow, input={})
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    admin_login(page, live_server, "csp-admin")
    for path in ("/admin/", f"/admin/workflows/flow/{flow.pk}/change/",
                 f"/admin/workflows/run/{run.pk}/change/", "/admin/approvals/approval/",
                 "/api/v1/docs"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
    page.locator(".swagger-ui").first.wait_for(timeout=10_000)
    assert violations == []
