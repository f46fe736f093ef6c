"""The flow page's webhook parts: the Deliveries section, the secret form (set, rotate once),
redelivery; operators only, CSRF enforced."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from tests.admin.helpers import flow_url
from tests.factories import make_flow, simple_definition
from workflows.models import FlowHistory, Run, WebhookDelivery
from workflows.services.webhooks import webhook_receive, webhook_sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def hooked(db):
    return make_flow(simple_definition(
        "hooked", triggers=[{"type": "webhook", "when": 'body.kind == "push"'}],
        input={"repo": {"type": "string"}},
        steps=[{"key": "echo", "type": "python", "action": "core.echo"}]))


def receive(flow, payload):
    body = json.dumps(payload).encode()
    return webhook_receive(flow=flow, body=body, signature=webhook_sign(
        secret=flow.webhook_signing_secret(), body=body))


def test_the_deliveries_section_lists_rows_with_their_outcome(clients, hooked):
    started = receive(hooked, {"kind": "push", "repo": "a"})
    filtered = receive(hooked, {"kind": "tag"})
    page = clients["support"].get(flow_url(hooked)).content.decode()
    assert 'data-section="deliveries"' in page
    rows = re.findall(r'data-delivery="(\d+)" data-outcome="(\w+)"', page)
    assert rows == [(str(filtered.delivery.pk), "filtered"), (str(started.delivery.pk),
                                                              "started")]
    assert "when is false" in page and f'data-run="{started.run.pk}"' in page
    assert 'data-action="redeliver"' not in page  # support reads only
    assert 'data-action="set-webhook-secret"' not in page
    operator = clients["operators"].get(flow_url(hooked)).content.decode()
    assert 'data-action="redeliver"' in operator and 'data-action="set-webhook-secret"' in operator


def test_an_operator_sets_the_secret_from_the_page(clients, hooked):
    url = reverse("admin:workflows_flow_webhook_secret", args=[hooked.pk])
    response = clients["operators"].post(url, {"action": "set",
                                               "secret": "pasted-from-stripe-1"})
    assert response.status_code == 302
    hooked.refresh_from_db()
    assert hooked.webhook_signing_secret() == "pasted-from-stripe-1"
    page = clients["operators"].get(flow_url(hooked)).content.decode()
    assert "pasted-from-stripe-1" not in page
    assert FlowHistory.objects.filter(flow=hooked, kind="webhook_secret_rotated").count() == 1
    bad = clients["operators"].post(url, {"action": "set", "secret": "short"}, follow=True)
    assert "16 to 256" in bad.content.decode()
    refused = clients["support"].post(url, {"action": "set", "secret": "0123456789abcdef0"})
    assert refused.status_code == 403
    hooked.refresh_from_db()
    assert hooked.webhook_signing_secret() == "pasted-from-stripe-1"


def test_rotating_from_the_page_shows_the_new_secret_once(clients, hooked):
    url = reverse("admin:workflows_flow_webhook_secret", args=[hooked.pk])
    response = clients["operators"].post(url, {"action": "rotate"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    hooked.refresh_from_db()
    secret = hooked.webhook_signing_secret()
    assert f"data-secret>{secret}<" in response.content.decode()
    assert secret not in clients["operators"].get(flow_url(hooked)).content.decode()


def test_the_secret_form_needs_the_csrf_token(users, hooked):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["operators"])
    url = reverse("admin:workflows_flow_webhook_secret", args=[hooked.pk])
    assert client.post(url, {"action": "set", "secret": "0123456789abcdef0"}).status_code == 403
    hooked.refresh_from_db()
    assert hooked.webhook_signing_secret() != "0123456789abcdef0"


def test_redeliver_from_the_page_starts_a_run_naming_the_delivery(clients, hooked):
    filtered = receive(hooked, {"kind": "tag", "repo": "web"})
    url = reverse("admin:workflows_flow_redeliver", args=[hooked.pk])
    response = clients["operators"].post(url, {"delivery": filtered.delivery.pk})
    assert response.status_code == 302
    run = Run.objects.get()
    assert run.trigger_delivery_id == filtered.delivery.pk and run.input == {"repo": "web"}
    assert clients["support"].post(url, {"delivery": filtered.delivery.pk}).status_code == 403
    missing = clients["operators"].post(url, {"delivery": "x"}, follow=True)
    assert missing.status_code == 200 and Run.objects.count() == 1
    assert WebhookDelivery.objects.count() == 1
