"""One time format in pages: the reader's zone (the wf_tz cookie the admin script sets, else
settings.TIME_ZONE) with its abbreviation; API documents stay ISO 8601 UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from tests.admin.helpers import run_url
from workflows.models import Run

pytestmark = pytest.mark.django_db

WINTER = datetime(2026, 1, 15, 13, 5, 9, tzinfo=UTC)


@pytest.fixture
def winter_run(completed_run) -> Run:
    Run.objects.filter(pk=completed_run.pk).update(created_at=WINTER)
    return completed_run


def test_pages_show_times_in_the_server_zone_by_default(admin_client, winter_run):
    page = admin_client.get(run_url(winter_run)).content.decode()
    assert 'datetime="2026-01-15T13:05:09Z"' in page
    assert ">2026-01-15 13:05:09 UTC</time>" in page


def test_the_cookie_zone_renders_pages_in_the_readers_zone(admin_client, winter_run):
    admin_client.cookies["wf_tz"] = "Europe/Paris"
    page = admin_client.get(run_url(winter_run)).content.decode()
    assert ">2026-01-15 14:05:09 CET</time>" in page
    # The admin's own lists use the same format and zone.
    events = admin_client.get("/admin/workflows/event/").content.decode()
    assert "CET" in events


def test_the_runs_list_shows_utc_in_the_cell_and_the_readers_zone_on_hover(admin_client,
                                                                          winter_run):
    """Issue 24: runs from several zones are compared in one list, so the cell says UTC to the
    second; the reader's own zone is on hover."""
    admin_client.cookies["wf_tz"] = "Europe/Paris"
    listing = admin_client.get("/admin/workflows/run/").content.decode()
    assert re.search(r'<time class="wf-nowrap" datetime="2026-01-15T13:05:09Z" '
                     r'title="2026-01-15 14:05:09 CET">2026-01-15 13:05:09 UTC</time>', listing)


@pytest.mark.parametrize("cookie", ["Not/AZone", "../../etc/passwd", "x" * 300, ""])
def test_a_cookie_that_names_no_zone_is_ignored(admin_client, winter_run, cookie):
    admin_client.cookies["wf_tz"] = cookie
    response = admin_client.get(run_url(winter_run))
    assert response.status_code == 200
    assert ">2026-01-15 13:05:09 UTC</time>" in response.content.decode()


def test_api_documents_stay_utc_whatever_the_cookie(admin_client, winter_run):
    admin_client.cookies["wf_tz"] = "Asia/Tokyo"
    document = admin_client.get(f"/api/v1/runs/{winter_run.pk}").json()
    assert re.match(r"2026-01-15T13:05:09(\.0+)?Z$", document["created_at"]), document


def test_every_template_renders_times_through_the_when_filter():
    """No `|date`, `|timesince` or hand-written "UTC" left in a page or fragment template."""
    from pathlib import Path

    from django.conf import settings

    root = Path(settings.BASE_DIR)
    offenders = []
    for app in ("workflows", "approvals", "connections", "resources", "ops"):
        for template in (root / app / "templates").rglob("*.html"):
            text = template.read_text()
            for needle in ("|date", "|timesince", "|timeuntil", " UTC"):
                if needle in text:
                    offenders.append(f"{template.relative_to(root)}: {needle}")
    assert offenders == []
