"""The flow page's webhook parts in a real browser (issue 19): a GitHub delivery sent over HTTP
to the live server, its row in the Deliveries section, the secret set from the page, and a
filtered delivery redelivered into a run."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest

from tests.browser.conftest import admin_login, make_staff
from tests.factories import make_flow, simple_definition
from workflows.models import Run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _post(live_server, secret: str, payload: dict, delivery: str) -> httpx.Response:
    body = json.dumps(payload).encode()
    return httpx.post(f"{live_server.url}/api/v1/hooks/repo-events", content=body, headers={
        "Content-Type": "application/json", "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body,
                                                    hashlib.sha256).hexdigest()})


def test_an_operator_sets_the_secret_sees_deliveries_and_redelivers(page, live_server):
    make_staff("olga", "operators")
    flow = make_flow(simple_definition(
        "repo-events", input={"repo": {"type": "string"}},
        triggers=[{"type": "webhook", "verify": "github", "events": ["pull_request"],
                   "when": 'body.action == "opened"',
                   "input": {"repo": "{{ webhook.body.repository.full_name }}"}}]))
    admin_login(page, live_server, "olga")
    page.goto(f"{live_server.url}/admin/workflows/flow/{flow.pk}/change/")
    secret = "typed-into-github-0123"
    page.fill('[data-section="webhook"] input[name="secret"]', secret)
    page.click('[data-action="set-webhook-secret"]')
    page.wait_for_selector("text=Webhook secret set")

    pr = {"action": "opened", "number": 1, "repository": {"full_name": "acme/core"}}
    assert _post(live_server, secret, pr, "d-1").status_code == 202
    closed = _post(live_server, secret, {**pr, "action": "closed"}, "d-2")
    assert closed.json()["outcome"] == "filtered"
    assert _post(live_server, "wrong-secret-000000", pr, "d-3").status_code == 401

    page.goto(f"{live_server.url}/admin/workflows/flow/{flow.pk}/change/")
    rows = page.locator('[data-section="deliveries"] [data-delivery]')
    outcomes = [rows.nth(i).get_attribute("data-outcome") for i in range(rows.count())]
    assert outcomes == ["rejected", "filtered", "started"]
    filtered = page.locator(f'[data-delivery="{closed.json()["delivery"]}"]')
    filtered.locator('[data-action="redeliver"]').click()
    page.wait_for_url("**/admin/workflows/run/*/change/")
    run = Run.objects.order_by("-pk").first()
    assert run.trigger_delivery_id == closed.json()["delivery"]
    assert run.input == {"repo": "acme/core"}
