"""The smaller support-desk defects of issue 24, each with the test that would have caught it:
trigger labels said once, no `null` default for a required input, the matrix legend's trigger
letters, the runs list's columns and the nav sidebar, the graph fitting its column, make run's
PUBLIC_BASE_URL, and what a reviewer needs to sign in."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client

from tests.admin.conftest import retry_definition, start
from tests.admin.helpers import flow_url, run_url
from tests.factories import make_flow, simple_definition
from workflows.management.commands.runall import child_environment
from workflows.services.runs import run_rerun, run_retry, run_start
from workflows.templatetags.wf_graph import render_graph

pytestmark = pytest.mark.django_db

RUNS = "/admin/workflows/run/"


def test_a_scheduled_run_says_schedule_once(admin_client):
    flow = make_flow(simple_definition("nightly"))
    run, _ = run_start(flow=flow, actor=None, trigger_kind="schedule")
    page = admin_client.get(run_url(run)).content.decode()
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "schedule schedule" not in text
    assert re.search(r'data-trigger="schedule">schedule</span>', page)


def test_the_runs_list_names_what_a_retry_or_rerun_came_from(admin_client):
    failed = start(make_flow(retry_definition()))
    retry = run_retry(run=failed, actor=None)
    rerun = run_rerun(run=failed, actor=None)
    page = admin_client.get(RUNS).content.decode()
    assert f'data-trigger="retry">retry of #{failed.pk}<' in page
    assert f'data-trigger="rerun">rerun of #{failed.pk}<' in page
    assert retry.pk != rerun.pk


def test_the_runs_list_columns_and_no_nav_sidebar(admin_client):
    start(make_flow(retry_definition()))
    page = admin_client.get(RUNS).content.decode()
    headers = re.findall(r'<th scope="col" class="[^"]*?(column-[a-z_]+)', page)
    assert headers[:9] == ["column-run", "column-status_cell", "column-flow", "column-trigger",
                           "column-created", "column-duration", "column-version_label",
                           "column-error_line", "column-input_short"]
    assert 'id="nav-sidebar"' not in page
    assert "Created (UTC)" in page
    searching = admin_client.get(RUNS, {"q": "upstream"}).content.decode()
    assert "column-matched" in searching or ">matched<" in searching and 'data-match-field="error"' in searching


def test_workflows_pages_drop_the_nav_sidebar(admin_client):
    run = start(make_flow(retry_definition()))
    for url in (RUNS, "/admin/workflows/flow/", "/admin/workflows/event/", run_url(run),
                flow_url(run.flow), "/admin/approvals/approval/"):
        assert 'id="nav-sidebar"' not in admin_client.get(url).content.decode(), url


def test_a_required_input_shows_no_null_default(admin_client):
    flow = make_flow(simple_definition("needs-input", input={
        "invoice": {"type": "string", "required": True},
        "limit": {"type": "integer", "default": 10}}))
    page = admin_client.get(flow_url(flow)).content.decode()
    inputs = re.search(r"<h2>Inputs</h2>.*?</table>", page, re.S).group(0)
    assert "null" not in inputs and "<code>10</code>" in inputs


def test_the_matrix_legend_explains_the_trigger_letters(admin_client):
    flow = make_flow(simple_definition("legend"))
    start(flow)
    page = admin_client.get(flow_url(flow)).content.decode()
    legend = re.search(r'data-legend="triggers">(.*?)</span>', page).group(1)
    text = re.sub(r"<[^>]+>", "", legend)
    assert "M manual" in text and "W webhook" in text and "R retry" in text
    assert "S schedule" in text


def test_the_graph_scales_to_its_column_down_to_a_readable_size():
    svg = str(render_graph(simple_definition("wide", steps=[
        {"key": f"s{n}", "type": "python", "action": "core.echo"} for n in range(6)])))
    width = int(re.search(r'width="(\d+)"', svg).group(1))
    assert f'style="min-width: {round(width * 0.8)}px"' in svg


@pytest.mark.parametrize(("host", "port", "env", "expected"), [
    ("127.0.0.1", 8765, {}, "http://127.0.0.1:8765"),
    ("0.0.0.0", 9000, {}, "http://127.0.0.1:9000"),
    ("::", 9000, {}, "http://[::1]:9000"),
    ("localhost", 8000, {"PUBLIC_BASE_URL": ""}, "http://localhost:8000"),
    ("127.0.0.1", 8765, {"PUBLIC_BASE_URL": "https://wf.example.com"},
     "https://wf.example.com"),
])
def test_make_run_derives_public_base_url_from_host_and_port_unless_set(host, port, env,
                                                                        expected):
    assert child_environment(host, port, {"PATH": "/bin", **env})["PUBLIC_BASE_URL"] == expected


def test_create_reviewer_makes_a_staff_reviewer_with_no_other_permission():
    out = StringIO()
    call_command("create_reviewer", "rita", "--email", "rita@example.com", stdout=out)
    rita = User.objects.get(username="rita")
    assert rita.is_staff and not rita.is_superuser
    assert list(rita.groups.values_list("name", flat=True)) == ["reviewers"]
    assert not rita.user_permissions.exists()
    password = re.search(r"password: (\S+)", out.getvalue()).group(1)
    client = Client()
    assert client.login(username="rita", password=password)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/approvals/approval/").status_code == 200
    # An existing account keeps its password and gains only staff status and the group.
    User.objects.create_user(username="sam", password="pw-sam")
    call_command("create_reviewer", "sam", stdout=StringIO())
    sam = User.objects.get(username="sam")
    assert sam.is_staff and sam.check_password("pw-sam")
    assert list(sam.groups.values_list("name", flat=True)) == ["reviewers"]


def test_without_staff_status_a_reviewer_cannot_sign_in_and_the_user_admin_says_so(
        admin_client, admin_user):
    user = User.objects.create_user(username="rev", password="pw-rev")
    user.groups.add(Group.objects.get(name="reviewers"))
    client = Client()
    client.login(username="rev", password="pw-rev")
    assert client.get("/admin/").status_code == 302  # to the login page
    page = admin_client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert "Needed to sign in to the admin at all, reviewers included" in page
    assert "create_reviewer" in page


def test_a_webhook_run_names_its_event_in_the_runs_list_and_on_its_page(admin_client):
    """Issue 24: "webhook: pull_request", from the delivery that started the run (joined by
    the list, never a query per row)."""
    import hashlib
    import hmac
    import json
    import uuid

    from workflows.services.webhooks import webhook_secret_set

    flow = make_flow(simple_definition("gh", triggers=[
        {"type": "webhook", "verify": "github", "events": ["pull_request"]}]))
    secret = "gh-secret-for-tests-0123"
    webhook_secret_set(flow=flow, secret=secret,
                       actor=User.objects.create_superuser("hooks-admin", "", "pw"))
    body = json.dumps({"action": "opened"}).encode()
    response = Client().post(
        f"/api/v1/hooks/{flow.slug}", data=body, content_type="application/json",
        headers={"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": str(uuid.uuid4()),
                 "X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body,
                                                             hashlib.sha256).hexdigest()})
    assert response.status_code == 202, response.content
    run_id = response.json()["id"]
    listed = admin_client.get(RUNS).content.decode()
    assert 'data-trigger="webhook">webhook: pull_request<' in listed
    page = admin_client.get(f"/admin/workflows/run/{run_id}/change/").content.decode()
    assert "webhook: pull_request" in page
