"""The Run changelist: filters and search, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from tests.admin.conftest import echo_definition, retry_definition, start
from tests.factories import make_flow
from workflows.models import Run
from workflows.services.runs import run_replay

pytestmark = pytest.mark.django_db

RUNS = "/admin/workflows/run/"


def listed(client, query: str) -> set[int]:
    response = client.get(RUNS + query)
    assert response.status_code == 200, response
    return {int(n) for n in re.findall(r'<a href="/admin/workflows/run/(\d+)/change/', 
                                        response.content.decode())}


@pytest.fixture
def history(db):
    echo = make_flow(echo_definition())
    failing = make_flow(retry_definition())
    ok = start(echo)
    bad = start(failing)
    replayed = run_replay(run=ok)
    old = start(echo)
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=40))
    return {"ok": ok, "bad": bad, "replayed": replayed, "old": old, "echo": echo,
            "failing": failing}


def test_search_by_run_id(admin_client, history):
    assert history["bad"].pk in listed(admin_client, f"?q={history['bad'].pk}")
    assert listed(admin_client, f"?q=%23{history['ok'].pk}") >= {history["ok"].pk}


def test_search_finds_text_in_a_step_error_case_insensitively(admin_client, history):
    assert listed(admin_client, "?q=UPSTREAM+said") == {history["bad"].pk}
    assert listed(admin_client, "?q=ActionFailed") == {history["bad"].pk}
    assert listed(admin_client, "?q=no+such+text+anywhere") == set()


def test_search_by_flow_slug(admin_client, history):
    assert listed(admin_client, "?q=retrying") == {history["bad"].pk}


def test_filters_by_status_trigger_kind_and_flow(admin_client, history):
    assert listed(admin_client, "?status__exact=failed") == {history["bad"].pk}
    assert listed(admin_client, "?trigger_kind__exact=replay") == {history["replayed"].pk}
    assert listed(admin_client, f"?flow__id__exact={history['failing'].pk}") == {
        history["bad"].pk}


def test_filter_by_creation_date_range(admin_client, history):
    today = timezone.now().date()
    recent = listed(admin_client, f"?created_from={today - dt.timedelta(days=1)}")
    assert history["old"].pk not in recent and history["ok"].pk in recent
    old_day = (timezone.now() - dt.timedelta(days=40)).date()
    assert listed(admin_client, f"?created_from={old_day}&created_to={old_day}") == {
        history["old"].pk}
    page = admin_client.get(RUNS + f"?created_from={old_day}").content.decode()
    assert f'value="{old_day}"' in page  # the filter shows what it applies


def test_a_bad_date_does_not_break_the_page(admin_client, history):
    response = admin_client.get(RUNS + "?created_from=yesterday")
    assert response.status_code in (200, 302)


def test_support_may_search_runs(clients, history):
    assert listed(clients["support"], "?q=upstream") == {history["bad"].pk}
