"""The `notify:` block: events and targets, problems with their paths, YAML's bare `on`."""

import pytest

from workflows.definitions import parse_definition, validate_definition
from workflows.errors import DefinitionInvalid

BASE = """
slug: notified
name: Notified
steps:
  - {key: only, type: python, action: core.echo}
"""


def problems_of(text: str) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionInvalid) as info:
        validate_definition(parse_definition(text))
    return [(p["path"], p["message"]) for p in info.value.problems]


def test_the_contract_example_with_a_bare_yaml_on_key_is_accepted_and_normalized():
    definition = validate_definition(parse_definition(BASE + """
notify:
  - {on: [failed, approval_requested], email: [ops@example.com], webhook: "https://hooks.example.com/x"}
  - {"on": [completed], email: [a@example.com, a@example.com]}
"""))
    assert definition["notify"] == [
        {"on": ["failed", "approval_requested"], "email": ["ops@example.com"],
         "webhook": "https://hooks.example.com/x"},
        {"on": ["completed"], "email": ["a@example.com"], "webhook": None},
    ]
    assert validate_definition(definition) == definition


def test_a_definition_without_notify_keeps_its_normalized_shape():
    assert "notify" not in validate_definition(parse_definition(BASE))
    assert "notify" not in validate_definition(parse_definition(BASE + "notify: []\n"))


@pytest.mark.parametrize(("block", "expected"), [
    ('notify: [{on: [failed], webhook: "ftp://files.example.com/x"}]',
     ("notify[0].webhook", "'ftp://files.example.com/x' is not an http(s) URL")),
    ("notify: [{on: [failed], webhook: not-a-url}]",
     ("notify[0].webhook", "'not-a-url' is not an http(s) URL")),
    ("notify: [{on: [failed], webhook: 42}]",
     ("notify[0].webhook", "must be an http(s) URL, got integer")),
    ("notify: [{on: [failed], email: [ops@example.com, nobody]}]",
     ("notify[0].email[1]", "'nobody' is not an email address")),
    ("notify: [{on: [failed], email: ops@example.com}]",
     ("notify[0].email", "must be a list of email addresses, got string")),
    ("notify: [{on: [failed, exploded], email: [ops@example.com]}]",
     ("notify[0].on[1]", "unknown event 'exploded'; expected one of failed, completed,"
      " approval_requested, promotion_requested")),
    ("notify: [{email: [ops@example.com]}]",
     ("notify[0].on", "required: a list of events (failed, completed, approval_requested,"
      " promotion_requested)")),
    ("notify: [{on: [failed]}]",
     ("notify[0]", "needs a target: email addresses, a webhook URL or both")),
    ("notify: [{on: [failed], email: [ops@example.com], slack: x}]",
     ("notify[0].slack", "unknown field; expected one of on, email, webhook")),
    ("notify: {on: [failed]}",
     ("notify", "must be a list of {on: [events], email: [...], webhook: URL}")),
])
def test_a_bad_notify_rule_is_a_problem_with_its_path(block, expected):
    assert expected in problems_of(BASE + block + "\n")


# --- enum inputs (the run form offers them as a choice) ----------------------------------------

ENUM = BASE + """
input:
  env: {type: string, enum: [staging, production], default: staging}
"""


def test_an_enum_input_is_normalized_and_checked_at_run_time():
    from workflows.definitions import validate_run_input

    definition = validate_definition(parse_definition(ENUM))
    assert definition["input"]["env"]["enum"] == ["staging", "production"]
    assert validate_run_input(definition, {"env": "production"}) == {"env": "production"}
    with pytest.raises(Exception) as info:
        validate_run_input(definition, {"env": "prod"})
    assert info.value.problems == [
        {"path": "input.env", "message": 'must be one of "staging", "production"'}]


@pytest.mark.parametrize(("declaration", "expected"), [
    ("{type: boolean, enum: [true]}", ("input.env.enum",
                                        "only string, integer and number inputs take an enum")),
    ("{type: string, enum: []}", ("input.env.enum",
                                   "must be a non-empty list of the allowed values")),
    ("{type: integer, enum: [1, two]}", ("input.env.enum[1]", "must be an integer, got string")),
    ("{type: string, enum: [a, b], default: c}", ("input.env.default",
                                                   "must be one of the enum values")),
])
def test_a_bad_enum_is_a_problem_with_its_path(declaration, expected):
    assert expected in problems_of(BASE + f"input:\n  env: {declaration}\n")
