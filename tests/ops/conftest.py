"""Fixtures for the ops endpoints: a metrics token, a sweeper schedule that is on time, and
tracing on, exporting to a receiver on loopback."""

from __future__ import annotations

import pytest
from django.utils import timezone

from ops import tracing
from tests.otel_receiver import otlp_receiver


@pytest.fixture
def metrics_token(settings) -> str:
    settings.WF_METRICS_TOKEN = "metrics-token-for-tests"
    return settings.WF_METRICS_TOKEN


@pytest.fixture
def sweeper_on_time(db):
    """The sweeper's schedule as a running qcluster leaves it: next pass due in a minute."""
    from django_q.models import Schedule

    Schedule.objects.filter(name="workflows-sweeper").update(
        next_run=timezone.now() + timezone.timedelta(minutes=1))


@pytest.fixture
def traced(monkeypatch):
    """Tracing on, exporting to a receiver on loopback (tests/otel_receiver.py); flushed at the
    end of the test, then off again."""
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "wf-tests")
        tracing.reset()
        try:
            yield receiver
        finally:
            tracing.flush()
            monkeypatch.undo()
            tracing.reset()
