"""`wf deliveries list|redeliver` against a live server: the delivery log of a flow's webhook
and a new run from a stored delivery (issue 19's CLI)."""

from __future__ import annotations

import json

import httpx

from tests.factories import make_flow, simple_definition
from workflows.models import Run
from workflows.services.webhooks import webhook_sign


def _post_hook(live_server, flow, payload, *, secret=None, key=None):
    body = json.dumps(payload).encode()
    headers = {"X-Signature": webhook_sign(secret=secret or flow.webhook_signing_secret(),
                                           body=body),
               "Content-Type": "application/json"}
    if key:
        headers["Idempotency-Key"] = key
    return httpx.post(f"{live_server.url}/api/v1/hooks/{flow.slug}", content=body,
                      headers=headers, timeout=30)


def test_deliveries_are_listed_filtered_and_redelivered(wf, live_server):
    flow = make_flow(simple_definition(
        "cli-hooked", triggers=[{"type": "webhook"}],
        input={"repo": {"type": "string", "default": "core"}}))
    assert _post_hook(live_server, flow, {"repo": "web"}, key="d-1").status_code == 202
    assert _post_hook(live_server, flow, {"repo": "web"}, secret="forged-secret-xxxxxxxx"
                      ).status_code == 401
    listed = wf("deliveries", "list", "cli-hooked")
    assert listed.code == 0, listed.stdout
    outcomes = [item["outcome"] for item in listed.document["items"]]
    assert outcomes == ["rejected", "started"]
    started = listed.document["items"][1]
    assert started["delivery_id"] == "d-1" and started["run"] is not None
    only = wf("deliveries", "list", "cli-hooked", "--outcome", "rejected", "--all",
              "--jq", "[.items[].outcome]")
    assert only.code == 0 and only.document == ["rejected"]
    again = wf("deliveries", "redeliver", "cli-hooked", str(started["id"]))
    assert again.code == 0, again.stdout
    run = Run.objects.get(pk=again.document["id"])
    assert run.pk != started["run"] and run.input == {"repo": "web"}
    assert again.document["trigger"]["delivery"] == started["id"]
    missing = wf("deliveries", "redeliver", "cli-hooked", "999999")
    assert missing.code == 3 and missing.error["code"] == "not_found"
    bad = wf("deliveries", "list", "cli-hooked", "--outcome", "nope")
    assert bad.code == 2
