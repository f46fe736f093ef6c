"""The flow page's run form: widgets from the declared inputs, per-field errors from the
validation the API uses, nothing started on a refusal, rehearsals on the draft's inputs."""

import re

import pytest
from django.urls import reverse

from tests.factories import make_flow
from workflows.services.flows import flow_update_draft

pytestmark = pytest.mark.django_db

TYPED = {
    "slug": "typed", "name": "Typed",
    "input": {
        "repo": {"type": "string", "required": True, "description": "Which repository"},
        "limit": {"type": "integer", "default": 10},
        "ratio": {"type": "number"},
        "dry_run": {"type": "boolean", "default": True},
        "env": {"type": "string", "enum": ["staging", "production"], "default": "staging"},
        "options": {"type": "object", "description": "Extra options"},
    },
    "steps": [{"key": "only", "type": "python", "action": "core.echo",
               "args": {"repo": "{{ input.repo }}"}}],
}


def start_url(flow):
    return reverse("admin:workflows_flow_start", args=[flow.pk])


def field_errors(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-field-error="(\w+)">([^<]*)<', page))


def form_data(**values):
    data = {"mode": "form", "in-repo": "core", "in-limit": "10", "in-ratio": "",
            "in-dry_run": "true", "in-env": '"staging"', "in-options": ""}
    data.update({f"in-{k}": v for k, v in values.items()})
    return data


def test_the_form_has_a_widget_per_type_with_required_defaults_and_descriptions(clients):
    flow = make_flow(TYPED)
    page = clients["operators"].get(reverse("admin:workflows_flow_change", args=[flow.pk])
                                    + "?start=form").content.decode()
    assert re.search(r'<details class="wf-pop" id="start-run" open>', page)
    assert re.search(r'<input type="text" name="in-repo"[^>]*data-type="string"', page)
    assert re.search(r'<input type="text" name="in-limit" value="10"[^>]*inputmode="numeric"',
                     page)
    assert re.search(r'<select name="in-dry_run"[^>]*data-type="boolean"', page)
    assert '<option value="true" selected>true</option>' in page
    assert '<option value="&quot;production&quot;">production</option>' in page
    assert re.search(r'<textarea name="in-options"[^>]*class="wf-code"', page)
    assert "Which repository" in page and "Extra options" in page
    assert 'data-field="repo"' in page and "required" in page
    assert 'href="?start=json#start-run"' in page


def test_a_value_of_the_wrong_type_is_a_field_error_and_nothing_starts(clients):
    flow = make_flow(TYPED)
    response = clients["operators"].post(start_url(flow), form_data(
        limit="ten", ratio="1.5x", repo="", options="[1, 2]"))
    assert response.status_code == 422
    errors = field_errors(response.content.decode())
    assert errors == {
        "repo": "required",
        "limit": "must be an integer, got string",
        "ratio": "must be a number, got string",
        "options": "must be a mapping, got list",
    }
    assert 'value="ten"' in response.content.decode()  # what was typed comes back
    assert not flow.runs.exists()


def test_bad_json_in_an_object_field_is_that_fields_error(clients):
    flow = make_flow(TYPED)
    response = clients["operators"].post(start_url(flow), form_data(options="{nope"))
    assert response.status_code == 422
    assert field_errors(response.content.decode())["options"].startswith("not valid JSON")
    assert not flow.runs.exists()


def test_a_valid_form_starts_a_run_with_typed_values(clients):
    flow = make_flow(TYPED)
    response = clients["operators"].post(start_url(flow), form_data(
        limit="25", ratio="0.5", dry_run="false", env='"production"',
        options='{"verbose": true}'))
    run = flow.runs.get()
    assert response.status_code == 302
    assert run.input == {"repo": "core", "limit": 25, "ratio": 0.5, "dry_run": False,
                         "env": "production", "options": {"verbose": True}}
    assert not run.is_rehearsal


def test_an_empty_optional_field_takes_its_default(clients):
    flow = make_flow(TYPED)
    clients["operators"].post(start_url(flow), form_data(limit="", env=""))
    assert flow.runs.get().input["limit"] == 10
    assert flow.runs.get().input["env"] == "staging"


def test_a_rehearsal_uses_the_drafts_own_inputs(clients):
    flow = make_flow(TYPED)
    draft = {**TYPED, "input": {"branch": {"type": "string", "required": True}},
             "steps": [{"key": "only", "type": "python", "action": "core.echo", "args": {}}]}
    flow_update_draft(flow=flow, definition=draft)
    page = clients["operators"].get(reverse("admin:workflows_flow_change", args=[flow.pk])
                                    + "?start=draft").content.decode()
    assert 'name="in-branch"' in page and 'name="in-repo"' not in page
    response = clients["operators"].post(start_url(flow), {"mode": "draft", "in-branch": ""})
    assert field_errors(response.content.decode()) == {"branch": "required"}
    clients["operators"].post(start_url(flow), {"mode": "draft", "in-branch": "main"})
    run = flow.runs.get()
    assert run.is_rehearsal and run.input == {"branch": "main"}


def test_json_mode_is_one_link_away_and_bad_json_is_shown_in_place(clients):
    flow = make_flow(TYPED)
    page = clients["operators"].get(reverse("admin:workflows_flow_change", args=[flow.pk])
                                    + "?start=json").content.decode()
    assert 'name="input"' in page and '&quot;limit&quot;: 10' in page
    response = clients["operators"].post(start_url(flow), {"mode": "json", "input": "{oops"})
    assert response.status_code == 422
    assert field_errors(response.content.decode())["input"].startswith("not valid JSON")
    assert "{oops" in response.content.decode()
    assert not flow.runs.exists()


def test_a_two_person_flow_offers_and_runs_no_rehearsal(clients):
    """Issue 25 (notes): rehearsal runs of a flow under the two-person rule are refused by
    run_start; the form does not offer them either."""
    guarded = {**TYPED, "slug": "guarded",
               "promotion": {"requires_approval": True, "approvers": {"groups": ["reviewers"]}}}
    flow = make_flow(guarded, promote=False)
    page = clients["operators"].get(reverse("admin:workflows_flow_change", args=[flow.pk])
                                    + "?start=draft").content.decode()
    assert 'data-start-tab="draft"' not in page and 'name="draft"' not in page
    assert "data-no-rehearsal" in page
    for data in ({"mode": "draft", "in-repo": "core"},
                 {"mode": "json", "input": '{"repo": "core"}', "draft": "on"}):
        response = clients["operators"].post(start_url(flow), data)
        assert response.status_code == 403
        assert "two-person rule" in response.content.decode()
    assert not flow.runs.exists()
