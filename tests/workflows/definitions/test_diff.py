"""content_hash and definition_diff of normalized definitions."""

import copy
import json

from tests.workflows.definitions.samples import nightly
from workflows.definitions import (
    content_hash,
    definition_diff,
    definition_value_changes,
    validate_definition,
)


def test_content_hash_is_stable_under_key_order():
    definition = validate_definition(nightly())
    reordered = json.loads(json.dumps(definition, sort_keys=True))
    reversed_keys = {key: definition[key] for key in reversed(list(definition))}
    assert content_hash(definition) == content_hash(reordered) == content_hash(reversed_keys)
    assert len(content_hash(definition)) == 64


def test_content_hash_changes_with_content():
    definition = validate_definition(nightly())
    changed = copy.deepcopy(definition)
    changed["steps"][0]["timeout_seconds"] = 31
    assert content_hash(definition) != content_hash(changed)


def test_definition_diff_of_equal_definitions_is_empty():
    definition = validate_definition(nightly())
    assert definition_diff(definition, copy.deepcopy(definition)) == {
        "metadata": {},
        "input": {},
        "concurrency": {},
        "triggers": {},
        "steps": {"added": [], "removed": [], "changed": {}, "order": {}},
        "values": [],
    }


def test_definition_diff_lists_what_changed():
    a = validate_definition(nightly())
    source = nightly()
    source["name"] = "Nightly report v2"
    source["input"]["limit"]["default"] = 20
    source["input"]["since"] = {"type": "string"}
    source["concurrency"]["policy"] = "skip"
    source["steps"][0]["timeout_seconds"] = 60
    del source["steps"][1]  # count
    source["steps"].append(
        {"key": "announce", "type": "python", "action": "core.echo", "needs": ["publish"]}
    )
    b = validate_definition(source)

    diff = definition_diff(a, b)

    assert diff["metadata"] == {"name": {"from": "Nightly report", "to": "Nightly report v2"}}
    assert diff["input"] == {
        "limit": {
            "from": {"type": "integer", "required": False, "default": 10, "description": ""},
            "to": {"type": "integer", "required": False, "default": 20, "description": ""},
        },
        "since": {
            "from": None,
            "to": {"type": "string", "required": False, "default": None, "description": ""},
        },
    }
    assert diff["concurrency"] == {"from": a["concurrency"], "to": b["concurrency"]}
    assert diff["triggers"] == {}
    assert diff["steps"]["added"] == ["announce"]
    assert diff["steps"]["removed"] == ["count"]
    # notify now defaults to needing fetch, since count is gone.
    assert diff["steps"]["changed"] == {
        "fetch": {"timeout_seconds": {"from": 30, "to": 60}},
        "notify": {"needs": {"from": ["count"], "to": ["fetch"]}},
    }
    assert diff["steps"]["order"] == {}
    assert json.loads(json.dumps(diff)) == diff


def test_definition_diff_lists_each_changed_value_with_its_path():
    a = validate_definition(nightly())
    source = nightly()
    source["name"] = "Nightly report v2"
    source["input"]["limit"]["default"] = 20
    source["steps"][1]["action"] = "core.fail"
    source["triggers"][0]["cron"] = "0 3 * * *"
    del source["steps"][-1]
    b = validate_definition(source)
    removed = a["steps"][-1]

    values = definition_diff(a, b)["values"]

    assert values == [
        {"path": "name", "before": "Nightly report", "after": "Nightly report v2"},
        {"path": "input.limit.default", "before": 10, "after": 20},
        {"path": "triggers[0].cron", "before": a["triggers"][0]["cron"], "after": "0 3 * * *"},
        {"path": "steps.count.action", "before": a["steps"][1]["action"], "after": "core.fail"},
        {"path": f"steps.{removed['key']}", "before": removed, "after": None},
    ]


def test_definition_value_changes_of_equal_definitions_is_empty():
    definition = validate_definition(nightly())
    assert definition_value_changes(definition, copy.deepcopy(definition)) == []


def test_definition_diff_notices_reordered_steps():
    a = validate_definition(
        {
            "slug": "o",
            "name": "O",
            "steps": [
                {"key": "x", "type": "wait", "needs": []},
                {"key": "y", "type": "wait", "needs": []},
            ],
        }
    )
    b = validate_definition(
        {
            "slug": "o",
            "name": "O",
            "steps": [
                {"key": "y", "type": "wait", "needs": []},
                {"key": "x", "type": "wait", "needs": []},
            ],
        }
    )
    assert definition_diff(a, b)["steps"]["order"] == {"from": ["x", "y"], "to": ["y", "x"]}
    assert definition_diff(a, b)["steps"]["changed"] == {}
