"""The published JSON Schema of a flow definition: the demo flows, the contract's example and
normalized definitions conform to it; docs/flow.schema.json is the generated document; the API
serves it without credentials."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from django.conf import settings

from tests.workflows.definitions.samples import nightly
from workflows.definitions import parse_definition, validate_definition
from workflows.definitions.schema import flow_json_schema
from workflows.management.commands.export_flow_schema import flow_schema_text

DEMO_FLOWS = sorted((Path(settings.BASE_DIR) / "workflows" / "demo").glob("*.yaml"))

# CONTRACT.md "Flow definition", as written there.
CONTRACT_EXAMPLE = """
slug: nightly-report            # [a-z0-9-], unique
name: Nightly report
description: Builds and publishes the nightly report.
input:                          # declared inputs; unknown or missing required ones are a 422
  repo: {type: string, required: true}
  limit: {type: integer, default: 10}
concurrency: {key: "{{ input.repo }}", limit: 1, policy: queue}   # allow | queue | skip | cancel_running
triggers:
  - {type: schedule, cron: "0 2 * * *", input: {repo: core}}
  - {type: webhook}
steps:
  - key: fetch                  # [a-z0-9_], unique in the flow
    type: http
    connection: reports-api     # optional: base URL, headers, auth come from the connection
    request: {method: GET, url: "/reports/{{ input.repo }}"}
    retry: {max_attempts: 3, backoff_seconds: 2}
    timeout_seconds: 30
  - key: count
    type: python
    action: core.echo           # a registered action; core.echo, core.sleep and core.fail ship built in
    args: {value: "{{ steps.fetch.output.body.count }}"}
  - key: agent
    type: ssh
    connection: build-vm
    command: "run-agent --callback '{{ steps.agent_done.callback_url }}'"
  - key: agent_done
    type: wait                  # resumes on a POST to its callback URL; or duration_seconds for a timer
    timeout_seconds: 7200
  - key: review
    type: approval
    assignees: {groups: [reviewers], users: []}
    instructions: "Review {{ steps.agent_done.output.pr_url }}"
    redo_to: agent              # default: the previous step
    timeout_seconds: 86400
  - key: publish
    type: python
    action: core.echo
    args: {published: true}
    needs: [review]             # default: the previous step; several names run after all of them
notify:                         # optional: who hears about what (email addresses, http(s) webhooks)
  - {on: [failed, approval_requested], email: [ops@example.com], webhook: "https://hooks.example.com/x"}
promotion: {requires_approval: true, approvers: {groups: [reviewers]}}   # optional two-person rule
retention_days: 30              # optional; default WF_RETENTION_DAYS
"""


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans (true/false only), as editors read YAML:
    YAML 1.1 would turn the contract's `on:` key into True."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", yaml.resolver.re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = flow_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _errors(validator, document) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_there_are_demo_flows():
    assert [path.name for path in DEMO_FLOWS] == [
        "agent-demo.yaml", "approval-demo.yaml", "nightly-collect.yaml", "nightly-report.yaml",
        "retry-demo.yaml"
    ]


@pytest.mark.parametrize("path", DEMO_FLOWS, ids=lambda path: path.name)
def test_every_demo_flow_and_its_normalized_form_conform(validator, path):
    definition = parse_definition(path.read_text())
    assert _errors(validator, definition) == []
    assert _errors(validator, json.loads(json.dumps(validate_definition(definition)))) == []


def test_the_contract_example_conforms(validator):
    example = yaml.load(CONTRACT_EXAMPLE, Loader=_Yaml12Loader)
    assert example["notify"][0]["on"] == ["failed", "approval_requested"]
    assert _errors(validator, example) == []


def test_the_test_flow_and_its_normalized_form_conform(validator):
    assert _errors(validator, nightly()) == []
    assert _errors(validator, validate_definition(nightly())) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"slug": "Nightly Report"}, "slug"),
        ({"owner": "me"}, ""),
        ({"steps": []}, "steps"),
        ({"steps": [{"key": "a", "type": "ftp"}]}, "steps/0"),
        ({"steps": [{"key": "a", "type": "python"}]}, "steps/0"),
        ({"steps": [{"key": "a", "type": "wait", "colour": "red"}]}, "steps/0"),
        ({"steps": [{"key": "a", "type": "wait", "retry": {"max_attempts": 0}}]},
         "steps/0/retry/max_attempts"),
        ({"concurrency": {"policy": "drop"}}, "concurrency/policy"),
        ({"triggers": [{"type": "schedule"}]}, "triggers/0"),
        ({"input": {"limit": {"type": "int"}}}, "input/limit/type"),
        ({"input": {"1st": {"type": "string"}}}, "input"),
        ({"steps": [{"key": "a", "type": "ssh", "connection": "vm", "command": "x",
                     "env": {"NOT-A-NAME": 1}}]}, "steps/0/env"),
    ],
)
def test_the_schema_refuses_what_the_checks_refuse(validator, change, where):
    document = {"slug": "s", "name": "S", "steps": [{"key": "a", "type": "wait"}], **change}
    errors = list(validator.iter_errors(document))
    assert errors, document
    paths = set()
    while errors:  # with the errors of each anyOf/oneOf branch
        error = errors.pop()
        paths.add("/".join(map(str, error.absolute_path)))
        errors += error.context or []
    assert where in paths, _errors(validator, document)


def test_docs_flow_schema_json_is_the_generated_schema():
    committed = (Path(settings.BASE_DIR) / "docs" / "flow.schema.json").read_text()
    assert committed == flow_schema_text(), (
        "docs/flow.schema.json is stale; refresh it with "
        "`python manage.py export_flow_schema > docs/flow.schema.json`"
    )


@pytest.mark.django_db
def test_the_api_serves_the_schema_without_credentials(client):
    response = client.get("/api/v1/schema/flow.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/schema+json"
    assert response.json() == flow_json_schema()
