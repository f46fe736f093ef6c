"""Fixtures for the ops endpoints: a metrics token and a sweeper schedule that is on time."""

from __future__ import annotations

import pytest
from django.utils import timezone


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
