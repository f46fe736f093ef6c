from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.admin.conftest import echo_definition, retry_definition, start
from tests.admin.helpers import cells, flow_url
from tests.factories import make_flow
from workflows.admin_views import flow_page
from workflows.models import Flow, FlowVersion
from workflows.services.flows import flow_promote, flow_release, flow_update_draft
from workflows.states import RunStatus

pytestmark = pytest.mark.django_db


def matrix_url(flow, **query) -> str:
    from urllib.parse import urlencode

    url = reverse("admin:workflows_flow_matrix", args=[flow.pk])
    return url + ("?" + urlencode(query) if query else "")


def test_the_flow_page_is_the_flow_admin_change_view(admin_client, failed_run):
    flow = failed_run.flow
    assert flow_url(flow) == f"/admin/workflows/flow/{flow.pk}/change/"
    page = admin_client.get(flow_url(flow)).content.decode()
    assert "Retrying" in page and "live v1" in page
    assert "manual" in page  # triggers
    assert 'data-count-status="failed"' in page
    assert re.search(r'data-count-status="failed">.*?<b>1</b>', page)
    assert 'id="step-panel"' in page
    assert "django_htmx/htmx-2.min.js" in page  # htmx from django-htmx, no CDN


def test_every_cell_names_its_run_step_and_status(admin_client, failed_run):
    page = admin_client.get(flow_url(failed_run.flow)).content.decode()
    assert cells(page) == {
        (failed_run.pk, "fetch", "completed"),
        (failed_run.pk, "flaky", "failed"),
        (failed_run.pk, "report", "not_started"),
    }
    assert "×2" in page  # two attempts of flaky
    assert 'class="mx-ver">v1<' in page.replace(' title="release"', "")
    panel = reverse("admin:workflows_run_step", args=[failed_run.pk, "flaky"])
    assert f'hx-get="{panel}"' in page


def test_a_step_added_by_a_new_release_is_an_empty_cell_in_older_runs(admin_client):
    flow = make_flow(echo_definition(keys=("first", "second")))
    old = start(flow)
    flow_update_draft(flow=flow, definition=echo_definition(keys=("first", "third")))
    flow_promote(flow=flow, number=flow_release(flow=flow).number)
    flow.refresh_from_db()
    new = start(flow)
    page = admin_client.get(flow_url(flow)).content.decode()
    found = cells(page)
    assert (old.pk, "third", "absent") in found
    assert (new.pk, "second", "absent") in found
    assert (new.pk, "third", "completed") in found
    # Newest first, and the version change is marked on the newer run's header.
    assert page.index(f'data-run-header="{new.pk}"') < page.index(f'data-run-header="{old.pk}"')
    assert 'mx-ver changed' in page and ">v2<" in page


def test_runs_page_with_before_and_filter_by_status(admin_client, monkeypatch):
    monkeypatch.setattr(flow_page, "RUNS_PER_PAGE", 3)
    flow = make_flow(echo_definition())
    runs = [start(flow) for _ in range(7)]
    ids = [r.pk for r in reversed(runs)]  # newest first
    first = admin_client.get(flow_url(flow)).content.decode()
    assert {c[0] for c in cells(first)} == set(ids[:3])
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert f"before={ids[2]}" in older
    second = admin_client.get(older).content.decode()
    assert {c[0] for c in cells(second)} == set(ids[3:6])
    newer = re.search(r'href="([^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    assert {c[0] for c in cells(admin_client.get(newer).content.decode())} == set(ids[:3])
    third = admin_client.get(flow_url(flow) + f"?before={ids[5]}").content.decode()
    assert {c[0] for c in cells(third)} == {ids[6]}
    assert 'rel="next"' not in third
    filtered = admin_client.get(flow_url(flow) + "?status=failed").content.decode()
    assert cells(filtered) == set() and "No runs match" in filtered


def test_a_flow_with_many_steps_shows_fewer_runs_per_page(admin_client, monkeypatch):
    """The matrix keeps to MATRIX_CELL_BUDGET cells (at least 5 runs): a 500-step flow's page
    is not 25,000 cells. 12 steps with a budget of 60 shows 5 runs a page, and pages on."""
    monkeypatch.setattr(flow_page, "MATRIX_CELL_BUDGET", 60)
    keys = tuple(f"s{n}" for n in range(12))
    flow = make_flow(echo_definition("wide", keys=keys))
    runs = [start(flow) for _ in range(7)]
    ids = [r.pk for r in reversed(runs)]
    first = admin_client.get(flow_url(flow)).content.decode()
    assert {c[0] for c in cells(first)} == set(ids[:5])
    assert len(cells(first)) == 5 * 12
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = admin_client.get(older).content.decode()
    assert {c[0] for c in cells(second)} == set(ids[5:])
    newer = re.search(r'href="([^"]+)" rel="prev"', second).group(1).replace("&amp;", "&")
    assert {c[0] for c in cells(admin_client.get(newer).content.decode())} == set(ids[:5])


def test_the_status_filter_shows_only_those_runs(admin_client):
    flow = make_flow(retry_definition())
    failed = start(flow)
    page = admin_client.get(flow_url(flow) + "?status=completed").content.decode()
    assert cells(page) == set()
    page = admin_client.get(flow_url(flow) + "?status=failed").content.decode()
    assert {c[0] for c in cells(page)} == {failed.pk}


def test_the_matrix_of_ended_runs_stops_polling_with_286(admin_client, failed_run):
    response = admin_client.get(matrix_url(failed_run.flow), HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    body = response.content.decode()
    assert (failed_run.pk, "flaky", "failed") in cells(body)
    assert "hx-trigger" not in body.split('id="flow-counts"')[0]


def test_the_matrix_of_an_active_run_polls_and_answers_204_when_unchanged(
        admin_client, waiting_run):
    flow = waiting_run.flow
    page = admin_client.get(flow_url(flow)).content.decode()
    assert 'hx-trigger="every 2s"' in page
    signature = re.search(r'data-signature="([0-9a-f]+)"', page).group(1)
    unchanged = admin_client.get(matrix_url(flow, sig=signature), HTTP_HX_REQUEST="true")
    assert unchanged.status_code == 204
    changed = admin_client.get(matrix_url(flow, sig="stale"), HTTP_HX_REQUEST="true")
    assert changed.status_code == 200
    body = changed.content.decode()
    assert 'hx-trigger="every 2s"' in body
    assert 'id="flow-counts" hx-swap-oob="true"' in body  # counts refresh out of band
    assert (waiting_run.pk, "review", "waiting_for_approval") in cells(body)


def _count(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code in (200, 286), url
    return len(queries)


@pytest.mark.parametrize("role", ["superuser", "operators"])
def test_the_flow_page_and_matrix_make_the_same_queries_for_5_or_60_runs(
        admin_client, clients, role):
    client = admin_client if role == "superuser" else clients[role]
    flow = make_flow(echo_definition(keys=("a", "b", "c", "d", "e", "f")))
    for _ in range(5):
        start(flow)
    few = (_count(client, flow_url(flow)), _count(client, matrix_url(flow)))
    for _ in range(55):
        start(flow)
    many = (_count(client, flow_url(flow)), _count(client, matrix_url(flow)))
    assert few == many
    page_queries, matrix_queries = many
    assert matrix_queries <= 12
    # 10, plus the history, who made each release live and a pending request; the graph takes
    # the newest run's statuses from the matrix, and schedules are read only when there are
    # some. An operator's permissions cost two more reads than a superuser's. The releases'
    # "last live" and "last good" tags read two more (flow_release_facts, issue 24); the remote
    # agents' cost per run over the last 50 runs one more (the chart; one aggregate, issue 20).
    assert page_queries <= (15 if role == "superuser" else 17)
    older = _count(client, flow_url(flow) + f"?before={Flow.objects.get().runs.first().pk}")
    assert older <= page_queries + 2  # the "newer" link, and the newest run for the graph


# --- the draft editor, release, promote, start --------------------------------------------------


NEW_DRAFT = """slug: retrying
name: Retrying renamed
steps:
  - key: fetch
    type: python
    action: core.echo
    args: {topic: x}
"""


def test_a_builder_saves_the_draft_from_the_flow_page(clients, failed_run):
    flow = failed_run.flow
    url = reverse("admin:workflows_flow_draft", args=[flow.pk])
    response = clients["builders"].post(url, {"definition": NEW_DRAFT})
    assert response.status_code == 302
    draft = FlowVersion.objects.get(flow=flow, number__isnull=True)
    assert draft.definition["name"] == "Retrying renamed"
    assert [s["key"] for s in draft.definition["steps"]] == ["fetch"]
    assert FlowVersion.objects.get(flow=flow, number=1).definition["name"] == "Retrying"


def test_an_invalid_draft_shows_every_problem_with_its_path_and_saves_nothing(
        clients, failed_run):
    flow = failed_run.flow
    before = FlowVersion.objects.get(flow=flow, number__isnull=True).content_hash
    bad = NEW_DRAFT.replace("type: python", "type: teleport").replace("name: Retrying renamed\n", "")
    response = clients["builders"].post(reverse("admin:workflows_flow_draft", args=[flow.pk]),
                                        {"definition": bad})
    assert response.status_code == 422
    page = response.content.decode()
    assert "<code>steps[0].type</code>" in page and "<code>name</code>" in page
    assert "teleport" in page  # the typed text comes back for fixing
    assert FlowVersion.objects.get(flow=flow, number__isnull=True).content_hash == before


@pytest.mark.parametrize("role", ["support", "operators", "reviewers"])
def test_other_roles_cannot_save_the_draft(clients, failed_run, role):
    flow = failed_run.flow
    before = FlowVersion.objects.get(flow=flow, number__isnull=True).content_hash
    response = clients[role].post(reverse("admin:workflows_flow_draft", args=[flow.pk]),
                                  {"definition": NEW_DRAFT})
    assert response.status_code == 403
    assert "not allowed to edit flow drafts" in response.content.decode()
    assert FlowVersion.objects.get(flow=flow, number__isnull=True).content_hash == before


def test_support_sees_the_page_without_the_buttons_it_cannot_use(clients, failed_run):
    page = clients["support"].get(flow_url(failed_run.flow)).content.decode()
    assert (failed_run.pk, "flaky", "failed") in cells(page)
    for action in ("save-draft", "release", "promote", "start"):
        assert f'data-action="{action}"' not in page
    assert 'name="definition"' not in page


def test_the_builder_sees_edit_and_release_but_not_promote_or_start(clients):
    flow = make_flow(echo_definition())
    flow_update_draft(flow=flow, definition=echo_definition(keys=("first", "x")))
    flow_release(flow=flow)
    page = clients["builders"].get(flow_url(flow)).content.decode()
    assert 'data-action="save-draft"' in page and 'data-action="release"' in page
    assert 'data-action="promote"' not in page and 'data-action="start"' not in page
    page = clients["operators"].get(flow_url(flow)).content.decode()
    assert 'data-action="promote"' in page and 'data-action="start"' in page
    assert 'data-action="save-draft"' not in page and 'data-action="release"' not in page


def test_a_builder_releases_the_draft(clients):
    flow = make_flow(echo_definition())
    response = clients["builders"].post(reverse("admin:workflows_flow_release", args=[flow.pk]),
                                        {"notes": "second"})
    assert response.status_code == 302
    assert FlowVersion.objects.get(flow=flow, number=2).notes == "second"


def test_an_operator_may_not_release(clients):
    flow = make_flow(echo_definition())
    response = clients["operators"].post(reverse("admin:workflows_flow_release",
                                                 args=[flow.pk]))
    assert response.status_code == 403
    assert not FlowVersion.objects.filter(flow=flow, number=2).exists()


def test_releasing_a_draft_whose_connection_is_missing_shows_the_problems(clients):
    flow = make_flow(echo_definition())
    definition = echo_definition()
    definition["steps"].append({"key": "call", "type": "http", "connection": "nowhere",
                                "request": {"method": "GET", "url": "/x"}})
    flow_update_draft(flow=flow, definition=definition)
    response = clients["builders"].post(reverse("admin:workflows_flow_release",
                                                args=[flow.pk]), follow=True)
    assert "nowhere" in response.content.decode()
    assert not FlowVersion.objects.filter(flow=flow, number=2).exists()


def test_an_operator_promotes_a_release(clients):
    flow = make_flow(echo_definition())
    flow_update_draft(flow=flow, definition=echo_definition(keys=("first", "x")))
    flow_release(flow=flow)
    url = reverse("admin:workflows_flow_promote", args=[flow.pk])
    response = clients["operators"].post(url, {"number": 2})
    assert response.status_code == 302
    flow.refresh_from_db()
    assert flow.live_version.number == 2


def test_a_builder_may_not_promote_and_nothing_changes(clients):
    flow = make_flow(echo_definition())
    flow_update_draft(flow=flow, definition=echo_definition(keys=("first", "x")))
    flow_release(flow=flow)
    response = clients["builders"].post(reverse("admin:workflows_flow_promote", args=[flow.pk]),
                                        {"number": 2})
    assert response.status_code == 403
    flow.refresh_from_db()
    assert flow.live_version.number == 1


def test_promoting_a_release_that_does_not_exist_is_a_message(clients):
    flow = make_flow(echo_definition())
    response = clients["operators"].post(
        reverse("admin:workflows_flow_promote", args=[flow.pk]), {"number": 9}, follow=True)
    assert "has no release 9" in response.content.decode()
    flow.refresh_from_db()
    assert flow.live_version.number == 1


def test_an_operator_starts_a_run_with_input(clients):
    flow = make_flow(retry_definition())
    response = clients["operators"].post(reverse("admin:workflows_flow_start", args=[flow.pk]),
                                         {"input": '{"topic": "daily"}'})
    run = flow.runs.get()
    assert response.status_code == 302 and response["Location"].endswith(
        f"/admin/workflows/run/{run.pk}/change/")
    assert run.input["topic"] == "daily" and run.trigger_actor == "operator"


@pytest.mark.parametrize("text, expected", [
    ("{not json", "not valid JSON"),
    ('{"nope": 1}', "nope"),
])
def test_a_refused_start_shows_why_and_starts_nothing(clients, text, expected):
    flow = make_flow(retry_definition())
    response = clients["operators"].post(reverse("admin:workflows_flow_start", args=[flow.pk]),
                                         {"input": text}, follow=True)
    assert expected in response.content.decode()
    assert not flow.runs.exists()


def test_support_may_not_start_runs(clients):
    flow = make_flow(retry_definition())
    response = clients["support"].post(reverse("admin:workflows_flow_start", args=[flow.pk]),
                                       {"input": "{}"})
    assert response.status_code == 403
    assert not flow.runs.exists()


def test_a_builder_adds_a_flow_from_a_definition(clients):
    response = clients["builders"].post(reverse("admin:workflows_flow_add"),
                                        {"definition": NEW_DRAFT.replace("retrying", "fresh")})
    flow = Flow.objects.get(slug="fresh")
    assert response.status_code == 302 and response["Location"] == flow_url(flow)
    bad = clients["builders"].post(reverse("admin:workflows_flow_add"), {"definition": "a: ["})
    assert bad.status_code == 422 and "(document)" in bad.content.decode()
    assert clients["support"].get(reverse("admin:workflows_flow_add")).status_code == 403


def test_a_user_without_a_role_cannot_open_the_flow_page(clients, failed_run):
    assert clients["nobody"].get(flow_url(failed_run.flow)).status_code == 403
    assert clients["nobody"].get(matrix_url(failed_run.flow)).status_code == 403


def test_actions_refuse_get(clients, failed_run):
    url = reverse("admin:workflows_flow_release", args=[failed_run.flow_id])
    assert clients["builders"].get(url).status_code == 405
    assert failed_run.flow.runs.filter(status=RunStatus.FAILED).count() == 1


def test_the_number_of_steps_does_not_change_the_number_of_queries(admin_client):
    small = make_flow(echo_definition("small", keys=("a", "b")))
    large = make_flow(echo_definition("large", keys=tuple(f"s{n}" for n in range(15))))
    for flow in (small, large):
        for _ in range(3):
            start(flow)
    assert _count(admin_client, flow_url(small)) == _count(admin_client, flow_url(large))
    assert _count(admin_client, matrix_url(small)) == _count(admin_client, matrix_url(large))
