"""/healthz and /readyz: what a load balancer and an orchestrator probe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

TOKEN = "metrics-token-for-tests"
AUTH = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def _metrics_token(settings):
    settings.WF_METRICS_TOKEN = TOKEN


def test_healthz_says_the_process_is_up(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_200_when_every_dependency_is_fine(client, sweeper_on_time):
    response = client.get("/readyz", **AUTH)
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"database", "broker", "migrations", "sweeper"}
    assert body["checks"]["migrations"]["pending"] == []


@pytest.mark.django_db
def test_readyz_is_503_naming_the_sweeper_when_no_cluster_runs_schedules(client, settings):
    settings.WF_READY_SWEEPER_GRACE_SECONDS = 300
    Schedule.objects.filter(name="workflows-sweeper").update(
        next_run=timezone.now() - timedelta(minutes=30))
    response = client.get("/readyz", **AUTH)
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["sweeper"]
    assert "overdue" in body["checks"]["sweeper"]["error"]


@pytest.mark.django_db
def test_readyz_is_503_when_the_sweeper_schedule_is_missing(client):
    Schedule.objects.filter(name="workflows-sweeper").delete()
    response = client.get("/readyz", **AUTH)
    assert response.status_code == 503
    assert response.json()["failed"] == ["sweeper"]


@pytest.mark.django_db
def test_readyz_reports_the_sweepers_last_pass(client, sweeper_on_time):
    from django_q.models import Task

    stopped = timezone.now() - timedelta(seconds=20)
    Task.objects.create(id="sweep-task-1", name="sweep", func="workflows.tasks.sweep",
                        started=stopped, stopped=stopped, success=True)
    Schedule.objects.filter(name="workflows-sweeper").update(task="sweep-task-1")
    sweeper = client.get("/readyz", **AUTH).json()["checks"]["sweeper"]
    assert sweeper["ok"] is True
    assert sweeper["last_run"] == stopped.isoformat()


@pytest.mark.django_db
def test_readyz_is_503_naming_the_pending_migration(client, settings, sweeper_on_time):
    settings.MIGRATION_MODULES = {"ops": "tests.ops.pending_migrations"}
    response = client.get("/readyz", **AUTH)
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["migrations"]
    assert body["checks"]["migrations"]["pending"] == ["ops.0002_not_applied"]


@pytest.mark.django_db
def test_readyz_is_503_naming_a_broker_that_does_not_answer(client, settings, sweeper_on_time):
    from tests.conftest import free_port

    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/readyz", **AUTH)
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"]["kind"] == "redis"
    assert "Error" in body["checks"]["broker"]["error"]


@pytest.mark.django_db
def test_readyz_pings_a_redis_broker_that_answers(client, settings, sweeper_on_time, redis_url):
    settings.REDIS_URL = redis_url
    response = client.get("/readyz", **AUTH)
    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == {"ok": True, "kind": "redis"}


def test_probes_are_exempt_from_the_ssl_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/admin/login/").status_code == 301


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic " + TOKEN, "Bearer "])
def test_readyz_without_the_metrics_token_says_only_ready_or_not(client, settings,
                                                                 sweeper_on_time, authorization):
    """Issue 25 (notes): the details (database vendor, migrations, the broker's host and port)
    are for the metrics token's holder; anyone else gets `{"ready": …}` with the same status."""
    from tests.conftest import free_port

    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/readyz", **headers)
    assert response.status_code == 200 and response.json() == {"ready": True}
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/readyz", **headers)
    assert response.status_code == 503 and response.json() == {"ready": False}
    assert "127.0.0.1" not in response.content.decode()
    detailed = client.get("/readyz", **AUTH)
    assert detailed.status_code == 503 and detailed.json()["failed"] == ["broker"]
    assert detailed.json()["ready"] is False


@pytest.mark.django_db
def test_readyz_gives_no_details_when_no_metrics_token_is_configured(client, settings,
                                                                     sweeper_on_time):
    settings.WF_METRICS_TOKEN = ""
    assert client.get("/readyz", HTTP_AUTHORIZATION="Bearer ").json() == {"ready": True}
    assert client.get("/readyz", **AUTH).json() == {"ready": True}
