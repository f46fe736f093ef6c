"""The committed docs/openapi.json is a promise: every path, operation, parameter, status and
schema field in it must still exist in the live schema (adding is fine; renaming or removing
breaks integrators). Refresh the snapshot after adding something:

    python manage.py export_openapi > docs/openapi.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings

from workflows.management.commands.export_openapi import openapi_document

SNAPSHOT = Path(settings.BASE_DIR) / "docs" / "openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")


def _ref_name(schema: dict[str, Any] | None) -> str | None:
    ref = (schema or {}).get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else None


def _schema_problems(name: str, old: dict[str, Any], new: dict[str, Any] | None) -> list[str]:
    if new is None:
        return [f"schema {name} is missing"]
    problems = []
    for field in old.get("properties", {}):
        if field not in new.get("properties", {}):
            problems.append(f"schema {name} lost field {field!r}")
    for field in new.get("required", []):
        if field not in old.get("required", []) and field in old.get("properties", {}) \
                and name.endswith("In"):
            problems.append(f"request schema {name} now requires {field!r}")
    return problems


def compatibility_problems(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in `old` (the snapshot) the `new` schema no longer offers."""
    problems: list[str] = []
    for path, old_item in old.get("paths", {}).items():
        new_item = new.get("paths", {}).get(path)
        if new_item is None:
            problems.append(f"path {path} is missing")
            continue
        for method in METHODS:
            if method not in old_item:
                continue
            where = f"{method.upper()} {path}"
            old_op, new_op = old_item[method], new_item.get(method)
            if new_op is None:
                problems.append(f"operation {where} is missing")
                continue
            if old_op.get("operationId") != new_op.get("operationId"):
                problems.append(f"operation {where} was renamed to {new_op.get('operationId')}")
            new_params = {(p["name"], p["in"]) for p in new_op.get("parameters", [])}
            for param in old_op.get("parameters", []):
                if (param["name"], param["in"]) not in new_params:
                    problems.append(f"{where} lost parameter {param['in']}.{param['name']}")
            for status, response in old_op.get("responses", {}).items():
                new_response = new_op.get("responses", {}).get(status)
                if new_response is None:
                    problems.append(f"{where} lost response {status}")
                    continue
                old_ref = _ref_name(response.get("content", {}).get("application/json", {})
                                    .get("schema"))
                new_ref = _ref_name(new_response.get("content", {})
                                    .get("application/json", {}).get("schema"))
                if old_ref and old_ref != new_ref:
                    problems.append(f"{where} {status} changed schema {old_ref} -> {new_ref}")
            old_body = _ref_name(old_op.get("requestBody", {}).get("content", {})
                                 .get("application/json", {}).get("schema"))
            new_body = _ref_name(new_op.get("requestBody", {}).get("content", {})
                                 .get("application/json", {}).get("schema"))
            if old_body and old_body != new_body:
                problems.append(f"{where} request body changed schema {old_body} -> {new_body}")
    new_schemas = new.get("components", {}).get("schemas", {})
    for name, schema in old.get("components", {}).get("schemas", {}).items():
        problems += _schema_problems(name, schema, new_schemas.get(name))
    return problems


def test_the_live_schema_keeps_everything_the_snapshot_promises():
    snapshot = json.loads(SNAPSHOT.read_text())
    live = json.loads(json.dumps(openapi_document()))  # status codes become strings, as saved
    problems = compatibility_problems(snapshot, live)
    assert not problems, (
        "The API lost or renamed something integrators rely on:\n  " + "\n  ".join(problems)
        + "\nAdd fields instead of renaming; if the change is intended, refresh the snapshot "
          "with `python manage.py export_openapi > docs/openapi.json`."
    )


def test_the_checker_notices_a_renamed_field_and_a_missing_operation():
    snapshot = json.loads(SNAPSHOT.read_text())
    live = json.loads(json.dumps(openapi_document()))
    fields = live["components"]["schemas"]["RunOut"]["properties"]
    fields["state"] = fields.pop("status")
    del live["paths"]["/api/v1/runs/{run_id}/retry"]["post"]
    problems = compatibility_problems(snapshot, live)
    assert "schema RunOut lost field 'status'" in problems
    assert "operation POST /api/v1/runs/{run_id}/retry is missing" in problems


def test_the_snapshot_lists_every_contract_endpoint():
    paths = json.loads(SNAPSHOT.read_text())["paths"]
    expected = {
        ("get", "/flows"), ("post", "/flows"), ("get", "/flows/{slug}"),
        ("put", "/flows/{slug}/draft"), ("post", "/flows/{slug}/releases"),
        ("get", "/flows/{slug}/releases"), ("post", "/flows/{slug}/releases/{version}/promote"),
        ("get", "/flows/{slug}/diff"), ("post", "/flows/{slug}/runs"),
        ("get", "/flows/{slug}/runs"), ("get", "/flows/{slug}/matrix"),
        ("get", "/runs/{run_id}"), ("get", "/runs/{run_id}/events"),
        ("get", "/runs/{run_id}/steps/{key}"), ("get", "/runs/{run_id}/steps/{key}/logs"),
        ("post", "/runs/{run_id}/cancel"), ("post", "/runs/{run_id}/retry"),
        ("post", "/runs/{run_id}/replay"), ("get", "/runs/{run_id}/compare"),
        ("get", "/approvals"), ("post", "/approvals/{approval_id}/approve"),
        ("post", "/approvals/{approval_id}/reject"), ("post", "/approvals/{approval_id}/redo"),
        ("post", "/callbacks/{token}"), ("post", "/hooks/{slug}"), ("get", "/resources/{ref}"),
        ("get", "/connections"), ("post", "/connections"), ("put", "/connections/{name}"),
    }
    missing = {(m, p) for m, p in expected if m not in paths.get("/api/v1" + p, {})}
    assert not missing
