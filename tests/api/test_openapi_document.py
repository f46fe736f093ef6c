"""The OpenAPI document is one validators and client generators accept (issue 27): valid
OpenAPI 3.1 (served and committed), stable `<entity>_<action>` operation ids, the one error
document on every operation, and schemas as strict as the server.

A new endpoint: give its route `operation_id="<entity>_<action>"`, add a line to
PINNED_OPERATION_IDS (the failure message prints it), and refresh the snapshot with
`python manage.py export_openapi > docs/openapi.json`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from approvals.models import ApprovalStatus
from connections.models import ConnectionKind
from workflows.api.openapi import OPERATION_ID_RE, finish_document
from workflows.definitions.schema import flow_json_schema
from workflows.management.commands.export_openapi import openapi_document
from workflows.models import ActorKind, TriggerKind
from workflows.states import AttemptStatus, EventKind, FlowHistoryKind, RunStatus, StepStatus

SNAPSHOT = Path(settings.BASE_DIR) / "docs" / "openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")

# Names integrators' generated code imports (`from client.api.runs import runs_get`): an entry
# never changes. Sorted by path; one line per operation.
PINNED_OPERATION_IDS = {
    "GET /api/v1/approvals": "approvals_list",
    "GET /api/v1/approvals/{approval_id}": "approvals_get",
    "POST /api/v1/approvals/{approval_id}/approve": "approvals_approve",
    "POST /api/v1/approvals/{approval_id}/redo": "approvals_redo",
    "POST /api/v1/approvals/{approval_id}/reject": "approvals_reject",
    "POST /api/v1/callbacks/{token}": "callbacks_receive",
    "GET /api/v1/connections": "connections_list",
    "POST /api/v1/connections": "connections_create",
    "GET /api/v1/connections/{name}": "connections_get",
    "PUT /api/v1/connections/{name}": "connections_update",
    "POST /api/v1/connections/{name}/test": "connections_test",
    "GET /api/v1/flows": "flows_list",
    "POST /api/v1/flows": "flows_create",
    "GET /api/v1/flows/{slug}": "flows_get",
    "GET /api/v1/flows/{slug}/diff": "flows_diff",
    "PUT /api/v1/flows/{slug}/draft": "flows_update_draft",
    "GET /api/v1/flows/{slug}/history": "flows_history",
    "GET /api/v1/flows/{slug}/matrix": "flows_matrix",
    "GET /api/v1/flows/{slug}/releases": "releases_list",
    "POST /api/v1/flows/{slug}/releases": "releases_create",
    "POST /api/v1/flows/{slug}/releases/{version}/promote": "releases_promote",
    "GET /api/v1/flows/{slug}/runs": "runs_list",
    "POST /api/v1/flows/{slug}/runs": "runs_start",
    "POST /api/v1/flows/{slug}/webhook-secret": "flows_rotate_webhook_secret",
    "POST /api/v1/hooks/{slug}": "hooks_receive",
    "GET /api/v1/resources/{ref}": "resources_get",
    "GET /api/v1/runs": "runs_across_flows",
    "GET /api/v1/runs/{run_id}": "runs_get",
    "POST /api/v1/runs/{run_id}/cancel": "runs_cancel",
    "GET /api/v1/runs/{run_id}/compare": "runs_compare",
    "GET /api/v1/runs/{run_id}/events": "runs_events",
    "GET /api/v1/runs/{run_id}/explain": "runs_explain",
    "POST /api/v1/runs/{run_id}/replay": "runs_replay",
    "POST /api/v1/runs/{run_id}/rerun": "runs_rerun",
    "POST /api/v1/runs/{run_id}/retry": "runs_retry",
    "GET /api/v1/runs/{run_id}/steps/{key}": "runs_step",
    "GET /api/v1/runs/{run_id}/steps/{key}/logs": "runs_step_logs",
    "GET /api/v1/schema/flow.json": "schema_flow",
    "GET /api/v1/me": "me_get",
    "GET /api/v1/meta": "meta_get",
    "POST /api/v1/flows/{slug}/notification-secret": "flows_rotate_notification_secret",
    "PUT /api/v1/flows/{slug}/webhook-secret": "flows_set_webhook_secret",
    "GET /api/v1/flows/{slug}/deliveries": "deliveries_list",
    "POST /api/v1/flows/{slug}/deliveries/{delivery_id}/redeliver": "deliveries_redeliver",
    "POST /api/v1/callbacks/{token}/heartbeat": "callbacks_heartbeat",
    "POST /api/v1/callbacks/{token}/logs": "callbacks_logs",
    "PUT /api/v1/callbacks/{token}/artifacts/{name}": "callbacks_artifact",
    "GET /api/v1/runs/{run_id}/steps/{key}/instances": "runs_step_instances",
    "GET /api/v1/runs/{run_id}/steps/{key}/instances/{index}": "runs_step_instance",
}


@functools.cache
def _live_text() -> str:
    return json.dumps(openapi_document())  # status codes become strings, as served


def _live() -> dict[str, Any]:
    return json.loads(_live_text())


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{method.upper()} {path}": operation
            for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS}


def _schema_at(document: dict[str, Any], ref: str) -> dict[str, Any]:
    return document["components"]["schemas"][ref.rsplit("/", 1)[-1]]


# --- valid OpenAPI 3.1 --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_served_document_is_valid_openapi_3_1():
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises with the path of the first problem


def test_the_committed_snapshot_is_valid_openapi_3_1():
    validate(json.loads(SNAPSHOT.read_text()))


def test_the_validator_refuses_a_parameter_examples_list():
    """The bug the issue reported: `examples` as a list on a Parameter Object."""
    document = _live()
    parameter = document["paths"]["/api/v1/flows/{slug}/diff"]["get"]["parameters"][1]
    parameter["examples"] = ["1", "live"]
    with pytest.raises(OpenAPIValidationError):
        validate(document)


def test_parameter_examples_become_an_examples_map_and_stay_in_the_schema():
    document = {"paths": {"/x": {"get": {"parameters": [
        {"in": "query", "name": "to", "required": True, "examples": ["v1", "draft"],
         "schema": {"type": "string", "examples": ["v1", "draft"]}},
    ]}}}}
    parameter = finish_document(document)["paths"]["/x"]["get"]["parameters"][0]
    assert parameter["examples"] == {"v1": {"value": "v1"}, "draft": {"value": "draft"}}
    assert parameter["schema"]["examples"] == ["v1", "draft"]


def test_an_optional_body_is_its_schema_not_a_null():
    """The server answers a `null` body with 422: an optional body is the object or nothing."""
    body = _live()["paths"]["/api/v1/approvals/{approval_id}/approve"]["post"]["requestBody"]
    assert body["required"] is False
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DecisionIn"}


# --- operation ids ------------------------------------------------------------------------------


def test_every_operation_has_a_unique_entity_action_operation_id():
    operations = _operations(_live())
    bad = {where: op.get("operationId") for where, op in operations.items()
           if not OPERATION_ID_RE.fullmatch(op.get("operationId") or "")}
    assert not bad, (
        "Give these routes an explicit operation_id=\"<entity>_<action>\" (lowercase words "
        f"joined by _, e.g. runs_get): {bad}")
    ids = [op["operationId"] for op in operations.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_the_operation_ids_are_pinned():
    live = {where: op["operationId"] for where, op in _operations(_live()).items()}
    changed = {where: (pinned, live[where]) for where, pinned in PINNED_OPERATION_IDS.items()
               if where in live and live[where] != pinned}
    gone = sorted(set(PINNED_OPERATION_IDS) - set(live))
    new = {where: live[where] for where in sorted(set(live) - set(PINNED_OPERATION_IDS))}
    problems = []
    if changed:
        problems.append("Operation ids changed; integrators import these names, so give the "
                        "routes their pinned operation_id= back:\n" + "\n".join(
                            f"    {where}: pinned {old!r}, now {now!r}"
                            for where, (old, now) in changed.items()))
    if gone:
        problems.append("Pinned operations are gone from the document:\n" + "\n".join(
            f"    {where}" for where in gone))
    if new:
        problems.append("New operations: add these lines to PINNED_OPERATION_IDS in "
                        "tests/api/test_openapi_document.py:\n" + "\n".join(
                            f'    "{where}": "{op_id}",' for where, op_id in new.items()))
    assert not problems, "\n\n".join(problems)


# --- errors -------------------------------------------------------------------------------------


def test_every_operation_declares_the_one_error_document():
    document = _live()
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    for where, operation in _operations(document).items():
        responses = operation["responses"]
        for status in ("400", "404", "413", "422"):
            assert status in responses, f"{where} does not declare {status}"
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert response["content"]["application/json"]["schema"] == error_ref, \
                    f"{where} {status} is not the error document"
        secured = bool(operation.get("security"))
        assert ("401" in responses) == secured or "hooks" in where, where
    error = document["components"]["schemas"]["ErrorOut"]
    detail = _schema_at(document, error["properties"]["error"]["$ref"])
    assert set(detail["required"]) == {"code", "message"}
    problem = _schema_at(document, detail["properties"]["details"]["items"]["$ref"])
    assert set(problem["required"]) == {"path", "message"}


# --- schemas as strict as the server ------------------------------------------------------------


def test_a_definition_is_described_by_the_flow_schema():
    document = _live()
    field = document["components"]["schemas"]["DefinitionIn"]["properties"]["definition"]
    variants = field["anyOf"]
    assert {"$ref": "#/components/schemas/FlowDefinition"} in variants
    text = next(v for v in variants if v.get("type") == "string")
    assert text["minLength"] == 1
    component = document["components"]["schemas"]["FlowDefinition"]
    published = flow_json_schema()
    assert component["properties"].keys() == published["properties"].keys()
    assert component["required"] == published["required"]
    assert component["additionalProperties"] is False


@pytest.mark.parametrize(("schema", "field", "choices"), [
    ("RunOut", "status", RunStatus), ("StepOut", "status", StepStatus),
    ("AttemptOut", "status", AttemptStatus), ("EventOut", "kind", EventKind),
    ("EventOut", "actor_kind", ActorKind), ("TriggerOut", "kind", TriggerKind),
    ("MatrixRunOut", "trigger_kind", TriggerKind), ("MatrixCellOut", "status", StepStatus),
    ("ApprovalOut", "status", ApprovalStatus), ("HistoryItemOut", "kind", FlowHistoryKind),
    ("ConnectionOut", "kind", ConnectionKind), ("ConnectionIn", "kind", ConnectionKind),
])
def test_statuses_and_kinds_are_enums_of_every_value(schema, field, choices):
    document = _live()
    prop = document["components"]["schemas"][schema]["properties"][field]
    if "$ref" in prop:
        prop = _schema_at(document, prop["$ref"])
    assert sorted(prop["enum"]) == sorted(choices.values)


@pytest.mark.parametrize(("where", "name", "expected"), [
    ("GET /api/v1/flows/{slug}", "slug", {"pattern": "^[a-z0-9][a-z0-9-]{0,99}$",
                                          "maxLength": 100}),
    ("GET /api/v1/runs/{run_id}/steps/{key}", "key", {"pattern": "^[a-z0-9_]+$",
                                                      "maxLength": 100}),
    ("GET /api/v1/runs/{run_id}", "run_id", {"minimum": 1, "maximum": 2**63 - 1}),
    ("GET /api/v1/connections/{name}", "name", {"maxLength": 100}),
    ("POST /api/v1/callbacks/{token}", "token", {"pattern": "^[A-Za-z0-9_-]{43}$"}),
    ("GET /api/v1/flows", "cursor", {"pattern": "^[A-Za-z0-9_-]*$"}),
    ("GET /api/v1/runs", "finished_after", {"format": "date-time"}),
])
def test_keys_slugs_and_times_carry_their_constraints(where, name, expected):
    parameters = {p["name"]: p["schema"] for p in _operations(_live())[where]["parameters"]}
    assert expected.items() <= parameters[name].items(), parameters[name]


# --- what the server accepts did not change -----------------------------------------------------


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"definition": [1]}, 422, "validation_error"),
    ({"definition": 3}, 422, "validation_error"),
    ({"definition": ""}, 422, "definition_invalid"),
    ({"definition": "slug: texty\nname: Texty\nsteps:\n  - {key: a, type: wait}\n"}, 201, None),
    ({"definition": {"slug": "objecty", "name": "Objecty",
                     "steps": [{"key": "a", "type": "wait"}]}}, 201, None),
])
def test_a_definition_is_still_any_object_or_text_judged_by_the_checks(admin_api, body, status,
                                                                       code):
    response = admin_api.post("/flows", body)
    assert response.status == status, response.body
    if code:
        assert response.error["code"] == code
        assert response.error["details"][0]["path"].startswith(("definition", "(document)"))


def test_lookups_still_answer_404_for_values_the_schema_rules_out(admin_api, flow):
    assert admin_api.get("/flows/Not_A_Slug").status == 404
    assert admin_api.get("/runs/0").status == 404
    assert admin_api.get("/runs/1/steps/NOPE").status == 404
    assert admin_api.get("/connections/" + "x" * 101).status == 404
    assert admin_api.post("/callbacks/short").status == 404
    assert admin_api.post("/flows/simple/releases/0/promote").status == 404


def test_a_null_body_is_still_refused_and_no_body_still_accepted(admin_api, flow):
    assert admin_api.post("/flows/simple/releases", raw=b"null").status == 422
    assert admin_api.post("/flows/simple/releases").status == 201
