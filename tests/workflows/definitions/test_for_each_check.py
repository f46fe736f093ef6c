"""Draft-time checks of for_each, max_parallel and fail_fast (check/for_each.py), and the
references {{ item }} and {{ item_index }}."""

import pytest
from jsonschema import Draft202012Validator

from tests.workflows.definitions.samples import problems_of
from workflows.definitions import validate_definition
from workflows.definitions.check.for_each import check_for_each
from workflows.definitions.schema import flow_json_schema


def flow(*steps):
    return {"slug": "fan", "name": "Fan", "input": {"repos": {"type": "array"}},
            "steps": list(steps)}


def each(**extra):
    return {"key": "build", "type": "python", "action": "core.echo",
            "for_each": "{{ input.repos }}", "args": {"repo": "{{ item }}", "i": "{{ item_index }}"},
            **extra}


def messages(definition):
    return {p["path"]: p["message"] for p in problems_of(definition)}


def test_a_for_each_step_with_item_references_is_valid():
    normalized = validate_definition(flow(each(max_parallel=1000, fail_fast=True)))
    assert normalized["steps"][0]["for_each"] == "{{ input.repos }}"
    assert normalized["steps"][0]["max_parallel"] == 1000


@pytest.mark.parametrize("value", [0, 1001, -3, "10", 2.5, True])
def test_max_parallel_outside_1_to_1000_is_refused_with_its_path(value):
    found = messages(flow(each(max_parallel=value)))
    assert "from 1 to 1,000" in found["steps[0].max_parallel"]


def test_item_outside_a_for_each_step_is_refused():
    step = {"key": "one", "type": "python", "action": "core.echo", "args": {"x": "{{ item }}"}}
    found = messages(flow(step))
    assert "only a step with for_each has an item" in found["steps[0].args.x"]


@pytest.mark.parametrize(("kind", "words"), [
    ({"type": "approval"}, "one decision"),
    ({"type": "wait"}, "fan out a flow step whose flow has the wait step"),
])
def test_for_each_on_an_approval_or_wait_step_is_refused_with_its_path(kind, words):
    step = {"key": "x", "for_each": "{{ input.repos }}", **kind}
    assert words in messages(flow(step))["steps[0].for_each"]


def test_for_each_on_a_flow_step_is_accepted_with_item_in_its_input():
    step = {"key": "f", "type": "flow", "flow": "child", "for_each": "{{ input.repos }}",
            "max_parallel": 3, "fail_fast": True,
            "input": {"repo": "{{ item }}", "at": "{{ item_index }}"}}
    problems = []
    check_for_each(problems, step, "steps[0]")
    assert problems == []
    normalized = validate_definition(flow(step), check_connections=False)
    assert normalized["steps"][0]["for_each"] == "{{ input.repos }}"
    assert not list(Draft202012Validator(flow_json_schema()).iter_errors(flow(step)))


@pytest.mark.parametrize("value", [["a"], "repos", "{{ input.repos }} and more", 3])
def test_for_each_must_be_a_single_reference(value):
    assert "single reference" in messages(flow(each(for_each=value)))["steps[0].for_each"]


def test_for_each_cannot_refer_to_its_own_item():
    assert "item" in messages(flow(each(for_each="{{ item }}")))["steps[0].for_each"]


def test_max_parallel_and_fail_fast_need_a_for_each():
    step = {"key": "one", "type": "python", "action": "core.echo", "max_parallel": 2,
            "fail_fast": True}
    found = messages(flow(step))
    assert found["steps[0].max_parallel"] == found["steps[0].fail_fast"] == (
        "only a step with for_each takes it")


def test_the_schema_knows_for_each_and_refuses_it_on_approvals_and_waits():
    validator = Draft202012Validator(flow_json_schema())
    assert not list(validator.iter_errors(flow(each(max_parallel=5))))
    assert list(validator.iter_errors(flow(each(max_parallel=0))))
    approval = {"key": "x", "type": "approval", "for_each": "{{ input.repos }}"}
    assert list(validator.iter_errors(flow(approval)))
    wait = {"key": "x", "type": "wait", "for_each": "{{ input.repos }}"}
    assert list(validator.iter_errors(flow(wait)))


def test_odd_values_are_problems_not_crashes():
    # A type that is not a string (found by schemathesis: a 500), nulls meaning "not given".
    step = {"key": "x", "type": {}, "for_each": "{{ input.repos }}", "max_parallel": None,
            "fail_fast": None}
    assert "steps[0].type" in messages(flow(step)) or "steps[0]" in messages(flow(step))
    assert validate_definition(flow(each(max_parallel=None, fail_fast=None)))
