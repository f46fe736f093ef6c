"""/metrics: Prometheus text computed from the database, behind a bearer token."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import drain, make_flow, simple_definition
from workflows.services.runs import run_start


def scrape(token: str) -> dict[str, dict]:
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples: dict[str, dict] = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return samples


def test_metrics_are_off_without_a_token(client, settings):
    settings.WF_METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 404


def test_metrics_need_the_bearer_token(client, metrics_token):
    missing = client.get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Basic abc"}).status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer " + metrics_token + "x"})
    assert wrong.status_code == 403


@pytest.mark.django_db
def test_metrics_count_runs_steps_and_the_queue(metrics_token):
    flow = make_flow(simple_definition("metered"))
    done, _ = run_start(flow=flow, input={})
    drain()
    queued, _ = run_start(flow=flow, input={})
    samples = scrape(metrics_token)

    assert samples["wf_runs"][(("flow", "metered"), ("status", "completed"))] == 1
    assert samples["wf_runs"][(("flow", "metered"), ("status", "queued"))] == 1
    labels = (("flow", "metered"), ("step_type", "python"))
    assert samples["wf_step_duration_seconds_count"][labels] == 2
    assert samples["wf_step_duration_seconds_bucket"][(("flow", "metered"), ("le", "+Inf"),
                                                       ("step_type", "python"))] == 2
    assert samples["wf_queue_depth"][()] == 1
    assert samples["wf_oldest_queued_step_age_seconds"][()] >= 0
    assert samples["wf_sweeper_repairs_total"][(("kind", "lease_expired"),)] == 0
    assert samples["wf_notification_failures_total"][()] == 0


@pytest.mark.django_db
def test_sweeper_repairs_are_counted_from_its_events(metrics_token):
    from datetime import timedelta

    from django.utils import timezone

    from workflows.engine import sweeper
    from workflows.models import StepRun

    flow = make_flow(simple_definition("swept"))
    run, _ = run_start(flow=flow, input={})
    StepRun.objects.filter(run=run, key="first").update(
        enqueued_at=timezone.now() - timedelta(hours=1))
    sweeper.sweep()
    assert scrape(metrics_token)["wf_sweeper_repairs_total"][(("kind", "step_requeued"),)] == 1


@pytest.mark.django_db
def test_refused_webhooks_and_callbacks_are_counted_durably(metrics_token):
    client = Client()
    assert client.post("/api/v1/callbacks/not-a-token", "{}",
                       content_type="application/json").status_code == 404
    assert client.post("/api/v1/callbacks/not-a-token", "{}",
                       content_type="application/json").status_code == 404
    assert client.post("/api/v1/hooks/no-such-flow", "{}",
                       content_type="application/json").status_code == 404
    refusals = scrape(metrics_token)["wf_inbound_refusals_total"]
    assert refusals[(("code", "callback_unknown"), ("endpoint", "callback"))] == 2
    assert refusals[(("code", "not_found"), ("endpoint", "webhook"))] == 1


@pytest.mark.django_db
def test_a_throttled_delivery_counts_as_a_refusal(metrics_token, settings):
    from django.core.cache import cache

    cache.clear()
    settings.WF_ANON_THROTTLE = "1/m"
    client = Client()
    statuses = [client.post("/api/v1/callbacks/x", "{}", content_type="application/json")
                .status_code for _ in range(2)]
    cache.clear()
    assert statuses == [404, 429]
    refusals = scrape(metrics_token)["wf_inbound_refusals_total"]
    assert refusals[(("code", "throttled"), ("endpoint", "callback"))] == 1
