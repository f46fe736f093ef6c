"""Issue 25 (M2, M3): the admin's doors refuse what the API refuses, with a 4xx, never a 500
and never a run: the run form in each of its modes, and the approval pages' URLs. The values
are the API tests' own (tests/hostile.py)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from django.urls import reverse

from tests.admin.test_run_form import TYPED, form_data, start_url
from tests.factories import make_flow
from tests.hostile import DEEP_NESTING, JSON_TEXTS, LONG_DIGITS, PATH_IDS, UNSTORABLE_STRINGS
from workflows.models import Run

pytestmark = pytest.mark.django_db

MB_1_5 = "x" * 1_500_000


def assert_nothing_started(response, flow):
    assert response.status_code == 422, response.status_code
    assert not Run.objects.filter(flow=flow).exists()


@pytest.mark.parametrize("text", JSON_TEXTS)
def test_the_json_tab_refuses_what_the_api_refuses(clients, text):
    flow = make_flow(TYPED)
    response = clients["operators"].post(start_url(flow), {
        "mode": "json", "input": '{"repo": "core", "options": {"x": ' + text + "}}"})
    assert_nothing_started(response, flow)


@pytest.mark.parametrize("value", UNSTORABLE_STRINGS)
def test_the_json_tab_refuses_strings_the_database_cannot_store(clients, value):
    flow = make_flow(TYPED)
    for given in ({"repo": value}, {"repo": "core", "options": {"list": ["ok", value]}},
                  {"repo": "core", "options": {value: 1}}):
        response = clients["operators"].post(start_url(flow), {
            "mode": "json", "input": json.dumps(given)})
        assert_nothing_started(response, flow)
        assert "NUL characters or unpaired surrogates" in response.content.decode()


def test_the_json_tab_refuses_an_input_larger_than_the_api_accepts(clients):
    flow = make_flow(TYPED)
    response = clients["operators"].post(start_url(flow), {
        "mode": "json", "input": json.dumps({"repo": MB_1_5})})
    assert_nothing_started(response, flow)
    assert "must be at most 1048576 bytes of JSON" in response.content.decode()


@pytest.mark.parametrize(("field", "text"), [
    ("limit", LONG_DIGITS), ("limit", "-" + LONG_DIGITS), ("ratio", "NaN"), ("ratio", "1e400"),
    ("ratio", "-1e400"), ("ratio", LONG_DIGITS), ("ratio", "Infinity"),
    ("options", DEEP_NESTING), ("options", '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("options", '{"a": NaN}'), ("options", '{"a": 1e400}'), ("options", '{"a": ' + LONG_DIGITS
                                                               + "}"),
    ("options", '{"a": ["ok", "a\\u0000b"]}'), ("options", '{"a": "\\ud800"}'),
    ("options", '{"a": ' + "[" * 70 + "]" * 70 + "}"),
    ("repo", MB_1_5), ("dry_run", DEEP_NESTING), ("env", "NaN"), ("env", LONG_DIGITS),
])
def test_the_form_refuses_hostile_values_in_each_widget(clients, field, text):
    flow = make_flow(TYPED)
    response = clients["operators"].post(start_url(flow), form_data(**{field: text}))
    assert_nothing_started(response, flow)


def test_a_refused_nested_value_is_named_at_its_field(clients):
    flow = make_flow(TYPED)
    response = clients["operators"].post(start_url(flow), form_data(
        options='{"list": ["ok", "a\\u0000b"]}'))
    assert_nothing_started(response, flow)
    assert ('data-field-error="options">list[1]: must not contain NUL characters or unpaired '
            "surrogates") in response.content.decode()


def test_the_draft_tab_refuses_the_same(clients):
    flow = make_flow(TYPED)
    data = form_data(options='{"a": "\\ud800"}')
    data["mode"] = "draft"
    assert_nothing_started(clients["operators"].post(start_url(flow), data), flow)


# --- the approval pages' URLs --------------------------------------------------------------------


def approval_urls(approval_id: str) -> list[tuple[str, str]]:
    base = f"/admin/approvals/approval/{quote(approval_id, safe='')}/"
    return [("get", base + "change/")] + [("post", base + d + "/")
                                           for d in ("approve", "reject", "redo")]


@pytest.mark.parametrize("approval_id", PATH_IDS)
def test_the_approval_pages_answer_a_4xx_to_ids_that_are_not_ids(clients, waiting_run,
                                                                 approval_id):
    for method, url in approval_urls(approval_id):
        for role in ("reviewers", "operators", "nobody"):
            response = getattr(clients[role], method)(url, {"comment": "x"})
            assert 400 <= response.status_code < 500, (method, url, role,
                                                      response.status_code)


def test_the_approval_pages_still_find_a_real_approval(clients, waiting_run):
    approval = waiting_run.approvals.get()
    url = reverse("admin:approvals_approval_change", args=[approval.pk])
    assert clients["reviewers"].get(url).status_code == 200


@pytest.mark.parametrize("term", PATH_IDS)
def test_the_runs_list_search_answers_ids_that_are_not_ids(admin_client, completed_run, term):
    response = admin_client.get(reverse("admin:workflows_run_changelist"), {"q": term})
    assert response.status_code == 200, response.status_code
    response = admin_client.get(reverse("admin:workflows_run_changelist"), {"q": "#" + term})
    assert response.status_code == 200, response.status_code


def test_admin_pages_answer_hostile_ids_and_query_values_without_a_500(admin_client,
                                                                     completed_run):
    """The rest of the probe: every admin page that reads a number or an id from its URL or
    query string, fed the same values (the approvals inbox's `q` was a 500 on "²")."""
    run, flow = completed_run, completed_run.flow
    failures = []
    for value in [*PATH_IDS, "A" + LONG_DIGITS, "A²", "#²", "res://²"]:
        text, segment = quote(value), quote(value, safe="")
        for url in (
            reverse("admin:workflows_flow_change", args=[flow.pk])
            + f"?before={text}&status={text}",
            reverse("admin:workflows_flow_diff", args=[flow.pk]) + f"?from={text}&to={text}",
            f"/admin/lookup/?q={text}",
            reverse("admin:workflows_run_compare", args=[run.pk]) + f"?to={text}",
            reverse("admin:workflows_run_live", args=[run.pk]) + f"?v={text}",
            f"/admin/approvals/approval/?tab=decided&page={text}&q={text}&flow={text}",
            f"/admin/approvals/approval/?q={text}",
            reverse("admin:workflows_run_step", args=[run.pk, "first"]) + f"?before={text}",
            f"/admin/workflows/run/{segment}/change/", f"/admin/workflows/flow/{segment}/change/",
            f"/admin/workflows/run/{run.pk}/steps/{segment}/",
        ):
            status = admin_client.get(url).status_code
            if status >= 500:
                failures.append((url[:100], status))
    assert not failures, failures
