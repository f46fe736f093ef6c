"""validate_run_input: the complete input of a run, or every problem at input.NAME."""

import pytest

from workflows.definitions import validate_definition, validate_run_input
from workflows.errors import InputInvalid


@pytest.fixture
def typed_definition() -> dict:
    return validate_definition(
        {
            "slug": "typed",
            "name": "Typed",
            "input": {
                "repo": {"type": "string", "required": True},
                "limit": {"type": "integer", "default": 10},
                "ratio": {"type": "number"},
                "dry_run": {"type": "boolean", "default": False},
                "options": {"type": "object", "default": {"a": 1}},
                "tags": {"type": "array"},
            },
            "steps": [{"key": "a", "type": "wait"}],
        }
    )


def test_run_input_gets_defaults_and_every_declared_name(typed_definition):
    assert validate_run_input(typed_definition, {"repo": "core", "ratio": 2}) == {
        "repo": "core",
        "limit": 10,
        "ratio": 2,
        "dry_run": False,
        "options": {"a": 1},
        "tags": None,
    }


def test_run_input_defaults_are_copies(typed_definition):
    complete = validate_run_input(typed_definition, {"repo": "core"})
    complete["options"]["a"] = 2
    assert typed_definition["input"]["options"]["default"] == {"a": 1}


@pytest.mark.parametrize(
    ("value", "problems"),
    [
        ({}, [{"path": "input.repo", "message": "required"}]),
        ({"repo": None}, [{"path": "input.repo", "message": "required"}]),
        (
            {"repo": "x", "extra": 1},
            [
                {
                    "path": "input.extra",
                    "message": "unknown input; declared: repo, limit, ratio, dry_run, options, tags",
                }
            ],
        ),
        ({"repo": 1}, [{"path": "input.repo", "message": "must be a string, got integer"}]),
        (
            {"repo": "x", "limit": True},
            [{"path": "input.limit", "message": "must be an integer, got boolean"}],
        ),
        (
            {"repo": "x", "limit": 1.5},
            [{"path": "input.limit", "message": "must be an integer, got number"}],
        ),
        (
            {"repo": "x", "ratio": False},
            [{"path": "input.ratio", "message": "must be a number, got boolean"}],
        ),
        (
            {"repo": "x", "dry_run": "no"},
            [{"path": "input.dry_run", "message": "must be true or false, got string"}],
        ),
        (
            {"repo": "x", "options": []},
            [{"path": "input.options", "message": "must be a mapping, got list"}],
        ),
        (
            {"repo": "x", "tags": "a,b"},
            [{"path": "input.tags", "message": "must be a list, got string"}],
        ),
        (
            ["core"],
            [{"path": "input", "message": "must be a mapping of input name to value, got list"}],
        ),
    ],
)
def test_run_input_problems_are_reported_at_input_paths(typed_definition, value, problems):
    with pytest.raises(InputInvalid) as caught:
        validate_run_input(typed_definition, value)
    assert caught.value.problems == problems


def test_run_input_reports_every_problem_together(typed_definition):
    with pytest.raises(InputInvalid) as caught:
        validate_run_input(typed_definition, {"limit": "x", "nope": 1})
    assert [p["path"] for p in caught.value.problems] == ["input.nope", "input.repo", "input.limit"]


def test_no_input_is_fine_when_nothing_is_required():
    definition = validate_definition(
        {"slug": "s", "name": "S", "steps": [{"key": "a", "type": "wait"}]}
    )
    assert validate_run_input(definition, None) == {}
    assert validate_run_input(definition, {}) == {}
