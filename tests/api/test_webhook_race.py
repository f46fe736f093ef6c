"""Two copies of one delivery arriving at once start one run: the delivery id is claimed by a
unique constraint in the transaction that starts the run."""

import hashlib
import hmac
import json
import threading

import pytest
from django.db import connection

from tests.factories import make_flow, simple_definition
from workflows.models import Run, WebhookDelivery
from workflows.services.webhooks import webhook_receive, webhook_secret_set

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_copies_at_once_start_one_run():
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"] in ("", ":memory:") \
            or "mode=memory" in str(connection.settings_dict["NAME"]):
        pytest.skip("threads need a database file or a server")
    flow = make_flow(simple_definition("raced", triggers=[{"type": "webhook", "verify": "github",
                                                           "events": ["push"]}]))
    secret = "race-secret-0123456789"
    webhook_secret_set(flow=flow, secret=secret, actor=None)
    body = json.dumps({"ref": "main"}).encode()
    headers = {"x-github-event": "push", "x-github-delivery": "same-guid",
               "x-hub-signature-256": "sha256=" + hmac.new(secret.encode(), body,
                                                           hashlib.sha256).hexdigest()}
    barrier, outcomes, errors = threading.Barrier(2), [], []

    def deliver():
        try:
            barrier.wait()
            outcomes.append(webhook_receive(flow=flow, body=body, headers=headers).outcome)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(outcomes) == ["duplicate", "started"]
    assert Run.objects.count() == 1
    assert sorted(WebhookDelivery.objects.values_list("outcome", flat=True)) == [
        "duplicate", "started"]
