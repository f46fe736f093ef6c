"""The workflows home (the admin index), the All tables page and the runs list's columns and
quick filters."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from approvals.services import approval_reject
from tests.admin.conftest import approval_definition, echo_definition, retry_definition, start
from tests.factories import make_flow
from workflows.models import Run
from workflows.states import RunStatus

pytestmark = pytest.mark.django_db


def section(page: str, name: str) -> str:
    match = re.search(rf'<section[^>]*data-section="{name}".*?</section>', page, re.S)
    assert match, f"no section {name}"
    return match.group(0)


def rows(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr data-run="(\d+)"', html)]


def test_the_home_shows_what_failed_what_runs_and_how_flows_fare(admin_client, failed_run,
                                                                  waiting_run, completed_run):
    page = admin_client.get("/admin/").content.decode()
    failed = section(page, "failed-recent")
    assert rows(failed) == [failed_run.pk]
    assert "<code>flaky</code>" in failed and "upstream said no" in failed
    assert rows(section(page, "active")) == [waiting_run.pk]
    flows = section(page, "flows")
    assert 'data-flow="retrying"' in flows and 'data-flow="echoes"' in flows
    assert re.search(r'data-flow="echoes">.*?data-success-rate="100"', flows, re.S)
    assert re.search(r'data-flow="retrying">.*?data-success-rate="0"', flows, re.S)
    # The superuser may decide the pending approval, but it is assigned to the reviewers: it
    # is counted in "all waiting", not listed as waiting for them (issue 24).
    mine = section(page, "my-approvals")
    assert f'data-run="{waiting_run.pk}"' not in mine
    assert re.search(r'data-count="all-waiting">all waiting: 1<', mine)
    # The table list stays reachable, and the lookup box is on the page once.
    assert 'href="/admin/tables/"' in page
    assert page.count("<form data-lookup") == 1


def test_a_rejection_reads_rejected_and_old_failures_drop_off(admin_client, users, failed_run,
                                                             waiting_run):
    approval_reject(approval=waiting_run.approvals.get(), actor=users["reviewers"],
                    comment="wrong numbers")
    Run.objects.filter(pk=failed_run.pk).update(
        finished_at=timezone.now() - timedelta(hours=25))
    failed = section(admin_client.get("/admin/").content.decode(), "failed-recent")
    assert rows(failed) == [waiting_run.pk]
    assert 'data-error-kind="rejected"' in failed and ">rejected<" in failed


def test_my_approvals_lists_only_what_i_may_decide_oldest_first(clients, waiting_run):
    second = start(make_flow(approval_definition("reviewed-too")))
    mine = section(clients["reviewers"].get("/admin/").content.decode(), "my-approvals")
    assert rows(mine) == [waiting_run.pk, second.pk]
    assert "waiting for" in mine
    theirs = section(clients["support"].get("/admin/").content.decode(), "my-approvals")
    assert rows(theirs) == [] and "all-waiting" not in theirs  # the count is for superusers


def test_waiting_for_me_lists_a_superuser_what_is_assigned_to_them(admin_client, admin_user,
                                                                  waiting_run):
    from django.contrib.auth.models import Group

    admin_user.groups.add(Group.objects.create(name="admins"))
    definition = approval_definition("for-admins")
    definition["steps"][1]["assignees"] = {"groups": ["admins"]}
    assigned = start(make_flow(definition))
    mine = section(admin_client.get("/admin/").content.decode(), "my-approvals")
    assert rows(mine) == [assigned.pk]
    assert re.search(r'data-count="all-waiting">all waiting: 2<', mine)


def test_the_home_page_makes_the_same_few_queries_whatever_the_history(
        admin_client, django_assert_max_num_queries):
    for n in range(6):
        start(make_flow(retry_definition(f"retrying-{n}")))
        start(make_flow(approval_definition(f"reviewed-{n}")))
        start(make_flow(echo_definition(f"echoes-{n}")))
    with django_assert_max_num_queries(12):
        page = admin_client.get("/admin/").content.decode()
    assert len(rows(section(page, "failed-recent"))) == 6
    assert len(rows(section(page, "active"))) == 6


def test_the_site_header_reads_workflows_unless_configured(admin_client, settings):
    assert '<div id="site-name"><a href="/admin/">Workflows</a></div>' in (
        admin_client.get("/admin/").content.decode())
    settings.WF_SITE_TITLE = "Acme ops"
    page = admin_client.get("/admin/workflows/run/").content.decode()
    assert '<a href="/admin/">Acme ops</a>' in page and "| Acme ops</title>" in page


def test_all_tables_lists_the_models_this_user_may_see(clients):
    page = clients["support"].get(reverse("admin:tables")).content.decode()
    assert "All tables" in page and "/admin/workflows/run/" in page
    assert "/admin/connections/" not in page


def test_the_lookup_box_sits_on_top_of_every_workflows_page(admin_client, failed_run):
    for url in ("/admin/workflows/run/", "/admin/workflows/flow/",
                f"/admin/workflows/run/{failed_run.pk}/change/",
                f"/admin/workflows/flow/{failed_run.flow_id}/change/",
                "/admin/approvals/approval/", "/admin/tables/"):
        page = admin_client.get(url).content.decode()
        assert page.count("<form data-lookup") == 1, url
        assert re.search(r'<form data-lookup[^>]*action="/admin/lookup/".*?name="q"', page,
                         re.S), url


# --- the runs list ------------------------------------------------------------------------


def test_the_runs_list_shows_failed_step_error_input_and_finish(admin_client, failed_run):
    page = admin_client.get("/admin/workflows/run/").content.decode()
    assert "<code>flaky</code>" in page and "upstream said no" in page
    assert "topic=weekly" in page
    assert 'class="wf-badge st-failed"' in page
    assert "workflows/admin.css" in page  # the badges are styled on the changelist too


@pytest.mark.parametrize(("choice", "hours_ago", "shown"), [
    ("today", 0, True), ("24h", 23, True), ("24h", 25, False), ("7d", 24 * 6, True),
    ("7d", 24 * 8, False),
])
def test_quick_filters_on_created_time(admin_client, failed_run, completed_run, choice,
                                       hours_ago, shown):
    created = timezone.now() - timedelta(hours=hours_ago)
    Run.objects.filter(pk=failed_run.pk).update(created_at=created)
    Run.objects.filter(pk=completed_run.pk).update(
        created_at=timezone.now() - timedelta(days=30), finished_at=timezone.now())
    page = admin_client.get(f"/admin/workflows/run/?created={choice}").content.decode()
    listed = set(int(n) for n in re.findall(r"/admin/workflows/run/(\d+)/change/", page))
    assert (failed_run.pk in listed) is shown
    assert completed_run.pk not in listed  # finished just now, but created a month ago
    assert ">Today<" in page and ">24 h<" in page and ">7 days<" in page


def test_quick_filters_keep_runs_in_flight(admin_client):
    """Issue 24: "Today" filtered on the finish time, so waiting and running runs vanished."""
    waiting = start(make_flow(approval_definition()))
    assert waiting.finished_at is None
    for choice in ("today", "24h", "7d"):
        page = admin_client.get(f"/admin/workflows/run/?created={choice}").content.decode()
        assert f"/admin/workflows/run/{waiting.pk}/change/" in page, choice


def test_the_runs_list_stays_at_a_few_queries(admin_client, django_assert_max_num_queries):
    for n in range(8):
        start(make_flow(retry_definition(f"retrying-{n}")))
    with django_assert_max_num_queries(10):
        response = admin_client.get("/admin/workflows/run/?created=24h")
    assert response.status_code == 200
    assert Run.objects.filter(status=RunStatus.FAILED).count() == 8


def test_a_staff_user_with_no_role_sees_no_runs_on_the_home(clients, users, failed_run,
                                                            waiting_run, completed_run):
    """Issue 25 (L1): failed runs (with their error text), active runs and flow health need
    the view permission on runs, in the selectors, not only in the template."""
    from workflows import home_selectors
    from workflows.errors import NotPermitted

    page = clients["nobody"].get("/admin/").content.decode()
    assert 'data-section="no-runs-role"' in page
    for name in ("failed-recent", "active", "flows"):
        assert f'data-section="{name}"' not in page
    assert "upstream said no" not in page and "retrying" not in page
    for selector, kwargs in ((home_selectors.runs_failed_recent, {"since": timezone.now()}),
                             (home_selectors.runs_active, {}), (home_selectors.flows_health, {})):
        with pytest.raises(NotPermitted):
            selector(actor=users["nobody"], **kwargs)
    # Every role reads runs, so every role keeps the overview.
    for role in ("builders", "operators", "reviewers", "support"):
        page = clients[role].get("/admin/").content.decode()
        assert rows(section(page, "failed-recent")) == [failed_run.pk], role
        assert 'data-section="no-runs-role"' not in page
